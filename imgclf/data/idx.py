"""A reader for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from imgclf.errors import PipelineError

# Third byte of the magic number -> big-endian element type.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(PipelineError):
    """An IDX file is truncated, corrupt or not IDX at all."""


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into an array, checking magic, type and dimensions against the size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxError(f"{name} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _DTYPES:
        raise IdxError(f"{name} has unknown IDX element type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise IdxError(f"{name} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[dtype_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxError(
            f"{name} declares shape {shape} ({expected} bytes of data) "
            f"but holds {len(data) - header}: the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file; names ending in .gz are decompressed first."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise IdxError(f"{path} is missing: rerun the download stage (dvc repro download)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IdxError(
            f"{path} is not a complete gzip file ({exc}); delete it and rerun the download stage"
        ) from None
    return parse_idx(data, str(path))
