"""dlkit: a small, readable deep learning library for the course notebooks.

    >>> import dlkit
    >>> x = dlkit.tensor([[1.0, 2.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.numpy()
    array([[2., 4.]], dtype=float32)
"""
from .backend import available_backends, get_backend, set_backend, BackendUnavailable
from .autograd import Tensor, tensor, grad, hessian, no_grad, is_grad_enabled, set_grad_enabled
from .ops import (
    exp, log, relu, tanh, sigmoid, logsumexp, log_softmax, softmax,
    stack, concatenate, reshape, transpose, broadcast_to, matmul, maximum, where,
    softmax_cross_entropy, one_hot,
)
from .gradcheck import gradcheck, GradcheckResult
from . import nn, init, optim, data, train, viz, student  # noqa: E402  (viz loads matplotlib only when it draws)

__version__ = "0.1.0"
