import hashlib

import numpy as np
import pytest

from imgclf.artifacts import (
    RowWriter,
    atomic_dir,
    figure_writer,
    folder_writer,
    json_writer,
    read_json,
    read_part,
    rows_per_chunk,
    write_json,
    write_part,
    write_together,
)


def test_writes_round_trip(tmp_path):
    write_json(tmp_path / "m" / "a.json", {"accuracy": 0.5})
    assert read_json(tmp_path / "m" / "a.json") == {"accuracy": 0.5}
    write_part(tmp_path, "train", np.ones((3, 2, 2, 1), np.float32), np.arange(3))
    part = read_part(tmp_path, "train")
    assert isinstance(part.x, np.memmap) and part.x.shape == (3, 2, 2, 1) and part.y.tolist() == [0, 1, 2]
    x, y = part  # unpacks as the pair it is
    assert x is part.x and y is part.y
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


def test_row_writer_writes_each_row_once_and_publishes_on_close(tmp_path):
    """Rows go straight into the one temp file (no second copy); the header is filled in at close."""
    writer = RowWriter(tmp_path / "x.npy", row_shape=(28, 28, 1), dtype=np.uint8)
    writer.extend(np.ones((1000, 28, 28, 1), np.uint8))
    writer._out.flush()
    (temp,) = tmp_path.iterdir()
    assert temp.name != "x.npy" and temp.stat().st_size >= 1000 * 784  # the rows are already on disk, once
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]
    rows = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert rows.shape == (1000, 28, 28, 1) and rows.dtype == np.uint8 and rows.offset % 64 == 0
    assert (tmp_path / "x.npy").stat().st_size == rows.offset + 1000 * 784


@pytest.mark.parametrize("row_shape", [(100, 100, 3), (150, 150, 3), (4,)])  # 2 rows a write, 1 row, many
def test_row_writer_writes_a_batch_in_pieces_in_order(tmp_path, row_shape):
    rows = np.arange(9 * int(np.prod(row_shape)), dtype=np.int64).reshape(9, *row_shape).astype(np.uint8)
    rows[:, ..., 0] = np.arange(9).reshape(9, *([1] * (len(row_shape) - 1)))  # each row its own number
    with RowWriter(tmp_path / "x.npy", row_shape, np.uint8) as writer:
        writer.extend(rows[:7])
        writer.extend(rows[7:7])  # an empty batch (every photo in it bad) writes nothing
        writer.extend(rows[7:])
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), rows)


def test_row_writer_failure_publishes_nothing(tmp_path):
    with pytest.raises(RuntimeError), RowWriter(tmp_path / "x.npy", (2,), np.int64) as writer:
        writer.append(np.array([1, 2]))
        raise RuntimeError("decode failed")
    assert list(tmp_path.iterdir()) == []


def test_chunks_are_sized_in_bytes_not_rows():
    assert rows_per_chunk((299, 299, 3), np.float32, budget=64 * 2**20) == 62
    assert rows_per_chunk((28, 28, 1), np.uint8, budget=64 * 2**20) == 85598
    assert rows_per_chunk((5000, 5000, 3), np.float32, budget=2**20) == 1


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


def test_staging_files_of_a_killed_write_are_removed_and_git_ignored(tmp_path):
    import shutil
    import subprocess

    from imgclf.artifacts import atomic_paths, remove_staging
    from tests.conftest import PROJECT

    out = tmp_path / "models" / "model.keras"
    # writes that never finished, as a SIGKILL leaves them (the contexts are kept open, not exited)
    file_write, dir_write = atomic_paths([out]), atomic_dir(tmp_path / "data" / "split")
    (temp,), leftover_dir = file_write.__enter__(), dir_write.__enter__()
    (leftover_dir / "x.npy").write_bytes(b"partial")
    user_file = tmp_path / "models" / "notes.keras"
    user_file.write_text("mine")
    shutil.copy(PROJECT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    ignored = subprocess.run(["git", "check-ignore", str(temp), str(leftover_dir / "x.npy")], cwd=tmp_path,
                             capture_output=True, text=True)
    assert len(ignored.stdout.splitlines()) == 2

    remove_staging(out, tmp_path / "data" / "split")
    assert not temp.exists() and not leftover_dir.exists()
    assert user_file.read_text() == "mine"  # only staging names of these outputs go


def test_a_folder_output_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "models" / "onnx"
    write_together({out: folder_writer({"model.onnx": b"first"})})
    assert [p.name for p in out.iterdir()] == ["model.onnx"]

    def fail(path):
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        write_together({out: folder_writer({"model.onnx": b"second"}), tmp_path / "model.json": fail})
    assert (out / "model.onnx").read_bytes() == b"first" and not (tmp_path / "model.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["onnx"]  # no staging folder left

    write_together({out: folder_writer({})})  # a model that did not export: an empty folder
    assert out.is_dir() and not list(out.iterdir())
    assert oct(out.stat().st_mode & 0o111) != "0o0"  # a folder one can enter, not a 0600 temp file's mode


def _png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order."""
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at + 4:at + 8])
        at += 12 + length
    return chunks


def test_the_same_figure_or_json_written_twice_is_the_same_bytes(tmp_path):
    # Each is a DVC output: a rerun must reproduce the hash dvc.lock holds.
    from matplotlib.figure import Figure

    def figure() -> Figure:
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1, 0.5], marker=".")
        return fig

    for name, writer in (("a.png", figure_writer(figure())), ("b.png", figure_writer(figure())),
                         ("a.json", json_writer({"b": [1, 2.5], "a": None})),
                         ("b.json", json_writer({"b": [1, 2.5], "a": None}))):
        write_together({tmp_path / name: writer})
    png = (tmp_path / "a.png").read_bytes()
    assert png == (tmp_path / "b.png").read_bytes()
    assert _png_chunks(png)[0] == b"IHDR" and b"tEXt" not in _png_chunks(png)  # no "Software: matplotlib x.y"
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes() == (
        b'{\n  "b": [\n    1,\n    2.5\n  ],\n  "a": null\n}\n')
