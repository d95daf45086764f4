"""The numpy backend: every array is a ``numpy.ndarray`` on the host.

This is the reference implementation of :class:`dlkit.backend.base.Backend`.
Most methods are one numpy call; the fused ones (``logsumexp``,
``softmax_cross_entropy``, ``sgd_step``, ``adam_step``) work in place where
they can so that a float32 training step allocates as little as possible.
The optimizer steps run as one C loop per parameter when a C compiler is
available (compiled on first use and cached; see the end of the module).

dtype rule: an operation never changes the dtype of its array operands
(Python scalars are "weak" under numpy 2, so ``float32_array * 2.0`` stays
float32).  The ops layer (``dlkit/ops.py``) has already checked shapes and
dtypes before any of these run.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Sequence

import numpy as np

from .._graded import withheld

from .base import Axis, Backend, Shape


def _nd(x: Any) -> np.ndarray:
    """numpy returns scalars (np.float32) for 0-d results; keep everything an ndarray."""
    return x if type(x) is np.ndarray else np.asarray(x)


class NumpyBackend(Backend):
    """Host arrays, computed with numpy (BLAS for ``matmul``)."""

    name = "numpy"

    # -- creation and transfer ------------------------------------------------
    def array(self, data: Any, dtype) -> np.ndarray:
        return np.array(data, dtype=dtype)          # always a fresh copy

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return a                                    # already on the host (no copy)

    def zeros(self, shape: Shape, dtype) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def ones(self, shape: Shape, dtype) -> np.ndarray:
        return np.ones(shape, dtype=dtype)

    def full(self, shape: Shape, value: float, dtype) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def astype(self, a: np.ndarray, dtype) -> np.ndarray:
        return a.astype(dtype)

    def copy(self, a: np.ndarray) -> np.ndarray:
        return a.copy()

    def assign(self, dst: np.ndarray, src: Any) -> None:
        if dst.shape != np.shape(src):
            raise ValueError(f"assign: destination shape {dst.shape} != source shape {np.shape(src)}")
        np.copyto(dst, src, casting="unsafe")

    # -- movement (views where numpy gives them) --------------------------------
    def reshape(self, a: np.ndarray, shape: Shape) -> np.ndarray:
        return a.reshape(shape)

    def transpose(self, a: np.ndarray, axes: Sequence[int] | None = None) -> np.ndarray:
        return a.transpose(axes)

    def broadcast_to(self, a: np.ndarray, shape: Shape) -> np.ndarray:
        return np.broadcast_to(a, shape)            # read-only view with zero strides

    def getitem(self, a: np.ndarray, index: Any) -> np.ndarray:
        return a[index]

    def getitem_backward(self, grad: np.ndarray, shape: Shape, index: Any) -> np.ndarray:
        out = np.zeros(shape, dtype=grad.dtype)
        out[index] = grad                           # basic indexing never repeats an element
        return out

    def stack(self, arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
        return np.stack(arrays, axis=axis)

    def concatenate(self, arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
        return np.concatenate(arrays, axis=axis)

    # -- elementwise ------------------------------------------------------------
    def add(self, a, b): return _nd(np.add(a, b))
    def sub(self, a, b): return _nd(np.subtract(a, b))
    def mul(self, a, b): return _nd(np.multiply(a, b))
    def div(self, a, b): return _nd(np.true_divide(a, b))
    def maximum(self, a, b): return _nd(np.maximum(a, b))
    def neg(self, a): return _nd(np.negative(a))
    def exp(self, a): return _nd(np.exp(a))
    def log(self, a): return _nd(np.log(a))
    def tanh(self, a): return _nd(np.tanh(a))
    def sqrt(self, a): return _nd(np.sqrt(a))

    def power(self, a, exponent: float):
        if exponent == 2:
            return _nd(np.square(a))
        return _nd(np.power(a, exponent))

    def relu(self, a):
        return _nd(np.maximum(a, 0))

    def sigmoid(self, a):
        """σ(a) = ½(1 + tanh(a/2)): one formula, stable for large |a|."""
        out = np.multiply(a, 0.5, out=np.empty_like(a))
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out

    def equal(self, a, b): return _nd(np.equal(a, b))
    def not_equal(self, a, b): return _nd(np.not_equal(a, b))
    def greater(self, a, b): return _nd(np.greater(a, b))
    def greater_equal(self, a, b): return _nd(np.greater_equal(a, b))
    def less(self, a, b): return _nd(np.less(a, b))
    def less_equal(self, a, b): return _nd(np.less_equal(a, b))

    def where(self, cond, a, b): return _nd(np.where(cond, a, b))

    # -- reductions ---------------------------------------------------------------
    def sum(self, a, axis: Axis = None, keepdims: bool = False):
        return _nd(a.sum(axis=axis, keepdims=keepdims))

    def max(self, a, axis: Axis = None, keepdims: bool = False):
        return _nd(a.max(axis=axis, keepdims=keepdims))

    def argmax(self, a, axis: int | None = None):
        return _nd(np.argmax(a, axis=axis))

    # -- linear algebra -------------------------------------------------------------
    def matmul(self, a, b):
        """``numpy.matmul``; ops.py passes >= 2-D operands.

        A contracted dimension of 1 makes every entry a single product a[i, 0]·b[0, j]: the
        broadcast multiply gives exactly those values without BLAS (the weight gradient Xᵀ G of
        a batch of one row is an outer product: 40 µs instead of 280 µs for 784 x 256).
        """
        if a.shape[-1] == 1:
            return np.multiply(a, b)
        return np.matmul(a, b)

    # -- fused numerics ----------------------------------------------------------
    def logsumexp(self, a, axis: Axis, keepdims: bool = False):
        """log Σ exp(a) = m + log Σ exp(a − m), m = max(a) (0 where m is ±inf)."""
        m = np.max(a, axis=axis, keepdims=True)
        m[~np.isfinite(m)] = 0
        e = np.subtract(a, m)
        np.exp(e, out=e)
        s = np.sum(e, axis=axis, keepdims=True)
        with np.errstate(divide="ignore"):            # log 0 = -inf for an all -inf slice
            np.log(s, out=s)
        s += m
        return s if keepdims else np.squeeze(s, axis=axis)

    def log_softmax(self, a, axis: int = -1):
        out = np.subtract(a, self.logsumexp(a, axis, keepdims=True))
        return out

    @withheld("fused softmax cross-entropy: its gradient is (softmax - onehot)/m, what notebook 01 asks for")
    def softmax_cross_entropy(self, logits, labels):
        """Mean over rows of ``logsumexp(z_i) − z_i[y_i]`` and its gradient ``(softmax − onehot)/m``."""
        m, k = logits.shape
        # one reduction: read as unsigned, a negative label is huge, so max < k checks both ends
        if m and labels.view(f"u{labels.dtype.itemsize}").max() >= k:
            lo, hi = labels.min(), labels.max()
            if lo < 0 or hi >= k:
                raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {k}); "
                                 f"got values from {lo} to {hi}")
        rows = np.arange(m)
        shifted = logits - logits.max(axis=1, keepdims=True)
        picked = shifted[rows, labels]                 # z_i[y_i] − max_i   (m,)
        e = np.exp(shifted, out=shifted)               # reuse the buffer
        sumexp = e.sum(axis=1, keepdims=True)          # (m, 1)
        loss = (np.log(sumexp).sum() - picked.sum()) / m
        e /= sumexp                                    # softmax
        e[rows, labels] -= 1
        e *= 1.0 / m
        return np.asarray(loss, dtype=logits.dtype), e

    def one_hot(self, labels, num_classes: int, dtype):
        return np.equal(np.expand_dims(labels, -1), np.arange(num_classes)).astype(dtype)

    # -- fused optimizer updates (in place) ---------------------------------------
    # Where a C compiler is, each update is one C loop over the elements (the end of this module),
    # the readable step's operations in its order: its results bit for bit, with no scratch memory.
    # Otherwise (and for arrays the loop does not take) it runs as a short sequence of numpy ufuncs
    # writing with ``out=`` into the state arrays and into one scratch buffer per thread (grown to
    # the largest parameter, reused), so a step allocates nothing; that arithmetic folds the bias
    # corrections into scalars and agrees to rounding.  tests/test_optim.py, test_backend_numpy.py
    # and test_native_optim.py check both paths against the readable steps.
    _scratch = threading.local()

    def _buffers(self, like: np.ndarray, count: int) -> list[np.ndarray]:
        """``count`` scratch arrays shaped like ``like`` (views of this thread's reused buffers)."""
        n, key = like.size, like.dtype
        pool = getattr(self._scratch, "pool", None)
        if pool is None:
            pool = self._scratch.pool = {}
        flat = pool.get(key)
        if flat is None or flat.size < count * n:
            flat = pool[key] = np.empty(max(count * n, 2 * (0 if flat is None else flat.size)), key)
        return [flat[i * n:(i + 1) * n].reshape(like.shape) for i in range(count)]

    @withheld("fused SGD step: the optimizers of notebook 03")
    def sgd_step(self, param, grad, buf, *, lr: float, momentum: float, dampening: float,
                 weight_decay: float, nesterov: bool, first_step: bool) -> None:
        """PyTorch SGD: d = g + wd·p; buf = d (first) or μ·buf + (1−τ)·d; d = d + μ·buf (nesterov) or buf; p −= lr·d.

        One C loop where a compiler is (the readable step's results, bit for bit), else numpy passes.
        """
        kernel = _native_kernel("sgd", param.dtype)
        pointers = kernel and _addresses(param, grad, *((buf,) if momentum != 0 else ()))
        if pointers:
            pp, gp, bp = pointers if momentum != 0 else (*pointers, None)
            kernel(pp, gp, bp, param.size, lr, momentum, 1 - dampening, weight_decay,
                   (weight_decay != 0) | (momentum != 0) << 1 | bool(first_step) << 2 | bool(nesterov) << 3)
            return
        tmp, d = self._buffers(param, 2)
        d_p = grad
        if weight_decay != 0:                          # d = g + wd·p
            d_p = np.multiply(param, weight_decay, out=d)
            d_p += grad
        if momentum != 0:
            if first_step:
                np.copyto(buf, d_p)
            else:                                      # buf ← μ·buf + (1−τ)·d
                buf *= momentum
                buf += d_p if dampening == 0 else np.multiply(d_p, 1 - dampening, out=tmp)
            if nesterov:                               # d ← d + μ·buf
                np.multiply(buf, momentum, out=tmp)
                d_p = np.add(grad, tmp, out=tmp) if d_p is grad else np.add(d_p, tmp, out=d_p)
            else:
                d_p = buf
        param -= np.multiply(d_p, lr, out=tmp)

    @withheld("fused Adam step: the optimizers of notebook 03")
    def adam_step(self, param, grad, m, v, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, step: int, bias_correction: bool, decoupled: bool) -> None:
        """PyTorch Adam / AdamW; see the base class.  ``m``, ``v`` are updated in place.

        With a C compiler at hand (see the end of this module) the update is one C loop over the
        elements, the readable step's operations in its order (its results, bit for bit).  Without
        one, or for arrays it does not take (not C-contiguous, mixed dtypes), it is numpy passes:
        p −= s·m/(√v/c + eps) with s = lr/(1−β₁ᵗ), c = √(1−β₂ᵗ), computed as
        p −= m/(√v·(1/(c·s)) + eps/s): sqrt, scale, shift, divide, subtract, five passes.
        """
        kernel = _native_kernel("adam", param.dtype)
        pointers = kernel and _addresses(param, grad, m, v)
        if pointers:
            scalars, mode = _adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled)
            kernel(*pointers, param.size, *scalars, *_adam_corrections(beta1, beta2, step, bias_correction), mode)
            return
        tmp, g2 = self._buffers(param, 2)
        if weight_decay != 0:
            if decoupled:
                param *= 1 - lr * weight_decay
            else:
                g2 = np.multiply(param, weight_decay, out=g2)
                grad = np.add(grad, g2, out=g2)
        np.multiply(grad, 1 - beta1, out=tmp)        # m ← β₁m + (1−β₁)g
        m *= beta1
        m += tmp
        np.multiply(grad, 1 - beta2, out=tmp)        # v ← β₂v + (1−β₂)g·g
        tmp *= grad
        v *= beta2
        v += tmp
        if bias_correction:
            step_size = lr / (1 - beta1 ** step)
            c = math.sqrt(1 - beta2 ** step)
        else:
            step_size, c = lr, 1.0
        denom = np.sqrt(v, out=tmp)
        denom *= 1.0 / (c * step_size)
        denom += eps / step_size
        update = np.divide(m, denom, out=denom)
        param -= update

    @withheld("fused Adam step: the optimizers of notebook 03")
    def adam_step_many(self, params, grads, exp_avgs, exp_avg_sqs, steps, *, lr: float, beta1: float,
                       beta2: float, eps: float, weight_decay: float, bias_correction: bool,
                       decoupled: bool) -> None:
        """:meth:`adam_step` for lists of parameters: one C call for every parameter the native
        kernel takes (the per-parameter Python and ctypes overhead was a third of a small MLP's
        update), ``adam_step`` for the others."""
        many = _native_kernel("adam_many", params[0].dtype) if params else None
        dtype = params[0].dtype if params else None
        pointers: list[int] = []
        sizes: list[int] = []
        corrections: list[float] = []
        last_step, pair = None, (1.0, 1.0)
        for param, grad, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
            four = many and param.dtype == dtype and _addresses(param, grad, m, v)
            if not four:
                self.adam_step(param, grad, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                               weight_decay=weight_decay, step=step, bias_correction=bias_correction,
                               decoupled=decoupled)
                continue
            if step != last_step:
                last_step, pair = step, _adam_corrections(beta1, beta2, step, bias_correction)
            pointers += four
            sizes.append(param.size)
            corrections += pair
        if sizes:   # array.array: 0.4 µs to build and 0.1 µs to address, a ctypes array 1.6 µs
            pointers_, sizes_, corrections_ = (_pyarray(_POINTER_CODE, pointers), _pyarray(_SIZE_CODE, sizes),
                                               _pyarray("d", corrections))
            scalars, mode = _adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled)
            many(len(sizes), pointers_.buffer_info()[0], sizes_.buffer_info()[0], corrections_.buffer_info()[0],
                 *scalars, mode)


# BEGIN WITHHELD: the native one-pass optimizer kernels (C, compiled on first use) are not in the student kit
# ``NumpyBackend.adam_step`` / ``sgd_step`` run the whole update of a parameter as one C loop
# (kernels/optim_cpu.c) when a C compiler is available: every element is read and written once,
# with no scratch array, where the numpy forms above make ~12 (Adam) passes over memory (the
# update was ~40 % of a batch-1 training step, 2.2x PyTorch's fused Adam; now 0.6-0.8x).  Each
# loop does exactly the readable step's float operations in the same order (no FMA
# contraction, correctly rounded sqrt), so it reproduces ``dlkit.optim.Adam`` / ``SGD``'s readable
# step bit for bit (tests/test_native_optim.py).  The library is compiled once per source and
# compiler into the cache directory (``$DLKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/dlkit`` or
# ``~/.cache/dlkit``), with clones for AVX-512, AVX2 and baseline x86-64 chosen at load time, so a
# shared cache works on any x86-64 CPU.  ``DLKIT_NATIVE=0`` turns it off (numpy passes); so does a
# missing or failing compiler (``_native_state["error"]`` says why).
import ctypes
from array import array as _pyarray

#: The C source of the kernels, in the kernels/ folder beside the CUDA ones
_OPTIM_C_PATH = "optim_cpu.c"


def _optim_c():
    from .cuda_kernels import KERNELS_SEARCH_PATH
    for folder in KERNELS_SEARCH_PATH:
        path = folder / _OPTIM_C_PATH
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None

#: flags: no contraction into FMA (the readable step rounds every product), no errno from sqrt (so it
#: vectorizes); never -ffast-math, which would reorder and change results
_NATIVE_FLAGS = ("-O3", "-std=gnu99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno")
_native_lock = threading.Lock()
#: "loaded": {(kernel, dtype): ctypes function} or None; "error": why not; "path": the library
_native_state: dict[str, Any] = {}
_addressof, _c_char = ctypes.addressof, ctypes.c_char
#: array.array type codes of a pointer and of ptrdiff_t (the multi-tensor kernel's tables)
_POINTER_CODE = next(c for c in "QLI" if _pyarray(c).itemsize == ctypes.sizeof(ctypes.c_void_p))
_SIZE_CODE = next(c for c in "qli" if _pyarray(c).itemsize == ctypes.sizeof(ctypes.c_ssize_t))
_VOIDP, _SIZE, _DOUBLE, _INT = ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_double, ctypes.c_int
_SIGNATURES = {"adam": [_VOIDP] * 4 + [_SIZE] + [_DOUBLE] * 10 + [_INT],
               "adam_many": [_SIZE] + [_VOIDP] * 3 + [_DOUBLE] * 8 + [_INT],
               "sgd": [_VOIDP] * 3 + [_SIZE] + [_DOUBLE] * 4 + [_INT]}


def _native_cache_dir():
    """Where the compiled library is kept: $DLKIT_CACHE_DIR, else $XDG_CACHE_HOME/dlkit or ~/.cache/dlkit."""
    import os
    from pathlib import Path
    env = os.environ.get("DLKIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlkit"


def _native_build():
    """Compile (or find in the cache) and load the kernels: ``{(name, dtype): function}``, or None."""
    import hashlib
    import os
    import platform
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    if os.environ.get("DLKIT_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        _native_state["error"] = "DLKIT_NATIVE=0"
        return None
    cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        _native_state["error"] = "no C compiler (cc, gcc or clang) on PATH"
        return None
    source = _optim_c()
    if source is None:
        _native_state["error"] = f"kernels/{_OPTIM_C_PATH} is not there"
        return None
    key = hashlib.sha256("\0".join((source, cc, *_NATIVE_FLAGS, platform.machine(), platform.system()))
                         .encode()).hexdigest()[:20]
    name = f"optim-{key}.so"

    def compile_to(target: Path) -> str | None:
        """Build the library at ``target`` (atomically); None, or what the compiler said."""
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            said = ""
            # the CPU clones need GCC >= 12 or a recent clang; without them, one baseline build
            for extra in ((), ("-DDLKIT_NO_CLONES",)):
                try:
                    proc = subprocess.run([cc, *_NATIVE_FLAGS, *extra, "-x", "c", "-", "-o", tmp, "-lm"],
                                          input=source, capture_output=True, text=True, timeout=600)
                except subprocess.TimeoutExpired:
                    return f"{cc} did not finish in 600 s"
                if proc.returncode == 0:
                    os.replace(tmp, target)      # atomic: a concurrent process sees all or nothing
                    return None
                said = (proc.stderr or proc.stdout).strip()[:2000]
            return f"{cc} failed: {said}"
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    lib = None
    # the user's cache; else a fresh private folder (never a predictable shared path in /tmp,
    # where another user could have put a library of that name)
    for folder in (_native_cache_dir(), None):
        private = folder is None
        try:
            if private:
                folder = Path(tempfile.mkdtemp(prefix="dlkit-native-"))
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name
            if not target.exists():
                failed = compile_to(target)
                if failed:                       # the compiler itself fails: no other folder helps
                    _native_state["error"] = failed
                    return None
            lib = ctypes.CDLL(str(target))
            if private:                          # loaded: the file is not needed any more (POSIX)
                shutil.rmtree(folder, ignore_errors=True)
            break
        except OSError as exc:                   # read-only cache, noexec mount, damaged file: next
            _native_state["error"] = f"cannot build or load the kernels in {folder}: {exc}"
    if lib is None:
        return None
    loaded = {}
    for kernel, argtypes in _SIGNATURES.items():
        for dtype, suffix in ((np.dtype(np.float32), "f32"), (np.dtype(np.float64), "f64")):
            fn = getattr(lib, f"dlkit_{kernel}_{suffix}")
            fn.restype, fn.argtypes = None, argtypes
            loaded[kernel, dtype] = fn
    _native_state["path"] = str(target)
    _native_state.pop("error", None)
    return loaded


def _native_kernels():
    """``{(name, dtype): C function}`` ("adam", "adam_many", "sgd"; float32, float64), built on first
    use; None where unavailable."""
    try:
        return _native_state["loaded"]
    except KeyError:
        with _native_lock:
            if "loaded" not in _native_state:
                _native_state["loaded"] = _native_build()
        return _native_state["loaded"]


def _native_kernel(name, dtype):
    """The C function ``name`` ("adam", "adam_many", "sgd") for ``dtype``, or None."""
    kernels = _native_kernels()
    return None if kernels is None else kernels.get((name, dtype))


def _addresses(*arrays: np.ndarray) -> list[int] | None:
    """The data addresses of arrays a native kernel may take (one dtype and size, each
    C-contiguous, writable and non-empty), or None: then the numpy passes run.  (A plain loop:
    this runs for every parameter of every step.)"""
    dtype, size = arrays[0].dtype, arrays[0].size
    out = []
    try:
        for a in arrays:
            if a.dtype != dtype or a.size != size:
                return None
            out.append(_address(a))
    except (TypeError, ValueError):
        return None
    return out


def _adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled):
    """The Adam kernels' scalar arguments (as optim_cpu.c takes them) and their weight-decay mode
    (0 none, 1 coupled L2, 2 decoupled)."""
    return ((beta1, 1 - beta1, beta2, 1 - beta2, lr, eps, weight_decay, 1 - lr * weight_decay),
            0 if weight_decay == 0 else 2 if decoupled else 1)


def _adam_corrections(beta1, beta2, step, bias_correction):
    """(1/(1 − β₁ᵗ), 1/(1 − β₂ᵗ)), or (1, 1) without bias correction (x·1 is exact)."""
    return (1.0 / (1 - beta1 ** step), 1.0 / (1 - beta2 ** step)) if bias_correction else (1.0, 1.0)


def _address(a: np.ndarray) -> int:
    """The data address of a C-contiguous, writable, non-empty array (raises TypeError or ValueError
    otherwise); 0.2 µs, where ``a.ctypes.data`` takes 1 µs."""
    return _addressof(_c_char.from_buffer(a))
# END WITHHELD
