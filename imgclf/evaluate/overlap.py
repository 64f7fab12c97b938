"""Evaluate's scoring overlapped with its MLflow import, in a forked process: a speed trick, in one place.

Evaluate's two slow halves do not depend on each other: scoring the test split (ONNX Runtime,
matplotlib) and importing MLflow and opening its store. Run side by side on two cores, the stage
pays the longer of the two instead of their sum. The child is forked, not spawned, so it starts at
once with what is imported so far; hence the caller must not have started threads or imported
MLflow before (stages/evaluate.py imports it inside the block).

Invariants: the child writes nothing (the stage writes every output, after the run is logged), so
stopping it early loses nothing; its answer or its exception comes back pickled. Elsewhere than
Linux (fork is unsafe or missing), or with IMGCLF_OVERLAP=0 (to measure what it buys:
benchmarks/ab_stage.py), the work runs in the caller when its result is asked for.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator

from imgclf import switches
from imgclf.errors import PipelineError


def enabled() -> bool:
    return sys.platform == "linux" and switches.on("IMGCLF_OVERLAP")


@contextlib.contextmanager
def in_background(work: Callable, *args) -> Iterator[Background]:
    """work(*args) in a forked child process, on the other core, while the caller goes on; when the
    caller fails or is stopped first, the child is stopped too."""
    if not enabled():
        yield Background(None, None, work, args)
        return
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sending, work, args), name="evaluate-scoring", daemon=True)
    child.start()
    sending.close()
    try:
        yield Background(child, receiving, work, args)
    finally:
        if child.is_alive():
            # The caller gave up (an error, a stop): the child writes nothing, so nothing is lost by
            # SIGKILL, and no signal handler it inherited can delay it.
            child.kill()
        child.join()
        receiving.close()


class Background:
    """The result of in_background's work, when asked for."""

    def __init__(self, child, receiving, work: Callable, args: tuple):
        self._child, self._receiving, self._work, self._args = child, receiving, work, args

    def result(self):
        if self._child is None:
            return self._work(*self._args)
        try:
            failed, value = self._receiving.recv()
        except EOFError:  # the child died without a word: killed (out of memory?) or crashed
            self._child.join()
            raise PipelineError(f"the scoring process ended with exit code {self._child.exitcode} before it "
                                "answered (out of memory? see the kernel log: dmesg)") from None
        if failed:
            raise value
        return value


def _child(sending, work: Callable, args: tuple) -> None:
    # The parent's handlers (run_stage turns SIGTERM into an exception) are not this process's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which then stops this one
    try:
        answer = (False, work(*args))
    except Exception as exc:
        answer = (True, exc)
    try:
        sending.send(answer)
    except Exception as exc:  # an answer (or an error) that does not pickle
        sending.send((True, PipelineError(f"the scoring process could not hand back its answer ({exc!r})")))
    sending.close()
