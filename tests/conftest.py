"""Shared fixtures: generated IDX data, a local HTTP server, the real MNIST test set when present."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
# On a GPU runner, TensorFlow in the test process would take most of the GPU's memory up front,
# leaving none to the stages `dvc repro` starts; allocate as needed instead (inherited by subprocesses).
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
SHARED_MNIST = PROJECT.parent / "shared" / "data" / "mnist-t10k"
SHARED_MNIST_FULL = PROJECT.parent / "shared" / "data" / "mnist"  # the four pinned .gz files, a data.mirror


# The test files that take longest, slowest first (`--durations` on two cores). Two files run side by side
# (`-n 2 --dist loadfile`) and xdist hands out whole files in collection order: the long ones go first, so
# that the short ones fill in beside them and no worker is left with one long file at the end.
SLOWEST_FILES = ("test_experiments.py", "test_pipeline.py", "test_photos.py", "test_team.py", "test_resume.py",
                 "test_training.py", "test_serving.py", "test_tracking.py", "test_access.py", "test_mlflow_ui.py",
                 "test_multi_worker.py", "test_mnist_real.py")


def pytest_configure(config: pytest.Config) -> None:
    # xdist would reorder files by their number of tests; keep the order pytest_collection_modifyitems sets
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first; the other files keep their (pytest-randomly's shuffled) order, after them."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order is kept


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fake_mnist(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Four gzipped IDX files laid out as MNIST's, with random 28x28 digits; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def write_tiny_split() -> None:
    """data/split in the current folder as the split stage leaves it: 4 blank 2x2 images per part, 2 classes."""
    from imgclf import layout
    from imgclf.artifacts import write_json, write_part

    for name in ("train", "val", "test"):
        write_part(layout.SPLIT_DIR, name, np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1]))
    write_json(layout.meta_file(layout.SPLIT_DIR), {"class_names": ["a", "b"], "pixel_scale": 1 / 255})


@pytest.fixture
def dvc_root(tmp_path, monkeypatch) -> Iterator[Path]:
    """A project root that DVC names through DVC_ROOT while the stage runs elsewhere (a --temp copy, the
    working directory), with no tracking URI or experiment name from the environment."""
    root, elsewhere = tmp_path / "root", tmp_path / "copy"
    root.mkdir()
    elsewhere.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.chdir(elsewhere)
    yield root
    import mlflow

    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def _project_logger_restored() -> Iterator[None]:
    """A test that runs a stage in-process (run_stage) sets up the imgclf logger for a stage: its handler, and
    no propagation to the root logger, where caplog listens. Each test starts with the logger as it was."""
    import logging

    project_log = logging.getLogger("imgclf")
    before = (list(project_log.handlers), project_log.level, project_log.propagate)
    yield
    project_log.handlers[:], project_log.level, project_log.propagate = before


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    """Every test starts on MLflow's defaults: `mlflow.set_tracking_uri` keeps the URI in a module global and
    in MLFLOW_TRACKING_URI (which subprocesses inherit), so a test that points MLflow at its own store would
    otherwise send the next test's runs there, or to a store that no longer exists."""
    before = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    yield
    mlflow = sys.modules.get("mlflow")  # a test that never imported MLflow cannot have set it
    if mlflow is not None:
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(before)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/'www' on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def data_template(tmp_path_factory) -> Path:
    """The project with its data stages run and committed, built once per session (per xdist worker);
    tests copy it with tests.dvc_project.copy_project and never change it."""
    from tests.dvc_project import make_data_template

    return make_data_template(tmp_path_factory.mktemp("data-template"))


def free_ports(n: int = 1) -> list[int]:
    """n distinct ports on 127.0.0.1 that nothing listens on: closed, or free for a process to bind."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@contextlib.contextmanager
def local_server(command: list[str], ready: str, log: Path, timeout: float, **popen) -> Iterator[str]:
    """Run `command --host 127.0.0.1 --port <free port>`; yield its URL once `ready` answers 200; stop that process."""
    (port,) = free_ports()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"{url}{ready}", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(command[1:4])} did not start:\n" + log.read_text()[-3000:])
                time.sleep(1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def chromium_page(width: int = 1200, height: int = 900) -> Iterator[tuple[object, list[str]]]:
    """A page of headless Chromium (the system's, which .ci/run installs) and the page's console errors."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(bool(chromium), "Chromium not installed (.ci/run installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def require(available: bool, what: str) -> None:
    """Skip a test whose prerequisite is missing; under CI=true, which installs them all, fail instead."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what}; CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def shared_mnist() -> Path:
    """The real MNIST test set beside the project (CI has it; a user's clone does not)."""
    require((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
            "real MNIST test set not found at ../shared/data/mnist-t10k")
    return SHARED_MNIST


@pytest.fixture
def shared_mnist_mirror() -> Path:
    """The four real MNIST files beside the project, usable as data.mirror (CI has them)."""
    from imgclf.data.datasets import get_dataset

    names = [f.name for f in get_dataset("mnist").files]
    require(all((SHARED_MNIST_FULL / name).exists() for name in names), "real MNIST not found at ../shared/data/mnist")
    return SHARED_MNIST_FULL


PHOTO_CLASSES = {"bag": (40, 60, 200), "shirt": (200, 40, 40), "shoes": (40, 180, 60)}
# training photos per class: imbalanced on purpose (shirt has three times as many as shoes)
PHOTO_COUNTS = {"train": {"bag": 12, "shirt": 18, "shoes": 6}, "validation": {"bag": 4, "shirt": 4, "shoes": 4},
                "test": {"bag": 5, "shirt": 5, "shoes": 5}}
_FORMATS = [("JPEG", "RGB", ".jpg"), ("PNG", "L", ".png"), ("PNG", "RGBA", ".png"), ("PNG", "P", ".png"),
            ("JPEG", "CMYK", ".jpg"), ("PNG", "I;16", ".png"), ("WEBP", "RGB", ".webp"), ("BMP", "RGB", ".bmp"),
            ("GIF", "P", ".gif")]


def photo(color, size, mode, rng):
    """A noisy photo of one dominant color in any PIL mode."""
    from PIL import Image

    pixels = np.clip(np.array(color) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    return image.convert(mode) if mode != "RGB" else image


def make_photo_tree(root: Path, presplit: bool = True, seed: int = 0) -> dict:
    """Class folders of photos of random sizes, modes and formats, plus the bad files a user's folder has."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, counts in PHOTO_COUNTS.items():
        for name, count in counts.items():
            folder = root / split / name if presplit else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                fmt, mode, ext = _FORMATS[(i + len(name)) % len(_FORMATS)]
                size = (int(rng.integers(40, 96)), int(rng.integers(40, 96)))
                path = folder / f"{split}-{i:02d}{ext}"
                photo(PHOTO_CLASSES[name], size, mode, rng).save(path, fmt)
                written[path] = name
    train = root / "train" if presplit else root
    # EXIF orientation 6: the stored pixels are rotated; viewers (and the pipeline) turn them upright
    rotated = photo(PHOTO_CLASSES["bag"], (80, 50), "RGB", rng)
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(train / "bag" / "rotated.jpg", "JPEG", exif=exif.tobytes())
    good = next((train / "shirt").glob("train-*.jpg")).read_bytes()
    (train / "shirt" / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (train / "shoes" / "notes.jpg").write_text("not a photo\n")
    (train / "shoes" / ".DS_Store").write_bytes(b"\x00\x01hidden")
    # What Windows leaves beside photos: not dot-files, yet not photos either
    (train / "bag" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0thumbnail cache")
    (train / "shirt" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    return written
