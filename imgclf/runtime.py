"""How a stage process runs: its log lines, its signals, and one clear line for a PipelineError."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from imgclf import collector
from imgclf.errors import PipelineError

log = logging.getLogger("imgclf")
# What a stage's log lines start with: "warning: ...", "note: ...", "error: ...".
_LABELS = {logging.DEBUG: "debug", logging.INFO: "note", logging.WARNING: "warning", logging.ERROR: "error",
           logging.CRITICAL: "error"}


class Terminated(KeyboardInterrupt):
    """SIGTERM (`dvc queue kill`, a cancelled CI job, Kubernetes): handled like Ctrl-C, so cleanup runs."""


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{_LABELS.get(record.levelno, record.levelname.lower())}: {record.getMessage()}"


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when a line is logged (a test or a notebook may replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """The project's loggers (imgclf.*) write one line each to stderr; other libraries' loggers are left alone."""
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(level)
    log.propagate = False


def check_params_first(path: str | Path) -> None:
    """Exit with params.yaml's first problem on one line (as run_stage reports it), before a stage imports
    its libraries: a typo fails in a fraction of a second, without TensorFlow's or MLflow's start-up."""
    from imgclf.params import load_params

    try:
        load_params(path)
    except PipelineError as exc:
        setup_logging()
        log.error("%s", exc)
        sys.exit(2)


def _terminate(signum, frame):
    raise Terminated()


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); report a PipelineError as one clear line and exit non-zero.

    SIGTERM and Ctrl-C unwind the stage (its MLflow run is marked KILLED, a training keeps its
    backup) and exit 143 or 130, as the shell reports those signals.
    """
    setup_logging()
    signal.signal(signal.SIGTERM, _terminate)
    collector.resume()
    try:
        main()
        collector.freeze_for_exit()
    except PipelineError as exc:
        log.error("%s", exc)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        name, signum = ("SIGTERM", signal.SIGTERM) if isinstance(exc, Terminated) else ("Ctrl-C", signal.SIGINT)
        log.error("stopped by %s", name)
        sys.exit(128 + signum)
