// elementwise.cu -- strided element-wise kernels with numpy broadcasting.
//
// One thread computes one OUTPUT element at a time (grid-stride loop over i in [0, L.size)).
// From i it computes the element offset of every operand with the strides in `L` (see
// common.cuh): a broadcast operand simply has stride 0 along the broadcast dims, a transposed
// or sliced view has permuted / larger strides, so no operand is ever copied to a contiguous
// buffer first.  The output may itself be a strided view (used by assign / getitem_backward
// / concatenate, which write into part of a bigger array).
//
// Kernel families (T = float | double | long long | unsigned char, see SUFFIX in dlkit/backend/cuda_kernels.py):
//   unary_<op>_<t>  (Layout L, T* out, const T* a)                       out = op(a)
//   binary_<op>_<t> (Layout L, T* out, const T* a, const T* b, T sa, T sb) out = op(a, b)
//   cmp_<op>_<t>    (Layout L, u8* out, const T* a, const T* b, T sa, T sb) out = (a op b)
//   where_<t>       (Layout L, T* out, const u8* c, const T* a, const T* b, T sa, T sb)
//   cast_<s>_<d>    (Layout L, D* out, const S* a)                       out = (D) a  (copy when s == d)
//   fill_<t>        (T* out, long long n, T value)                       out[0:n] = value (contiguous)
//   one_hot_<t>     (T* out, const long long* labels, long long n, long long k)
// In binary/cmp/where, a NULL pointer for an input means "use the scalar sa (or sb) instead",
// so `x * 2.0` needs no device memory for the 2.0.  Layout operand slots: 0 = out, 1 = a
// (or c for where), 2 = b (or a), 3 = b (where only).
#include "common.cuh"

// ----------------------------------------------------------------------------- operators
struct Neg     { template <typename T> __device__ T operator()(T a) const { return -a; } };
struct Exp     { template <typename T> __device__ T operator()(T a) const { return exp(a); } };
struct Log     { template <typename T> __device__ T operator()(T a) const { return log(a); } };
struct Tanh    { template <typename T> __device__ T operator()(T a) const { return tanh(a); } };
struct Sqrt    { template <typename T> __device__ T operator()(T a) const { return sqrt(a); } };
// sigma(a) = (1 + tanh(a/2)) / 2: stable for large |a| and the formula the numpy backend uses.
struct Sigmoid { template <typename T> __device__ T operator()(T a) const { return ((T)0.5) * (((T)1) + tanh(((T)0.5) * a)); } };
// relu(a) = max(a, 0), NaN stays NaN like numpy.maximum.
struct Relu    { template <typename T> __device__ T operator()(T a) const { return (a > ((T)0) || is_nan(a)) ? a : ((T)0); } };

struct Add     { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };
struct Sub     { template <typename T> __device__ T operator()(T a, T b) const { return a - b; } };
struct Mul     { template <typename T> __device__ T operator()(T a, T b) const { return a * b; } };
struct Div     { template <typename T> __device__ T operator()(T a, T b) const { return a / b; } };
struct Pow     { template <typename T> __device__ T operator()(T a, T b) const { return pow(a, b); } };
// numpy.maximum: NaN in either operand gives NaN.
struct Maximum { template <typename T> __device__ T operator()(T a, T b) const { return (a > b || is_nan(a)) ? a : b; } };

struct Eq { template <typename T> __device__ bool operator()(T a, T b) const { return a == b; } };
struct Ne { template <typename T> __device__ bool operator()(T a, T b) const { return a != b; } };
struct Gt { template <typename T> __device__ bool operator()(T a, T b) const { return a > b; } };
struct Ge { template <typename T> __device__ bool operator()(T a, T b) const { return a >= b; } };
struct Lt { template <typename T> __device__ bool operator()(T a, T b) const { return a < b; } };
struct Le { template <typename T> __device__ bool operator()(T a, T b) const { return a <= b; } };

// ----------------------------------------------------------------------------- loops
// Every kernel body is "for each output element i: compute offsets, load, apply, store".
// The loop runs in 32-bit index arithmetic when the launch is small enough.
#define GRID_STRIDE_LOOP(...)                                                              \
    const long long start = (long long)blockIdx.x * blockDim.x + threadIdx.x;               \
    const long long step = (long long)gridDim.x * blockDim.x;                               \
    if (L.size < (1LL << 31)) {                                                             \
        typedef unsigned int I;                                                             \
        for (long long i = start; i < L.size; i += step) { __VA_ARGS__ }                           \
    } else {                                                                                \
        typedef long long I;                                                                \
        for (long long i = start; i < L.size; i += step) { __VA_ARGS__ }                           \
    }

template <typename T, typename Op>
__device__ void unary_kernel(const Layout& L, T* out, const T* a) {
    Op op;
    GRID_STRIDE_LOOP(
        long long off[2];
        layout_offsets<I, 2>(L, (I)i, off);
        out[off[0]] = op(a[off[1]]);
    )
}

template <typename T, typename R, typename Op>
__device__ void binary_kernel(const Layout& L, R* out, const T* a, const T* b, T sa, T sb) {
    Op op;
    GRID_STRIDE_LOOP(
        long long off[3];
        layout_offsets<I, 3>(L, (I)i, off);
        const T x = a ? a[off[1]] : sa;
        const T y = b ? b[off[2]] : sb;
        out[off[0]] = (R)op(x, y);
    )
}

template <typename T>
__device__ void where_kernel(const Layout& L, T* out, const unsigned char* c, const T* a,
                             const T* b, T sa, T sb) {
    GRID_STRIDE_LOOP(
        long long off[4];
        layout_offsets<I, 4>(L, (I)i, off);
        const T x = a ? a[off[2]] : sa;
        const T y = b ? b[off[3]] : sb;
        out[off[0]] = c[off[1]] ? x : y;
    )
}

// Conversion rules of numpy's astype: to bool means "!= 0"; float -> int truncates.
template <typename D, typename S> struct Convert { __device__ static D f(S x) { return (D)x; } };
template <typename S> struct Convert<unsigned char, S> { __device__ static unsigned char f(S x) { return x != ((S)0) ? 1 : 0; } };
template <> struct Convert<unsigned char, unsigned char> { __device__ static unsigned char f(unsigned char x) { return x; } };

template <typename S, typename D>
__device__ void cast_kernel(const Layout& L, D* out, const S* a) {
    GRID_STRIDE_LOOP(
        long long off[2];
        layout_offsets<I, 2>(L, (I)i, off);
        out[off[0]] = Convert<D, S>::f(a[off[1]]);
    )
}

// ----------------------------------------------------------------------------- instances
#define UNARY(NAME, OP, T, SFX)                                                             \
    extern "C" __global__ void unary_##NAME##_##SFX(Layout L, T* out, const T* a) {         \
        unary_kernel<T, OP>(L, out, a);                                                     \
    }
#define BINARY(NAME, OP, T, SFX)                                                            \
    extern "C" __global__ void binary_##NAME##_##SFX(Layout L, T* out, const T* a,          \
                                                      const T* b, T sa, T sb) {             \
        binary_kernel<T, T, OP>(L, out, a, b, sa, sb);                                      \
    }
#define CMP(NAME, OP, T, SFX)                                                               \
    extern "C" __global__ void cmp_##NAME##_##SFX(Layout L, unsigned char* out, const T* a, \
                                                   const T* b, T sa, T sb) {                \
        binary_kernel<T, unsigned char, OP>(L, out, a, b, sa, sb);                          \
    }

#define FLOAT_OPS(T, SFX)                                                                   \
    UNARY(neg, Neg, T, SFX) UNARY(exp, Exp, T, SFX) UNARY(log, Log, T, SFX)                 \
    UNARY(tanh, Tanh, T, SFX) UNARY(sqrt, Sqrt, T, SFX) UNARY(sigmoid, Sigmoid, T, SFX)     \
    UNARY(relu, Relu, T, SFX)                                                               \
    BINARY(add, Add, T, SFX) BINARY(sub, Sub, T, SFX) BINARY(mul, Mul, T, SFX)              \
    BINARY(div, Div, T, SFX) BINARY(pow, Pow, T, SFX) BINARY(maximum, Maximum, T, SFX)

#define CMP_OPS(T, SFX)                                                                     \
    CMP(eq, Eq, T, SFX) CMP(ne, Ne, T, SFX) CMP(gt, Gt, T, SFX)                             \
    CMP(ge, Ge, T, SFX) CMP(lt, Lt, T, SFX) CMP(le, Le, T, SFX)

FLOAT_OPS(float, f32)
FLOAT_OPS(double, f64)
// Integer arithmetic for labels / counts (no division, power or transcendental functions).
UNARY(neg, Neg, long long, i64)
BINARY(add, Add, long long, i64) BINARY(sub, Sub, long long, i64)
BINARY(mul, Mul, long long, i64) BINARY(maximum, Maximum, long long, i64)

CMP_OPS(float, f32)
CMP_OPS(double, f64)
CMP_OPS(long long, i64)
CMP_OPS(unsigned char, u8)

#define WHERE(T, SFX)                                                                       \
    extern "C" __global__ void where_##SFX(Layout L, T* out, const unsigned char* c,        \
                                           const T* a, const T* b, T sa, T sb) {            \
        where_kernel<T>(L, out, c, a, b, sa, sb);                                           \
    }
WHERE(float, f32) WHERE(double, f64) WHERE(long long, i64) WHERE(unsigned char, u8)

#define CAST(S, SS, D, DS)                                                                  \
    extern "C" __global__ void cast_##SS##_##DS(Layout L, D* out, const S* a) {             \
        cast_kernel<S, D>(L, out, a);                                                       \
    }
#define CAST_FROM(S, SS)                                                                    \
    CAST(S, SS, float, f32) CAST(S, SS, double, f64)                                        \
    CAST(S, SS, long long, i64) CAST(S, SS, unsigned char, u8)
CAST_FROM(float, f32) CAST_FROM(double, f64) CAST_FROM(long long, i64) CAST_FROM(unsigned char, u8)

// fill_<t>(out, n, value): out[j] = value for 0 <= j < n; out contiguous with n elements.
#define FILL(T, SFX)                                                                        \
    extern "C" __global__ void fill_##SFX(T* out, long long n, T value) {                   \
        for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < n;         \
             j += (long long)gridDim.x * blockDim.x)                                        \
            out[j] = value;                                                                 \
    }
FILL(float, f32) FILL(double, f64) FILL(long long, i64) FILL(unsigned char, u8)

// one_hot_<t>(out, labels, n, k):
//   labels  contiguous int64, n elements (any shape, flattened);
//   out     contiguous (n, k): out[r * k + j] = (labels[r] == j) ? 1 : 0.
// A label outside [0, k) gives a row of zeros (cuda.py checks the range before launching).
#define ONE_HOT(T, SFX)                                                                     \
    extern "C" __global__ void one_hot_##SFX(T* out, const long long* labels, long long n,  \
                                             long long k) {                                 \
        for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < n * k;     \
             j += (long long)gridDim.x * blockDim.x)                                        \
            out[j] = (labels[j / k] == j % k) ? ((T)1) : ((T)0);                                \
    }
ONE_HOT(float, f32) ONE_HOT(double, f64) ONE_HOT(long long, i64) ONE_HOT(unsigned char, u8)
