// optim.cu -- fused, in-place optimizer updates (one kernel launch per parameter per step).
//
// A plain-numpy SGD-with-momentum step reads and writes the parameter several times (one pass
// per arithmetic operation).  Fused, each element is loaded once, updated in registers and
// stored once: the step runs at memory bandwidth.
//
// All arrays are contiguous with n elements (cuda.py makes `grad` contiguous if it is a view);
// param and the state buffers are updated in place.  Grid-stride loops, any grid size.
//
// sgd_step_<t>(T* param, const T* grad, T* buf, long long n, T lr, T momentum, T dampening,
//              T weight_decay, int nesterov, int first_step)
//     PyTorch torch.optim.SGD for one element (buf is ignored, and may be NULL, when
//     momentum == 0):
//         d   = g + weight_decay * p
//         buf = d                                   on the first step
//             = momentum * buf + (1 - dampening) * d  afterwards
//         d   = d + momentum * buf   (nesterov)   or   buf
//         p  -= lr * d
//
// adam_step_<t>(T* param, const T* grad, T* m, T* v, long long n, T lr, T beta1, T beta2,
//               T eps, T weight_decay, T bias_correction1, T bias_correction2_sqrt,
//               int decoupled)
//     PyTorch torch.optim.Adam (decoupled = 0) / AdamW (decoupled = 1).  The host computes
//     bias_correction1 = 1 - beta1^t and bias_correction2_sqrt = sqrt(1 - beta2^t) in double
//     precision (both 1 when bias correction is off):
//         p  *= 1 - lr * weight_decay            (AdamW only)
//         g   = g + weight_decay * p             (Adam only)
//         m   = beta1 * m + (1 - beta1) * g
//         v   = beta2 * v + (1 - beta2) * g^2
//         p  -= (lr / bias_correction1) * m / (sqrt(v) / bias_correction2_sqrt + eps)
#include "common.cuh"

template <typename T>
__device__ void sgd_step(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buf,
                         long long n, T lr, T momentum, T dampening, T weight_decay,
                         int nesterov, int first_step) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T p = param[i];
        T d = grad[i];
        if (weight_decay != (T)0) d += weight_decay * p;
        if (momentum != (T)0) {
            const T b = first_step ? d : momentum * buf[i] + ((T)1 - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        param[i] = p - lr * d;
    }
}

template <typename T>
__device__ void adam_step(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ m,
                          T* __restrict__ v, long long n, T lr, T beta1, T beta2, T eps,
                          T weight_decay, T bias_correction1, T bias_correction2_sqrt,
                          int decoupled) {
    const T step_size = lr / bias_correction1;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T p = param[i];
        T g = grad[i];
        if (weight_decay != (T)0) {
            if (decoupled) p *= (T)1 - lr * weight_decay;
            else g += weight_decay * p;
        }
        const T mi = beta1 * m[i] + ((T)1 - beta1) * g;
        const T vi = beta2 * v[i] + ((T)1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const T denom = sqrt(vi) / bias_correction2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
    }
}

#define OPTIM(T, SFX)                                                                       \
    extern "C" __global__ void sgd_step_##SFX(T* param, const T* grad, T* buf, long long n, \
                                              T lr, T momentum, T dampening,                \
                                              T weight_decay, int nesterov, int first_step) { \
        sgd_step<T>(param, grad, buf, n, lr, momentum, dampening, weight_decay, nesterov,    \
                    first_step);                                                            \
    }                                                                                       \
    extern "C" __global__ void adam_step_##SFX(T* param, const T* grad, T* m, T* v,         \
                                               long long n, T lr, T beta1, T beta2, T eps,  \
                                               T weight_decay, T bias_correction1,          \
                                               T bias_correction2_sqrt, int decoupled) {    \
        adam_step<T>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay,             \
                     bias_correction1, bias_correction2_sqrt, decoupled);                   \
    }

OPTIM(float, f32)
OPTIM(double, f64)
