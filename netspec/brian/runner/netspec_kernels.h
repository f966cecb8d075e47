// netspec's kernel-form operations in C++: the projections that add a spike's kernel slice to its targets, the
// max-pooling elections, and the per-step spike and operation counters.
//
// Part of the runner package that `netspec build` copies into every build folder; the standalone compile copies
// it into the Brian2 project (cpp/). Each network instantiates these templates with its own geometry (integers
// only) from the Brian2 functions that the runner (operations.py) defines; see geometry.py for what the numbers
// mean. Plain C++11, no dependencies beyond the standard library.
//
// Exactness. A target's membrane receives the same additions in the same order as it would from Brian2's
// synapses (spikes in ascending source index, then the pieces of the projection in order), so kernel and
// unrolled builds spike identically, in float64 and float32 alike.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace netspec {

enum Mode { FULL = 0, DEPTH = 1, POOL = 2 };

// --- where the kernels are read from ---------------------------------------------------------------------------
// A copy of a kernel in memory of its own, backed by huge pages where the system allows (Linux's transparent huge
// pages on request): a spike reads one row of every tap, rows that lie a whole [C, F] slice apart, so on a kernel
// of megabytes each spike touches pages all over it and a 4 KB page's address translation misses. Made once, at
// the first step; the values are the same as the original's (a plain copy).
template <typename T>
inline const T* resident(const T* w, size_t n) {
    const size_t huge = size_t(1) << 21, bytes = n * sizeof(T);
    if (bytes < huge) return w;  // small kernels stay in cache anyway
    const size_t rounded = (bytes + huge - 1) / huge * huge;
    void* p = nullptr;
    if (posix_memalign(&p, huge, rounded) != 0) return w;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    std::memcpy(p, w, bytes);
    return static_cast<const T*>(p);  // kept for the life of the process, as Brian2's own arrays
}

// --- push: one spike adds its kernel slice to its targets ------------------------------------------------------
// u[t] += w (times gate[t], 0 or 1, where GATED: only where not refractory). A spike's row of a tap, [F]
// consecutive weights, goes to F consecutive targets: the loop vectorizes and the rows stream from memory.
// (Measured against pulling rows per target tile, with a filter tile's kernel slice kept in cache, and against
// pushing one block of filters at a time: both were slower on every LeNet and VGG-16 geometry, in float and
// double; tools/bench_scatter.cpp times the push on those geometries.)
template <typename T, int MODE, int H, int W, int C, int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL,
          int F, bool GATED, typename G>
inline void scatter_one(int32_t s, const int32_t* pos, const T* w, T* u, const G* gate) {
    const int32_t p = pos[s];
    if (p < 0) return;
    const int32_t c = p % C, ix = (p / C) % W, iy = p / (C * W);
    for (int32_t ky = 0; ky < KH; ky++) {
        const int32_t ty = iy + PT - ky;
        if (ty < 0 || ty % SY != 0 || ty / SY >= OH) continue;
        for (int32_t kx = 0; kx < KW; kx++) {
            const int32_t tx = ix + PL - kx;
            if (tx < 0 || tx % SX != 0 || tx / SX >= OW) continue;
            const int32_t o = (ty / SY) * OW + tx / SX;
            if (MODE == POOL) {
                const int32_t t = o * C + c;
                u[t] += GATED ? w[t] * gate[t] : w[t];
            } else {
                const int32_t t0 = MODE == FULL ? o * F : o * (C * F) + c * F;
                const T* row = w + ((ky * KW + kx) * C + c) * F;
                for (int32_t f = 0; f < F; f++) u[t0 + f] += GATED ? row[f] * gate[t0 + f] : row[f];
            }
        }
    }
}

// --- max pooling: members that spiked bid for their windows ---------------------------------------------------
// A member's bid for window j is K - key + K*(key == winner[j]) when its count in this sample before this step
// (a gate of gates: best - 1) is at least the window's best so far, else 0; cand[j] keeps the largest bid (a
// maximum: the order of the spikes does not matter). off/win/key list each member's windows.
template <typename TC, typename TG>
inline void elect(const int32_t* spikes, int32_t n, const TC* count, bool of_gates, const TG* best, const TG* winner,
                  TG* cand, const int32_t* off, const int32_t* win, const double* key, double K) {
    for (int32_t k = 0; k < n; k++) {
        const int32_t s = spikes[k];
        const double c = of_gates ? count[s] - 1 : count[s];
        for (int32_t m = off[s]; m < off[s + 1]; m++) {
            const int32_t j = win[m];
            const double w = winner[j], key_m = key[m];
            const TG bid = (c >= best[j]) ? K - key_m + K * (key_m == w) : 0.0;
            if (bid > cand[j]) cand[j] = bid;
        }
    }
}

// --- counters: a layer's operations in this step, the fan-outs of its spikes ----------------------------------
inline int32_t operations(const int32_t* spikes, int32_t n, const int32_t* fanout) {
    int64_t sum = 0;
    for (int32_t k = 0; k < n; k++) sum += fanout[spikes[k]];
    return static_cast<int32_t>(sum);
}

}  // namespace netspec
