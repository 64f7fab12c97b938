"""The pipeline's stages, each a script DVC runs as `python -m stages.<name>`; the library is imgclf.

The only thing that runs here at import: a stage being run imports its libraries with Python's
cyclic collector off (imgclf/collector.py says why and how it is turned back on).
"""

from imgclf import collector

collector.off_while_importing()
