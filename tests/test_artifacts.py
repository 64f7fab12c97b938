import numpy as np
import pytest

from imgclf.artifacts import atomic_dir, read_arrays, read_json, write_arrays, write_json


def test_writes_round_trip(tmp_path):
    write_json(tmp_path / "m" / "a.json", {"accuracy": 0.5})
    assert read_json(tmp_path / "m" / "a.json") == {"accuracy": 0.5}
    write_arrays(tmp_path / "d.npz", x=np.arange(3), names=np.array(["a", "b"]))
    out = read_arrays(tmp_path / "d.npz")
    assert out["x"].tolist() == [0, 1, 2] and out["names"].tolist() == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "m"]


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
