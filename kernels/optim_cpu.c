/* The numpy backend's one-pass optimizer kernels for the CPU (C99; instructor edition only: this
   file is withheld from the student kit).  dlkit/backend/numpy_backend.py compiles it with the
   system C compiler on first use (-O3 -ffp-contract=off -fno-math-errno) and calls it through
   ctypes; every loop does exactly the readable step's float operations in the same order, so
   the results equal dlkit.optim's readable Adam / SGD bit for bit (tests/test_native_optim.py). */
#include <math.h>
#include <stddef.h>
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(DLKIT_NO_CLONES)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* Adam.  mode 0: no weight decay; 1: g += wd*p (Adam); 2: p *= keep (AdamW).  s1, s2: 1/(1 - beta^t),
   or 1 without bias correction (x*1 is exact).  Same operations, same order as dlkit.optim.Adam.step. */
#define ADAM(NAME, T, SQRT)                                                                         \
CLONES void NAME(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, ptrdiff_t n,    \
                 double beta1_, double one_minus_beta1_, double beta2_, double one_minus_beta2_,   \
                 double lr_, double eps_, double wd_, double keep_, double s1_, double s2_,        \
                 int mode) {                                                                       \
    const T b1 = (T)beta1_, c1 = (T)one_minus_beta1_, b2 = (T)beta2_, c2 = (T)one_minus_beta2_;    \
    const T lr = (T)lr_, eps = (T)eps_, wd = (T)wd_, keep = (T)keep_, s1 = (T)s1_, s2 = (T)s2_;   \
    if (mode == 1) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T pi = p[i], gi = g[i] + wd * pi;                                                      \
            T mi = b1 * m[i] + c1 * gi, vi = b2 * v[i] + c2 * gi * gi;                              \
            m[i] = mi; v[i] = vi;                                                                  \
            p[i] = pi - lr * (mi * s1) / (SQRT(vi * s2) + eps);                                    \
        }                                                                                          \
    } else if (mode == 2) {                                                                        \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T pi = p[i] * keep, gi = g[i];                                                         \
            T mi = b1 * m[i] + c1 * gi, vi = b2 * v[i] + c2 * gi * gi;                              \
            m[i] = mi; v[i] = vi;                                                                  \
            p[i] = pi - lr * (mi * s1) / (SQRT(vi * s2) + eps);                                    \
        }                                                                                          \
    } else {                                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T gi = g[i];                                                                           \
            T mi = b1 * m[i] + c1 * gi, vi = b2 * v[i] + c2 * gi * gi;                              \
            m[i] = mi; v[i] = vi;                                                                  \
            p[i] = p[i] - lr * (mi * s1) / (SQRT(vi * s2) + eps);                                  \
        }                                                                                          \
    }                                                                                              \
}
ADAM(dlkit_adam_f32, float, sqrtf)
ADAM(dlkit_adam_f64, double, sqrt)

/* Adam over `count` parameters in one call: ptrs holds p, g, m, v of each; corr its s1, s2. */
#define ADAM_MANY(NAME, ONE, T)                                                                    \
void NAME(ptrdiff_t count, void *const *ptrs, const ptrdiff_t *sizes, const double *corr,          \
          double beta1, double one_minus_beta1, double beta2, double one_minus_beta2, double lr,   \
          double eps, double wd, double keep, int mode) {                                          \
    for (ptrdiff_t k = 0; k < count; k++)                                                          \
        ONE((T *)ptrs[4 * k], (const T *)ptrs[4 * k + 1], (T *)ptrs[4 * k + 2], (T *)ptrs[4 * k + 3], \
            sizes[k], beta1, one_minus_beta1, beta2, one_minus_beta2, lr, eps, wd, keep,           \
            corr[2 * k], corr[2 * k + 1], mode);                                                   \
}
ADAM_MANY(dlkit_adam_many_f32, dlkit_adam_f32, float)
ADAM_MANY(dlkit_adam_many_f64, dlkit_adam_f64, double)

/* SGD.  flags: 1 weight decay (d = g + wd*p), 2 momentum (buf), 4 first step (buf = d),
   8 nesterov (d = d + mu*buf; else d = buf).  damp: 1 - dampening.  Then p = p - lr*d, as
   dlkit.optim.SGD.step.  Branches on loop invariants: the compiler unswitches them. */
#define SGD(NAME, T)                                                                                \
CLONES void NAME(T *restrict p, const T *restrict g, T *restrict buf, ptrdiff_t n, double lr_,     \
                 double momentum_, double damp_, double wd_, int flags) {                          \
    const T lr = (T)lr_, mu = (T)momentum_, damp = (T)damp_, wd = (T)wd_;                          \
    const int decay = flags & 1, heavy = flags & 2, first = flags & 4, nesterov = flags & 8;       \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T pi = p[i], d = g[i];                                                                     \
        if (decay) d = d + wd * pi;                                                                \
        if (heavy) {                                                                               \
            T b = first ? d : mu * buf[i] + damp * d;                                              \
            buf[i] = b;                                                                            \
            d = nesterov ? d + mu * b : b;                                                         \
        }                                                                                          \
        p[i] = pi - lr * d;                                                                        \
    }                                                                                              \
}
SGD(dlkit_sgd_f32, float)
SGD(dlkit_sgd_f64, double)
