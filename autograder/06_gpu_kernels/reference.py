"""Trusted reference for 06_gpu_kernels (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

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


# -- SAXPY: the launches the kernel is graded on -----------------------------------------------
#: The contract, as the launcher declares it (code: "i" int, "f" float, "P" device buffer).
SAXPY_SPEC = {"name": "saxpy", "params": [["i", "int"], ["f", "float"], ["P", "const float*"], ["P", "float*"]]}

#: (group, n, a, threads per block, blocks, buffers end at the guard page?)
#: "sizes": one thread per element, grid = ceil(n / 256) blocks of 256 (the notebook's launch);
#: "bounds": more threads than elements (a partial last block, extra blocks), buffers placed at
#: the guard page on either side, so a write or read outside x / y faults or hits a canary;
#: "configs": unusual block sizes (1, 17, 33, 1000, 1024 threads).
#: ``a`` is never an integer, so a kernel taking ``int a`` is wrong on every case.
SAXPY_CASES = [
    ("sizes", 1, 2.5, 256, 1, True),
    ("sizes", 17, -1.75, 256, 1, False),
    ("sizes", 1000, 0.5, 256, 4, True),
    ("sizes", 1025, 3.25, 256, 5, False),
    ("bounds", 17, 1.5, 8, 3, True),
    ("bounds", 17, 1.5, 8, 3, False),
    ("bounds", 1000, -0.25, 256, 5, True),
    ("bounds", 1025, 2.75, 128, 10, False),
    ("bounds", 1, 0.75, 32, 2, True),
    ("configs", 1025, 1.25, 1, 1025, True),
    ("configs", 17, -2.5, 17, 1, False),
    ("configs", 1000, 0.125, 1000, 1, True),
    ("configs", 1025, -0.75, 1024, 2, False),
    ("configs", 1000, 4.5, 33, 31, True),
]


def saxpy_inputs(seed: int = 6):
    """``[(group, n, a, block, grid, at_end, x, y)]``: float32 inputs, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for group, n, a, block, grid, at_end in SAXPY_CASES:
        x = rng.uniform(-4, 4, n).astype(np.float32)
        y = rng.uniform(-4, 4, n).astype(np.float32)
        out.append((group, n, a, block, grid, at_end, x, y))
    return out


def saxpy(a, x, y):
    return (np.float32(a) * x + y).astype(np.float32)


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
    if B.shape[0] != k:
        raise ValueError(f"inner dimensions differ: {A.shape} @ {B.shape}")
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
