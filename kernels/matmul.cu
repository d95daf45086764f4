// matmul.cu -- C = A @ B, tiled through shared memory with 2-D register blocking.
//
//   A: (batch, M, K) at A + z*sAb + m*sAm + k*sAk      (any strides: a transposed view of a
//   B: (batch, K, N) at B + z*sBb + k*sBk + n*sBn       contiguous matrix works without a copy;
//                                                      sAb = 0 / sBb = 0 broadcasts one matrix)
//   C: (batch, M, N) contiguous: C + z*M*N + m*N + n   (written, never read)
//   all strides in elements; z = blockIdx.z is the batch index.
//
// How the work is split (the "2-D block tiling" kernel of the SGEMM worklogs):
//   * Each thread block computes one BM x BN tile of C:  rows m0 .. m0+BM-1, columns
//     n0 .. n0+BN-1, with m0 = blockIdx.y*BM, n0 = blockIdx.x*BN.
//   * It walks over K in slabs of BK: the block copies the BM x BK slab of A and the BK x BN
//     slab of B into shared memory (zeros outside the matrices, so M, N, K need not be
//     multiples of the tile), synchronises, and every thread accumulates its part.
//   * Each of the (BM/TM)*(BN/TN) = 256 threads owns a TM x TN sub-grid of the tile held in
//     registers (acc[TM][TN]).  Per k it loads TM values of A and TN of B from shared memory
//     into registers and does TM*TN fused multiply-adds: TM*TN FMAs per TM+TN shared loads,
//     instead of 1 FMA per 2 loads for a one-output-per-thread kernel.
//   * Thread (tr, tc) owns rows m0 + tr + i*(BM/TM) and columns n0 + tc + j*(BN/TN)
//     (interleaved, not a contiguous block): neighbouring threads then read neighbouring
//     shared-memory words (no bank conflicts) and write neighbouring columns of C.
//   * As is stored transposed (As[k][m]) so that the TM values a thread needs for one k are
//     in one row of As; both tiles get PAD extra columns so the transposing stores do not
//     all hit the same memory bank.
//
// Kernels (grid = (ceil(N/BN), ceil(M/BM), batch), block = 256 threads):
//   matmul_128x128_f32  BM = BN = 128, BK = 8,  TM = TN = 8   (large matrices)
//   matmul_64x64_f32    BM = BN = 64,  BK = 16, TM = TN = 4   (small ones: more blocks to fill the SMs)
//   matmul_64x64_f64    the same tile in double precision
// Signature: (const T* A, const T* B, T* C, long long M, long long N, long long K,
//             long long sAb, long long sAm, long long sAk, long long sBb, long long sBk, long long sBn)
#include "common.cuh"

#define MATMUL_THREADS 256
#define PAD 4

template <typename T, int BM, int BN, int BK, int TM, int TN>
__device__ __forceinline__ void matmul_tiled(const T* __restrict__ A, const T* __restrict__ B,
                                             T* __restrict__ C, long long M, long long N,
                                             long long K, long long sAb, long long sAm,
                                             long long sAk, long long sBb, long long sBk,
                                             long long sBn) {
    static_assert((BM / TM) * (BN / TN) == MATMUL_THREADS, "one thread per TM x TN sub-tile");
    static_assert((BM * BK) % MATMUL_THREADS == 0 && (BK * BN) % MATMUL_THREADS == 0,
                  "the slab copies split evenly over the threads");
    constexpr int TROWS = BM / TM;  // threads along m
    constexpr int TCOLS = BN / TN;  // threads along n

    __shared__ T As[BK][BM + PAD];  // As[k][m] = A[m0 + m, k0 + k]
    __shared__ T Bs[BK][BN + PAD];  // Bs[k][n] = B[k0 + k, n0 + n]

    const int tid = threadIdx.x;
    const int tr = tid / TCOLS, tc = tid % TCOLS;
    const long long z = blockIdx.z;
    const long long m0 = (long long)blockIdx.y * BM, n0 = (long long)blockIdx.x * BN;
    A += z * sAb;
    B += z * sBb;
    C += z * M * N;

    // Which index varies fastest across threads while copying a slab: the one with unit
    // stride in global memory, so that a warp reads consecutive addresses (coalesced).
    const bool a_m_fastest = (sAm == 1 && sAk != 1);  // A is a transposed (column-major) view
    const bool b_k_fastest = (sBk == 1 && sBn != 1);  // B is a transposed view

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = (T)0;

    for (long long k0 = 0; k0 < K; k0 += BK) {
        // -- copy the BM x BK slab of A and the BK x BN slab of B into shared memory
#pragma unroll
        for (int e = tid; e < BM * BK; e += MATMUL_THREADS) {
            const int mm = a_m_fastest ? e % BM : e / BK;
            const int kk = a_m_fastest ? e / BM : e % BK;
            const long long gm = m0 + mm, gk = k0 + kk;
            As[kk][mm] = (gm < M && gk < K) ? A[gm * sAm + gk * sAk] : (T)0;
        }
#pragma unroll
        for (int e = tid; e < BK * BN; e += MATMUL_THREADS) {
            const int kk = b_k_fastest ? e % BK : e / BN;
            const int nn = b_k_fastest ? e / BK : e % BN;
            const long long gk = k0 + kk, gn = n0 + nn;
            Bs[kk][nn] = (gk < K && gn < N) ? B[gk * sBk + gn * sBn] : (T)0;
        }
        __syncthreads();

        // -- TM x TN outer products, one per k of the slab
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = As[kk][tr + i * TROWS];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tc + j * TCOLS];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();  // before the next slab overwrites As / Bs
    }

    // -- write the sub-grid back, skipping what falls outside C
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const long long gm = m0 + tr + i * TROWS;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const long long gn = n0 + tc + j * TCOLS;
            if (gn < N) C[gm * N + gn] = acc[i][j];
        }
    }
}

#define MATMUL(NAME, T, BM, BN, BK, TM, TN)                                                 \
    extern "C" __global__ void __launch_bounds__(MATMUL_THREADS)                            \
    NAME(const T* A, const T* B, T* C, long long M, long long N, long long K,               \
         long long sAb, long long sAm, long long sAk, long long sBb, long long sBk,         \
         long long sBn) {                                                                   \
        matmul_tiled<T, BM, BN, BK, TM, TN>(A, B, C, M, N, K, sAb, sAm, sAk, sBb, sBk, sBn); \
    }

MATMUL(matmul_128x128_f32, float, 128, 128, 8, 8, 8)
MATMUL(matmul_64x64_f32, float, 64, 64, 16, 4, 4)
MATMUL(matmul_64x64_f64, double, 64, 64, 16, 4, 4)
