import mlflow
import pytest
from mlflow.tracking import MlflowClient

from imgclf import tracking


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root that DVC names through DVC_ROOT while the stage runs elsewhere (--temp)."""
    root, elsewhere = tmp_path / "root", tmp_path / "copy"
    root.mkdir()
    elsewhere.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.chdir(elsewhere)
    yield root
    mlflow.set_tracking_uri(None)


def test_store_and_artifacts_live_at_the_real_root(project):
    experiment_id = tracking.use_experiment("lesson")
    assert mlflow.get_tracking_uri() == f"sqlite:///{project / 'mlflow.db'}"
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.artifact_location == (project / "mlartifacts").as_uri()
    assert tracking.use_experiment("lesson") == experiment_id
    assert (project / "mlflow.db").exists()


def test_tracking_uri_from_environment_wins(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri(project) == "http://127.0.0.1:5999"


def test_tags_name_the_dvc_experiment_and_the_device(project, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep-1")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    tags = tracking.run_tags("digits", "CPU", "2.x")
    assert tags == {"stage": "train", "mlflow.source.git.commit": "abc123", "device": "CPU",
                    "tensorflow.version": "2.x", "dataset": "digits", "dvc.exp_name": "lr-sweep-1"}


def test_a_failed_training_run_is_marked_failed(project, monkeypatch):
    from imgclf import layout
    from stages import train
    from tests.conftest import write_tiny_split

    (project.parent / "copy" / "params.yaml").write_text("train:\n  epochs: 1\n")
    write_tiny_split()

    def broken_fit(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train, "train_network", broken_fit)
    with pytest.raises(RuntimeError):
        train.main()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("image-classifier").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not layout.MODEL.exists()


def test_a_deleted_experiment_is_a_clear_error(project):
    from imgclf.errors import PipelineError

    mlflow.delete_experiment(tracking.use_experiment("gone"))
    with pytest.raises(PipelineError, match="deleted; restore it"):
        tracking.use_experiment("gone")


def test_find_run_tells_whether_the_store_holds_the_run(project):
    experiment_id = tracking.use_experiment("lesson")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        pass
    assert tracking.find_run(run.info.run_id).info.run_id == run.info.run_id
    assert tracking.find_run("0" * 32) is None
    mlflow.delete_run(run.info.run_id)
    assert tracking.find_run(run.info.run_id) is None  # a deleted run takes no new evaluations


def test_find_run_does_not_mistake_a_store_error_for_a_missing_run(project, monkeypatch):
    from mlflow.exceptions import MlflowException

    calls = []

    def locked(run_id):
        calls.append(run_id)
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(mlflow, "get_run", locked)
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    with pytest.raises(MlflowException, match="database is locked"):
        tracking.find_run("1" * 32, attempts=3)
    assert len(calls) == 3
