"""Benchmark (not a test): the served photo model through ONNX Runtime against the same model through Keras.

    python benchmarks/serving.py [--runs 3] [--sequential 200] [--clients 8] [--per-client 50]
    python benchmarks/serving.py --model models/model.keras     # the project's trained model instead

Logs one network as the served photo model twice, in a temporary MLflow store, as train logs it
(imgclf.serve.serving.log_photo_model): A with its checked ONNX copy (ONNX Runtime scores, no
TensorFlow in the server), B without (Keras scores). The network is the project's default CNN
(train.cnn's defaults) for 64x64 RGB photos and 10 classes, untrained (the time of a forward pass
does not depend on the weights), or the trained model of --model with its models/model.json.
Then, --runs times, alternating (A B, B A, ...) so that the machine's drift weighs on both alike,
it starts `mlflow models serve --env-manager local` on each and measures:

- cold start: from the process's start to the first answer to a photo (polled every 50 ms);
- latency: --sequential requests one after another, each with one 64x64 JPEG photo (p50, p95);
- load: --clients clients at once, --per-client requests each (p50, p95 of each request, requests/s,
  and the requests that failed: any answer but 200, or none).

It prints each side's min and median over the runs and their ratio B / A (above 1: Keras is slower).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

SIDES = {"A": "onnx", "B": "keras"}


def photo_request(size: int = 64) -> bytes:
    """The body of one request: a noisy size x size JPEG photo, base64-encoded, as a shop sends it."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.clip(np.array([180, 90, 40]) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[image]]}}).encode()


def log_models(root: Path, model: Path | None) -> tuple[str, dict[str, str]]:
    """The store's URI and the two logged models' URIs (onnx, keras) of the network."""
    import keras
    import mlflow

    from imgclf.evaluate.scoring import export_onnx
    from imgclf.params import TrainParams
    from imgclf.records import ModelRecord, ServingInfo
    from imgclf.serve.serving import log_photo_model
    from imgclf.train.model import build_model

    if model is None:
        keras.utils.set_random_seed(0)
        network = build_model((64, 64, 3), 10, TrainParams(model="cnn"), 1 / 255)
        info = ServingInfo(tuple(f"class{i}" for i in range(10)), (64, 64, 3), 1 / 255)
    else:
        network = keras.models.load_model(model, safe_mode=True)
        info = ModelRecord.read(model.with_suffix(".json")).serving
    sample = np.random.default_rng(1).integers(0, 256, (8, *info.input_shape)).astype(np.uint8)
    onnx, note = export_onnx(network, sample)
    if onnx is None:
        sys.exit(f"the network cannot be served through ONNX Runtime: {note}")
    from importlib.metadata import version

    requirements = [f"{name}=={version(name)}" for name in ("mlflow", "pandas", "pillow", "simplejpeg",
                                                            "opencv-python-headless", "onnxruntime", "keras",
                                                            "tensorflow")]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving", artifact_location=(root / "artifacts").as_uri())
    uris = {}
    for runtime, copy in (("onnx", onnx), ("keras", None)):
        with mlflow.start_run(experiment_id=experiment):
            uris[runtime] = log_photo_model(network, info, sample[0], requirements, onnx=copy).model_uri
    return uri, uris


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[bool, float]:
    """Whether the request was answered 200, and its time in seconds."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            ok = response.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    return ok, time.perf_counter() - start


@contextlib.contextmanager
def served(model_uri: str, tracking_uri: str, log: Path):
    """`mlflow models serve` of the model on a free port; yields its invocations URL and its start time."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # uvicorn of this environment
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                    "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield f"http://127.0.0.1:{port}/invocations", started, process
        finally:
            process.terminate()  # its uvicorn child gets SIGTERM when it exits (MLflow sets PDEATHSIG)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(model_uri: str, tracking_uri: str, log: Path, body: bytes, args: argparse.Namespace) -> dict:
    """One server's cold start, sequential latency and latency under concurrent clients."""
    with served(model_uri, tracking_uri, log) as (url, started, process):
        while not _post(url, body, timeout=10)[0]:
            if process.poll() is not None or time.perf_counter() - started > 300:
                sys.exit(f"the server did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        cold = time.perf_counter() - started
        sequential = [_post(url, body) for _ in range(args.sequential)]
        results: list[tuple[bool, float]] = []
        lock = threading.Lock()

        def client() -> None:
            mine = [_post(url, body) for _ in range(args.per_client)]
            with lock:
                results.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    seq_times = [t for ok, t in sequential if ok]
    load_times = [t for ok, t in results if ok]
    return {"cold_start_s": cold,
            "seq_p50_ms": 1000 * float(np.percentile(seq_times, 50)),
            "seq_p95_ms": 1000 * float(np.percentile(seq_times, 95)),
            "seq_failures": len(sequential) - len(seq_times),
            "load_p50_ms": 1000 * float(np.percentile(load_times, 50)) if load_times else float("nan"),
            "load_p95_ms": 1000 * float(np.percentile(load_times, 95)) if load_times else float("nan"),
            "load_requests_per_s": len(load_times) / wall,
            "load_failures": len(results) - len(load_times)}


def report(runs: dict[str, list[dict]]) -> None:
    print(f"\n{'figure':<22} {'A onnx min / median':>22} {'B keras min / median':>22} {'B / A (medians)':>16}")
    for key in runs["A"][0]:
        values = {side: [r[key] for r in runs[side]] for side in SIDES}
        if key.endswith("failures"):
            print(f"{key:<22} {sum(values['A']):>22} {sum(values['B']):>22} {'(total)':>16}")
            continue
        cells = {side: f"{min(v):.3f} / {statistics.median(v):.3f}" for side, v in values.items()}
        ratio = statistics.median(values["B"]) / statistics.median(values["A"])
        print(f"{key:<22} {cells['A']:>22} {cells['B']:>22} {ratio:>16.2f}")
    print("\nrequests_per_s: higher is better (a ratio below 1: Keras serves fewer); every other figure: lower.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="servers started per side (default: %(default)s)")
    parser.add_argument("--sequential", type=int, default=200, help="requests one after another (default: 200)")
    parser.add_argument("--clients", type=int, default=8, help="clients at once (default: %(default)s)")
    parser.add_argument("--per-client", type=int, default=50, help="requests per client (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="a trained .keras model with its .json record "
                        "(default: the project's CNN for 64x64 photos, untrained)")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this JSON file")
    args = parser.parse_args()
    body = photo_request()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tracking_uri, uris = log_models(root, args.model)
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for i in range(args.runs):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                figures = measure(uris[SIDES[side]], tracking_uri, root / f"serve-{side}-{i}.log", body, args)
                runs[side].append(figures)
                print(f"run {i + 1} {side} ({SIDES[side]}): " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float)
                                                                        else f"{k} {v}" for k, v in figures.items()),
                      flush=True)
    report(runs)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
