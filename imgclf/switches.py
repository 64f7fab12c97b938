"""The switches that turn a speed trick off (IMGCLF_<NAME>=0), so that benchmarks/ab_stage.py can measure it."""

import os


def on(name: str) -> bool:
    """Whether the trick behind environment variable `name` is on: it is, unless the variable is "0"."""
    return os.environ.get(name, "1") != "0"
