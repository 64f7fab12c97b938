import numpy as np
import pytest

from imgclf.artifacts import RowWriter, write_array
from imgclf.large_writes import open_staged


def test_a_staging_file_that_is_not_empty_is_refused_not_overwritten_in_part(tmp_path):
    (tmp_path / "old.npy").write_bytes(b"old bytes that a shorter array would leave at the end")
    with pytest.raises(ValueError, match="not an empty staging file"):
        open_staged(tmp_path / "old.npy")
    assert (tmp_path / "old.npy").read_bytes().startswith(b"old bytes")


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_switch_changes_how_bytes_are_written_never_which(tmp_path, monkeypatch, switch):
    """Rows written in pieces or whole, by RowWriter or np.save, give the bytes np.save gives."""
    monkeypatch.setenv("IMGCLF_LARGE_WRITES", switch)
    rows = np.random.default_rng(0).integers(0, 256, (300, 40, 40, 3), dtype=np.uint8)  # 1.4 MiB: many pieces
    with RowWriter(tmp_path / "rows.npy", rows.shape[1:], np.uint8) as writer:
        writer.extend(rows[:100])
        writer.extend(rows[100:])
    write_array(tmp_path / "saved.npy", rows)
    np.save(tmp_path / "expected.npy", rows, allow_pickle=False)
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy"), rows)
    assert (tmp_path / "saved.npy").read_bytes() == (tmp_path / "expected.npy").read_bytes()
