#!/bin/sh
# Install the dlkit student kit (and, for a grader, nothing more: the grader runs from the
# repository) into the Python environment of PYTHON, from the locked versions only.
#
#   PYTHON=/opt/conda/bin/python sh deploy/install.sh student KIT_DIR LOCK
#   PYTHON=/usr/local/bin/python sh deploy/install.sh grader  REPO_DIR LOCK
#
# student: the lock's exact versions, then the student kit (release/kit) without re-resolving,
#          then nbgitpuller (links that clone the student edition into a hub user's home).
# grader:  the lock's exact versions, then the instructor kit (the repository) the same way.
# The Dockerfiles call this script; tests/test_deploy.py runs it in a fresh venv, so the
# images install exactly what CI has tested.
set -eu
MODE="${1:?usage: install.sh student|grader DIR LOCK}"
DIR="${2:?usage: install.sh student|grader DIR LOCK}"
LOCK="${3:?usage: install.sh student|grader DIR LOCK}"
PY="${PYTHON:-python3}"
NBGITPULLER="nbgitpuller==1.3.0"

pip_install() { "$PY" -m pip install --disable-pip-version-check --no-cache-dir -q "$@"; }

case "$MODE" in
  student)
    pip_install -r "$LOCK"
    pip_install --no-deps "$DIR"
    pip_install "$NBGITPULLER"
    ;;
  grader)
    pip_install -r "$LOCK"
    pip_install --no-deps -e "$DIR"
    ;;
  *) echo "install.sh: unknown mode $MODE (student or grader)" >&2; exit 2 ;;
esac
"$PY" -c "import dlkit, numpy; print('dlkit', dlkit.__version__ if hasattr(dlkit, '__version__') else '', 'numpy', numpy.__version__)"
