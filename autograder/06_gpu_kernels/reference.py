"""Trusted reference for 06_gpu_kernels (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

import re

import numpy as np


def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError("invalid")
    return -(-n // block_size)


def tiled_matmul(A, B, tile=16):
    return A @ B


def tiled_matmul_no_remainder(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    mm, kk, nn = (m // tile) * tile, (k // tile) * tile, (n // tile) * tile
    C = np.zeros((m, n))
    C[:mm, :nn] = A[:mm, :kk] @ B[:kk, :nn]
    return C


def tiled_matmul_no_k_remainder(A, B, tile=16):
    kk = (A.shape[1] // tile) * tile
    return A[:, :kk] @ B[:kk, :]


def tiled_matmul_last_k_tile(A, B, tile=16):
    k = A.shape[1]
    start = ((k - 1) // tile) * tile
    return A[:, start:] @ B[start:, :]


# -- static analysis of a SAXPY kernel source (plain text; never compiled or run here) ------------

_SIGNATURE = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+saxpy\s*\(\s*int\s+(\w+)\s*,\s*float\s+(\w+)\s*,\s*'
    r'const\s+float\s*\*\s*(?:__restrict__\s+)?(\w+)\s*,\s*float\s*\*\s*(?:__restrict__\s+)?(\w+)\s*\)')


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def saxpy_signature(src: str):
    """``(n, a, x, y)`` parameter names when the extern "C" saxpy signature is present, else None."""
    m = _SIGNATURE.search(strip_comments(src))
    return m.groups() if m else None


def has_bounds_check(src: str, n: str) -> bool:
    """A guard ``if (i < n)`` / ``if (n > i)`` / ``if (i >= n) return`` (or a grid-stride ``for`` loop)."""
    body = strip_comments(src)
    n = re.escape(n)
    patterns = [rf"if\s*\(\s*\w+\s*<\s*{n}\s*\)", rf"if\s*\(\s*{n}\s*>\s*\w+\s*\)",
                rf"if\s*\(\s*\w+\s*>=\s*{n}\s*\)\s*(\{{\s*)?return", rf"if\s*\(\s*{n}\s*<=\s*\w+\s*\)\s*(\{{\s*)?return",
                rf"for\s*\([^;]*;\s*\w+\s*<\s*{n}\s*;"]
    return any(re.search(p, body) for p in patterns)


ANSWERS: dict[str, str] = {
    "grid_size": '''
def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError(f"need n >= 0 and block_size >= 1, got n={n}, block_size={block_size}")
    return (n + block_size - 1) // block_size
''',
    "tiled_matmul": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            acc = np.zeros((min(tile, m - i), min(tile, n - j)))
            for p in range(0, k, tile):
                acc += A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
            C[i:i + tile, j:j + tile] = acc
    return C
''',
    "SAXPY_KERNEL": '''
SAXPY_KERNEL = r"""
extern "C" __global__ void saxpy(int n, float a, const float* x, float* y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;   // one thread per element
    if (i < n)                                        // the last block may be partly outside
        y[i] = a * x[i] + y[i];
}
"""
''',
}
