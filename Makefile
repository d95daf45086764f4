# dlkit course kit. Every target creates/uses the virtual environment in .venv.
#   make lab      install the kit and open JupyterLab on notebooks/
#   make test     install dev dependencies, run pytest (library, release, autograder) and nbval
#   make release  student edition in release/ (nbgrader generate_assignment + stubbed dlkit)
#   make grade    ASSIGNMENT=03_optimization: grade nbgrader's submitted/ tree in the sandbox
#                 (SCHEDULER=tcp://host:8786 or local:N: on a Dask cluster, see README)
#   make bench    print the benchmark figures (see benchmarks/RESULTS.md)
#   make site     the course website: the student edition, executed, as a Jupyter Book in _site/
#   make lock     re-resolve requirements/*.lock (the exact versions every install uses)
#   make gpu-prep download what a lent GPU machine needs into .gpu/ (then: benchmarks/gpu_check.sh)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
JOBS   ?= 2
ASSIGNMENT ?=
WORKERS ?= 2
SCHEDULER ?=

# nbgrader runs tools it installed (alembic) by name: the venv's bin/ must be on PATH
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: sysdeps lab test test-lib test-notebooks release grade bench site gpu-prep lock clean help

help:
	@sed -n '2,11p' Makefile

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dlkit needs Python >= 3.10, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@touch $@

# Exact versions come from the locks in requirements/ (`make lock` refreshes them); dlkit itself
# is installed on top, editable, without letting pip re-resolve anything.
$(VENV)/.installed-base: $(VENV)/.python-ok pyproject.toml requirements/base.lock
	$(PIP) install -r requirements/base.lock
	$(PIP) install --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base requirements/dev.lock
	$(PIP) install -r requirements/dev.lock
	@touch $@

$(VENV)/.installed-site: $(VENV)/.installed-base requirements/site.lock
	$(PIP) install -r requirements/site.lock
	@touch $@

$(VENV)/.installed-cluster: $(VENV)/.installed-base requirements/cluster.lock
	$(PIP) install -r requirements/cluster.lock
	@touch $@

# Re-resolve the locks from pyproject.toml (newest versions that fit, for every Python >= 3.10
# and platform); review the diff, run make test, commit the locks with the change that needed them.
lock: $(VENV)/.python-ok
	$(PIP) install uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.10 -q -o requirements/base.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 -q -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra site --universal --python-version 3.10 -q -o requirements/site.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra cluster --universal --python-version 3.10 -q -o requirements/cluster.lock

# Jupyter refuses to run as root unless told; containers often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(VENV)/.installed-base
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

# Two pytest workers on two cores: one BLAS thread each, or OpenBLAS oversubscribes and small
# matmuls get ~100x slower.
test test-lib test-notebooks: export OPENBLAS_NUM_THREADS = 1
test test-lib test-notebooks: export OMP_NUM_THREADS = 1

# pytest exits 5 when it collected nothing; make treats every non-zero exit as a failure.
test: test-lib test-notebooks

# System tools some tests need: bubblewrap (the sandbox's non-root mode) and Debian's chromium
# (formgrader and course-site browser tests). Installed when missing and we are root with apt
# (CI, containers); otherwise those tests skip and say why.
SYSDEPS := bwrap:bubblewrap chromium:chromium
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
		else echo "note: without$$missing some sandbox and browser tests skip (apt-get install$$missing)"; fi; \
	fi

test-lib: sysdeps $(VENV)/.installed-dev $(VENV)/.installed-site $(VENV)/.installed-cluster
	$(PY) -m pytest -n $(JOBS) tests

test-notebooks: $(VENV)/.installed-dev
	MPLBACKEND=Agg $(PY) -m pytest -n $(JOBS) --dist loadfile -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=120 notebooks

release: $(VENV)/.installed-base
	$(PY) -m autograder release --out release

grade: $(VENV)/.installed-base $(if $(SCHEDULER),$(VENV)/.installed-cluster)
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=<id> [COURSE=.] [WORKERS=2] [SCHEDULER=tcp://host:8786|local:N] [QUICK_PASS=0]"; exit 2; }
	$(PY) -m autograder batch --course-dir $(or $(COURSE),.) --assignment $(ASSIGNMENT) --workers $(WORKERS) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(filter 0 no false,$(QUICK_PASS)),--no-quick-pass)

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py

# Only the package registry is needed, not the venv: pip downloads for the device's Python 3.12.
# The course website: the student edition executed (with the solution packs when they exist,
# so every figure is drawn) and rendered by Jupyter Book into _site/html/.
site: $(VENV)/.installed-site
	$(PY) -m autograder release --out release
	$(PY) deploy/site.py --release release --out _site

GPU_PREP ?= .gpu
gpu-prep:
	$(PYTHON) benchmarks/gpu_prep.py --out $(GPU_PREP)

clean:
	rm -rf $(VENV) release release_packs _site .pytest_cache .hypothesis
