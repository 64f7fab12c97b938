"""The served photo model as an API: `mlflow models serve` answers each row, and refuses a bad request
with a clear HTTP 400 and no traceback; a model with its ONNX copy is served without TensorFlow; the model
is logged as code and loads without unpickling a Python object."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import local_server
from tests.dvc_project import env

CLASSES = ("red", "green", "blue")
COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
SIZE = (8, 8)
NO_PICKLE = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}  # MLflow then refuses to load a pickled model


def _photo_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 64), fmt: str = "JPEG", seed: int = 0):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny network trained to name a photo's color, logged as the served photo model twice in a local
    MLflow store: with its checked ONNX copy and without. Their model URIs and the store's URI."""
    import keras
    import mlflow

    from imgclf.evaluate.scoring import export_onnx
    from imgclf.records import ServingInfo
    from imgclf.serve.serving import log_photo_model
    from imgclf.train.model import normalization

    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(CLASSES)), 20)
    x = np.clip(np.array([COLORS[CLASSES[c]] for c in y])[:, None, None, :] + rng.normal(0, 20, (len(y), *SIZE, 3)),
                0, 255).astype(np.uint8)
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((*SIZE, 3)), normalization(1 / 255), keras.layers.Flatten(),
                                keras.layers.Dense(len(CLASSES), "softmax")])
    network.compile("adam", "sparse_categorical_crossentropy")
    network.fit(x, y, epochs=30, verbose=0)
    onnx, note = export_onnx(network, x)
    assert onnx is not None, note
    info = ServingInfo(CLASSES, (*SIZE, 3), 1 / 255)
    requirements = ["mlflow", "pandas", "pillow", "onnxruntime", "keras", "tensorflow"]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving", artifact_location=(root / "artifacts").as_uri())
    uris = {}
    try:
        for runtime, copy in (("onnx", onnx), ("keras", None)):
            with mlflow.start_run(experiment_id=experiment):
                uris[runtime] = log_photo_model(network, info, x[0], requirements, onnx=copy).model_uri
    finally:
        mlflow.set_tracking_uri(None)
    return {"uris": uris, "tracking": uri, "network": network}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    """`mlflow models serve` on the model with the ONNX copy, on a free port of 127.0.0.1; its URL and log file."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with local_server([sys.executable, "-m", "mlflow", "models", "serve", "-m", models["uris"]["onnx"],
                       "--env-manager", "local"], "/ping", log, timeout=180,
                      env=env({"MLFLOW_TRACKING_URI": models["tracking"], **NO_PICKLE})) as url:
        yield url, log


def _post(url: str, body: dict) -> tuple[int, str]:
    """The status and the body text of POST /invocations."""
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _request(images: list, **params) -> dict:
    return {"dataframe_split": {"columns": ["image"], "data": [[image] for image in images]},
            **({"params": params} if params else {})}


def _expected(network, photo: bytes) -> np.ndarray:
    """The network's probabilities for a photo file, decoded as training decoded its images."""
    from imgclf.data.images import load_image

    return network.predict(load_image(io.BytesIO(photo), SIZE, 3)[None], verbose=0)[0]


def _refused(status: int, text: str) -> str:
    """The message of a 400 answer, after checking it is one of MLflow's error bodies without a traceback."""
    assert status == 400, text
    body = json.loads(text)
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body
    assert "Traceback" not in text and 'File "' not in text
    return body["message"]


def test_a_good_photo_gets_its_classes(server, models):
    url, _ = server
    photo = _photo_bytes(COLORS["green"], (64, 48))
    status, text = _post(url, _request([_b64(photo)]))
    assert status == 200, text
    (row,) = json.loads(text)["predictions"]
    probs = _expected(models["network"], photo)
    order = np.argsort(-probs)
    assert row["class"] == "green" == CLASSES[order[0]] and row["error"] is None
    assert row["probability"] == pytest.approx(probs[order[0]], abs=1e-5)
    assert [r["class"] for r in row["top_k"]] == [CLASSES[i] for i in order]  # 3 by default: every class here
    assert [r["probability"] for r in row["top_k"]] == pytest.approx(probs[order], abs=1e-5)
    status, text = _post(url, _request([_b64(photo)], top_k=1))
    assert status == 200 and [r["class"] for r in json.loads(text)["predictions"][0]["top_k"]] == ["green"]


def test_each_bad_row_gets_its_error_and_the_good_rows_their_answers(server):
    url, _ = server
    red, blue = _photo_bytes(COLORS["red"]), _photo_bytes(COLORS["blue"], fmt="PNG")
    rows = [_b64(red), "this is not base64!", "", _b64(b"shopping list: shoes, a bag\n"), _b64(red[:200]), _b64(blue)]
    status, text = _post(url, _request(rows, top_k=2))
    assert status == 200, text
    answers = json.loads(text)["predictions"]
    assert [a["class"] for a in answers] == ["red", None, None, None, None, "blue"]
    assert [len(a["top_k"]) for a in (answers[0], answers[5])] == [2, 2]
    assert answers[0]["error"] is None and answers[5]["error"] is None
    errors = [a["error"] for a in answers[1:5]]
    assert errors[0] == ("the image of row 1 is not base64 ('this is not base64!'...); "
                         "send the file's bytes base64-encoded")
    assert errors[1] == "the image of row 2 is empty; send a JPEG, PNG, BMP, GIF or WebP file, base64-encoded"
    assert errors[2] == ("cannot read the image of row 3 as an image (cannot identify its format: not an image "
                         "file); send a JPEG, PNG, BMP, GIF or WebP file, base64-encoded")
    assert errors[3].startswith("cannot read the image of row 4 as an image (")
    for answer in answers[1:5]:
        assert answer["probability"] is None and answer["top_k"] is None
        assert "\n" not in answer["error"] and "Traceback" not in answer["error"] and "0x" not in answer["error"]


@pytest.mark.parametrize(("image", "error"), [
    (_b64(b"Dear shop, my order did not arrive.\n"),
     "cannot read the image of row 0 as an image (cannot identify its format: not an image file); "
     "send a JPEG, PNG, BMP, GIF or WebP file, base64-encoded"),
    ("", "the image of row 0 is empty; send a JPEG, PNG, BMP, GIF or WebP file, base64-encoded"),
])
def test_a_text_file_or_an_empty_string_alone_is_answered_with_its_error(server, image, error):
    status, text = _post(server[0], _request([image]))
    assert status == 200, text
    assert json.loads(text)["predictions"] == [{"class": None, "probability": None, "top_k": None, "error": error}]


def test_a_request_without_rows_is_refused(server):
    message = _refused(*_post(server[0], _request([])))
    assert message == ("the request has no rows; send one photo per row in the column image, "
                       "as the file's bytes base64-encoded")


@pytest.mark.parametrize("top_k", [0, -1, 4, 1000])
def test_a_top_k_out_of_range_is_refused(server, top_k):
    message = _refused(*_post(server[0], _request([_b64(_photo_bytes(COLORS["red"]))], top_k=top_k)))
    assert message == f"top_k must be a whole number from 1 to 3 (this model's classes), got {top_k}"


@pytest.mark.parametrize("top_k", ["x", 2.5, True])
def test_a_top_k_that_is_no_whole_number_is_refused_by_the_signature(server, top_k):
    """MLflow checks the type the signature declares before the model sees the request: its message names top_k."""
    message = _refused(*_post(server[0], _request([_b64(_photo_bytes(COLORS["red"]))], top_k=top_k)))
    assert "top_k" in message and "long" in message and "\nError: " in message


@pytest.mark.parametrize(("body", "names"), [
    (b'{"dataframe_split": {"columns": ["photo"], "data": [["x"]]}}', "image"),  # no column image
    (b'{"dataframe_split": {"columns": ["image"], "data": [["x"]]', "json"),  # cut short
    (b'{"rows": [["x"]]}', "dataframe_split"),  # none of the formats MLflow reads
])
def test_a_request_mlflow_cannot_read_is_refused_without_a_traceback(server, body, names):
    """Refused by MLflow's own server before the model sees it: still a 400 whose body holds no traceback."""
    request = urllib.request.Request(f"{server[0]}/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400
    text = refused.value.read().decode()
    answer = json.loads(text)
    assert "stack_trace" not in answer and "Traceback" not in text and 'File "' not in text
    assert names in answer["message"].lower()


def test_the_server_never_imports_tensorflow(server):
    url, log = server
    assert _post(url, _request([_b64(_photo_bytes(COLORS["blue"]))]))[0] == 200
    text = log.read_text()
    assert "tensorflow" not in text.lower() and "oneDNN" not in text and "cuda" not in text.lower(), text


def test_a_model_with_its_onnx_copy_loads_and_answers_without_tensorflow(models, tmp_path):
    """load_context and predict in a fresh process: ONNX Runtime scores, TensorFlow stays out of sys.modules."""
    script = (
        "import base64, json, sys, mlflow.pyfunc, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({models['uris']['onnx']!r})\n"
        f"image = base64.b64encode(open({str(tmp_path / 'red.jpg')!r}, 'rb').read()).decode()\n"
        "answer = model.predict(pd.DataFrame({'image': [image]}), params={'top_k': 3})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps({'class': answer['class'][0], 'runtime': model.unwrap_python_model().runtime,\n"
        "                  'tensorflow': loaded}))\n")
    (tmp_path / "red.jpg").write_bytes(_photo_bytes(COLORS["red"]))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=env({"MLFLOW_TRACKING_URI": models["tracking"], **NO_PICKLE}), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"class": "red", "runtime": "onnx", "tensorflow": []}


def test_a_model_without_an_onnx_copy_is_served_by_keras_with_the_same_answers(models):
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(models["tracking"])
    try:
        served = {runtime: mlflow.pyfunc.load_model(uri) for runtime, uri in models["uris"].items()}
    finally:
        mlflow.set_tracking_uri(None)
    assert {runtime: model.unwrap_python_model().runtime for runtime, model in served.items()} == \
        {"onnx": "onnx", "keras": "keras"}
    photos = pd.DataFrame({"image": [_b64(_photo_bytes(COLORS[name], seed=i)) for i, name in enumerate(CLASSES)]})
    answers = {runtime: model.predict(photos) for runtime, model in served.items()}
    assert list(answers["keras"]["class"]) == list(answers["onnx"]["class"]) == list(CLASSES)
    assert list(answers["keras"]["probability"]) == pytest.approx(list(answers["onnx"]["probability"]), abs=1e-5)


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_the_logged_model_is_code_and_loads_without_unpickling(models, runtime, tmp_path, monkeypatch):
    """Models from code: the model holds the file that builds PhotoClassifier (beside the imgclf package) and
    no pickled object, and it loads and answers as the network does while every unpickler refuses."""
    import pickle

    import cloudpickle
    import mlflow
    import pandas as pd
    import yaml

    from imgclf.serve import photo_model
    from imgclf.serve.serving import PhotoClassifier

    mlflow.set_tracking_uri(models["tracking"])
    try:
        local = Path(mlflow.artifacts.download_artifacts(models["uris"][runtime], dst_path=str(tmp_path / "model")))
    finally:
        mlflow.set_tracking_uri(None)
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (local / Path(flavor["model_code_path"]).name).read_text() == Path(photo_model.__file__).read_text()
    assert "python_model" not in flavor  # the entry that names a pickled model's file
    assert not [p.name for p in local.rglob("*") if p.suffix in (".pkl", ".pickle")]
    assert (local / "code" / "imgclf" / "serve" / "serving.py").is_file()

    photo = _photo_bytes(COLORS["blue"], seed=3)
    probs = _expected(models["network"], photo)
    pickled = tmp_path / "pickled"
    mlflow.pyfunc.save_model(str(pickled), python_model=PhotoClassifier(), pip_requirements=["mlflow"])

    def refuse(*args, **kwargs):
        raise AssertionError("loading the served model unpickled a Python object")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    for name, value in NO_PICKLE.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(Exception, match="pickle"):  # the guard holds: a pickled model does not load under it
        mlflow.pyfunc.load_model(str(pickled))
    answer = mlflow.pyfunc.load_model(str(local)).predict(pd.DataFrame({"image": [_b64(photo)]}))
    assert answer["class"][0] == "blue" == CLASSES[int(np.argmax(probs))] and answer["error"][0] is None
    assert answer["probability"][0] == pytest.approx(float(probs.max()), abs=1e-5)
