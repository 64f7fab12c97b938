"""Python's cyclic collector kept off the objects a stage's imports make (a speed trick, in one place).

A stage process imports TensorFlow, MLflow or scikit-learn: hundreds of thousands of objects that
live as long as the process. The collector would walk them again and again while they load, then
in every full collection after, and once more at exit. So a stage being run (`python -m stages.x`)
imports with the collector off (stages/__init__.py calls `off_while_importing`), and run_stage
freezes what was imported (`gc.freeze`, CPython 3.7+) before turning it back on for main(). A
finished stage freezes again, so its exit skips those walks: a stage closes what it writes
(write_together, `with`) rather than leaving it to a last collection.

Invariant: only a stage process does this, never a library caller or a test (they keep their
collector). IMGCLF_GC_TUNING=0 turns it all off, to measure what it buys (benchmarks/).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

from imgclf import switches


def enabled() -> bool:
    return switches.on("IMGCLF_GC_TUNING")


def off_while_importing() -> None:
    """Called at a stage package's import: collector off when a stage is being run, not imported.

    While `python -m` looks for the stage's module, sys.argv[0] is "-m".
    """
    if enabled() and sys.argv[:1] == ["-m"]:
        gc.disable()


def resume() -> None:
    """Freeze what was imported so far out of the collector's walks, then turn it back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def freeze_for_exit() -> None:
    """A finished stage's objects left out of the collections Python's exit would make."""
    if enabled():
        gc.freeze()


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Import heavy libraries (MLflow) inside a stage's main() without the collector, then freeze them.

    Every object alive in the process is frozen afterwards, so this is for a stage process, not a
    library function. The few objects the imports discard in cycles stay until exit: collecting
    them would cost one more full walk.
    """
    if not enabled():
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            resume()
