// common.cuh -- helpers shared by every dlkit kernel file (included with -I kernels/).
//
// Conventions used in all kernels/*.cu
// ------------------------------------
// * Every kernel that dlkit/backend/cuda.py launches is `extern "C" __global__` and named
//   `<what>_<dtype>`, dtype one of  f32 (float), f64 (double), i64 (long long, labels and
//   argmax results) and u8 (unsigned char, dlkit's bool: 0 or 1).  extern "C" keeps the names
//   unmangled so pycuda's `module.get_function("add_f32")` finds them.
// * Sizes, strides and offsets are counted in ELEMENTS (not bytes) and are 64-bit
//   (`long long`): a 4 GiB float32 buffer already has 2^30 elements.
// * Element-wise kernels use a grid-stride loop, so any grid size computes every element
//   exactly once; the host picks a grid of about 32 blocks per SM.
#pragma once

#include <math.h>

#define DLKIT_MAX_DIMS 6   // element-wise kernels handle up to 6 dims (after coalescing)

// Layout of one element-wise launch, passed BY VALUE as the first kernel argument
// (dlkit/backend/cuda_layout.py packs it as a numpy int64 array of the same 32 fields, in this order).
//
//   ndim        number of dims actually used, 1 <= ndim <= DLKIT_MAX_DIMS.  The dims are
//               RIGHT-aligned: dim d of the logical shape lives in slot
//               DLKIT_MAX_DIMS - ndim + d; unused leading slots hold shape 1, stride 0.
//   size        number of output elements = product of shape.
//   shape[s]    output extent of slot s.
//   strides[k][s]  stride (in elements, may be 0 for a broadcast dim, negative for a
//               reversed slice) of operand k along slot s: k = 0 is the OUTPUT, k = 1, 2, 3
//               the inputs in the kernel's argument order.
//
// Element i of the output (0 <= i < size, C order over `shape`) has the multi-index
// (c_0, ..., c_{D-1}) with i = sum_s c_s * prod_{t>s} shape[t]; operand k reads/writes at
// base_k + sum_s c_s * strides[k][s].
struct Layout {
    long long ndim;
    long long size;
    long long shape[DLKIT_MAX_DIMS];
    long long strides[4][DLKIT_MAX_DIMS];
};

// Offsets (in elements) of output element i in the first NOPS operands of L.
// Index type I: unsigned 32-bit when the launch has fewer than 2^31 elements (32-bit
// division is several times cheaper than 64-bit), otherwise long long.
template <typename I, int NOPS>
__device__ __forceinline__ void layout_offsets(const Layout& L, I i, long long off[NOPS]) {
#pragma unroll
    for (int k = 0; k < NOPS; ++k) off[k] = 0;
    if (L.ndim == 1) {  // the common case after coalescing: one stride per operand
#pragma unroll
        for (int k = 0; k < NOPS; ++k) off[k] = (long long)i * L.strides[k][DLKIT_MAX_DIMS - 1];
        return;
    }
    // Unravel i into the multi-index, fastest dim (last slot) first.
#pragma unroll
    for (int s = DLKIT_MAX_DIMS - 1; s >= 0; --s) {
        if (s < DLKIT_MAX_DIMS - L.ndim) break;  // unused leading slots
        const I extent = (I)L.shape[s];
        const I c = i % extent;
        i /= extent;
#pragma unroll
        for (int k = 0; k < NOPS; ++k) off[k] += (long long)c * L.strides[k][s];
    }
}

// ---------------------------------------------------------------------------------------
// Reduction operators.  Each has identity() (the value of an empty reduction) and
// operator()(a, b).  Max/Min propagate NaN like numpy: once a NaN is seen it wins.
// ---------------------------------------------------------------------------------------
template <typename T> __device__ __forceinline__ bool is_nan(T x) { return x != x; }

template <typename T> struct Lowest  { static __device__ __forceinline__ T value() { return -INFINITY; } };
template <> struct Lowest<long long> { static __device__ __forceinline__ long long value() { return (long long)(-9223372036854775807LL - 1); } };
template <typename T> struct Highest { static __device__ __forceinline__ T value() { return INFINITY; } };
template <> struct Highest<long long> { static __device__ __forceinline__ long long value() { return 9223372036854775807LL; } };

template <typename T> struct SumOp {
    static __device__ __forceinline__ T identity() { return ((T)0); }
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
template <typename T> struct MaxOp {
    static __device__ __forceinline__ T identity() { return Lowest<T>::value(); }
    __device__ __forceinline__ T operator()(T a, T b) const { return (a > b || is_nan(a)) ? a : b; }
};
template <typename T> struct MinOp {
    static __device__ __forceinline__ T identity() { return Highest<T>::value(); }
    __device__ __forceinline__ T operator()(T a, T b) const { return (a < b || is_nan(a)) ? a : b; }
};

// Reduce `v` over all threads of the block with `op`; every thread gets the result.
// Requirements: blockDim.x is a multiple of 32 and at most 1024; every thread calls it.
// Step 1: a warp-shuffle tree inside each warp (5 steps, no shared memory);
// step 2: lane 0 of each warp writes its partial to shared memory;
// step 3: warp 0 reduces the (at most 32) partials with another shuffle tree;
// step 4: thread 0 broadcasts the result through shared memory.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
    __shared__ T partial[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
#pragma unroll
    for (int delta = 16; delta > 0; delta >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, delta));
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = (lane < nwarps) ? partial[lane] : Op::identity();
#pragma unroll
        for (int delta = 16; delta > 0; delta >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, delta));
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    const T result = partial[0];
    __syncthreads();  // partial[] may be reused by the next call
    return result;
}
