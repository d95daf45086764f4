"""Every kernels/*.cu compiles (nvcc --ptx, sm_80 and sm_90, warnings are errors), and every
kernel that dlkit/backend/cuda.py launches exists there with the argument types it passes.

Needs only the CUDA toolkit (nvcc), no GPU.  Skipped, with the reason, where nvcc is absent.
"""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from dlkit.backend import BackendUnavailable, cuda, cuda_kernels, cuda_probe, nvcc
from dlkit.backend.cuda_kernels import KERNELS_DIR

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(KERNELS_DIR.glob("*.cu"))
ARCHS = ("sm_80", "sm_90")

needs_nvcc = pytest.mark.skipif(not nvcc.nvcc_available(),
                                reason="nvcc (CUDA toolkit) not found on PATH; kernels not compiled")

def test_there_are_kernel_sources():
    assert {p.stem for p in SOURCES} == set(cuda.KERNEL_FILES), \
        "kernels/*.cu and cuda.KERNEL_FILES disagree: a source is not loaded, or is missing"


# -- where the sources are: one answer, used by everyone -------------------------------------
def test_kernels_dir_is_the_checkouts_kernels_folder():
    """From a checkout or an editable install the sources are read in place from kernels/."""
    assert KERNELS_DIR == (REPO / "kernels").resolve() == cuda_kernels.kernels_dir()
    assert nvcc.KERNELS_DIR is cuda.KERNELS_DIR is KERNELS_DIR


def test_kernels_dir_is_defined_only_in_cuda_kernels():
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        if path.name != "cuda_kernels.py":
            assert not re.search(r'["\']kernels["\']', path.read_text(encoding="utf-8")), \
                f"{path.relative_to(REPO)} builds its own path to kernels/; use cuda_kernels.KERNELS_DIR"


def test_search_takes_the_first_folder_with_the_sources(tmp_path):
    installed, checkout = tmp_path / "installed", tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "common.cuh").write_text("")
    assert cuda_kernels._find_kernels_dir((installed, checkout)) == checkout
    installed.mkdir()
    (installed / "common.cuh").write_text("")
    assert cuda_kernels._find_kernels_dir((installed, checkout)) == installed
    assert cuda_kernels._find_kernels_dir((tmp_path / "nowhere",)) is None


def test_missing_sources_fail_at_compile_time_saying_where_they_were_looked_for(monkeypatch, tmp_path):
    search = (tmp_path / "site" / "dlkit" / "_kernels", tmp_path / "repo" / "kernels")
    monkeypatch.setattr(cuda_kernels, "KERNELS_SEARCH_PATH", search)
    monkeypatch.setattr(cuda_kernels, "KERNELS_DIR", search[-1])
    with pytest.raises(FileNotFoundError) as err:
        cuda_kernels.kernels_dir()
    assert all(str(p) in str(err.value) for p in search)
    # the cuda probe turns it into BackendUnavailable before compiling anything
    compiled = []
    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = lambda *a, **k: compiled.append(a)
    monkeypatch.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    monkeypatch.setitem(sys.modules, "pycuda.compiler", compiler)
    with pytest.raises(BackendUnavailable, match="were not found; looked in: ") as err:
        cuda_probe._compile_modules("sm_90")
    assert all(str(p) in str(err.value) for p in search) and not compiled


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_kernel_source_compiles(path, arch):
    """Compiles cleanly; for sm_80 also: every kernel cuda.py launches from this file exists
    as an extern "C" entry with exactly the parameter types cuda.py packs."""
    # no timeout: a correct kernel compiles however long a loaded machine makes nvcc take (a fixed
    # 120 s failed once under `make test` on a busy 2-core machine); pytest's own limits apply
    result = nvcc.compile_file(path, arch, werror=True, timeout=None)
    assert result.ok, f"{path.name} does not compile for {arch}:\n{result.log}"
    assert result.entries, f"{path.name} defines no kernel"
    if arch == "sm_80":
        check_launched_kernels(path.stem, result)


# -- the check itself can fail -------------------------------------------------------------
@needs_nvcc
def test_broken_source_fails_to_compile():
    result = nvcc.compile_ptx('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }', timeout=None)
    assert not result.ok
    assert "undefined_name" in result.log and result.ptx == ""
    assert "undefined_name" in result.first_lines(3)


@needs_nvcc
def test_warnings_fail_only_with_werror():
    src = 'extern "C" __global__ void k(float* x) { int unused = 3; x[0] = 1.0f; }'
    assert nvcc.compile_ptx(src, timeout=None).ok
    assert not nvcc.compile_ptx(src, werror=True, timeout=None).ok


@needs_nvcc
def test_compile_ptx_reports_entries():
    src = ('extern "C" __global__ void first(float* x) { x[threadIdx.x] = 0; }\n'
           'extern "C" __global__ void second(double* y, long long n) { if (n) y[0] = 1; }\n')
    result = nvcc.compile_ptx(src, "sm_90", timeout=None)
    assert result.ok, result.log
    assert result.entries == ["first", "second"]
    assert "-arch=sm_90" in result.command


def test_compile_ptx_without_nvcc(monkeypatch):
    monkeypatch.setattr(nvcc, "nvcc_path", lambda: None)
    assert not nvcc.nvcc_available()
    with pytest.raises(FileNotFoundError, match="nvcc not found"):
        nvcc.compile_ptx("")


# -- names and signatures launched by cuda.py ------------------------------------------------
_PARAM = re.compile(r"\.param\s+(?:\.align\s+\d+\s+)?\.(\w+)\s+(?:\.ptr\s+(?:\.\w+\s+)*)?"
                    r"[\w$]+(?:\[(\d+)\])?")


def ptx_params(ptx: str, name: str) -> list[str]:
    """Parameter types of kernel ``name`` as format characters: P/q (8-byte int), f, d, i, B, Ns."""
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    assert m, f"no .entry {name}"
    out = []
    for ptype, count in _PARAM.findall(m.group(1)):
        if count:
            out.append(f"{count}s")
        else:
            out.append({"u64": "8", "s64": "8", "b64": "8", "f32": "f", "f64": "d",
                        "u32": "i", "s32": "i", "b32": "i", "u8": "B", "s8": "B", "b8": "B"}[ptype])
    return out


def format_params(fmt: str) -> list[str]:
    out = []
    for count, char in cuda_kernels.format_items(fmt):
        out.append(f"{count}s" if char == "s" else "8" if char in "Pq" else char)
    return out


def check_launched_kernels(stem: str, result: nvcc.CompileResult) -> None:
    declared = cuda.kernel_signatures()[stem]
    missing = sorted(set(declared) - set(result.entries))
    assert not missing, f"cuda.py launches kernels that {stem}.cu does not define: {missing}"
    for name, fmt in declared.items():
        assert ptx_params(result.ptx, name) == format_params(fmt), \
            f"{name}: cuda.py passes {fmt!r} but the kernel takes {ptx_params(result.ptx, name)}"


def test_signature_check_detects_a_mismatch():
    """The check above can fail: a renamed kernel or a changed parameter type is caught."""
    ptx = (".visible .entry k(\n\t.param .align 8 .b8 k_param_0[256],\n\t.param .u64 k_param_1,\n"
           "\t.param .f32 k_param_2\n)\n{\n}\n")
    assert ptx_params(ptx, "k") == format_params("256sPf")
    assert ptx_params(ptx, "k") != format_params("256sPd")
    assert nvcc.ptx_entries(ptx) == ["k"]
    result = nvcc.CompileResult(True, "", ptx, (), ["k"])
    with pytest.raises(AssertionError, match="does not define"):
        check_launched_kernels("optim", result)


def test_layout_size_matches_common_header():
    header = (KERNELS_DIR / "common.cuh").read_text()
    assert f"#define DLKIT_MAX_DIMS {cuda.MAX_DIMS}" in header
    assert cuda.LAYOUT_FIELDS == 2 + 5 * cuda.MAX_DIMS   # ndim, size, shape[D], strides[4][D]


def test_format_items_reads_a_prepared_call_format():
    assert cuda_kernels.format_items("256sPPqf") == [(256, "s"), (1, "P"), (1, "P"), (1, "q"), (1, "f")]
    assert cuda_kernels.format_items("") == []
