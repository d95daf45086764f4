// reduce.cu -- sum / max / min over an axis, and argmax.
//
// cuda.py first brings every reduction into one of two shapes (making the input contiguous,
// with the reduced axes moved last or in the middle, when it is not already):
//
//   "rows":   in is a contiguous (rows, cols) matrix; reduce each row      -> (rows,)
//             e.g. sum over axis=None (rows = 1), max over the last axis, logsumexp.
//   "middle": in is a contiguous (outer, R, inner) array; reduce the R axis -> (outer, inner)
//             e.g. the bias gradient sum(dZ, axis=0) of a (m, n) matrix: outer=1, R=m, inner=n.
//
// Kernels (T = float f32 | double f64 | long long i64; OP = sum | max | min):
//   reduce_rows_<op>_<t>(const T* in, T* out, long long rows, long long cols, long long seg)
//       grid = (rows, parts), block = B threads (B a multiple of 32, <= 1024).
//       Block (r, p) reduces in[r*cols + c] for c in [p*seg, min((p+1)*seg, cols)) and writes
//       out[r*parts + p].  With parts = 1 (seg >= cols) out is the (rows,) result; with
//       parts > 1 (one long row, e.g. a 64 MiB sum) cuda.py launches again on the (rows, parts)
//       partial results, so the whole GPU works on a single row.
//   reduce_mid_<op>_<t>(const T* in, T* out, long long outer, long long R, long long inner)
//       one thread per output element j in [0, outer*inner): o = j / inner, q = j % inner,
//       out[j] = op over r of in[(o*R + r)*inner + q].  Consecutive threads read consecutive q,
//       so every load of the loop is coalesced.
//   argmax_rows_<t>(const T* in, long long* out, long long rows, long long cols)
//       grid = (rows), block = B; out[r] = the smallest c with in[r*cols + c] maximal (the first
//       NaN if the row has one), like numpy.argmax.
#include "common.cuh"

template <typename T, typename Op>
__device__ void reduce_rows(const T* in, T* out, long long cols, long long seg) {
    Op op;
    const long long r = blockIdx.x;
    const long long p = blockIdx.y;
    const long long begin = p * seg;
    const long long end = min(begin + seg, cols);
    const T* row = in + r * cols;
    T acc = Op::identity();
    // Each thread accumulates a strided subset of the segment (coalesced: neighbouring
    // threads read neighbouring elements), then the block combines the B partial values.
    for (long long c = begin + threadIdx.x; c < end; c += blockDim.x) acc = op(acc, row[c]);
    acc = block_reduce(acc, op);
    if (threadIdx.x == 0) out[r * gridDim.y + p] = acc;
}

template <typename T, typename Op>
__device__ void reduce_mid(const T* in, T* out, long long outer, long long R, long long inner) {
    Op op;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < outer * inner;
         j += (long long)gridDim.x * blockDim.x) {
        const long long o = j / inner, q = j % inner;
        const T* src = in + o * R * inner + q;
        T acc = Op::identity();
        for (long long r = 0; r < R; ++r) acc = op(acc, src[r * inner]);
        out[j] = acc;
    }
}

// (value, index) pair for argmax; `better` says whether (v2, i2) beats (v1, i1).
template <typename T>
__device__ __forceinline__ bool argmax_better(T v1, long long i1, T v2, long long i2) {
    if (i2 < 0) return false;                    // empty slot
    if (i1 < 0) return true;
    if (is_nan(v1)) return is_nan(v2) && i2 < i1;  // the first NaN wins
    if (is_nan(v2)) return true;
    return v2 > v1 || (v2 == v1 && i2 < i1);
}

template <typename T>
__device__ void argmax_rows(const T* in, long long* out, long long cols) {
    __shared__ T sv[32];
    __shared__ long long si[32];
    const long long r = blockIdx.x;
    const T* row = in + r * cols;
    T best = Lowest<T>::value();
    long long arg = -1;  // -1 = "no element seen yet"
    for (long long c = threadIdx.x; c < cols; c += blockDim.x)
        if (argmax_better(best, arg, row[c], c)) { best = row[c]; arg = c; }
    // Same two-level tree as block_reduce, carrying the index along with the value.
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
    for (int delta = 16; delta > 0; delta >>= 1) {
        const T v = __shfl_down_sync(0xffffffffu, best, delta);
        const long long k = __shfl_down_sync(0xffffffffu, arg, delta);
        if (argmax_better(best, arg, v, k)) { best = v; arg = k; }
    }
    if (lane == 0) { sv[warp] = best; si[warp] = arg; }
    __syncthreads();
    if (warp == 0) {
        best = (lane < nwarps) ? sv[lane] : Lowest<T>::value();
        arg = (lane < nwarps) ? si[lane] : -1;
#pragma unroll
        for (int delta = 16; delta > 0; delta >>= 1) {
            const T v = __shfl_down_sync(0xffffffffu, best, delta);
            const long long k = __shfl_down_sync(0xffffffffu, arg, delta);
            if (argmax_better(best, arg, v, k)) { best = v; arg = k; }
        }
        if (lane == 0) out[r] = arg < 0 ? 0 : arg;
    }
}

#define REDUCE(OPNAME, OP, T, SFX)                                                          \
    extern "C" __global__ void reduce_rows_##OPNAME##_##SFX(const T* in, T* out,            \
                                                            long long rows, long long cols, \
                                                            long long seg) {                \
        (void)rows; /* == gridDim.x */                                                      \
        reduce_rows<T, OP<T> >(in, out, cols, seg);                                         \
    }                                                                                       \
    extern "C" __global__ void reduce_mid_##OPNAME##_##SFX(const T* in, T* out,             \
                                                           long long outer, long long R,    \
                                                           long long inner) {               \
        reduce_mid<T, OP<T> >(in, out, outer, R, inner);                                    \
    }
#define REDUCE_ALL(T, SFX)                                                                  \
    REDUCE(sum, SumOp, T, SFX) REDUCE(max, MaxOp, T, SFX) REDUCE(min, MinOp, T, SFX)        \
    extern "C" __global__ void argmax_rows_##SFX(const T* in, long long* out,               \
                                                 long long rows, long long cols) {          \
        (void)rows; /* == gridDim.x */                                                      \
        argmax_rows<T>(in, out, cols);                                                      \
    }

REDUCE_ALL(float, f32)
REDUCE_ALL(double, f64)
REDUCE_ALL(long long, i64)
