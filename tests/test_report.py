import base64

from matplotlib.figure import Figure

from imgclf.artifacts import save_figure
from imgclf.report.render import (
    RunPointer,
    build_context,
    calibration_words,
    relevant_params,
    render_html,
    render_markdown,
)

SHA = "5e" * 32
LOCAL = RunPointer("image-classifier", SHA, f"tags.`model.sha256` = '{SHA}'", None)


# data/checks/findings.json of a set without a finding
CLEAN_CHECKS = {
    "counts": {"exact_duplicates": 0, "near_duplicates": 0, "conflicting_groups": 0, "leaked_groups": 0,
               "dropped_images": 0, "leaks_left": 0, "small_images": 0, "gray_images": 0,
               "duplicates": {"train": 0, "val": 0, "test": 0}, "imbalance": {"train": 1.0, "val": None, "test": 1.5},
               "classes_under_minimum": {"train": 0, "val": 1, "test": 0}},
    "policy": {"leak": "drop", "conflict": "drop"}, "groups_total": 0, "groups": [], "dropped": [], "conflicts": [],
    "small": [], "gray": [],
}


def _bins(filled: dict[int, tuple[int, float, float]]) -> list[dict]:
    """15 calibration bins, those in `filled` holding (count, mean confidence, accuracy)."""
    return [{"lower": i / 15, "upper": (i + 1) / 15, "count": filled.get(i, (0,))[0],
             "confidence": filled[i][1] if i in filled else None, "accuracy": filled[i][2] if i in filled else None}
            for i in range(15)]


# 6 test images: 4 of them 97% sure and all right, 2 about 60% sure and one right
CALIBRATION = {"bins": _bins({14: (4, 0.97, 1.0), 8: (2, 0.6, 0.5)}), "ece": 0.053333, "confidence": 0.846667,
               "accuracy": 0.833333}


def _context(tmp_path, class_names=("0", "1"), class_weights=None, run=LOCAL, evaluation=None):
    images = {}
    for role in ("curves", "predictions", "augmentation", "confusion", "mistakes", "confused", "reliability"):
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([0, 1])
        images[role] = tmp_path / "plots" / f"{role}.png"
        save_figure(images[role], fig)
    classes = {name: {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 3} for name in class_names}
    return build_context(
        params={"data.dataset": "digits", "train.model": "mlp", "train.optimizer": "adam"},
        split={"train": 10, "val": 2, "test": 6, "test_source": "carved"},
        train={"epochs_run": 3, "loss": 0.1},
        evaluation=evaluation or {"accuracy": 0.8333, "loss": 0.4},
        classes=classes,
        class_weights=class_weights,
        mistakes=[{"index": 4, "true": class_names[1], "predicted": class_names[0], "confidence": 0.91}],
        images=images,
        run=run,
        checks=CLEAN_CHECKS,
        group_strips=[],
        confused=[{"actual": class_names[1], "predicted": class_names[0], "count": 1, "examples": [4]}],
        calibration=CALIBRATION,
    )


def test_html_is_self_contained_with_every_section(tmp_path):
    html = render_html(_context(tmp_path))
    assert html.count("data:image/png;base64,") == 7
    png = (tmp_path / "plots" / "curves.png").read_bytes()
    assert base64.b64encode(png).decode() in html
    for heading in ("Training", "Learning curves", "Training samples", "Classification report",
                    "Confusion matrix", "Test predictions", "Most confident mistakes", "Most confused pairs",
                    "Calibration", "Parameters"):
        assert f"<h2>{heading}</h2>" in html
    assert "0.8333" in html and "train.optimizer" in html
    assert 'src="plots/' not in html


def test_class_names_are_escaped_in_html(tmp_path):
    html = render_html(_context(tmp_path, class_names=("<b>cat</b>", "dog & co")))
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "dog &amp; co" in html and "<b>cat</b>" not in html


def _cells(markdown: str) -> list[list[str]]:
    """The cells of every Markdown table row, stripped of their padding."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|")]


def test_markdown_twin_links_images_relative_to_itself(tmp_path):
    (tmp_path / "reports").mkdir()
    md = render_markdown(_context(tmp_path), relative_to=tmp_path / "reports")
    assert "![learning curves](../plots/curves.png)" in md
    rows = _cells(md)
    assert ["class", "precision", "recall", "F1", "support"] in rows
    assert ["1", "0.500", "1.000", "0.667", "3"] in rows
    assert ["test index", "true", "predicted", "confidence"] in rows and ["4", "1", "0", "0.910"] in rows
    assert ["accuracy", "0.8333"] in rows and ["train.optimizer", "adam"] in rows
    assert "class weight" not in md


def test_class_weights_are_shown_beside_support(tmp_path):
    (tmp_path / "reports").mkdir()
    context = _context(tmp_path, class_weights={"0": 0.75, "1": 1.5})
    rows = _cells(render_markdown(context, relative_to=tmp_path / "reports"))
    assert ["class", "precision", "recall", "F1", "support", "class weight"] in rows
    assert ["0", "0.500", "1.000", "0.667", "3", "0.750"] in rows
    assert ["1", "0.500", "1.000", "0.667", "3", "1.500"] in rows
    html = render_html(context)
    assert "<th>class weight</th>" in html and "<td>1.500</td>" in html


def test_class_names_that_look_like_numbers_stay_text(tmp_path):
    (tmp_path / "reports").mkdir()
    rows = _cells(render_markdown(_context(tmp_path, class_names=("007", "1e3")), relative_to=tmp_path / "reports"))
    assert ["007", "0.500", "1.000", "0.667", "3"] in rows and ["1e3", "0.500", "1.000", "0.667", "3"] in rows
    assert ["4", "1e3", "007", "0.910"] in rows


def test_html_tables_hold_the_values_in_their_formats(tmp_path):
    html = render_html(_context(tmp_path))
    for cell in ("<td>0.8333</td>", "<td>0.667</td>", "<td>3</td>", "<td>0.910</td>", "<td>carved</td>",
                 "<td>train.optimizer</td>", "<td>adam</td>"):
        assert cell in html
    assert html.count('<table class="dataframe metrics">') == 8
    # the data checks' per-split figures, a split with a class missing in words
    assert "<td>imbalance (test)</td>\n      <td>1.5</td>" in html
    assert "<td>imbalance (val)</td>\n      <td>inf (a class has none)</td>" in html


def test_whole_numbers_stay_whole_and_floats_keep_their_format(tmp_path):
    context = _context(tmp_path)
    context["train"] = {"epochs_run": 30, "best_epoch": 12, "final_learning_rate": 0.001, "loss": 0.123456789}
    markdown, html = render_markdown(context, relative_to=tmp_path), render_html(context)
    assert "| epochs_run          | 30" in markdown and "30.0" not in markdown
    assert "| loss                | 0.123457" in markdown  # pandas' "g", as before
    assert "<td>30</td>" in html and "<td>12</td>" in html


def test_the_report_lists_the_params_of_its_own_model_only():
    flat = {"train.model": "mlp", "train.optimizer": "adam", "train.cnn.filters": [32], "train.transfer.base": "x",
            "train.logreg.C": 1.0, "data.dataset": "digits"}
    assert relevant_params(flat) == {"train.model": "mlp", "train.optimizer": "adam", "data.dataset": "digits"}
    assert "train.cnn.filters" in relevant_params({**flat, "train.model": "cnn"})


def test_the_report_names_the_training_run_by_its_model_file_and_links_a_server(tmp_path):
    (tmp_path / "reports").mkdir()
    local = render_markdown(_context(tmp_path), relative_to=tmp_path / "reports")
    assert f"search `` tags.`model.sha256` = '{SHA}' ``" in local and "python -m imgclf.tracking.model_run" in local
    assert "](http" not in local
    link = f"http://mlflow.example.invalid:5000/#/experiments/7/runs?searchFilter=tags.%60model.sha256%60%20%3D%20%27{SHA}%27"
    served = _context(tmp_path, run=RunPointer("image-classifier", SHA, LOCAL.search, link))
    assert f"[The training run in MLflow]({link})" in render_markdown(served, relative_to=tmp_path / "reports")
    assert f'<a href="{link}">The training run in MLflow</a>' in render_html(served)


def test_the_same_results_render_to_the_same_bytes(tmp_path):
    # reports/ is a DVC output: a rerun must reproduce its hash in dvc.lock (no time, no run id in it)
    (tmp_path / "reports").mkdir()
    first, second = _context(tmp_path), _context(tmp_path)
    assert render_html(first) == render_html(second)
    assert render_markdown(first, tmp_path / "reports") == render_markdown(second, tmp_path / "reports")


def test_the_report_says_how_far_the_confidence_is_from_the_accuracy(tmp_path):
    (tmp_path / "reports").mkdir()
    context = _context(tmp_path)
    assert context["calibration_words"] == [
        "On average the model is 84.7% sure of its answer and right 83.3% of the time: overconfident by 1.3 "
        "percentage points. Bin by bin (15 equal bins of confidence, weighted by their images) its confidence is "
        "5.3 points from its accuracy (expected calibration error 0.0533).",
        "When it is 93%–100% sure (4 test images, 97.0% on average), it is right 100.0% of the time.",
        "When it is 53%–60% sure (2 test images, 60.0% on average), it is right 50.0% of the time.",
    ]
    markdown, html = render_markdown(context, relative_to=tmp_path / "reports"), render_html(context)
    for sentence in context["calibration_words"]:
        assert f"\n{sentence}\n" in markdown and f"<p>{sentence}</p>" in html
    assert "![reliability diagram](../plots/reliability.png)" in markdown


def test_calibration_words_name_underconfidence_and_only_the_fullest_bins():
    bins = _bins({14: (50, 0.95, 0.99), 12: (30, 0.85, 0.9), 9: (2, 0.62, 1.0), 6: (10, 0.45, 0.5)})
    words = calibration_words({"bins": bins, "ece": 0.04, "confidence": 0.88, "accuracy": 0.93})
    assert "underconfident by 5.0 percentage points" in words[0]
    assert [w.split(" sure")[0] for w in words[1:]] == ["When it is 93%–100%", "When it is 80%–87%",
                                                        "When it is 40%–47%"]
    calibrated = calibration_words({"bins": bins, "ece": 0.0, "confidence": 0.9, "accuracy": 0.9})
    assert "as sure as it is right" in calibrated[0]


def test_the_report_shows_top_k_and_the_most_confused_pairs(tmp_path):
    (tmp_path / "reports").mkdir()
    context = _context(tmp_path, evaluation={"accuracy": 0.8333, "loss": 0.4, "top3_accuracy": 0.95,
                                             "top5_accuracy": 1.0, "ece": 0.05})
    assert context["top_k"] == {3: 0.95, 5: 1.0}
    markdown, html = render_markdown(context, relative_to=tmp_path / "reports"), render_html(context)
    sentence = "among the model's 3 most probable for 95.0% and 5 most probable for 100.0% of the test images"
    assert sentence in markdown and sentence in html and "against 83.3% at its first guess" in markdown
    rows = _cells(markdown)
    assert ["top3_accuracy", "0.9500"] in rows
    assert ["true", "predicted", "count", "examples (test index)"] in rows and ["1", "0", "1", "4"] in rows
    assert "![most confused pairs](../plots/confused.png)" in markdown
    assert "<td>4</td>" in html


def test_top_k_comes_from_the_evaluation_and_a_set_without_mistakes_says_so(tmp_path):
    (tmp_path / "reports").mkdir()
    context = _context(tmp_path)
    assert context["top_k"] == {} and "most probable" not in render_markdown(context, relative_to=tmp_path)
    context["confused"] = []
    markdown = render_markdown(context, relative_to=tmp_path / "reports")
    assert markdown.split("## Most confused pairs")[1].split("##")[0].count("No test image was misclassified.") == 1


def test_node_and_gradcam_figures_get_their_sections_only_when_the_stage_passes_them(tmp_path):
    context = _context(tmp_path)
    for text in (render_html(context), render_markdown(context, relative_to=tmp_path / "reports")):
        assert "What each hidden node sees" not in text and "Grad-CAM" not in text
    for role in ("nodes", "gradcam"):
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([1, 0])
        context["images"][role] = tmp_path / "plots" / f"{role}.png"
        save_figure(context["images"][role], fig)
    html = render_html(context)
    assert "<h2>What each hidden node sees</h2>" in html and "blue positive" in html
    assert "<h2>Where the model looked when it was wrong (Grad-CAM)</h2>" in html
    assert base64.b64encode((tmp_path / "plots" / "gradcam.png").read_bytes()).decode() in html
    markdown = render_markdown(context, relative_to=tmp_path / "reports")
    assert "](../plots/nodes.png)" in markdown and "](../plots/gradcam.png)" in markdown


def test_the_report_shows_the_test_time_augmented_figures_beside_the_plain_ones_when_there_are_any(tmp_path):
    (tmp_path / "reports").mkdir()
    plain = _context(tmp_path)
    for text in (render_html(plain), render_markdown(plain, relative_to=tmp_path / "reports")):
        assert "test-time augmentation" not in text
    context = _context(tmp_path, evaluation={"accuracy": 0.8333, "loss": 0.4, "tta_accuracy": 0.8667,
                                             "tta_loss": 0.35})
    markdown, html = render_markdown(context, relative_to=tmp_path / "reports"), render_html(context)
    assert ("the accuracy is **0.8667** and the loss 0.3500, against 0.8333 and 0.4000 without it" in markdown)
    assert "the accuracy is <strong>0.8667</strong> and the loss 0.3500, against 0.8333 and 0.4000" in html
    assert ["tta_accuracy", "0.8667"] in _cells(markdown) and ["accuracy", "0.8333"] in _cells(markdown)
