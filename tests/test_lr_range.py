"""The learning-rate range test: its suggestion on a small synthetic problem; the command's files, run, errors."""

import csv
import math
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import yaml

from imgclf.artifacts import SplitPart, write_json, write_part
from imgclf.errors import PipelineError
from imgclf.params import TrainParams
from imgclf.train.range_test import RangeSettings, run_range_test, suggest_rate
from imgclf.train.result import DataSpec
from imgclf.train.training import make_deterministic
from tests.conftest import PROJECT
from tests.dvc_project import env


def _problem(n=300, seed=0):
    """4x4 images whose label is the brightest of three quadrants: learnable by a tiny network."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 4, 1), dtype=np.float32)
    y = x.reshape(n, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(n, 4)[:, :3].argmax(axis=1)
    return SplitPart(x, y)


def _row(step, rate, smoothed):
    return {"step": step, "learning_rate": rate, "loss": smoothed, "smoothed_loss": smoothed}


def test_the_suggestion_is_a_tenth_of_the_rate_of_the_lowest_smoothed_loss():
    rows = [_row(1, 1e-4, 1.1), _row(2, 1e-3, 0.9), _row(3, 1e-2, 0.4), _row(4, 1e-1, 0.6), _row(5, 1.0, math.nan)]
    assert suggest_rate(rows) == pytest.approx(1e-3)
    with pytest.raises(PipelineError, match="lower --min-lr"):
        suggest_rate([_row(1, 1e-4, math.inf)])


def test_the_rates_rise_geometrically_from_min_to_max():
    settings = RangeSettings(min_lr=1e-5, max_lr=1e4, steps=10)
    assert [settings.rate(step) for step in range(10)] == pytest.approx([10.0 ** e for e in range(-5, 5)])


@pytest.mark.parametrize(("settings", "named"), [
    ({"min_lr": 1.0, "max_lr": 0.1}, "--min-lr"), ({"steps": 3}, "--steps"), ({"diverge": 1.0}, "--diverge")])
def test_settings_that_cannot_make_a_test_are_named(settings, named):
    with pytest.raises(PipelineError, match=named):
        RangeSettings(**settings)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_suggested_rate_lies_below_the_rate_where_the_loss_diverges(optimizer):
    make_deterministic(0)
    params = TrainParams(hidden_units=(16,), batch_size=16, optimizer=optimizer)
    settings = RangeSettings(min_lr=1e-5, max_lr=100.0, steps=200)
    result = run_range_test(_problem(), DataSpec(3), params, 0, settings)
    assert result.diverged_at is not None and len(result.rows) < settings.steps  # it stopped once diverged
    assert result.rows[-1]["learning_rate"] == pytest.approx(result.diverged_at)
    assert settings.min_lr < result.suggestion < result.diverged_at / 10
    # on the descending stretch: the smoothed loss at the suggested rate is below the plateau of the smallest rates
    at = min(result.rows, key=lambda row: abs(math.log(row["learning_rate"] / result.suggestion)))
    plateau = np.mean([row["smoothed_loss"] for row in result.rows[:20]])
    assert at["smoothed_loss"] < 0.95 * plateau


def test_logreg_has_no_rate_to_test():
    with pytest.raises(PipelineError, match="train.model = logreg has no learning rate"):
        run_range_test(_problem(30), DataSpec(3), TrainParams(model="logreg"), 0, RangeSettings())


def _project(root, with_split=True):
    """A project folder: params.yaml for a tiny network, and data/split's training part and meta.json."""
    (root / "params.yaml").write_text(yaml.safe_dump({
        "train": {"hidden_units": [8], "batch_size": 16}, "mlflow": {"experiment_name": "lessons"}}))
    if with_split:
        part = _problem(120)
        write_part(root / "data" / "split", "train", part.x, part.y)
        write_json(root / "data" / "split" / "meta.json", {"class_names": ["a", "b", "c"], "pixel_scale": 1.0})


def test_the_command_writes_the_plot_and_rows_and_logs_a_run_of_its_own(tmp_path, monkeypatch, capsys):
    from imgclf.train.lr_range import main

    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    try:
        main(["--steps", "40", "--min-lr", "1e-4", "--max-lr", "10"])
        experiment = mlflow.get_experiment_by_name("lessons")
        (run,) = mlflow.search_runs([experiment.experiment_id], output_format="list")
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "lr_range")}
        losses = mlflow.MlflowClient().get_metric_history(run.info.run_id, "lr_range_loss")
    finally:
        mlflow.set_tracking_uri(None)
    assert (tmp_path / "plots" / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "plots" / "lr_range.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "learning_rate", "loss", "smoothed_loss"] and 10 <= len(rows) <= 40
    assert [int(row["step"]) for row in rows] == list(range(1, len(rows) + 1))
    # tagged so that nothing takes it for a training run: its own stage tag, and no model
    assert run.data.tags["stage"] == "lr_range" and "model.sha256" not in run.data.tags
    assert run.info.run_name.startswith("lr-range-") and run.info.status == "FINISHED"
    assert artifacts == {"lr_range/lr_range.png", "lr_range/lr_range.csv"}
    assert len(losses) == len(rows)
    suggested = run.data.metrics["suggested_learning_rate"]
    assert f"suggested learning rate {suggested:.3g}" in capsys.readouterr().out
    assert run.data.params["lr_range.steps"] == "40" and run.data.params["train.hidden_units"] == "[8]"


def test_without_a_split_the_command_names_the_fix_on_one_line(tmp_path):
    _project(tmp_path, with_split=False)
    result = subprocess.run([sys.executable, "-m", "imgclf.train.lr_range"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=env({"PYTHONPATH": str(PROJECT)}))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: data/split/train_x.npy not found") and "run `dvc repro split`" in line
    assert not (tmp_path / "plots").exists() and not (tmp_path / "mlflow.db").exists()
