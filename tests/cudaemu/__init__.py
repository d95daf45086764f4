"""Run the CUDA C of ``kernels/*.cu`` on the CPU, for tests on machines without a GPU.

The emulator itself (``cuda_emu.h``, ``runtime.cpp``, the ctypes ``launcher.py``) lives in the
product, ``autograder/cudaemu/``, because the grader runs students' kernels on it too; this
test-only part builds dlkit's own kernels against it.  The kernel sources are compiled unchanged
with the host C++ compiler, with ``cuda_emu.h`` force-included to supply ``threadIdx``,
``__syncthreads`` and friends; ``runtime.cpp`` runs every thread of a block as a fiber, blocks
one after another (see those files).  What it checks that nothing else can without a GPU:

* the kernels compute the right values (the parity suite runs on it as the ``cuda-emu``
  backend), including the tiles and grid-stride loops at sizes like 1, 17, 1000 and 1025;
* no kernel reads or writes outside its buffers: every "device" allocation ends at a guard
  page, so the first element past the end faults, and the fault becomes a test failure that
  names the kernel, the thread and the buffer;
* every ``__syncthreads()`` and warp shuffle is reached by all the threads it waits for.

It says nothing about speed, and cannot show races that only real parallel execution has.

Use :func:`load` (builds once per source hash into a cache folder, then reuses it).  It raises
:class:`EmulatorUnavailable` when there is no C++ compiler (tests skip, giving the reason) and
:class:`EmulatorBuildError` when the kernels do not build as C++ (tests fail).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from autograder.cudaemu import HERE
from autograder.cudaemu.launcher import Emulator as _Launcher
from dlkit.backend.cuda_kernels import KERNELS_DIR, format_items, kernel_signatures

_ARG_EXPR = {"P": "AnyPtr{{*(void**)a[{i}]}}", "q": "*(long long*)a[{i}]", "i": "*(int*)a[{i}]",
             "f": "*(float*)a[{i}]", "d": "*(double*)a[{i}]", "B": "*(unsigned char*)a[{i}]",
             "s": "*(const Layout*)a[{i}]"}
CXXFLAGS = ["-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", "-U_FORTIFY_SOURCE", "-fno-strict-aliasing",
            "-Wall", "-Wno-unknown-pragmas", "-Werror"]


class EmulatorUnavailable(RuntimeError):
    """No C++ compiler: the emulated tests skip with this reason."""


class EmulatorBuildError(AssertionError):
    """The kernels do not build as C++: a test failure, never a skip.  A kernel that uses a
    CUDA feature cuda_emu.h lacks (atomics, vector types, ...) needs it added there."""


class KernelError(AssertionError):
    """A launch that a GPU would not run correctly: a memory fault or a barrier misuse."""


def thunk_source(stem: str, kernels: dict[str, str]) -> str:
    """C++ that includes kernels/<stem>.cu and registers a launch thunk for each kernel."""
    lines = [f'#include "{stem}.cu"', '#include "registry.h"', "namespace {"]
    for name, fmt in sorted(kernels.items()):
        args = []
        for i, (_, code) in enumerate(format_items(fmt)):
            args.append(_ARG_EXPR[code].format(i=i))
        lines.append(f"void thunk_{name}(void** a) {{ {name}({', '.join(args)}); }}")
        lines.append(f'Registrar reg_{name}("{name}", thunk_{name});')
    lines.append("}  // namespace")
    return "\n".join(lines) + "\n"


def _compiler() -> str:
    """$CXX, else the first of g++, c++, clang++ on PATH."""
    wanted = os.environ.get("CXX")
    if wanted:
        cxx = shutil.which(wanted)
        if not cxx:
            raise EmulatorUnavailable(f"$CXX is {wanted!r}, which is not an executable on PATH")
        return cxx
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx:
        raise EmulatorUnavailable("no C++ compiler (g++, c++ or clang++) on PATH")
    return cxx


def _cache_root() -> Path:
    root = os.environ.get("DLKIT_CUDAEMU_CACHE")
    return Path(root) if root else Path(tempfile.gettempdir()) / f"dlkit-cudaemu-{os.getuid()}"


def build(kernels_dir: Path = KERNELS_DIR) -> Path:
    """Compile the emulator and the kernels into one shared library; returns its path.

    ``kernels_dir`` lets the tests build deliberately broken copies of a kernel file.  Object files and libraries are cached by
    the hash of what went into them, so a broken copy of one file recompiles only that file;
    every file is written under a temporary name and renamed, so parallel test workers can
    build at the same time.
    """
    cxx = _compiler()
    base = hashlib.sha256(" ".join([cxx, *CXXFLAGS]).encode())
    for path in sorted([*kernels_dir.glob("*.cuh"), *HERE.glob("*.h")]):
        base.update(path.name.encode() + path.read_bytes())
    # name -> (the C++ to compile, what else it depends on)
    units = {"runtime": (f'#include "{HERE / "runtime.cpp"}"\n', (HERE / "runtime.cpp").read_text())}
    for stem, kernels in kernel_signatures().items():   # the thunks #include "<stem>.cu"
        units[f"thunks_{stem}"] = (thunk_source(stem, kernels), (kernels_dir / f"{stem}.cu").read_text())
    root = _cache_root()
    (root / "obj").mkdir(parents=True, exist_ok=True)
    flags = [*CXXFLAGS, "-I", str(kernels_dir), "-I", str(HERE), "-include", str(HERE / "cuda_emu.h")]

    def compile_unit(item: tuple[str, tuple[str, str]]) -> Path:
        name, (text, depends) = item
        digest = base.copy()
        digest.update(text.encode() + depends.encode())
        obj = root / "obj" / f"{name}-{digest.hexdigest()[:16]}.o"
        if not obj.exists():
            with tempfile.TemporaryDirectory(dir=root) as work:
                src = Path(work) / f"{name}.cpp"
                src.write_text(text)
                run = subprocess.run([cxx, *flags, "-c", str(src), "-o", str(Path(work) / "o")],
                                     capture_output=True, text=True)
                if run.returncode != 0:
                    raise EmulatorBuildError(f"the kernels do not build as C++ ({name}):\n"
                                              + run.stderr[-3000:])
                os.replace(Path(work) / "o", obj)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objects = list(pool.map(compile_unit, sorted(units.items())))
    lib = root / f"libdlkit_cudaemu-{hashlib.sha256(' '.join(map(str, objects)).encode()).hexdigest()[:16]}.so"
    if not lib.exists():
        with tempfile.TemporaryDirectory(dir=root) as work:
            tmp = Path(work) / lib.name
            run = subprocess.run([cxx, "-shared", *map(str, objects), "-o", str(tmp)],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                raise EmulatorBuildError("linking the CUDA emulator failed:\n" + run.stderr[-3000:])
            os.replace(tmp, lib)
    return lib


class Emulator(_Launcher):
    """The loaded library (see autograder/cudaemu/launcher.py), launching with the
    prepared-call formats of dlkit's cuda backend."""

    def launch(self, name: str, grid: Sequence[int], block: Sequence[int], fmt: str,
               args: Sequence[Any]) -> tuple[int, str, int]:
        """Run kernel ``name``; ``args`` follow the prepared-call format ``fmt``.

        Returns (code, message, fault address); code 0 means the launch ran to the end.
        """
        items = format_items(fmt)
        if len(items) != len(args):
            raise TypeError(f"{name}: {len(args)} arguments for format {fmt!r}")
        for (count, code), value in zip(items, args):
            if code == "s" and (not isinstance(value, bytes) or len(value) != count):
                raise TypeError(f"{name}: expected {count} bytes, got {value!r:.40}")
        return self.launch_items(name, grid, block, [(code, value) for (_, code), value in zip(items, args)])


_loaded: dict[Path, Emulator | Exception] = {}


def load(kernels_dir: Path = KERNELS_DIR) -> Emulator:
    """The emulator for ``kernels_dir``, built on first use (cached per process and on disk).

    A failed build is remembered too, so a machine without a compiler pays for it once.
    """
    key = Path(kernels_dir)
    found = _loaded.get(key)
    if found is None:
        try:
            found = Emulator(build(kernels_dir))
        except (EmulatorUnavailable, EmulatorBuildError) as exc:
            found = exc
        _loaded[key] = found
    if isinstance(found, Exception):
        raise found
    return found
