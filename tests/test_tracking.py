import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from imgclf.tracking import store


def test_store_and_artifacts_live_at_the_real_root(dvc_root):
    experiment_id = store.use_experiment("lesson")
    assert mlflow.get_tracking_uri() == f"sqlite:///{dvc_root / 'mlflow.db'}"
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.artifact_location == (dvc_root / "mlartifacts").as_uri()
    assert store.use_experiment("lesson") == experiment_id
    assert (dvc_root / "mlflow.db").exists()


def test_tracking_uri_from_environment_wins(dvc_root, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.tracking_uri(dvc_root) == "http://127.0.0.1:5999"


def test_tags_name_the_dvc_experiment_and_the_device(dvc_root, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep-1")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    tags = store.run_tags("digits", "CPU", "2.x")
    assert tags == {"stage": "train", "mlflow.source.git.commit": "abc123", "device": "CPU",
                    "tensorflow.version": "2.x", "dataset": "digits", "dvc.exp_name": "lr-sweep-1"}


def test_a_failed_training_run_is_marked_failed(dvc_root, monkeypatch):
    from imgclf import layout
    from imgclf.train import training
    from stages import train
    from tests.conftest import write_tiny_split

    # op_threads 0: the stage runs in this process, whose threads per op later tests keep
    (dvc_root.parent / "copy" / "params.yaml").write_text("train:\n  epochs: 1\n  op_threads: 0\n")
    write_tiny_split()

    def broken_fit(*args, **kwargs):
        raise RuntimeError("out of memory")

    # the stage imports train_network from its module when it fits (TensorFlow only for a network)
    monkeypatch.setattr(training, "train_network", broken_fit)
    with pytest.raises(RuntimeError, match="out of memory"):
        train.main()
    client = MlflowClient(f"sqlite:///{dvc_root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("image-classifier").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not layout.MODEL.exists()


def test_a_deleted_experiment_is_a_clear_error(dvc_root):
    from imgclf.errors import PipelineError

    mlflow.delete_experiment(store.use_experiment("gone"))
    with pytest.raises(PipelineError, match="deleted; restore it"):
        store.use_experiment("gone")


def test_find_run_tells_whether_the_store_holds_the_run(dvc_root):
    experiment_id = store.use_experiment("lesson")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        pass
    assert store.find_run(run.info.run_id).info.run_id == run.info.run_id
    assert store.find_run("0" * 32) is None
    mlflow.delete_run(run.info.run_id)
    assert store.find_run(run.info.run_id) is None  # a deleted run takes no new evaluations


def test_find_run_does_not_mistake_a_store_error_for_a_missing_run(dvc_root, monkeypatch):
    from mlflow.exceptions import MlflowException

    calls = []

    def locked(run_id):
        calls.append(run_id)
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(mlflow, "get_run", locked)
    monkeypatch.setattr(store.time, "sleep", lambda seconds: None)
    with pytest.raises(MlflowException, match="database is locked"):
        store.find_run("1" * 32, attempts=3)
    assert len(calls) == 3


def test_an_unreachable_tracking_server_fails_fast_with_both_fixes(tmp_path):
    """The train stage itself, as `dvc repro` runs it: one line, exit 2, well before 30 s, before training."""
    from tests.conftest import PROJECT, free_ports
    from tests.dvc_project import env

    (tmp_path / "params.yaml").write_text("train:\n  epochs: 1\n")
    uri = f"http://127.0.0.1:{free_ports()[0]}"
    subprocess.run([sys.executable, "-c", "from tests.conftest import write_tiny_split; write_tiny_split()"],
                   cwd=tmp_path, env=env({"PYTHONPATH": str(PROJECT)}), check=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "stages.train"], cwd=tmp_path, capture_output=True, text=True,
                            env=env({"PYTHONPATH": str(PROJECT), "MLFLOW_TRACKING_URI": uri}), timeout=120)
    assert time.monotonic() - started < 30
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert uri in line and "start it" in line and "unset MLFLOW_TRACKING_URI" in line
    assert "Epoch" not in result.stdout and not (tmp_path / "models").exists()


def test_a_fresh_store_is_created_safely_by_processes_started_at_once(tmp_path):
    """Queue workers and multi-worker training open the store together; MLflow's migration must run once."""
    from tests.conftest import PROJECT

    code = "from imgclf.tracking import store; print(store.use_experiment('lesson'))"
    for attempt in range(2):
        root = tmp_path / str(attempt)
        root.mkdir()
        environment = {**os.environ, "DVC_ROOT": str(root), "PYTHONPATH": str(PROJECT)}
        environment.pop("MLFLOW_TRACKING_URI", None)
        procs = [subprocess.Popen([sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outputs]
        assert len({out.strip() for out, _ in outputs}) == 1  # one experiment, found or created by all


@pytest.mark.parametrize("cut", ["before the drop", "after the drop"])
def test_a_migration_cut_short_is_repaired(dvc_root, cut):
    experiment_id = store.use_experiment("lesson")
    run_id = mlflow.start_run(experiment_id=experiment_id, tags={"kept": "yes"}).info.run_id
    mlflow.end_run()
    mlflow.set_tracking_uri(None)
    with contextlib.closing(sqlite3.connect(dvc_root / "mlflow.db")) as con, con:
        # what Alembic's batch migration leaves when killed: the copy of a table, with or without the table
        con.execute("CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags")
        if cut == "after the drop":
            con.execute("DROP TABLE tags")
    assert store.use_experiment("lesson") == experiment_id
    assert mlflow.get_run(run_id).data.tags["kept"] == "yes"
    with contextlib.closing(sqlite3.connect(dvc_root / "mlflow.db")) as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "tags" in tables and "_alembic_tmp_tags" not in tables


def test_runs_of_killed_processes_are_closed_and_live_ones_kept(dvc_root):
    experiment_id = store.use_experiment("lesson")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ids = {}
    for name, owner in [("killed", f"{socket.gethostname()}:{gone.pid}:1"), ("live", store._this_process()),
                        ("elsewhere", "another-machine:1:1"), ("resumed", f"{socket.gethostname()}:{gone.pid}:1")]:
        with store.stage_run(experiment_id=experiment_id, run_name=name) as run:
            ids[name] = run.info.run_id
        client = MlflowClient()
        client.set_tag(run.info.run_id, store.PROCESS_TAG, owner)
        client.update_run(run.info.run_id, status="RUNNING")
    assert store.close_stale_runs(experiment_id, keep=ids["resumed"]) == [ids["killed"]]
    status = {name: mlflow.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"killed": "KILLED", "live": "RUNNING", "elsewhere": "RUNNING", "resumed": "RUNNING"}


def test_a_stage_run_ends_killed_on_ctrl_c_and_failed_on_an_error(dvc_root):
    experiment_id = store.use_experiment("lesson")
    ended = {}
    for name, error in [("stopped", KeyboardInterrupt), ("broken", RuntimeError)]:
        with pytest.raises(error), store.stage_run(experiment_id=experiment_id) as run:
            ended[name] = run.info.run_id
            raise error()
    assert mlflow.get_run(ended["stopped"]).info.status == "KILLED"
    assert mlflow.get_run(ended["broken"]).info.status == "FAILED"
