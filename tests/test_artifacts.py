import hashlib

import numpy as np
import pytest

from imgclf.artifacts import RowWriter, atomic_dir, read_json, read_part, write_json, write_part


def test_writes_round_trip(tmp_path):
    write_json(tmp_path / "m" / "a.json", {"accuracy": 0.5})
    assert read_json(tmp_path / "m" / "a.json") == {"accuracy": 0.5}
    write_part(tmp_path, "train", np.ones((3, 2, 2, 1), np.float32), np.arange(3))
    x, y = read_part(tmp_path, "train")
    assert isinstance(x, np.memmap) and x.shape == (3, 2, 2, 1) and y.tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "train_x.npy", "train_y.npy"]


def test_row_writer_streams_rows_into_one_npy_file(tmp_path):
    writer = RowWriter(tmp_path / "x.npy", row_shape=(2,), dtype=np.int64)
    for i in range(1500):
        writer.append(np.array([i, -i]))
    writer.extend(np.zeros((300, 2), np.int64))
    writer.close()
    rows = np.load(tmp_path / "x.npy")
    assert rows.shape == (1800, 2) and rows[1499].tolist() == [1499, -1499] and rows[1500:].sum() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json(target, {"v": object()})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_dir_publishes_only_on_success(tmp_path):
    target = tmp_path / "raw"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "part.gz").write_bytes(b"half")
            raise RuntimeError("network dropped")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as staging:
        (staging / "done.gz").write_bytes(b"all")
    assert [p.name for p in target.iterdir()] == ["done.gz"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_write_together_replaces_no_output_when_one_writer_fails(tmp_path):
    from imgclf.artifacts import file_md5, text_writer, write_together

    model, metrics = tmp_path / "models" / "model.keras", tmp_path / "metrics" / "train.json"
    write_together({model: text_writer("old model"), metrics: text_writer("old metrics")})

    def broken(path):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_together({metrics: text_writer("new metrics"), model: broken})
    assert metrics.read_text() == "old metrics" and model.read_text() == "old model"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["model.keras", "train.json"]
    write_together({metrics: text_writer("new metrics"), model: text_writer("new model")})
    assert metrics.read_text() == "new metrics" and model.read_text() == "new model"
    assert file_md5(model) == hashlib.md5(b"new model").hexdigest()  # what DVC records in dvc.lock
