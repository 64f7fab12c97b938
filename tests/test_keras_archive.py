import io
import json
import subprocess
import sys
import zipfile

import numpy as np

from imgclf.train.keras_archive import SAVED_AT, ZIP_EPOCH, reproducible
from tests.conftest import PROJECT


def _archive(saved: str, when: tuple[int, ...], mode: int, addresses: tuple[int, int]) -> bytes:
    """A .keras-like zip as a process writes one at a given time: dated metadata, a weights entry stamped
    then, two objects shared by layers named by their memory addresses."""
    policy, other = ({"class_name": "DTypePolicy", "shared_object_id": a} for a in addresses)
    config = {"class_name": "Sequential", "layers": [{"dtype": policy}, {"dtype": other}, {"dtype": policy}]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": saved}))
        zf.writestr("config.json", json.dumps(config))
        weights = zipfile.ZipInfo("model.weights.h5", date_time=when)
        weights.external_attr = mode << 16
        zf.writestr(weights, b"\x89HDF\r\n\x1a\n weights")
    return out.getvalue()


def test_two_archives_of_one_model_from_two_saves_give_the_same_bytes():
    first = _archive("2026-12-04@21:40:24", (2026, 12, 4, 21, 40, 24), 0o100600, (140471155180816, 7))
    second = _archive("2027-01-02@08:00:10", (2027, 1, 2, 8, 0, 10), 0o100644, (140266718118032, 9))
    assert first != second
    assert reproducible(first) == reproducible(second)
    with zipfile.ZipFile(io.BytesIO(reproducible(first))) as zf:
        assert [e.filename for e in zf.infolist()] == ["metadata.json", "config.json", "model.weights.h5"]
        assert {e.date_time for e in zf.infolist()} == {ZIP_EPOCH}
        assert json.loads(zf.read("metadata.json")) == {"keras_version": "3.15.1", "date_saved": SAVED_AT}
        layers = json.loads(zf.read("config.json"))["layers"]
        assert [layer["dtype"]["shared_object_id"] for layer in layers] == [1, 2, 1]  # still shared as before
        assert zf.read("model.weights.h5") == b"\x89HDF\r\n\x1a\n weights"


# Builds and fits one seeded model, then saves it with the clock at argv[2]: Keras's own archive to
# argv[1] + ".raw.keras", the reproducible one to argv[1]. Keras dates metadata.json from datetime, zipfile
# stamps the weights' entry from time, and each process has its own memory addresses (shared_object_id).
_SAVE = """
import datetime, sys, zipfile
from pathlib import Path
import keras, numpy as np
from keras.src.saving import saving_lib
from imgclf.train.keras_archive import archive_bytes
from imgclf.train.model import normalization

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4, 4, 1)), normalization(1 / 255), keras.layers.Flatten(),
                          keras.layers.Dense(3, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(np.arange(64, dtype="float32").reshape(4, 4, 4, 1), np.arange(4) % 3, epochs=1, verbose=0)
now = float(sys.argv[2])

class Clock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(now, tz)

saving_lib.datetime.datetime = Clock
zipfile.time.time = lambda: now
model.save(sys.argv[1] + ".raw.keras")
Path(sys.argv[1]).write_bytes(archive_bytes(model))
"""


def test_one_model_saved_by_two_processes_at_two_times_is_the_same_file_and_loads(tmp_path):
    for name, now in (("first.keras", 1_700_000_000), ("second.keras", 1_800_000_000)):
        subprocess.run([sys.executable, "-c", _SAVE, str(tmp_path / name), str(now)], cwd=PROJECT,
                       capture_output=True, check=True)
    raw = [(tmp_path / f"{name}.raw.keras").read_bytes() for name in ("first.keras", "second.keras")]
    first, second = (tmp_path / "first.keras").read_bytes(), (tmp_path / "second.keras").read_bytes()
    assert raw[0] != raw[1]  # Keras's archives differ: the test does exercise what changes
    assert first == second
    with zipfile.ZipFile(tmp_path / "first.keras") as zf:
        assert b'"shared_object_id": 1}' in zf.read("config.json")

    import keras

    x = np.arange(64, dtype="float32").reshape(4, 4, 4, 1)
    ours, theirs = (keras.saving.load_model(tmp_path / n) for n in ("first.keras", "first.keras.raw.keras"))
    np.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    assert ours.optimizer.iterations.numpy() == 1 and ours.get_config() == theirs.get_config()
