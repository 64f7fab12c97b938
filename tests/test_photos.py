"""The clothing-classifier track end to end: a folder of photos through dvc repro, cnn and transfer."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data.folders import scan_image_folder
from tests.conftest import PHOTO_COUNTS, make_photo_tree
from tests.dvc_project import (
    commit,
    dvc,
    evaluations,
    experiments,
    make_project,
    mlflow_runs,
    model_run_id,
    reset,
    run,
    set_param,
    stages_restored,
    stages_run,
    training_runs,
)

pytestmark = pytest.mark.slow

# A few dozen generated photos make two batches an epoch: too few for batch normalization's running
# figures to settle, or for augmented copies to teach much in 8 epochs. A small plain network learns them.
SMALL_CNN = {"data.dataset": "image_folder", "data.image_size": [32, 32], "train.model": "cnn",
             "train.epochs": 8, "train.learning_rate": 0.005, "train.cnn.filters": [8, 16],
             "train.cnn.dense_units": [32], "train.cnn.batch_norm": False, "train.cnn.global_pooling": False,
             "train.augmentation.rotation": 0, "train.augmentation.zoom": 0, "train.augmentation.shift": 0,
             "train.augmentation.flip": False}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_photo_tree(root / "presplit", presplit=True)
    make_photo_tree(root / "flat", presplit=False)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory, photos):
    repo = make_project(tmp_path_factory.mktemp("shop"), {**SMALL_CNN, "data.path": str(photos / "presplit")})
    result = dvc(repo, "repro")
    assert stages_run(result) == {"download", "preprocess", "split", "train", "evaluate", "report"}
    assert "skipping" in result.stderr + result.stdout and "corrupt.jpg" in result.stderr + result.stdout
    commit(repo, "baseline")
    return repo, run(repo, "git", "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def repo(project):
    """The project as committed after its first `dvc repro`, whatever the test before did."""
    path, baseline = project
    reset(path, baseline)
    return path


def _upload(repo, photos) -> tuple[Path, str]:
    """A test photo as a shop's customer would upload it (RGBA PNG, another size), and evaluate's class for it."""
    probs = np.load(repo / "data/predictions/test_probs.npy")
    files = scan_image_folder(photos / "presplit").files["test"]
    index = int(np.argmax(probs.max(axis=1)))
    class_names = json.loads((repo / "data/split/meta.json").read_text())["class_names"]
    with Image.open(files[index][0]) as original:
        original.convert("RGBA").resize((101, 67)).save(repo / "upload.png")
    return repo / "upload.png", class_names[int(probs[index].argmax())]


def test_presplit_photos_train_a_cnn_and_skip_bad_files(repo):
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["test_source"] == "folders" and split["skipped_images"] == 2
    # every good training photo plus the EXIF-rotated one; the corrupt and the text file are skipped
    assert split["train"] == sum(PHOTO_COUNTS["train"].values()) + 1
    assert split["test"] == sum(PHOTO_COUNTS["test"].values())
    meta = json.loads((repo / "data/split/meta.json").read_text())
    counts = json.loads((repo / "data/split/class_counts.json").read_text())
    assert counts["train"] == {"bag": 13, "shirt": 18, "shoes": 6}
    x = np.load(repo / "data/split/train_x.npy", mmap_mode="r")
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8  # photos stay 8-bit; the model scales them
    assert meta["pixel_scale"] == 1 / 255
    confusion = json.loads((repo / "plots/confusion.json").read_text())
    assert {r["actual"] for r in confusion} == {"bag", "shirt", "shoes"}
    html = (repo / "reports/report.html").read_text()
    assert "image_folder, cnn" in html and "<td>shoes</td>" in html
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_fail_mode_lists_the_bad_files_and_writes_nothing(repo):
    set_param(repo, "data.on_bad_image", "fail")
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "2 file(s) are not readable images" in message
    assert "corrupt.jpg" in message and "notes.jpg" in message and "data.on_bad_image: skip" in message
    assert not (repo / "data/processed").exists()
    assert not list((repo / "data").glob(".processed*"))  # no staging folder left behind
    run(repo, "git", "checkout", "-q", "--", "params.yaml")
    recovered = dvc(repo, "repro")
    # the failed run removed data/processed; DVC brings it back (rerun or from its run-cache), nothing else
    assert stages_run(recovered) | stages_restored(recovered) == {"preprocess"}, recovered.stdout
    assert (repo / "data/processed/train_x.npy").exists()
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_predict_on_a_new_size_and_mode_agrees_with_evaluate(repo, photos):
    _, expected = _upload(repo, photos)
    out = run(repo, sys.executable, "-m", "imgclf.serve.predict", "upload.png", "--top", "2",
              "--json", "answers.json").stdout
    assert re.match(rf"upload\.png: {expected} \(", out), out
    answers = json.loads((repo / "answers.json").read_text())
    assert answers["upload.png"][0]["class"] == expected and len(answers["upload.png"]) == 2


def test_transfer_with_balanced_class_weights(repo, photos, tmp_path):
    _upload(repo, photos)
    dvc(repo, "exp", "run", "-n", "transfer", "-S", "train.model=transfer", "-S", "train.transfer.weights=none",
        "-S", "train.transfer.backbone=mobilenet_v2", "-S", "train.class_weight=balanced", "-S", "train.epochs=1")
    row = experiments(repo)["transfer"]
    assert row["params"]["params.yaml"]["data"]["train"]["model"] == "transfer"
    client, runs = mlflow_runs(repo)
    (tracked,) = [r for r in training_runs(runs) if r.data.tags.get("dvc.exp_name") == "transfer"]
    weights = json.loads(Path(client.download_artifacts(tracked.info.run_id, "class_weights.json",
                                                        str(tmp_path))).read_text())
    assert weights["shoes"] > weights["bag"] > weights["shirt"]  # 6, 13 and 18 training photos
    assert tracked.data.params["train.class_weight"] == "balanced"
    html = (repo / "reports/report.html").read_text()
    assert "<th>class weight</th>" in html and "transfer" in html
    info = json.loads((repo / "models/model.json").read_text())
    assert info["model"] == "transfer" and info["class_weights"]["shoes"] == pytest.approx(weights["shoes"])
    out = run(repo, sys.executable, "-m", "imgclf.serve.predict", "upload.png").stdout  # the saved model reloads
    assert out.startswith("upload.png: ") and out.count("(") == 3


def test_flat_folder_is_split_stratified(repo, photos):
    dvc(repo, "exp", "run", "-n", "flat", "-S", f"data.path={photos / 'flat'}")
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["test_source"] == "carved" and split["skipped_images"] == 2
    total = {c: sum(PHOTO_COUNTS[s][c] for s in PHOTO_COUNTS) for c in ("bag", "shirt", "shoes")}
    total["bag"] += 1  # the rotated photo
    per_class = json.loads((repo / "data/split/class_counts.json").read_text())
    for part in ("train", "val", "test"):
        counts = per_class[part]
        share = split[part] / sum(total.values())
        for name, n in counts.items():
            assert abs(n - total[name] * share) <= 1.5, (part, name, n)


def test_a_restored_model_scored_on_a_changed_test_set_keeps_both_evaluations(repo, photos, tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(photos / "presplit", shop)
    # params no other test trains with, so the first run trains and the second can only be a restore
    unique = ("-S", "train.epochs=3", "-S", "train.learning_rate=0.0042")
    dvc(repo, "exp", "run", "-n", "test-v1", "-S", f"data.path={shop}", *unique)
    model_run = model_run_id(repo)
    first = json.loads((repo / "metrics/eval.json").read_text())

    run(repo, "git", "checkout", "-q", "--", ".")  # back to the baseline params; the run-cache has the change
    sorted((shop / "test" / "shirt").iterdir())[0].unlink()  # the test set changes; train and val do not
    result = dvc(repo, "exp", "run", "-n", "test-v2", "-S", f"data.path={shop}", *unique)
    # download depends on the params only (preprocess reads the folder), so it is restored too
    assert stages_restored(result) == {"download", "train"} and "Running stage 'evaluate'" in result.stdout
    assert f"note: this model was trained earlier, in MLflow run {model_run}" in result.stderr
    assert model_run_id(repo) == model_run
    second = json.loads((repo / "metrics/eval.json").read_text())

    client, runs = mlflow_runs(repo)
    assert client.get_run(model_run).info.status == "FINISHED"  # evaluate never reopens the training run
    assert not [k for k in client.get_run(model_run).data.metrics if k.startswith("test_")]
    scored = {r.data.tags["dvc.exp_name"]: r for r in evaluations(runs, model_run)}
    assert {"test-v1", "test-v2"} <= set(scored)
    v1, v2 = scored["test-v1"], scored["test-v2"]
    assert v1.data.tags["test.x.md5"] != v2.data.tags["test.x.md5"]
    assert v1.data.metrics["test_loss"] == pytest.approx(first["loss"])
    assert v2.data.metrics["test_loss"] == pytest.approx(second["loss"])
    assert first["loss"] != second["loss"]  # two test sets, two records, neither overwritten


def test_a_model_without_a_mistake_gets_a_report_that_says_so(repo, tmp_path):
    """Two classes a linear model tells apart without fail: the test split has no mistake to show."""
    rng = np.random.default_rng(0)
    for name, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (tmp_path / "easy" / name).mkdir(parents=True)
        for i in range(20):
            pixels = np.clip(np.array(color) + rng.integers(-15, 16, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "easy" / name / f"{i:02d}.png")
    dvc(repo, "exp", "run", "-n", "perfect", "-S", f"data.path={tmp_path / 'easy'}", "-S", "train.model=logreg")
    assert json.loads((repo / "metrics/eval.json").read_text())["accuracy"] == 1.0
    assert "No test image was misclassified." in (repo / "reports/report.md").read_text()
    assert "No test image was misclassified." in (repo / "reports/report.html").read_text()
