"""The pipeline's stages, each a script DVC runs as `python -m stages.<name>`; the library is imgclf.

What runs here at import, in a stage being run (never in a process that imports a stage), before
the stage's module imports its libraries: the libraries' console switches are set
(imgclf/console.py); params.yaml is checked, so a typo stops any stage at once, on one line; and
the libraries are imported with Python's cyclic collector off (imgclf/collector.py says why and
how it is turned back on).
"""

import sys

from imgclf import collector, console, layout, runtime

if sys.argv[:1] == ["-m"]:  # while `python -m` looks for the stage's module, sys.argv[0] is "-m"
    console.quiet()
    runtime.check_params_first(layout.PARAMS)
collector.off_while_importing()
