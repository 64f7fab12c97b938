"""The pipeline's stages, each a script DVC runs as `python -m stages.<name>`; the library is imgclf.

A stage process first imports its libraries (TensorFlow, MLflow, scikit-learn): hundreds of
thousands of objects that live as long as the process. Python's cyclic collector walks them
again and again while they load: 1.5 s of TensorFlow's import in train, 0.3 s of scikit-learn's
in split. So it is off until run_stage (imgclf.errors) freezes what was imported and turns it
back on for the stage's main(): every stage script calls run_stage (tests/test_errors.py checks it).

And preprocess starts NumPy's OpenBLAS with one thread: at import OpenBLAS starts a thread per
core that spins for 0.1 s of CPU, waiting for matrix products this stage never asks for, while
its decoding threads want both cores. These two are all that runs here at import, and only in
a stage process.
"""

import gc
import os
import sys

# While `python -m` looks for the stage's module, sys.argv[0] is "-m": a stage being run, not
# imported (by a test, which keeps its collector).
if sys.argv[:1] == ["-m"]:
    gc.disable()
    if sys.orig_argv[-1:] == ["stages.preprocess"]:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
