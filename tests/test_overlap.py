import os
import signal
import sys
import time

import pytest

from imgclf.errors import PipelineError
from imgclf.evaluate.overlap import in_background

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="elsewhere the work runs in the caller's process")


def _pid_and_parent(_: int) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def _fail(message: str) -> None:
    raise PipelineError(message)


def _die(code: int) -> None:
    os._exit(code)  # as a process killed for memory ends: without a word


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


@linux_only
def test_background_work_runs_in_a_child_process():
    with in_background(_pid_and_parent, 0) as pending:
        pid, parent = pending.result()
    assert pid != os.getpid() and parent == os.getpid()


def test_background_work_hands_back_its_error_as_raised():
    with in_background(_fail, "no model: run dvc repro") as pending:
        with pytest.raises(PipelineError, match="no model: run dvc repro"):
            pending.result()


@linux_only
def test_a_child_that_dies_is_a_clear_error():
    with in_background(_die, 3) as pending:
        with pytest.raises(PipelineError, match="exit code 3 before it answered"):
            pending.result()


@linux_only
def test_a_caller_that_fails_stops_the_child_at_once():
    started = time.monotonic()
    with pytest.raises(RuntimeError), in_background(_sleep, 60) as pending:
        child = pending._child
        raise RuntimeError("MLflow's store is locked")
    assert time.monotonic() - started < 30 and not child.is_alive() and child.exitcode == -signal.SIGKILL


def test_with_the_switch_off_the_work_runs_in_the_caller(monkeypatch):
    monkeypatch.setenv("IMGCLF_OVERLAP", "0")
    with in_background(_pid_and_parent, 0) as pending:
        pid, _ = pending.result()
    assert pid == os.getpid()
