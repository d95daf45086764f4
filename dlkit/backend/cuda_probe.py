"""Finding the GPU: the lazy pycuda import, device probing, kernel compilation.

:func:`create` probes the GPU stack once per process -- pycuda importable? driver loads?
``cuda.init()`` works? a device present? kernels compile? -- and returns the
:class:`~dlkit.backend.cuda.CudaBackend`, or raises ``BackendUnavailable`` naming the first
step that failed.  The verdict (backend or reason) is cached; :func:`reset` forgets it.

pycuda is imported only inside these functions, so ``import dlkit`` never touches it.  The
probe pushes device 0's primary context and registers an atexit hook that pops it again.
"""
from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cuda_kernels
from .cuda_kernels import KERNEL_FILES

if TYPE_CHECKING:
    from .cuda import CudaBackend


# =======================================================================================
# Probing the GPU stack (once per process)
# =======================================================================================
_lock = threading.Lock()
_verdict: CudaBackend | str | None = None     # the backend, or the reason it is unavailable


def cache_dir() -> Path:
    """Where pycuda keeps compiled kernels (``$DLKIT_CUDA_CACHE`` or ~/.cache/dlkit/cuda)."""
    path = Path(os.environ.get("DLKIT_CUDA_CACHE", Path.home() / ".cache" / "dlkit" / "cuda"))
    path.mkdir(parents=True, exist_ok=True)   # SourceModule needs an existing directory
    return path


def reset() -> None:
    """Forget the cached verdict so that the next :func:`create` probes again (for tests)."""
    global _verdict
    with _lock:
        _verdict = None


def create() -> CudaBackend:
    """The CUDA backend, or ``BackendUnavailable`` saying which part of the stack is missing."""
    global _verdict
    from . import BackendUnavailable

    with _lock:
        if _verdict is None:
            try:
                _verdict = _probe()
            except BackendUnavailable as exc:
                _verdict = str(exc)
        verdict = _verdict
    if isinstance(verdict, str):
        raise BackendUnavailable(verdict)
    return verdict


def _first_lines(text: str, n: int = 8) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return "\n".join(lines[:n])


def _probe() -> CudaBackend:
    from . import BackendUnavailable
    from .cuda import CudaBackend   # here, not at the top: cuda.py re-exports create()

    try:
        import pycuda  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"pycuda is not installed ({exc}); on a machine with an NVIDIA GPU install it "
            "with: pip install 'dlkit[gpu]'") from None
    except Exception as exc:   # noqa: BLE001  (a broken install must not break CPU users)
        raise BackendUnavailable(
            f"pycuda is installed but importing it failed: {type(exc).__name__}: {exc}") from None
    try:
        import pycuda.driver as drv
    except ImportError as exc:   # e.g. libcuda.so.1 missing, or a driver older than pycuda
        raise BackendUnavailable(
            f"no NVIDIA driver: importing pycuda.driver failed ({exc})") from None
    except Exception as exc:   # noqa: BLE001
        raise BackendUnavailable(
            f"no usable NVIDIA driver: importing pycuda.driver failed "
            f"({type(exc).__name__}: {exc})") from None
    try:
        drv.init()
    except drv.Error as exc:
        raise BackendUnavailable(
            f"the NVIDIA driver is unusable: cuda.init() raised {type(exc).__name__}: {exc}") from None
    try:
        count = drv.Device.count()
    except drv.Error as exc:
        raise BackendUnavailable(f"cannot count CUDA devices: {type(exc).__name__}: {exc}") from None
    if count == 0:
        raise BackendUnavailable("no CUDA device: the driver reports 0 devices")
    try:
        device = drv.Device(0)
        context = device.retain_primary_context()
        context.push()
    except drv.Error as exc:
        raise BackendUnavailable(
            f"cannot open CUDA device 0: {type(exc).__name__}: {exc}") from None
    try:
        major, minor = device.compute_capability()
        arch = f"sm_{major}{minor}"
        modules = _compile_modules(arch)
        sm_count = device.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)
        from pycuda.tools import DeviceMemoryPool
        pool = DeviceMemoryPool()
    except BackendUnavailable:
        context.pop()
        raise
    except Exception as exc:   # noqa: BLE001  (anything here means "cannot use the GPU")
        context.pop()
        raise BackendUnavailable(f"CUDA setup failed: {type(exc).__name__}: "
                                 f"{_first_lines(exc)}") from None

    def shutdown() -> None:     # pop our context at exit, after releasing cached blocks
        try:
            pool.free_held()
            context.pop()
        except Exception:   # noqa: BLE001  (interpreter shutdown: nothing useful to do)
            pass

    atexit.register(shutdown)
    return CudaBackend(drv, modules, pool.allocate, sm_count, device.name(), arch)


def _compile_modules(arch: str) -> dict[str, Any]:
    """Compile every kernels/*.cu with pycuda (cached on disk by pycuda) for ``arch``."""
    from . import BackendUnavailable
    from pycuda.compiler import SourceModule

    try:
        kernels_dir = cuda_kernels.kernels_dir()
    except FileNotFoundError as exc:
        raise BackendUnavailable(str(exc)) from None
    modules = {}
    for stem in KERNEL_FILES:
        path = kernels_dir / f"{stem}.cu"
        try:
            source = path.read_text()
        except OSError as exc:
            raise BackendUnavailable(f"kernel source missing: {path} ({exc.strerror})") from None
        try:
            modules[stem] = SourceModule(source, no_extern_c=True, arch=arch,
                                         include_dirs=[str(kernels_dir)],
                                         cache_dir=str(cache_dir()))
        except Exception as exc:   # noqa: BLE001  (pycuda.driver.CompileError, nvcc missing, ...)
            log = getattr(exc, "stderr", None) or str(exc)
            raise BackendUnavailable(
                f"compiling kernels/{stem}.cu for {arch} failed:\n{_first_lines(log)}") from None
    return modules
