import base64

from matplotlib.figure import Figure

from imgclf.artifacts import save_figure
from imgclf.report import build_context, render_html, render_markdown


def _context(tmp_path, class_names=("0", "1"), class_weights=None):
    images = {}
    for role in ("curves", "predictions", "augmentation", "confusion", "mistakes"):
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([0, 1])
        images[role] = tmp_path / "plots" / f"{role}.png"
        save_figure(images[role], fig)
    classes = {name: {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 3} for name in class_names}
    return build_context(
        params={"data.dataset": "digits", "train.model": "mlp", "train.optimizer": "adam"},
        split={"train": 10, "val": 2, "test": 6, "test_source": "carved", "per_class": {}},
        train={"epochs_run": 3, "loss": 0.1},
        evaluation={"accuracy": 0.8333, "loss": 0.4},
        classes=classes,
        class_weights=class_weights,
        mistakes=[{"index": 4, "true": class_names[1], "predicted": class_names[0], "confidence": 0.91}],
        images=images,
    )


def test_html_is_self_contained_with_every_section(tmp_path):
    html = render_html(_context(tmp_path))
    assert html.count("data:image/png;base64,") == 5
    png = (tmp_path / "plots" / "curves.png").read_bytes()
    assert base64.b64encode(png).decode() in html
    for heading in ("Training", "Learning curves", "Training samples", "Classification report",
                    "Confusion matrix", "Test predictions", "Most confident mistakes", "Parameters"):
        assert f"<h2>{heading}</h2>" in html
    assert "0.8333" in html and "train.optimizer" in html
    assert 'src="plots/' not in html


def test_class_names_are_escaped_in_html(tmp_path):
    html = render_html(_context(tmp_path, class_names=("<b>cat</b>", "dog & co")))
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "dog &amp; co" in html and "<b>cat</b>" not in html


def test_markdown_twin_links_images_relative_to_itself(tmp_path):
    (tmp_path / "reports").mkdir()
    md = render_markdown(_context(tmp_path), relative_to=tmp_path / "reports")
    assert "![learning curves](../plots/curves.png)" in md
    assert "| 1 | 0.500 | 1.000 | 0.667 | 3 |" in md
    assert "| 4 | 1 | 0 | 0.910 |" in md
    assert "class weight" not in md


def test_class_weights_are_shown_beside_support(tmp_path):
    (tmp_path / "reports").mkdir()
    context = _context(tmp_path, class_weights={"0": 0.75, "1": 1.5})
    md = render_markdown(context, relative_to=tmp_path / "reports")
    assert "| class | precision | recall | F1 | support | class weight |" in md
    assert "| 1 | 0.500 | 1.000 | 0.667 | 3 | 1.500 |" in md
    assert "<th>class weight</th>" in render_html(context)
