import numpy as np

from imgclf.plots import confused_pairs_figure, learning_curves_figure, reliability_figure


def _rows(rates):
    return [{"epoch": i + 1, "loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1), "accuracy": 0.5 + i / 10,
             "val_accuracy": 0.5 + i / 11, "learning_rate": rate} for i, rate in enumerate(rates)]


def test_the_learning_rate_panel_is_drawn_only_when_the_rate_changed():
    assert len(learning_curves_figure(_rows([0.001, 0.001, 0.001])).axes) == 2  # constant: nothing to show
    assert len(learning_curves_figure(_rows([0.01, 0.005, 0.0025])).axes) == 3
    assert len(learning_curves_figure([{k: v for k, v in r.items() if k != "learning_rate"}
                                       for r in _rows([0.1, 0.2])]).axes) == 2  # not logged (logreg)


def test_the_reliability_diagram_draws_each_filled_bin_at_its_place():
    from imgclf.evaluate.metrics import calibration_bins

    y = np.array([0, 1, 0, 0])
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.62, 0.38]])
    bins = calibration_bins(y, probs)
    top, counts = reliability_figure(bins, 0.1).axes
    accuracy = [p for p in top.patches if p.get_gid() == "accuracy"]
    # bins (8/15, 9/15], (9/15, 10/15], (13/15, 14/15], (14/15, 1]: 0.6 and 0.62 are apart
    assert [round(p.get_x() * 15) for p in accuracy] == [8, 9, 13, 14]
    assert [p.get_height() for p in accuracy] == [1.0, 1.0, 0.0, 1.0]
    assert all(abs(p.get_width() - 1 / 15) < 1e-12 for p in accuracy)
    gaps = [p for p in top.patches if p.get_gid() == "gap"]
    assert [round(p.get_y() + p.get_height(), 6) for p in gaps] == [0.6, 0.62, 0.9, 0.95]  # up to the confidence
    assert [p.get_height() for p in counts.patches] == [b["count"] for b in bins] and len(counts.patches) == 15


def test_the_confused_pairs_figure_leaves_a_slot_empty_for_a_single_example():
    images = [np.zeros((2, 4, 4, 1)), np.ones((1, 4, 4, 1))]
    fig = confused_pairs_figure([("3", "8", 5), ("7", "1", 1)], images, [[0.9, 0.8], [0.7]])
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 4 and len(drawn) == 3
    assert drawn[0].get_title().startswith("3 → 8: 5×") and drawn[2].get_title().startswith("7 → 1: 1×")
    assert drawn[1].get_title().strip() == "p = 0.80"
