"""The web shop's model: `mlflow models serve` on the champion answers photos as `imgclf.serve.predict` does."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT, chromium_page, local_server, make_photo_tree, photo, require
from tests.dvc_project import dvc, env, make_project, model_run_id

pytestmark = pytest.mark.slow

MODEL = "shop-classifier"
# A small plain network, as tests/test_photos.py's SMALL_CNN says why.
PARAMS = {"data.dataset": "image_folder", "data.image_size": [32, 32], "train.model": "cnn", "train.epochs": 4,
          "train.learning_rate": 0.005, "train.cnn.filters": [8], "train.cnn.dense_units": [16],
          "train.cnn.batch_norm": False, "train.cnn.global_pooling": False, "train.augmentation.rotation": 0,
          "train.augmentation.zoom": 0, "train.augmentation.shift": 0, "train.augmentation.flip": False,
          "mlflow.register_model": MODEL}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A shop's project trained on generated photos, its model registered and made champion."""
    tmp_path = tmp_path_factory.mktemp("serving")
    make_photo_tree(tmp_path / "photos")
    (tmp_path / "shop").mkdir()
    repo = make_project(tmp_path / "shop", {**PARAMS, "data.path": str(tmp_path / "photos")})
    out = dvc(repo, "repro").stdout
    assert f"{MODEL} version 1 is the champion" in out, out
    return repo


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    """The registered champion served by MLflow on 127.0.0.1, from a folder outside the project, with MLflow
    told to refuse a pickled model (the champion is logged as code); its log file."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with local_server([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
                       "--env-manager", "local"], "/ping", elsewhere / "serve.log", timeout=180, cwd=elsewhere,
                      env=env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
                               "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"})) as url:
        yield project, url, elsewhere / "serve.log"


def test_the_served_model_pins_every_library_its_photo_decoding_imports(project):
    """The server installs the model's requirements.txt: the decoding code it ships (imgclf/data/images.py
    and the JPEG decoder it calls, imgclf/data/jpeg.py) must find each library it imports there, not only in
    the project's own environment."""
    import ast
    import importlib.metadata

    modules = set()
    for source in ("imgclf/data/images.py", "imgclf/data/jpeg.py"):
        tree = ast.parse((PROJECT / source).read_text())
        modules |= {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                    for alias in node.names}
        modules |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    third_party = modules - set(sys.stdlib_module_names) - {"__future__", "imgclf", "numpy"}  # numpy: TensorFlow's
    providers = importlib.metadata.packages_distributions()
    needed = {providers[module][0].lower() for module in third_party}
    assert {"pillow", "simplejpeg", "opencv-python-headless"} <= needed
    photo_models = [path for path in project.glob("mlartifacts/**/requirements.txt") if "pillow" in path.read_text()]
    assert photo_models
    for path in photo_models:
        pinned = {line.split("==")[0].lower() for line in path.read_text().split()}
        assert needed <= pinned, (path, needed - pinned)
        # The model carries its ONNX copy (the CNN exports): the server scores it with ONNX Runtime.
        assert "onnxruntime" in pinned and (path.parent / "artifacts" / "model.onnx").exists(), path


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_served_champion_takes_photos_as_predict_does(server, tmp_path):
    repo, url, log = server
    rng = np.random.default_rng(7)
    # What a shop's customers upload: a JPEG and a PNG of other sizes and modes than the training photos.
    uploads = [tmp_path / "upload.jpg", tmp_path / "upload.png"]
    photo((40, 60, 200), (120, 77), "RGB", rng).save(uploads[0], "JPEG", quality=85)
    photo((200, 40, 40), (53, 140), "LA", rng).save(uploads[1], "PNG")
    encoded = [base64.b64encode(p.read_bytes()).decode("ascii") for p in uploads]
    answer = _post(url, {"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]},
                         "params": {"top_k": 2}})["predictions"]

    expected = _predicted(repo, uploads, tmp_path, 2)
    assert len(answer) == 2
    for row, path in zip(answer, uploads):
        ranked = expected[str(path)]
        assert row["class"] == ranked[0]["class"]
        assert row["probability"] == pytest.approx(ranked[0]["probability"], abs=1e-6)
        assert [r["class"] for r in row["top_k"]] == [r["class"] for r in ranked]
        assert [r["probability"] for r in row["top_k"]] == pytest.approx([r["probability"] for r in ranked], abs=1e-6)

    # A row that is not a photo gets its error, naming the row; the photo beside it is still answered.
    answer = _post(url, {"dataframe_split": {"columns": ["image"], "data": [[encoded[0]], ["bm90IGEgcGhvdG8="]]},
                         "params": {"top_k": 2}})["predictions"]
    assert answer[0]["class"] == expected[str(uploads[0])][0]["class"] and answer[0]["error"] is None
    assert answer[1]["class"] is None and answer[1]["error"].startswith("cannot read the image of row 1 as an image")
    # The champion has its ONNX copy: the server scored with ONNX Runtime and never loaded TensorFlow.
    assert json.loads((repo / "models/model.json").read_text())["onnx_sha256"]
    assert "tensorflow" not in log.read_text().lower()


def _predicted(repo, paths, tmp_path, top: int) -> dict:
    """imgclf.serve.predict's answers for these files, from the project's model."""
    from imgclf.serve.predict import main as predict_main

    predict_main([str(p) for p in paths] + ["--model", str(repo / "models/model.keras"), "--top", str(top),
                                            "--json", str(tmp_path / "predicted.json")])
    return json.loads((tmp_path / "predicted.json").read_text())


def test_the_documented_curl_command_sends_a_photo_of_any_size(server, tmp_path):
    require(bool(shutil.which("curl")), "curl not installed")
    repo, url, _ = server
    commands = [command for doc in (PROJECT / "README.md", PROJECT / "docs/mlflow.md")
                for command in re.findall(r"^printf .*?--data-binary @-$", doc.read_text(), flags=re.S | re.M)]
    assert len(commands) == 2
    # A camera's photo: its base64 is far over the 128 KiB one command-line argument may hold.
    photo((90, 160, 60), (900, 700), "RGB", np.random.default_rng(11)).save(tmp_path / "photo.jpg", quality=95)
    assert (tmp_path / "photo.jpg").stat().st_size > 300_000
    ranked = _predicted(repo, [tmp_path / "photo.jpg"], tmp_path, 3)[str(tmp_path / "photo.jpg")]
    for command in commands:
        out = subprocess.run(["bash", "-c", command.replace("http://127.0.0.1:5001", url)], cwd=tmp_path,
                             capture_output=True, text=True, check=True, timeout=120).stdout
        (row,) = json.loads(out)["predictions"]
        assert row["class"] == ranked[0]["class"] and [r["class"] for r in row["top_k"]] == [r["class"] for r in ranked]
        assert row["probability"] == pytest.approx(ranked[0]["probability"], abs=1e-6)


def test_the_logged_model_shows_how_to_call_it(project):
    repo = project
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    version = MlflowClient().get_model_version_by_alias(MODEL, "champion")
    model = mlflow.models.get_model_info(f"models:/{MODEL}@champion")
    assert [c["name"] for c in model.signature.inputs.to_dict()] == ["image"]
    assert {c["name"] for c in model.signature.outputs.to_dict()} == {"class", "probability", "top_k", "error"}
    assert model.signature.params.to_dict()[0]["name"] == "top_k"
    example = mlflow.models.Model.load(f"models:/{MODEL}@champion").load_input_example(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion"))
    with Image.open(__import__("io").BytesIO(base64.b64decode(example["image"][0]))) as image:
        assert image.size == (32, 32)
    # the version carries its figures on the test set it was scored on, for the champion's comparisons
    digest = version.tags["test.digest"]
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert float(version.tags[f"test.{digest}.accuracy"]) == evaluation["accuracy"]
    # the raw network stays available beside it
    network = mlflow.keras.load_model(f"runs:/{version.run_id}/network")
    assert network.input_shape[1:] == (32, 32, 3) and network.output_shape[-1] == 3  # bag, shirt, shoes


def test_the_models_run_records_its_data_machine_and_story(project):
    repo = project
    import mlflow
    import yaml

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    run = mlflow.get_run(model_run_id(repo))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    hashes = {d["path"]: d["md5"] for stage in lock.values() for d in stage.get("deps", []) + stage.get("outs", [])}
    # Each part's digest is its data's hash in dvc.lock; the source is the photo folder it came from.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "val", "test"}
    for part, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        assert inputs[part].dataset.digest == hashes[f"data/split/{part}_x.npy"]
        tags = {t.key: t.value for t in inputs[part].tags}
        assert tags["mlflow.data.context"] == context
        assert tags[f"{part}_y.npy.md5"] == hashes[f"data/split/{part}_y.npy"]
        assert str(repo.parent / "photos") in inputs[part].dataset.source
    # Which checkout reproduces the data: the commit, whether it was dirty, the split's DVC version.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == commit and run.data.tags["git.dirty"] == "false"
    assert run.data.tags["dvc.data_version"] == hashes["data/split"]
    assert run.info.run_name == f"image_folder-cnn-{commit[:7]}"
    # The machine it ran on, sampled while it trained.
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    # The description: model, data, headline metrics, how to get the data back, the confusion matrix.
    note = run.data.tags["mlflow.note.content"]
    accuracy = json.loads((repo / "metrics/eval.json").read_text())["accuracy"]
    assert note.startswith("**cnn** on **image_folder**") and f"{accuracy:.4f}" in note
    assert f"git checkout {commit[:12]} && dvc checkout data/split" in note and hashes["data/split"] in note
    assert re.search(r"^\| true bag&emsp; +\| +\d+&emsp; \|", note, flags=re.M) and "Confusion matrix" in note
    # The test set is the evaluation's: on its own run, and on the model's run, with the digest the note names.
    (scored,) = mlflow.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                                   output_format="list")
    (tested,) = scored.inputs.dataset_inputs
    assert tested.dataset.name == "test" and tested.dataset.digest == inputs["test"].dataset.digest
    assert f"Confusion matrix on the test set `{hashes['data/split/test_x.npy']}`" in note


def test_the_run_page_in_the_mlflow_ui_shows_datasets_and_description(project, tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run = mlflow.get_run(model_run_id(project))
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    accuracy = json.loads((project / "metrics/eval.json").read_text())["accuracy"]
    with (local_server([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                        f"sqlite:///{project / 'mlflow.db'}"], "/health", tmp_path / "ui.log", timeout=120,
                       cwd=project) as url,
          chromium_page(1400, 1000) as (page, _)):
        page.goto(f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}", wait_until="load")
        # The Datasets box lists the first input and folds the others behind "+2".
        page.get_by_text(f"train ({digests['train']})", exact=True).wait_for(timeout=120_000)
        page.get_by_text("+2", exact=True).click()
        for part in ("val", "test"):
            page.get_by_text(f"{part} ({digests[part]})", exact=True).wait_for(timeout=30_000)
        page.get_by_text("Confusion matrix on the test set", exact=False).wait_for(timeout=30_000)
        shown = page.locator("body").inner_text()
    # The overview shows the run's name and its description: model, data, metrics, the data's checkout.
    assert run.info.run_name in shown and "Description" in shown
    assert "cnn on image_folder" in shown and f"{accuracy:.4f}" in shown
    assert f"dvc checkout data/split (DVC version {run.data.tags['dvc.data_version']})" in shown
