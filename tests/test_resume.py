"""A training killed part-way resumes where it stopped, to the same result, in the same MLflow run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import PROJECT
from tests.dvc_project import commit, copy_project, dvc, env, mlflow_runs, run, training_runs

pytestmark = pytest.mark.slow

# Batches of one on the bundled digits: about 3 s an epoch, time to see an epoch end and kill.
# Three epochs: one before the kill, and two after it that the resumed run trains.
PARAMS = {"train.epochs": 3, "train.batch_size": 1, "train.steps_per_execution": 1}


def fresh_clone(template: Path, folder: Path) -> Path:
    """The project as a clone has it, with the output folders' .gitignore files DVC wrote and git holds."""
    repo = copy_project(template, folder, PARAMS)
    for name in run(PROJECT, "git", "ls-files", "*/.gitignore").stdout.split():
        if not name.startswith(".dvc/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PROJECT / name, repo / name)
    commit(repo, "output folders ignored")
    return repo


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_template) -> Path:
    repo = fresh_clone(data_template, tmp_path_factory.mktemp("uninterrupted"))
    dvc(repo, "repro")
    return repo


def git_status(repo: Path) -> set[str]:
    return set(run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout.splitlines())


def repro_until_epoch_ends(repo: Path) -> tuple[subprocess.Popen, psutil.Process, list[str]]:
    """Start `dvc repro`; return once the train stage's log shows epoch 1 has ended, with the stage's process."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env({"PYTHONUNBUFFERED": "1"}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    second_epoch = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Epoch 2/"):
                second_epoch.set()

    threading.Thread(target=read, daemon=True).start()
    if not second_epoch.wait(timeout=300):
        proc.kill()
        pytest.fail("the train stage never started its second epoch:\n" + "".join(lines))
    # The Python process itself: where /bin/sh does not exec its command (dash), DVC's shell is
    # its parent, and a signal to that shell would leave the training running.
    stage = next(p for p in psutil.Process(proc.pid).children(recursive=True)
                 if p.cmdline()[1:3] == ["-m", "stages.train"])
    return proc, stage, lines


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path, data_template, uninterrupted, sig):
    repo = fresh_clone(data_template, tmp_path)
    proc, stage, lines = repro_until_epoch_ends(repo)
    os.kill(stage.pid, sig)
    assert proc.wait(timeout=120) != 0
    client, runs = mlflow_runs(repo)
    (killed,) = training_runs(runs)
    if sig == signal.SIGTERM:
        # marked at once by the stage itself, and its backup kept
        assert killed.info.status == "KILLED", "".join(lines)
        assert "stopped by SIGTERM" in "".join(lines)
    else:
        assert killed.info.status == "RUNNING"  # nothing could mark it; the next start must
    assert list((repo / ".train-backup").glob("*/latest.json"))

    started = time.monotonic()
    again = dvc(repo, "repro")
    assert "train: resuming from epoch" in again.stdout, again.stdout
    assert "Running stage 'evaluate'" in again.stdout
    assert (repo / "metrics/eval.json").read_bytes() == (uninterrupted / "metrics/eval.json").read_bytes()
    assert (repo / "plots/history.csv").read_bytes() == (uninterrupted / "plots/history.csv").read_bytes()

    client, runs = mlflow_runs(repo)
    (trained,) = training_runs(runs)
    assert trained.info.run_id == killed.info.run_id and trained.info.status == "FINISHED"
    steps = sorted({m.step for m in client.get_metric_history(trained.info.run_id, "val_loss")})
    assert steps == [0, 1, 2]
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    assert not (repo / ".train-backup").exists()  # removed once the stage completed
    assert git_status(repo) == git_status(uninterrupted), f"resumed in {time.monotonic() - started:.0f} s"
