"""Two workers on 127.0.0.1, each running the train stage's command, train one model; the chief alone records it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgclf import layout
from tests.conftest import free_ports
from tests.dvc_project import copy_project, dvc, env, mlflow_runs, training_runs

pytestmark = pytest.mark.slow


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts}


def test_two_workers_train_one_model_and_only_the_chief_records_it(tmp_path, data_template):
    # Two machines with the same project and data (from git and DVC): two folders here.
    chief_repo = copy_project(data_template, tmp_path / "chief", {"train.epochs": 2})
    worker_repo = tmp_path / "worker"
    shutil.copytree(chief_repo, worker_repo)
    worker_files = files(worker_repo)
    ports = free_ports(2)
    # As docs/scale-out.md launches them: the chief runs the pipeline, the other worker the train stage's
    # command. The worker starts first and waits for the chief (worker 0), as on a cluster in any order.
    procs = [subprocess.Popen(command, cwd=repo, text=True, env=env({"TF_CONFIG": tf_config(ports, i)}),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for command, repo, i in (([sys.executable, "-m", "stages.train"], worker_repo, 1),
                                      ([sys.executable, "-m", "dvc", "repro"], chief_repo, 0))]
    try:
        worker_out, chief_out = (p.communicate(timeout=600)[0] for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 0, worker_out
    assert procs[1].returncode == 0, chief_out
    assert "train: worker of 2 done; the chief tracks the run and writes the outputs" in worker_out

    # The worker touched nothing: no output, no MLflow store, no backup.
    assert files(worker_repo) == worker_files
    # The chief wrote the stage's outputs and one run, of the model both replicas trained.
    for output in layout.OUTPUTS["train"]:
        assert (chief_repo / output).exists(), chief_out
    assert not (chief_repo / ".train-backup").exists()
    _, runs = mlflow_runs(chief_repo)
    (run,) = training_runs(runs)
    assert run.info.status == "FINISHED"
    assert run.data.tags["distribute.strategy"] == "MultiWorkerMirroredStrategy"
    assert run.data.tags["distribute.replicas"] == "2"
    # The workers stepped together: one optimizer step per global batch of 32, over the whole split.
    rows = len(np.load(chief_repo / "data/split/train_y.npy", mmap_mode="r"))
    train_metrics = json.loads((chief_repo / layout.TRAIN_METRICS).read_text())
    assert train_metrics["epochs_run"] == 2 and train_metrics["optimizer_steps"] == 2 * -(-rows // 32)
    assert train_metrics["val_accuracy"] > 0.5

    # The rest of the pipeline took the chief's model as any other.
    assert json.loads((chief_repo / layout.EVAL_METRICS).read_text())["accuracy"] > 0.5
    assert "Data and pipelines are up to date" in dvc(chief_repo, "status").stdout
