"""Mutants for 06_gpu_kernels (see tests/mutants/__init__.py), and CORRECT variants.

The SAXPY_KERNEL mutants that compile (no bounds check, indexing without blockIdx, forgetting
``+ y``, ...) can only be told apart by *running* the kernel: the hidden checks compile it inside
a sandbox on the CPU emulator (autograder/cudaemu) and launch it at sizes 1, 17, 1000, 1025 with
several launch configurations, on guard-paged buffers.  The tiled_matmul mutants include the
shortcuts (``A @ B``, ``np.dot``, ``np.asarray``) that the tile-only inputs turn into 0 points.

``CORRECT`` holds right answers written differently (grid-stride loops, early returns,
``__restrict__``, other parameter names, ...): every one must keep full marks
(tests/test_gpu_kernels_grading.py).
"""

_SAXPY = r'''
SAXPY_KERNEL = r"""
extern "C" __global__ void saxpy(int n, float a, const float* x, float* y)
{{
    int i = {index};
    {body}
}}
"""
'''

MUTANTS: dict[str, dict[str, str]] = {
    "grid_size": {
        "floor division (drops the last partial block)": '''
def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError(f"need n >= 0 and block_size >= 1, got n={n}, block_size={block_size}")
    return n // block_size
''',
        "n // block_size + 1 (one block too many for exact multiples)": '''
def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError(f"need n >= 0 and block_size >= 1, got n={n}, block_size={block_size}")
    return n // block_size + 1
''',
        "no ValueError for invalid arguments": '''
def grid_size(n, block_size):
    return -(-n // block_size) if block_size > 0 else 0
''',
        "returns a float (np.ceil)": '''
def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError(f"need n >= 0 and block_size >= 1, got n={n}, block_size={block_size}")
    return float(np.ceil(n / block_size))
''',
        "at least one block even for n = 0": '''
def grid_size(n, block_size):
    if n < 0 or block_size < 1:
        raise ValueError(f"need n >= 0 and block_size >= 1, got n={n}, block_size={block_size}")
    return max(1, (n + block_size - 1) // block_size)
''',
        "accepts n < 0 (only checks block_size)": '''
def grid_size(n, block_size):
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return max(0, (n + block_size - 1) // block_size)
''',
    },
    "tiled_matmul": {
        "drops the remainder tile (range over n // tile full tiles only)": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    k2, n = B.shape
    C = np.zeros((m, n))
    for i in range(0, (m // tile) * tile, tile):
        for j in range(0, (n // tile) * tile, tile):
            for p in range(0, (k // tile) * tile, tile):
                C[i:i + tile, j:j + tile] += A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
    return C
''',
        "does not accumulate over the k tiles (keeps the last partial product)": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    k2, n = B.shape
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            for p in range(0, k, tile):
                C[i:i + tile, j:j + tile] = A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
    return C
''',
        "drops only the remainder of the inner (k) dimension": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    k2, n = B.shape
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            for p in range(0, k - tile + 1, tile):
                C[i:i + tile, j:j + tile] += A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
    return C
''',
        "assumes square matrices (C has shape (m, m), loops use m for every dimension)": '''
def tiled_matmul(A, B, tile=16):
    m = A.shape[0]
    C = np.zeros((m, m))
    for i in range(0, m, tile):
        for j in range(0, m, tile):
            for p in range(0, m, tile):
                C[i:i + tile, j:j + tile] += A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
    return C
''',
        "indexes B's tile with the row-tile index (B[i:i+tile, j:j+tile])": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    k2, n = B.shape
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            for p in range(0, k, tile):
                C[i:i + tile, j:j + tile] += A[i:i + tile, p:p + tile] @ B[i:i + tile, j:j + tile][:A[i:i + tile, p:p + tile].shape[1]]
    return C
''',
    },
    "SAXPY_KERNEL": {
        "no bounds check (compiles, but writes past the end when n is not a multiple of the block)":
            _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x", body="y[i] = a * x[i] + y[i];"),
        "index without blockIdx (every block does the first blockDim elements)":
            _SAXPY.format(index="threadIdx.x", body="if (i < n) y[i] = a * x[i] + y[i];"),
        "forgets + y (y <- a x)":
            _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x", body="if (i < n) y[i] = a * x[i];"),
        "missing extern \"C\" (the name is mangled, the launcher cannot find saxpy)": r'''
SAXPY_KERNEL = r"""
__global__ void saxpy(int n, float a, const float* x, float* y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""
''',
        "does not compile (missing semicolon)":
            _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x", body="if (i < n) y[i] = a * x[i] + y[i]"),
        "bounds check off by one (i <= n)":
            _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x", body="if (i <= n) y[i] = a * x[i] + y[i];"),
    },
}


# -- more mistakes (added to MUTANTS below) -----------------------------------------------------
_MORE_SAXPY = {
    "index with blockIdx and threadIdx swapped (threadIdx.x * blockDim.x + blockIdx.x)":
        _SAXPY.format(index="threadIdx.x * blockDim.x + blockIdx.x", body="if (i < n) y[i] = a * x[i] + y[i];"),
    "gridDim instead of blockDim in the index (blocks overlap)":
        _SAXPY.format(index="blockIdx.x * gridDim.x + threadIdx.x", body="if (i < n) y[i] = a * x[i] + y[i];"),
    "grid-stride loop off by one (i <= n)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="for (; i <= n; i += blockDim.x * gridDim.x) y[i] = a * x[i] + y[i];"),
    "grid-stride loop with stride blockDim.x (elements updated several times)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="for (; i < n; i += blockDim.x) y[i] = a * x[i] + y[i];"),
    "writes x instead of y (casting const away)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="if (i < n) ((float*)x)[i] = a * x[i] + y[i];"),
    "a*x held in an int (truncated)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="if (i < n) {{ int ax = a * x[i]; y[i] = ax + y[i]; }}"),
    "a declared int (the launcher passes a float)": r'''
SAXPY_KERNEL = r"""
extern "C" __global__ void saxpy(int n, int a, const float* x, float* y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""
''',
    "bounds check on threadIdx.x only":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="if (threadIdx.x < n) y[i] = a * x[i] + y[i];"),
    "early return off by one (i > n)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x",
                      body="if (i > n) return;\n    y[i] = a * x[i] + y[i];"),
    "y = x + a*y (x and y swapped)":
        _SAXPY.format(index="blockIdx.x * blockDim.x + threadIdx.x", body="if (i < n) y[i] = x[i] + a * y[i];"),
}

_MORE_TILED = {
    "shortcut: A @ B": '''
def tiled_matmul(A, B, tile=16):
    return A @ B
''',
    "shortcut: np.asarray then np.dot": '''
def tiled_matmul(A, B, tile=16):
    return np.dot(np.asarray(A), np.asarray(B))
''',
    "whole row / column panels (A[i:i+tile, :] @ B[:, j:j+tile]), no k tiles": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            C[i:i + tile, j:j + tile] = A[i:i + tile, :] @ B[:, j:j + tile]
    return C
''',
    "no tiling at all: one scalar product per element": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            for p in range(k):
                C[i, j] += A[i:i + 1, p:p + 1][0, 0] * B[p:p + 1, j:j + 1][0, 0]
    return C
''',
    "float32 result (float64 inputs give float64)": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n), dtype=np.float32)
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            for p in range(0, k, tile):
                C[i:i + tile, j:j + tile] += A[i:i + tile, p:p + tile] @ B[p:p + tile, j:j + tile]
    return C
''',
    "no ValueError for mismatched inner dimensions (silently truncates)": '''
def tiled_matmul(A, B, tile=16):
    m, k = A.shape
    n = B.shape[1]
    k = min(k, B.shape[0])
    C = np.zeros((m, n))
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            for p in range(0, k, tile):
                a = A[i:i + tile, p:p + tile]
                b = B[p:p + tile, j:j + tile]
                kk = min(a.shape[1], b.shape[0])
                C[i:i + tile, j:j + tile] += a[:, :kk] @ b[:kk, :]
    return C
''',
}

MUTANTS["SAXPY_KERNEL"].update(_MORE_SAXPY)
MUTANTS["tiled_matmul"].update(_MORE_TILED)


# -- right answers written differently: each must keep full marks -----------------------------
def _kernel(text: str) -> str:
    return 'SAXPY_KERNEL = r"""\n' + text + '\n"""\n'


CORRECT: dict[str, dict[str, str]] = {
    "SAXPY_KERNEL": {
        "grid-stride loop": _kernel('''extern "C" __global__ void saxpy(int n, float a, const float* x, float* y)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}'''),
        "early return, other names, __restrict__, +=": _kernel('''// SAXPY: out <- alpha * in + out   (#1 of this week's kernels)
extern "C" __global__ void saxpy(int count, float alpha, const float* __restrict__ in, float* __restrict__ out)
{
    const int idx = threadIdx.x + blockDim.x * blockIdx.x;
    if (idx >= count) return;
    out[idx] += alpha * in[idx];
}'''),
        "#include <cuda_runtime.h>, unsigned index, a __device__ helper, fmaf": _kernel('''#include <cuda_runtime.h>

__device__ __forceinline__ float axpy1(float a, float x, float y) { return fmaf(a, x, y); }

extern "C" __global__ void saxpy(const int n, const float a, const float *x, float *y)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (unsigned int)n) {
        y[i] = axpy1(a, x[i], y[i]);
    }
}'''),
        "size_t index, __ldg read, a #define, Allman braces": _kernel('''#define GLOBAL_INDEX() ((size_t)blockIdx.x * blockDim.x + threadIdx.x)
extern "C"
__global__ void saxpy(int n, float a, const float *__restrict__ x, float *__restrict__ y)
{
    size_t i = GLOBAL_INDEX();
    if (i < (size_t)n)
    {
        float xi = __ldg(&x[i]);
        y[i] = a * xi + y[i];
    }
}'''),
    },
    "tiled_matmul": {
        "zero-padded shared tiles (the kernel's structure)": '''
def tiled_matmul(A, B, tile=16):
    M, K = A.shape
    K2, N = B.shape
    if K != K2:
        raise ValueError("inner dimensions differ")
    C = np.zeros((M, N))
    for i0 in range(0, M, tile):
        for j0 in range(0, N, tile):
            acc = np.zeros((tile, tile))
            for k0 in range(0, K, tile):
                As = np.zeros((tile, tile)); Bs = np.zeros((tile, tile))
                a = A[i0:i0 + tile, k0:k0 + tile]; b = B[k0:k0 + tile, j0:j0 + tile]
                As[:a.shape[0], :a.shape[1]] = a
                Bs[:b.shape[0], :b.shape[1]] = b
                acc += As @ Bs
            r, c = min(tile, M - i0), min(tile, N - j0)
            C[i0:i0 + r, j0:j0 + c] = acc[:r, :c]
    return C
''',
        "min() bounds and einsum on the tiles": '''
def tiled_matmul(A, B, tile=16):
    (m, k), (k2, n) = A.shape, B.shape
    if k != k2:
        raise ValueError(f"cannot multiply {A.shape} by {B.shape}")
    out = np.empty((m, n), dtype=np.float64)
    for r in range(0, m, tile):
        r1 = min(r + tile, m)
        for c in range(0, n, tile):
            c1 = min(c + tile, n)
            block = np.zeros((r1 - r, c1 - c))
            for p in range(0, k, tile):
                p1 = min(p + tile, k)
                block += np.einsum("ik,kj->ij", A[r:r1, p:p1], B[p:p1, c:c1])
            out[r:r1, c:c1] = block
    return out
''',
        "k loop outermost, accumulating into C": '''
def tiled_matmul(A, B, tile=16):
    M, K = A.shape
    if B.shape[0] != K:
        raise ValueError("shapes do not match")
    N = B.shape[1]
    C = np.zeros((M, N))
    for k0 in range(0, K, tile):
        for i0 in range(0, M, tile):
            for j0 in range(0, N, tile):
                C[i0:i0 + tile, j0:j0 + tile] += np.dot(A[i0:i0 + tile, k0:k0 + tile], B[k0:k0 + tile, j0:j0 + tile])
    return C
''',
    },
}
