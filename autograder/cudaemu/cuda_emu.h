// cuda_emu.h -- just enough of CUDA C++ to run a kernel on the CPU: dlkit's kernels/*.cu in
// the parity tests, and a student's kernel inside the grading sandbox (autograder/cudaemu).
//
// Force-included (g++ -include cuda_emu.h) before a kernel file, so the kernel source is
// compiled UNCHANGED as ordinary C++.  runtime.cpp then runs a launch the way a GPU would:
// every thread of a block is a fiber (its own stack and registers), the blocks of the grid
// run one after another, and a fiber gives way only at a barrier:
//
//   __syncthreads()        waits until every thread of the block has arrived; a barrier that
//                          some threads can never reach (they have exited, or wait at another
//                          barrier) is reported as an error instead of hanging.
//   __shfl_down_sync(...)  a warp-wide exchange through a per-warp mailbox, with a warp barrier
//                          on both sides; all 32 lanes must take part (mask 0xffffffff).
//   __shared__             static storage: one copy, shared by the block that runs now.
//
// This checks the kernels' logic -- indexing, bounds guards for sizes that are not multiples
// of a tile, reductions, barrier placement -- not their speed, and not races that only
// real parallel execution shows.
#pragma once

#include <math.h>
#include <string.h>

#include <algorithm>
#include <cmath>

struct dim3 {
    unsigned int x, y, z;
};

// The launch geometry and the current thread's coordinates, set by the runtime before it
// resumes a thread (a fiber switch happens only inside the barrier functions below).
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

extern "C" void dlkit_emu_syncthreads(void);
extern "C" void dlkit_emu_shfl(unsigned int mask, const void* in, void* out, int size, int delta);

inline void __syncthreads() { dlkit_emu_syncthreads(); }

template <typename T>
inline T __shfl_down_sync(unsigned int mask, T value, int delta) {
    static_assert(sizeof(T) <= 8, "the emulator exchanges at most 8 bytes per lane");
    T result;
    dlkit_emu_shfl(mask, &value, &result, (int)sizeof(T), delta);
    return result;
}

// CUDA's device-side min / max overloads (the kernels call them on long long).
using std::max;
using std::min;

// A few device intrinsics kernels commonly use.  Threads of a block run one at a time and
// switch only at barriers, so the atomics need no locking here.
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
template <typename T>
inline T atomicAdd(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
