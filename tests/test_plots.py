from imgclf.plots import learning_curves_figure


def _rows(rates):
    return [{"epoch": i + 1, "loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1), "accuracy": 0.5 + i / 10,
             "val_accuracy": 0.5 + i / 11, "learning_rate": rate} for i, rate in enumerate(rates)]


def test_the_learning_rate_panel_is_drawn_only_when_the_rate_changed():
    assert len(learning_curves_figure(_rows([0.001, 0.001, 0.001])).axes) == 2  # constant: nothing to show
    assert len(learning_curves_figure(_rows([0.01, 0.005, 0.0025])).axes) == 3
    assert len(learning_curves_figure([{k: v for k, v in r.items() if k != "learning_rate"}
                                       for r in _rows([0.1, 0.2])]).axes) == 2  # not logged (logreg)
