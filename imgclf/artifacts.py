"""Atomic reads and writes of the files stages hand to each other.

Every writer goes through a temp file in the target folder and a rename, so an
interrupted stage never leaves a half-written file that the next stage trusts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from imgclf import large_writes
from imgclf.layout import part_files


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    with atomic_paths([path], suffix) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: list[str | Path], suffix: str = "") -> Iterator[list[Path]]:
    """Temp paths beside each of `paths`; all are renamed into place, one after another, only if the block succeeds.

    A stage that writes several outputs through one call replaces none of them when it fails
    part-way; only a kill during the final renames (microseconds) can leave old and new side
    by side, and DVC then records nothing in dvc.lock, so the next `dvc repro` reruns the stage.
    """
    temps: list[Path] = []
    replaced: list[Path] = []  # folders this write replaces: moved aside, removed once all is in place
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(path), suffix=suffix or path.suffix or ".tmp",
                                       dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        for tmp, path in zip(temps, paths):
            # mkstemp creates 0600; give the result the permissions a plain open() (or mkdir) would.
            os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
            if tmp.is_dir() and Path(path).is_dir():
                # A folder output is the stage's own (DVC removes it before a run anyway); a rename
                # aside, not a removal, so that it is never missing while the old files are still in place.
                replaced.append(Path(tempfile.mkdtemp(prefix=_staging_prefix(Path(path)), dir=Path(path).parent)))
                os.replace(path, replaced[-1])
            os.replace(tmp, path)
    finally:
        for folder in replaced:
            shutil.rmtree(folder, ignore_errors=True)
        for tmp in temps:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()


def _staging_prefix(path: Path) -> str:
    # One recognisable name for every staging file or folder: git-ignored (.gitignore) and
    # removed by remove_staging when a killed process left it behind.
    return f".{path.name}.staging-"


def remove_staging(*outputs: str | Path) -> None:
    """Remove what an interrupted write of these outputs left beside them: never trusted, never published."""
    for output in map(Path, outputs):
        if not output.parent.is_dir():
            continue
        for leftover in output.parent.glob(f"{_staging_prefix(output)}*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; do that once, before other threads write files.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# Writers for write_together: each writes one output to the (temp) path it is given.

def text_writer(text: str) -> Callable[[Path], None]:
    return lambda path: Path(path).write_text(text, encoding="utf-8")


def json_writer(data: Any) -> Callable[[Path], None]:
    return text_writer(json.dumps(data, indent=2, sort_keys=False) + "\n")


def figure_writer(figure) -> Callable[[Path], None]:
    """A matplotlib figure as PNG whose bytes are its pixels': no metadata chunk (matplotlib's default one
    names its version), so the same figure is the same file for DVC on any machine."""
    return lambda path: figure.savefig(path, format="png", dpi=110, bbox_inches="tight",
                                       metadata={"Software": None})


def png_bytes(figure) -> bytes:
    """A matplotlib figure rendered once as PNG, for a file and an MLflow artifact alike."""
    buffer = io.BytesIO()
    figure_writer(figure)(buffer)
    return buffer.getvalue()


def bytes_writer(data: bytes) -> Callable[[Path], None]:
    return lambda path: Path(path).write_bytes(data)


def folder_writer(files: dict[str, bytes]) -> Callable[[Path], None]:
    """A folder output holding these files (none: an empty folder, which DVC tracks too)."""
    def write(path: Path) -> None:
        path.unlink()  # the temp file made for it; the output is a folder
        path.mkdir()
        for name, data in files.items():
            (path / name).write_bytes(data)
    return write


def array_writer(array: np.ndarray) -> Callable[[Path], None]:
    """One array as .npy (memory-mappable by readers), into a staging file of write_together."""
    def write(path: Path) -> None:
        with large_writes.open_staged(path) as f:
            np.save(f, array, allow_pickle=False)
    return write


def write_text(path: str | Path, text: str) -> None:
    write_together({Path(path): text_writer(text)})


def write_json(path: str | Path, data: Any) -> None:
    write_together({Path(path): json_writer(data)})


def save_figure(path: str | Path, figure) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    write_together({Path(path): figure_writer(figure)})


def write_array(path: str | Path, array: np.ndarray) -> None:
    write_together({Path(path): array_writer(array)})


def write_together(writers: dict[Path, Callable[[Path], Any]]) -> None:
    """A stage's outputs: each writer writes its file to a temp path; all are published only if every one succeeds."""
    with atomic_paths(list(writers)) as temps:
        for tmp, write in zip(temps, writers.values()):
            write(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            # The folder is this stage's own output (DVC removes it before a run anyway).
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_array(path: str | Path) -> np.ndarray:
    """A .npy array, memory-mapped: rows are read from disk only when used."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


# Rows copied or predicted at a time: a fixed number of bytes, not of rows, so memory stays
# bounded whatever the image size (1,024 rows of 299x299x3 float32 would be 1.1 GB).
CHUNK_BYTES = 64 * 1024**2


def rows_per_chunk(row_shape: tuple[int, ...], dtype=np.float32, budget: int = CHUNK_BYTES) -> int:
    """How many rows of this shape fit in `budget` bytes (at least one)."""
    return max(1, budget // max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize))


class RowWriter:
    """Append rows to a .npy file: nothing is held in memory, and each byte is written once.

    The header, which holds the final row count, is reserved at the front with room for any
    count and filled in by close(); the rows go straight after it. The file is published
    (renamed into place) only by close().
    """

    def __init__(self, path: str | Path, row_shape: tuple[int, ...], dtype=np.float32) -> None:
        self.path, self.count = Path(path), 0
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self._rows_per_write = rows_per_chunk(self.row_shape, self.dtype, large_writes.piece_bytes())
        self._atomic = atomic_path(self.path, suffix=".npy")
        self._out = large_writes.open_staged(self._atomic.__enter__())  # closed in close/__exit__
        self._header_size = len(self._header(2**63 - 1))
        self._out.write(b"\0" * self._header_size)

    def _header(self, count: int, size: int = 0) -> bytes:
        """A version 1.0 .npy header, space-padded to `size` (or to numpy's 64-byte alignment)."""
        text = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                     "shape": (count, *self.row_shape)})
        size = size or -(-(len(text) + 11) // 64) * 64
        text = text.ljust(size - 11) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")

    def append(self, row: np.ndarray) -> None:
        self.extend(np.asarray(row)[np.newaxis])

    def extend(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"row shape {rows.shape[1:]} differs from {self.row_shape}")
        for start in range(0, len(rows), self._rows_per_write):
            self._out.write(rows[start:start + self._rows_per_write].data)
        self.count += len(rows)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:  # publish nothing
            self._out.close()
            self._atomic.__exit__(exc_type, exc, traceback)

    def close(self) -> None:
        """Write the header for the rows appended and publish the file (atomically)."""
        try:
            self._out.seek(0)
            self._out.write(self._header(self.count, self._header_size))
            self._out.close()
        except BaseException as exc:
            self._out.close()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)


def file_md5(path: str | Path) -> str:
    """A file's md5, the hash DVC records for it in dvc.lock."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_part(folder: Path, part: str, x: np.ndarray, y: np.ndarray) -> None:
    """Images and labels of one part (train, val, test) as memory-mappable .npy files."""
    x_path, y_path = part_files(folder, part)
    write_array(x_path, x)
    write_array(y_path, y)


class SplitPart(NamedTuple):
    """One part of a split (train, val, test): images and their class indices, row for row."""

    x: np.ndarray  # images as stored (N, height, width, channels); memory-mapped when read from disk
    y: np.ndarray  # labels (N,), in memory


def read_part(folder: Path, part: str) -> SplitPart:
    """Images memory-mapped (read from disk as used), labels in memory."""
    x_path, y_path = part_files(folder, part)
    return SplitPart(read_array(x_path), np.asarray(read_array(y_path)))
