"""The array interface every dlkit backend implements.

dlkit's Python layer (``autograd.py``, ``ops.py``, ``optim.py``) never touches
device memory directly: it calls the functions below on opaque *arrays*.  The
numpy backend's arrays are ``numpy.ndarray``; the CUDA backend's are
``dlkit.backend.cuda.DeviceArray``.  Every array exposes ``.shape`` (tuple),
``.dtype`` (a ``numpy.dtype``), ``.ndim`` and ``.size``.

Conventions shared by all backends
----------------------------------
* dtypes: ``float32`` (default) and ``float64`` for data; ``bool`` for the
  results of comparisons; ``int64`` only for class labels / indices.
* Binary elementwise functions take two arrays whose shapes broadcast under
  numpy's rules, or an array and a Python scalar.  The result has the
  broadcast shape and the array operand's dtype.  Shape errors raise
  ``ValueError`` with both shapes in the message, *before* any launch.
* Nothing here records gradients: autodiff lives one layer up.
* Functions return new arrays unless their name says ``_inplace`` /
  ``*_step``; those mutate their first arguments and return ``None``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._graded import withheld

Shape = tuple[int, ...]
Axis = int | tuple[int, ...] | None


class Backend:
    """Function table for one device.  Subclasses implement every method."""

    name: str = "abstract"

    # -- creation and transfer ------------------------------------------------
    def array(self, data: Any, dtype: np.dtype | str) -> Any:
        """Copy host data (ndarray, list, scalar) into a new backend array of ``dtype``."""
        raise NotImplementedError

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host ``numpy.ndarray`` with the array's values (a copy for device backends)."""
        raise NotImplementedError

    def zeros(self, shape: Shape, dtype) -> Any:
        raise NotImplementedError

    def ones(self, shape: Shape, dtype) -> Any:
        raise NotImplementedError

    def full(self, shape: Shape, value: float, dtype) -> Any:
        raise NotImplementedError

    def astype(self, a: Any, dtype) -> Any:
        raise NotImplementedError

    def copy(self, a: Any) -> Any:
        raise NotImplementedError

    def assign(self, dst: Any, src: Any) -> None:
        """``dst[...] = src`` in place (same shape; src may be a backend array or host ndarray)."""
        raise NotImplementedError

    # -- movement (may return views) -----------------------------------------
    def reshape(self, a: Any, shape: Shape) -> Any:
        raise NotImplementedError

    def transpose(self, a: Any, axes: Sequence[int] | None = None) -> Any:
        raise NotImplementedError

    def broadcast_to(self, a: Any, shape: Shape) -> Any:
        raise NotImplementedError

    def getitem(self, a: Any, index: Any) -> Any:
        """Basic indexing only: ints, slices (with steps), ``None`` and ``Ellipsis``."""
        raise NotImplementedError

    def getitem_backward(self, grad: Any, shape: Shape, index: Any) -> Any:
        """Zeros of ``shape`` with ``grad`` added at ``index`` (the VJP of ``getitem``)."""
        raise NotImplementedError

    def stack(self, arrays: Sequence[Any], axis: int) -> Any:
        raise NotImplementedError

    def concatenate(self, arrays: Sequence[Any], axis: int) -> Any:
        raise NotImplementedError

    # -- elementwise ------------------------------------------------------------
    def add(self, a, b): raise NotImplementedError
    def sub(self, a, b): raise NotImplementedError
    def mul(self, a, b): raise NotImplementedError
    def div(self, a, b): raise NotImplementedError
    def power(self, a, exponent: float): raise NotImplementedError
    def maximum(self, a, b): raise NotImplementedError
    def neg(self, a): raise NotImplementedError
    def exp(self, a): raise NotImplementedError
    def log(self, a): raise NotImplementedError
    def tanh(self, a): raise NotImplementedError
    def sigmoid(self, a): raise NotImplementedError
    def relu(self, a): raise NotImplementedError
    def sqrt(self, a): raise NotImplementedError

    # comparisons return bool arrays
    def equal(self, a, b): raise NotImplementedError
    def not_equal(self, a, b): raise NotImplementedError
    def greater(self, a, b): raise NotImplementedError
    def greater_equal(self, a, b): raise NotImplementedError
    def less(self, a, b): raise NotImplementedError
    def less_equal(self, a, b): raise NotImplementedError

    def where(self, cond, a, b): raise NotImplementedError

    # -- reductions ---------------------------------------------------------------
    def sum(self, a, axis: Axis = None, keepdims: bool = False): raise NotImplementedError
    def max(self, a, axis: Axis = None, keepdims: bool = False): raise NotImplementedError
    def argmax(self, a, axis: int | None = None): raise NotImplementedError

    # -- linear algebra -------------------------------------------------------------
    def matmul(self, a, b):
        """``numpy.matmul`` semantics: 2-D, and batched with broadcast leading dims."""
        raise NotImplementedError

    # -- fused numerics ----------------------------------------------------------
    def logsumexp(self, a, axis: int, keepdims: bool = False):
        """Stable ``log(sum(exp(a), axis))`` (subtracts the max first)."""
        raise NotImplementedError

    def log_softmax(self, a, axis: int = -1): raise NotImplementedError

    @withheld("fused softmax cross-entropy: its gradient is (softmax - onehot)/m, what notebook 01 asks for")
    def softmax_cross_entropy(self, logits, labels):
        """Fused mean cross-entropy of ``logits`` (m, k) against int ``labels`` (m,).

        Returns ``(loss, dlogits)``: ``loss`` a 0-d array, ``dlogits`` =
        ``(softmax(logits) - onehot(labels)) / m``, the gradient of the mean loss.
        """
        raise NotImplementedError

    def one_hot(self, labels, num_classes: int, dtype): raise NotImplementedError

    # -- fused optimizer updates (in place) ---------------------------------------
    @withheld("fused SGD step: the optimizers of notebook 03")
    def sgd_step(self, param, grad, buf, *, lr: float, momentum: float, dampening: float,
                 weight_decay: float, nesterov: bool, first_step: bool) -> None:
        """PyTorch ``SGD`` for one parameter; ``buf`` is the momentum buffer (ignored if momentum == 0)."""
        raise NotImplementedError

    @withheld("fused Adam step: the optimizers of notebook 03")
    def adam_step(self, param, grad, m, v, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, step: int, bias_correction: bool, decoupled: bool) -> None:
        """PyTorch ``Adam`` (``decoupled=False``) / ``AdamW`` (``decoupled=True``) for one parameter.

        ``step`` is the 1-based step count after this update.
        """
        raise NotImplementedError

    @withheld("fused Adam step: the optimizers of notebook 03")
    def adam_step_many(self, params, grads, exp_avgs, exp_avg_sqs, steps, *, lr: float, beta1: float,
                       beta2: float, eps: float, weight_decay: float, bias_correction: bool,
                       decoupled: bool) -> None:
        """:meth:`adam_step` for lists of parameters (one optimizer step; ``steps[i]`` is parameter
        i's step count), as PyTorch's multi-tensor fused Adam.  Default: one ``adam_step`` each."""
        for param, grad, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
            self.adam_step(param, grad, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=weight_decay, step=step, bias_correction=bias_correction,
                           decoupled=decoupled)
