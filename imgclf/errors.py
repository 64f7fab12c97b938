"""One error type for problems a user can fix, and the stage entry point that reports them."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); report a PipelineError as one clear line and exit non-zero."""
    try:
        main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
