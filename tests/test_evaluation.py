import os
import sys

import pytest

from imgclf.errors import PipelineError
from imgclf.evaluation import in_background


def _pid_and_parent(_: int) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def _fail(message: str) -> None:
    raise PipelineError(message)


@pytest.mark.skipif(sys.platform != "linux", reason="elsewhere the work runs in the caller's process")
def test_background_work_runs_in_a_child_process():
    with in_background(_pid_and_parent, 0) as pending:
        pid, parent = pending.result(timeout=60)
    assert pid != os.getpid() and parent == os.getpid()


def test_background_work_hands_back_its_error_as_raised():
    with in_background(_fail, "no model: run dvc repro") as pending:
        with pytest.raises(PipelineError, match="no model: run dvc repro"):
            pending.result(timeout=60)
