"""Start of every CPU benchmark; import it before numpy.

Puts the repository on ``sys.path`` (the scripts run from a checkout), selects the numpy backend
unless ``DLKIT_BACKEND`` says otherwise, and applies ``--blas-threads N`` to the BLAS thread
variables, which only take effect before numpy loads its BLAS.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DLKIT_BACKEND", "numpy")
if "--blas-threads" in sys.argv:
    _n = sys.argv[sys.argv.index("--blas-threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n
