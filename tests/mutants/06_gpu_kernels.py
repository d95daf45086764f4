"""Mutants for 06_gpu_kernels (see tests/mutants/__init__.py).

The SAXPY_KERNEL mutants that compile (no bounds check, indexing without blockIdx, forgetting
``+ y``) can only be told apart by *running* the kernel.  The hidden checks do that with a CPU
emulation of the launch (the kernel source compiled by the host C++ compiler inside the
sandbox, looping over blocks and threads); where no C++ compiler is available they fall back to
static checks, which still catch the missing bounds check and the missing extern "C".
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
