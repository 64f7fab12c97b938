"""How a stage writes hundreds of MiB of arrays: two ways around the kernel's costs (a speed trick, in one place).

- A staging file is opened for writing without truncating it. ext4 writes out, on close, a file
  that was truncated and rewritten (its auto_da_alloc, a guard for programs that replace a file
  without fsync), on the closing thread; `open(path, "wb")` truncates even the empty file mkstemp
  made. Untruncated, the kernel writes the file back in the background, as any other.
- Rows go to the file in pieces of about 64 KiB: large single writes of a batch spend more time
  in the kernel's page-cache bookkeeping than the same bytes written in pieces of this size.

Both concern Linux's ext4; other filesystems lose nothing by them. IMGCLF_LARGE_WRITES=0 turns both
off (plain "wb", whole batches), to measure what they buy. The bytes written are the same either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from imgclf import switches

PIECE_BYTES = 64 * 1024
_WHOLE = 1 << 62  # with the switch off: a batch in one write


def enabled() -> bool:
    return switches.on("IMGCLF_LARGE_WRITES")


def piece_bytes() -> int:
    """About how many bytes of rows go to the file in one write."""
    return PIECE_BYTES if enabled() else _WHOLE


def open_staged(path: Path) -> BinaryIO:
    """An empty staging file (made by mkstemp, beside its output) opened for writing, not truncated.

    A plain buffered writer, so np.save writes an array straight from its memory. A file that is
    not empty is refused: its old bytes would outlive what is written.
    """
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
    if os.fstat(fd).st_size:
        os.close(fd)
        raise ValueError(f"{path} is not an empty staging file: its old bytes would outlive what is written")
    if not enabled():
        os.ftruncate(fd, 0)  # what open(path, "wb") does
    return os.fdopen(fd, "wb")
