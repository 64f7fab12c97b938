"""A model's MLflow training run, found by the sha256 of its file (the run's tag model.sha256), never by a stored id."""

import logging
import urllib.parse

import mlflow
from mlflow.tracking import MlflowClient

from imgclf.records import ModelRecord
from imgclf.tracking import store
from imgclf.tracking.evaluation_run import evaluation_run
from imgclf.tracking.model_run import TrainingRun, find_training_run, runs_link, search_filter

SHA, OTHER = "a1" * 32, "b2" * 32
TAGS = {"stage": "train", "mlflow.source.git.commit": "0123456789abcdef", "git.dirty": "false",
        "dvc.data_version": "d41d8cd9.dir"}


def _record(sha: str = SHA, registered: str | None = None) -> ModelRecord:
    return ModelRecord(dataset="digits", model="mlp", class_names=("0", "1"), input_shape=(8, 8, 1),
                       model_sha256=sha, registered_model=registered)


def _run(experiment: str, started: int, sha: str, status: str = "FINISHED", **tags: str) -> str:
    """A training run that wrote the model file `sha`, started at `started` (ms) and ended as `status`."""
    experiment_id = store.use_experiment(experiment)  # points MLflow at the project's store
    client = MlflowClient()
    run = client.create_run(experiment_id, start_time=started,
                            tags={**TAGS, store.MODEL_SHA256_TAG: sha, **tags})
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_the_newest_finished_run_of_the_experiment_that_wrote_the_file_is_found(dvc_root):
    _run("lesson", 1000, SHA)
    retrained = _run("lesson", 2000, SHA)  # `dvc repro --force` writes the same file again
    _run("lesson", 3000, SHA, status="FAILED")  # its stage published no file
    _run("lesson", 4000, OTHER)
    _run("other-lesson", 5000, SHA)

    found = find_training_run("lesson", _record())
    assert found.run_id == retrained
    assert found.experiment_id == mlflow.get_experiment_by_name("lesson").experiment_id
    assert (found.model_id, found.registered_version) == (None, None)
    assert found.data_hint == "`git checkout 0123456789ab && dvc checkout data/split` (DVC version `d41d8cd9.dir`)"
    assert mlflow.get_tracking_uri() == f"sqlite:///{dvc_root / 'mlflow.db'}"  # the real root's store
    assert find_training_run("lesson", _record("c3" * 32)) is None
    assert find_training_run("no-such-experiment", _record()) is None


def test_the_runs_photo_model_and_registered_version_are_looked_up(dvc_root):
    earlier = _run("lesson", 1000, SHA)
    run_id = _run("lesson", 2000, SHA, **{"dvc.exp_name": "wide"})
    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    client.create_registered_model("shop")
    for source in (earlier, run_id):  # versions 1 and 2
        client.create_model_version("shop", f"runs:/{source}/model", run_id=source)
    client.create_logged_model(experiment_id, name="network", source_run_id=run_id)  # the raw network beside it
    photo = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)

    found = find_training_run("lesson", _record(registered="shop"))
    assert found.run_id == run_id and found.model_id == photo.model_id
    assert found.registered_version == 2  # the version of this run, not the first one registered
    assert found.data_hint.startswith("`dvc exp apply wide`")
    assert find_training_run("lesson", _record()).registered_version is None  # mlflow.register_model unset


def test_evaluate_logs_nothing_when_the_store_holds_no_run_of_the_model(dvc_root, caplog):
    caplog.set_level(logging.WARNING)
    _run("lesson", 1000, OTHER)
    with evaluation_run("lesson", _record()) as (run, trained):
        assert run is None and trained is None
    assert "no finished MLflow training run in experiment 'lesson'" in caplog.text
    assert search_filter(SHA) in caplog.text and "dvc repro --force --single-item train" in caplog.text
    assert len(mlflow.search_runs(output_format="list", search_all_experiments=True)) == 1  # no evaluation run


def test_a_servers_runs_table_is_linked_searched_for_the_model_file():
    run = TrainingRun("f" * 32, "digits-mlp-0123456", "7", None, None, "")
    mlflow.set_tracking_uri("http://mlflow.example.invalid:5000/")
    try:
        link = runs_link(run, SHA)
    finally:
        mlflow.set_tracking_uri(None)
    base, query = link.split("?")
    assert base == "http://mlflow.example.invalid:5000/#/experiments/7/runs"
    assert urllib.parse.parse_qs(query) == {"workflowType": ["machine_learning"],  # not the GenAI view
                                            "searchFilter": [f"tags.`model.sha256` = '{SHA}'"]}
    assert " " not in link and "'" not in link  # a URL as Markdown and HTML take it
    assert runs_link(None, SHA) is None


def test_a_local_store_has_no_link(dvc_root):
    store.connect()
    assert runs_link(TrainingRun("f" * 32, "x", "1", None, None, ""), SHA) is None
