// softmax_xent.cu -- row-wise logsumexp, log-softmax and the fused softmax cross-entropy.
//
// All kernels work on a contiguous (rows, cols) matrix, one thread block per row
// (grid = (rows), block = B threads, B a multiple of 32 and <= 1024); cuda.py moves the
// softmax axis last and makes the input contiguous first.  With m = max of the row (taken as
// 0 when it is +-inf or NaN, as in the numpy backend) each row is stabilised as
//     lse = m + log(sum_c exp(x_c - m)),
// so exp never overflows.  Each needs two block reductions (max, then sum).
//
// Kernels (T = float f32 | double f64):
//   logsumexp_rows_<t>(const T* x, T* lse, long long rows, long long cols)
//       lse[r] = log sum_c exp(x[r*cols + c])                            lse: (rows,)
//   log_softmax_rows_<t>(const T* x, T* out, long long rows, long long cols)
//       out[r*cols + c] = x[r*cols + c] - lse[r]                         out: (rows, cols)
// BEGIN WITHHELD: the fused cross-entropy gradient is not in the student kit
//   softmax_xent_rows_<t>(const T* x, const long long* labels, T* loss, T* dx,
//                         long long rows, long long cols, T inv_m)
//       labels: (rows,) int64 in [0, cols) (checked by cuda.py before the launch);
//       loss[r] = lse[r] - x[r, labels[r]]          (the caller sums loss and scales by inv_m)
//       dx[r*cols + c] = (exp(x[r, c] - lse[r]) - (c == labels[r])) * inv_m
//       i.e. the gradient of the MEAN loss when inv_m = 1 / rows.
// END WITHHELD
#include "common.cuh"

// lse of row `row` (cols elements), computed by the whole block; every thread gets it.
template <typename T>
__device__ T row_logsumexp(const T* row, long long cols) {
    T m = MaxOp<T>::identity();
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) m = MaxOp<T>()(m, row[c]);
    m = block_reduce(m, MaxOp<T>());
    if (!isfinite(m)) m = (T)0;  // all -inf, a +inf or a NaN: no shift (the result is +-inf/NaN)
    T s = (T)0;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) s += exp(row[c] - m);
    s = block_reduce(s, SumOp<T>());
    return m + log(s);
}

template <typename T>
__device__ void logsumexp_rows(const T* x, T* lse, long long cols) {
    const long long r = blockIdx.x;
    const T v = row_logsumexp(x + r * cols, cols);
    if (threadIdx.x == 0) lse[r] = v;
}

template <typename T>
__device__ void log_softmax_rows(const T* x, T* out, long long cols) {
    const long long r = blockIdx.x;
    const T* row = x + r * cols;
    const T lse = row_logsumexp(row, cols);
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) out[r * cols + c] = row[c] - lse;
}

// BEGIN WITHHELD
template <typename T>
__device__ void softmax_xent_rows(const T* x, const long long* labels, T* loss, T* dx,
                                  long long cols, T inv_m) {
    const long long r = blockIdx.x;
    const T* row = x + r * cols;
    const long long y = labels[r];
    const T lse = row_logsumexp(row, cols);
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
        const T p = exp(row[c] - lse);  // softmax probability of class c
        dx[r * cols + c] = (p - (c == y ? (T)1 : (T)0)) * inv_m;
    }
    if (threadIdx.x == 0) loss[r] = (y >= 0 && y < cols) ? lse - row[y] : (T)NAN;
}
// END WITHHELD

#define SOFTMAX(T, SFX)                                                                     \
    extern "C" __global__ void logsumexp_rows_##SFX(const T* x, T* lse, long long rows,     \
                                                    long long cols) {                       \
        (void)rows; /* == gridDim.x */                                                      \
        logsumexp_rows<T>(x, lse, cols);                                                    \
    }                                                                                       \
    extern "C" __global__ void log_softmax_rows_##SFX(const T* x, T* out, long long rows,   \
                                                      long long cols) {                     \
        (void)rows;                                                                         \
        log_softmax_rows<T>(x, out, cols);                                                  \
    }

SOFTMAX(float, f32)
SOFTMAX(double, f64)

// BEGIN WITHHELD
#define SOFTMAX_XENT(T, SFX)                                                                \
    extern "C" __global__ void softmax_xent_rows_##SFX(const T* x, const long long* labels, \
                                                       T* loss, T* dx, long long rows,      \
                                                       long long cols, T inv_m) {           \
        (void)rows;                                                                         \
        softmax_xent_rows<T>(x, labels, loss, dx, cols, inv_m);                             \
    }

SOFTMAX_XENT(float, f32)
SOFTMAX_XENT(double, f64)
// END WITHHELD
