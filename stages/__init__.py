"""The pipeline's stages, each a script DVC runs as `python -m stages.<name>`; the library is imgclf.

A stage process first imports its libraries (TensorFlow, MLflow, scikit-learn): hundreds of
thousands of objects that live as long as the process, and no garbage. Python's cyclic collector
walks them again and again while they load: 1.5 s of train's imports, 0.5 s of MLflow's. So it
is off until run_stage starts the stage's main(), which freezes what was imported and turns it on.
"""

import gc
import sys

# While `python -m` looks for the stage's module, sys.argv[0] is "-m": a stage being run, not
# imported (by a test, which keeps its collector).
if sys.argv[:1] == ["-m"]:
    gc.disable()
