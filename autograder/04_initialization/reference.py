"""Trusted reference for 04_initialization (hidden checks only; never sent to the sandbox).

Draw order (notebooks/GRADED.md): uniform ``a * (2 * generator.random(shape) - 1)``, normal
``std * generator.standard_normal(shape)``, shape ``(fan_in, fan_out)``, computed in float64 and
returned as a ``dlkit.Tensor`` of the requested dtype (float32 by default).
"""
from __future__ import annotations

import math

import numpy as np

#: PyTorch's calculate_gain for the nonlinearities the checks use (independent of dlkit).
GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}


def xavier_uniform_bound(fan_in, fan_out, gain=1.0):
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def xavier_normal_std(fan_in, fan_out, gain=1.0):
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _fan(fan_in, fan_out, mode):
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_bound(fan_in, fan_out, nonlinearity="relu", mode="fan_in"):
    return GAINS[nonlinearity] * math.sqrt(3.0 / _fan(fan_in, fan_out, mode))


def kaiming_normal_std(fan_in, fan_out, nonlinearity="relu", mode="fan_in"):
    return GAINS[nonlinearity] / math.sqrt(_fan(fan_in, fan_out, mode))
