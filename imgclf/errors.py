"""How a stage process runs: one error type for problems a user can fix, reported in one line;
signals; and Python's cyclic collector kept off the objects the stage's imports make."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
from collections.abc import Callable, Iterator


class PipelineError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`dvc queue kill`, a cancelled CI job, Kubernetes): handled like Ctrl-C, so cleanup runs."""


def _terminate(signum, frame):
    raise Terminated()


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); report a PipelineError as one clear line and exit non-zero.

    SIGTERM and Ctrl-C unwind the stage (its MLflow run is marked KILLED, a training keeps its
    backup) and exit 143 or 130, as the shell reports those signals. A stage whose modules were
    imported with the cyclic collector off (stages/__init__.py) gets it back for main(), with what
    was imported frozen out of its walks. A stage that finished leaves its objects to exit without
    a last garbage collection: close what you write (write_together, `with`), as nothing left in a
    reference cycle is finalized.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if not gc.isenabled():
        _freeze_and_enable()
    try:
        main()
        # The outputs are written and closed. Python's exit would then walk every object the stage's
        # imports made (MLflow, SQLAlchemy, TensorFlow) in its last garbage collections: 0.7-0.9 s of
        # evaluate's 3-4 s. Frozen objects are left out of those walks; atexit handlers still run.
        gc.freeze()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        name, signum = ("SIGTERM", signal.SIGTERM) if isinstance(exc, Terminated) else ("Ctrl-C", signal.SIGINT)
        print(f"stopped by {name}", file=sys.stderr)
        sys.exit(128 + signum)


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Import heavy libraries (MLflow) in the block without Python's cyclic collector: for a stage's
    own imports made in main(), as stages/__init__.py does for those its module makes.

    They make hundreds of thousands of objects that live as long as the process; the collector
    would walk them again and again while they load (a fifth of MLflow's import), then in every
    full collection after. Afterwards every object alive in the process is frozen out of its walks,
    so this is for a stage process, not a library function. The few thousand objects the imports
    discard in cycles (under 1%; peak memory is the same to 1 MiB) stay until exit: collecting them
    would cost one more full walk, 0.26 s after MLflow's import, 0.42 s after TensorFlow's.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _freeze_and_enable()


def _freeze_and_enable() -> None:
    gc.freeze()
    gc.enable()
