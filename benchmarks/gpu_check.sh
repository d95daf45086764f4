#!/usr/bin/env bash
# A GPU day in one command: everything the CUDA backend cannot prove without a device.
#
#   make gpu-prep                                   # here, with the package registry reachable
#   bash benchmarks/gpu_check.sh OUTDIR             # on the device (carry .gpu/ along)
#   python benchmarks/gpu_results.py OUTDIR         # here: the rows for benchmarks/RESULTS.md
#
# Phases, each with its own time limit (seconds; DLKIT_GPU_LIMIT_<PHASE> overrides), in order:
#   env       machine facts: GPU, driver, CUDA, Python, the commit                    (10)
#   install   builds pycuda from .gpu/ into .gpu/venv (system site packages: numpy,
#             CuPy, PyTorch of the device stay visible), imports it, opens device 0   (140)
#   parity    tests/test_backend_parity.py + test_cuda_fallback.py on the real `cuda`
#             backend: every op at sizes 1, 17, 1000, 1025 against numpy             (60)
#   sanitize  compute-sanitizer memcheck / racecheck / synccheck over
#             benchmarks/gpu_sanitize.py: every kernel launched at edge sizes        (75)
#   bench     benchmarks/kernels.py --quick: matmul vs cuBLAS, bandwidth vs peak,
#             fused Adam, MLP step cuda vs numpy                                    (75)
# 360 s in all at most. Every phase writes OUTDIR/<phase>.log and one line of
# OUTDIR/phases.tsv (phase, status, seconds, limit, reason); status is passed, failed,
# timeout or "not run". A phase that cannot run (no GPU, --dry-run, an earlier phase failed)
# is "not run" with the reason, and whatever happens the folder holds what was measured.
set -uo pipefail

usage() { echo "usage: bash benchmarks/gpu_check.sh [--dry-run] OUTDIR" >&2; exit 2; }
DRY=""
OUT=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="dry run (--dry-run)" ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) usage ;;
    *) [ -z "$OUT" ] && OUT="$arg" || usage ;;
  esac
done
[ -n "$OUT" ] || usage

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PREP="${DLKIT_GPU_PREP:-$REPO/.gpu}"
VENV="${DLKIT_GPU_VENV:-$PREP/venv}"
BASE_PY="${DLKIT_GPU_PYTHON:-}"
if [ -z "$BASE_PY" ]; then
  if [ -x /opt/torch/.venv/bin/python ]; then BASE_PY=/opt/torch/.venv/bin/python; else BASE_PY=python3; fi
fi
export PATH="/usr/local/cuda/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg DLKIT_BACKEND=cuda

export REPO OUT PREP VENV BASE_PY
PHASES=(env install parity sanitize bench)
declare -A LIMIT=([env]=10 [install]=140 [parity]=60 [sanitize]=75 [bench]=75)
for p in "${PHASES[@]}"; do
  var="DLKIT_GPU_LIMIT_${p^^}"
  [ -n "${!var:-}" ] && LIMIT[$p]="${!var}"
done
declare -A DONE=()
printf 'phase\tstatus\tseconds\tlimit\treason\n' > "$OUT/phases.tsv"
START=$SECONDS

record() {   # phase status seconds reason
  local reason="${4//$'\t'/ }"
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${LIMIT[$1]}" "${reason//$'\n'/ }" >> "$OUT/phases.tsv"
  DONE[$1]="$2"
  printf '%-9s %-8s %4ss  %s\n' "$1" "$2" "$3" "$4"
}

finish() {   # whatever happened: every phase has a line, and the summary is written
  for p in "${PHASES[@]}"; do
    [ -n "${DONE[$p]:-}" ] || record "$p" "not run" 0 "${SKIP_REASON:-the check stopped before this phase}"
  done
  printf 'total\t%s s\n' "$((SECONDS - START))" > "$OUT/total.txt"
  if command -v python3 >/dev/null; then
    python3 "$REPO/benchmarks/gpu_results.py" "$OUT" > "$OUT/results.md" 2> "$OUT/results.err" || true
  fi
}
trap finish EXIT

run_phase() {   # phase command... : runs under its limit, logs to OUTDIR/<phase>.log
  local phase="$1"; shift
  local t0=$SECONDS rc
  if declare -F "$1" >/dev/null; then set -- bash -c "$1"; fi   # a function of this script
  timeout --kill-after=5 "${LIMIT[$phase]}" "$@" > "$OUT/$phase.log" 2>&1
  rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then record "$phase" passed "$dt" ""
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then record "$phase" timeout "$dt" "stopped at its ${LIMIT[$phase]} s limit"
  else record "$phase" failed "$dt" "exit $rc; see $phase.log: $(tail -n 1 "$OUT/$phase.log" | cut -c1-200)"
  fi
  return $rc
}

skip_rest() {   # reason: every phase not yet done is "not run"
  SKIP_REASON="$1"
  for p in "${PHASES[@]}"; do
    [ -n "${DONE[$p]:-}" ] || record "$p" "not run" 0 "$1"
  done
  exit 0
}

# -- env -------------------------------------------------------------------------------------
env_facts() {
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "python: $("$BASE_PY" -c 'import sys; print(sys.version.split()[0])' 2>&1)"
  echo "numpy: $("$BASE_PY" -c 'import numpy; print(numpy.__version__)' 2>&1 | tail -n 1)"
  local tool
  for tool in nvcc compute-sanitizer; do
    if command -v "$tool" >/dev/null; then
      echo "$tool: $("$tool" --version 2>&1 | grep -m1 -iE 'release|version [0-9]' | sed 's/^ *//')"
    else
      echo "$tool: not found"
    fi
  done
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
  else
    echo "gpu: none (nvidia-smi not found)"
  fi
}
export -f env_facts
run_phase env env_facts
cat "$OUT/env.log"

if [ -z "$DRY" ]; then
  if ! command -v nvidia-smi >/dev/null; then DRY="no GPU on this machine (nvidia-smi not found)"
  elif ! nvidia-smi -L >/dev/null 2>&1; then DRY="no usable GPU (nvidia-smi -L failed)"
  fi
fi
[ -z "$DRY" ] || skip_rest "$DRY"

# -- install ---------------------------------------------------------------------------------
ls "$PREP"/pycuda-*.tar.gz >/dev/null 2>&1 || skip_rest "no pycuda sdist in $PREP: run make gpu-prep here first and carry .gpu"
install_pycuda() {
  [ -x "$VENV/bin/python" ] || "$BASE_PY" -m venv --system-site-packages "$VENV" || return 1
  "$VENV/bin/python" -m pip install -q --no-index --find-links "$PREP" --no-build-isolation \
      -C--build-option=--conf:CUDA_ENABLE_CURAND=False "$PREP"/pycuda-*.tar.gz || return 1
  "$VENV/bin/python" -m pip install -q --no-index --find-links "$PREP" pytest hypothesis || return 1
  "$VENV/bin/python" - <<'EOF'
import pycuda.driver as drv
drv.init()
dev = drv.Device(0)
print("pycuda", __import__("pycuda").VERSION_TEXT, "device 0:", dev.name(), dev.compute_capability())
EOF
}
export -f install_pycuda
run_phase install install_pycuda || skip_rest "pycuda did not install (see install.log)"
PY="$VENV/bin/python"

# -- parity ----------------------------------------------------------------------------------
run_phase parity "$PY" -m pytest -q -p no:cacheprovider -x --junitxml="$OUT/parity.xml" \
    tests/test_backend_parity.py tests/test_cuda_fallback.py -k "cuda and not sim and not emu"

# -- sanitize --------------------------------------------------------------------------------
sanitize_all() {
  local tool rc=0 each=$SANITIZE_EACH
  command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found"; return 3; }
  for tool in memcheck racecheck synccheck; do
    echo "== $tool"
    timeout --kill-after=3 "$each" compute-sanitizer --tool "$tool" --error-exitcode 9 \
        --print-limit 20 "$PY" benchmarks/gpu_sanitize.py --json "$OUT/sanitize-$tool.json" \
        > "$OUT/sanitize-$tool.log" 2>&1
    local r=$?
    echo "$tool exit $r: $(grep -m1 'ERROR SUMMARY' "$OUT/sanitize-$tool.log" || echo 'no summary')"
    [ $r -eq 0 ] || rc=$r
  done
  return $rc
}
export -f sanitize_all
export SANITIZE_EACH=$(( LIMIT[sanitize] / 3 ))
run_phase sanitize sanitize_all

# -- bench -----------------------------------------------------------------------------------
run_phase bench "$PY" benchmarks/kernels.py --quick --json "$OUT/kernels.json"
exit 0
