"""What a stage prints: the project's own lines, without the libraries' start-up chatter.

A stage process sets each library's own documented switch before importing it (`quiet`):
TensorFlow's C++ log level, MLflow's log level and its artifact progress bars. Python warnings
(Keras', scikit-learn's, the project's) are left alone: they are what a user can act on.
IMGCLF_VERBOSE=1 leaves every library as it is, for debugging; a switch the user set keeps its value.

TensorFlow's import itself logs through Abseil before TF_CPP_MIN_LOG_LEVEL applies (the oneDNN
and CUDA-driver notices of TensorFlow 2.21, and Abseil's "before absl::InitializeLog()" banner),
and no switch turns those off; `quiet_import` drops exactly those INFO lines from the import of
TensorFlow (or of Keras, which imports it) and passes every other line through.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator

VERBOSE = "IMGCLF_VERBOSE"  # =1: every library's start-up lines and INFO logs, as the library prints them

QUIET = {
    # 3: TensorFlow's C++ INFO, WARNING and ERROR lines off (a CPU machine's "failed call to cuInit"
    # is logged as an ERROR); a failing TensorFlow op still raises its error in Python.
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # MLflow's warnings stay; its INFO lines (store migration, system metrics monitor) go.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# Abseil's INFO line format (I<mmdd> <time> <thread> <file>:<line>] ...) and its pre-initialization banner.
_ABSL_INFO = re.compile(r"^I\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def verbose() -> bool:
    return os.environ.get(VERBOSE, "0") not in ("", "0")


def quiet() -> None:
    """Set the libraries' switches for a quiet console, before any of them is imported (a stage process only)."""
    if verbose():
        return
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)


def is_startup_line(line: str) -> bool:
    """A line TensorFlow's import logs through Abseil at INFO level, or Abseil's banner before it."""
    return line == _ABSL_BANNER or bool(_ABSL_INFO.match(line))


def _flush_c_streams() -> None:
    with contextlib.suppress(OSError, AttributeError):  # no C library to load: nothing of it to flush
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _stderr_captured(lines: list[str]) -> Iterator[None]:
    """File descriptor 2 (where C++ code writes) into a temporary file while the block runs; its lines into `lines`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            _flush_c_streams()  # Abseil writes through C's stdio, which holds lines in its buffer
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


def quiet_import(name: str) -> types.ModuleType:
    """`import <name>` (tensorflow, keras) with TensorFlow's Abseil start-up lines dropped; every other line
    it prints passes through, in order, also when the import fails. A module already imported, or
    IMGCLF_VERBOSE=1, is imported as is."""
    if name in sys.modules or verbose():
        return importlib.import_module(name)
    lines: list[str] = []
    try:
        with _stderr_captured(lines):
            module = importlib.import_module(name)
    finally:
        kept = [line for line in lines if not is_startup_line(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()
    return module
