"""The CUDA emulator (tests/cudaemu) catches the kernel bugs it is there to catch.

The parity suite runs the real kernels/*.cu on the emulator as the ``cuda-emu`` backend.  Here
each plausible kernel bug -- a missing bounds guard, a barrier in divergent code, a missing
barrier, a short shuffle tree, an off-by-one loop, a dropped scale factor -- is applied to a
copy of kernels/, built, and must make the parity tests for that kernel fail.  So a green
``cuda-emu`` run means something.
"""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlkit.backend.cuda_kernels import KERNELS_DIR
from tests import test_backend_parity as parity
from tests.cudaemu import EmulatorBuildError, EmulatorUnavailable, KernelError, load
from tests.cudasim import make_emu_backend

# (id, file, the exact source text, its broken replacement, parity tests that must fail)
MUTANTS = [
    ("matmul-no-row-guard", "matmul.cu",
     "As[kk][mm] = (gm < M && gk < K)", "As[kk][mm] = (gk < K)", ["test_matmul"]),
    ("matmul-no-k-guard-on-B", "matmul.cu",
     "Bs[kk][nn] = (gk < K && gn < N)", "Bs[kk][nn] = (gn < N)", ["test_matmul"]),
    ("matmul-no-store-guard", "matmul.cu",
     "if (gn < N) C[gm * N + gn] = acc[i][j];", "C[gm * N + gn] = acc[i][j];", ["test_matmul"]),
    ("matmul-no-barrier-after-copy", "matmul.cu",
     "        __syncthreads();\n\n        // -- TM x TN", "\n        // -- TM x TN", ["test_matmul"]),
    ("matmul-no-barrier-before-next-copy", "matmul.cu",
     "__syncthreads();  // before the next slab", "// (barrier removed)", ["test_matmul"]),
    ("block-reduce-barrier-in-branch", "common.cuh",
     "        if (lane == 0) partial[0] = v;\n    }\n    __syncthreads();",
     "        if (lane == 0) partial[0] = v;\n        __syncthreads();\n    }", ["test_reductions"]),
    ("block-reduce-short-tree", "common.cuh",
     "for (int delta = 16; delta > 0; delta >>= 1) v = op(v,",
     "for (int delta = 8; delta > 0; delta >>= 1) v = op(v,", ["test_reductions"]),
    ("reduce-rows-inclusive-end", "reduce.cu",
     "c < end; c += blockDim.x) acc", "c <= end; c += blockDim.x) acc", ["test_reductions"]),
    ("argmax-last-tie-wins", "reduce.cu",
     "(v2 == v1 && i2 < i1)", "(v2 == v1 && i2 > i1)", ["test_argmax"]),
    ("elementwise-loop-off-by-one", "elementwise.cu",
     "for (long long i = start; i < L.size; i += step) { __VA_ARGS__ }                           \\\n    } else",
     "for (long long i = start; i <= L.size; i += step) { __VA_ARGS__ }                          \\\n    } else",
     ["test_binary_broadcast"]),
    ("layout-output-strides-for-inputs", "common.cuh",
     "off[k] += (long long)c * L.strides[k][s];", "off[k] += (long long)c * L.strides[0][s];",
     ["test_binary_broadcast"]),
    ("fill-loop-off-by-one", "elementwise.cu", "j < n;         \\", "j <= n;        \\",
     ["test_zeros_ones_full"]),
    ("xent-gradient-unscaled", "softmax_xent.cu",
     "(c == y ? (T)1 : (T)0)) * inv_m;", "(c == y ? (T)1 : (T)0));", ["test_softmax_cross_entropy"]),
    ("logsumexp-without-max-shift", "softmax_xent.cu",
     "if (!isfinite(m)) m = (T)0;", "m = (T)0;", ["test_logsumexp_large_and_infinite"]),
    ("adam-no-second-bias-correction", "optim.cu",
     "sqrt(vi) / bias_correction2_sqrt + eps", "sqrt(vi) + eps", ["test_adam_step"]),
    ("sgd-nesterov-ignored", "optim.cu",
     "d = nesterov ? d + momentum * b : b;", "d = b;", ["test_sgd_step"]),
]


def parity_cases(name: str):
    """Every parametrization of parity test ``name`` (besides the backend) as kwargs."""
    fn = getattr(parity, name)
    axes = []
    for mark in getattr(fn, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        argnames, values = mark.args[0], mark.args[1]
        names = [a.strip() for a in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
        axes.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in values])
    for combo in itertools.product(*axes):
        yield {k: v for part in combo for k, v in part.items()}


def failures(backend, tests: list[str]) -> list[str]:
    found = []
    for name in tests:
        for kwargs in parity_cases(name):
            try:
                getattr(parity, name)(backend, **kwargs)
            except AssertionError as exc:        # wrong values, or a KernelError
                found.append(f"{name}{kwargs}: {str(exc).splitlines()[0][:200]}")
    return found


@pytest.fixture(scope="module")
def emulator():
    try:
        return load()
    except EmulatorUnavailable as exc:
        pytest.skip(f"CUDA emulator unavailable: {exc}")


def test_mutant_table_is_consistent():
    ids = [m[0] for m in MUTANTS]
    assert len(ids) == len(set(ids))
    for _, _, _, _, tests in MUTANTS:
        for name in tests:
            assert callable(getattr(parity, name, None)), f"no parity test {name}"
            assert next(parity_cases(name), None) is not None


def test_the_real_kernels_pass_every_mutant_check(emulator):
    names = sorted({n for m in MUTANTS for n in m[4]})
    assert failures(make_emu_backend(emulator=emulator), names) == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_kernel_mutant_is_caught(mutant, tmp_path: Path, emulator):
    ident, filename, old, new, tests = mutant
    broken = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, broken)
    source = (broken / filename).read_text()
    assert source.count(old) >= 1, f"{ident}: the text to break is no longer in {filename}"
    (broken / filename).write_text(source.replace(old, new))
    backend = make_emu_backend(emulator=load(broken))
    assert failures(backend, tests), f"{ident}: kernels/{filename} broken, yet {tests} pass"


# ---------------------------------------------------------------------------------------
# What the emulator reports, word for word
# ---------------------------------------------------------------------------------------
def test_out_of_bounds_read_names_kernel_thread_and_buffer(tmp_path: Path, emulator):
    broken = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, broken)
    path = broken / "optim.cu"
    path.write_text(path.read_text().replace("T g = grad[i];", "T g = grad[i + 1];"))
    be = make_emu_backend(emulator=load(broken))
    p = be.array(np.ones(1025, np.float32), np.float32)
    g = be.array(np.ones(1025, np.float32), np.float32)
    m, v = be.zeros((1025,), np.float32), be.zeros((1025,), np.float32)
    with pytest.raises(KernelError, match=r"invalid memory access at 0x[0-9a-f]+ in kernel "
                       r"adam_step_f32 by thread \(0, 0, 0\) of block \(4, 0, 0\) "
                       r"\(0 bytes past the end of an allocation of 4100 bytes\)"):
        be.adam_step(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
                     step=1, bias_correction=True, decoupled=False)


def test_barrier_divergence_is_an_error_not_a_hang(tmp_path: Path, emulator):
    broken = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, broken)
    path = broken / "common.cuh"
    _, _, old, new, _ = next(m for m in MUTANTS if m[0] == "block-reduce-barrier-in-branch")
    path.write_text(path.read_text().replace(old, new))
    be = make_emu_backend(emulator=load(broken))
    with pytest.raises(KernelError, match=r"barrier divergence in kernel reduce_rows_sum_f32, "
                       r"block \(0, 0, 0\).*32 threads wait at __syncthreads\(\), 0 at a warp "
                       r"shuffle and 224 have returned"):
        be.sum(be.array(np.ones(1000, np.float32), np.float32))


def test_no_compiler_means_a_skip_reason_not_a_crash(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(EmulatorUnavailable, match=r"\$CXX is 'no-such-compiler', which is not an executable"):
        load(tmp_path)                      # a fresh key: nothing cached for it
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorUnavailable, match=r"no C\+\+ compiler \(g\+\+, c\+\+ or clang\+\+\) on PATH"):
        load(tmp_path / "other")


def test_a_kernel_that_does_not_build_fails_instead_of_skipping(tmp_path: Path, emulator):
    broken = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, broken)
    (broken / "optim.cu").write_text((broken / "optim.cu").read_text().replace("const T mi =", "const T mi"))
    with pytest.raises(EmulatorBuildError, match=r"the kernels do not build as C\+\+ \(thunks_optim\)"):
        load(broken)
