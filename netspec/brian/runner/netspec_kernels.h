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

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>
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
// double. scatter_grouped below is faster where it applies; tools/bench_scatter.cpp times both.)
// The window of input pixel (iy, ix): every output pixel o it reaches, with the tap (ky, kx) that takes it there;
// visit(o, ky, kx) is called for each (the one geometry of both scatters below).
// Along one axis: the output row (column) that input row i reaches through tap k, or -1 where it reaches none.
template <int O, int S, int P>
inline int32_t reach(int32_t i, int32_t k) {
    const int32_t t = i + P - k;
    return t < 0 || t % S != 0 || t / S >= O ? -1 : t / S;
}

template <int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL, typename V>
inline void each_target(int32_t iy, int32_t ix, V&& visit) {
    for (int32_t ky = 0; ky < KH; ky++) {
        const int32_t oy = reach<OH, SY, PT>(iy, ky);
        if (oy < 0) continue;
        for (int32_t kx = 0; kx < KW; kx++) {
            const int32_t ox = reach<OW, SX, PL>(ix, kx);
            if (ox < 0) continue;
            visit(oy * OW + ox, ky, kx);
        }
    }
}

template <typename T, int MODE, int H, int W, int C, int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL,
          int F, bool GATED, typename G>
inline void scatter_one(int32_t s, const int32_t* pos, const T* w, T* u, const G* gate) {
    const int32_t p = pos[s];
    if (p < 0) return;
    const int32_t c = p % C, ix = (p / C) % W, iy = p / (C * W);
    each_target<OH, OW, KH, KW, SY, SX, PT, PL>(iy, ix, [&](int32_t o, int32_t ky, int32_t kx) {
        if (MODE == POOL) {
            const int32_t t = o * C + c;
            u[t] += GATED ? w[t] * gate[t] : w[t];
        } else {
            const int32_t t0 = MODE == FULL ? o * F : o * (C * F) + c * F;
            const T* row = w + ((ky * KW + kx) * C + c) * F;
            for (int32_t f = 0; f < F; f++) u[t0 + f] += GATED ? row[f] * gate[t0 + f] : row[f];
        }
    });
}

// --- push grouped by input pixel: a tile of a target row takes the rows of every channel spiking there -------
// For a projection of one Filters window whose index map ascends with the source index (a source layer's own
// positions, through flatten, padding and channel concatenation), the spikes of this step come grouped by input
// pixel, their channels ascending. For each of the pixel's taps, a tile of the target row (up to 8 vectors) is
// kept in registers while the kernel rows of all the pixel's spiking channels are added to it, and written back
// once: per event one kernel load instead of a load, an add and a store of the target. The additions of every
// target are Brian2's (spikes in ascending index), so the results are those of scatter_one, bit for bit.
template <typename T>
struct simd;  // GCC/Clang vector extensions: the compiler maps them onto the CPU's vector registers
template <>
struct simd<float> {
    typedef float v __attribute__((vector_size(32), aligned(4)));  // unaligned loads and stores
    enum { n = 8 };
};
template <>
struct simd<double> {
    typedef double v __attribute__((vector_size(32), aligned(8)));
    enum { n = 4 };
};

template <typename T, int V, int F, bool GATED, typename G>
inline void grouped_tile(T* __restrict target, const G* __restrict gate, const T* __restrict tap, const int32_t* chan,
                         int32_t m) {
    typedef typename simd<T>::v vec;
    const int N = simd<T>::n;
    vec acc[V], g[V];
    for (int i = 0; i < V; i++) acc[i] = *reinterpret_cast<const vec*>(target + i * N);
    if (GATED)
        for (int i = 0; i < V; i++)
            for (int e = 0; e < N; e++) g[i][e] = static_cast<T>(gate[i * N + e]);
    for (int32_t j = 0; j < m; j++) {
        const T* row = tap + chan[j] * F;
        for (int i = 0; i < V; i++) {
            const vec r = *reinterpret_cast<const vec*>(row + i * N);
            acc[i] += GATED ? r * g[i] : r;
        }
    }
    for (int i = 0; i < V; i++) *reinterpret_cast<vec*>(target + i * N) = acc[i];
}

template <typename T, int F, bool GATED, typename G>
inline void grouped_row(T* __restrict target, const G* __restrict gate, const T* __restrict tap, const int32_t* chan,
                        int32_t m) {
    const int N = simd<T>::n, V = 8;
    constexpr int VECTORS = F / N, WHOLE = VECTORS / V * V, LEFT = VECTORS % V, TAIL = F % N;
    for (int32_t f0 = 0; f0 < WHOLE * N; f0 += V * N)
        grouped_tile<T, V, F, GATED, G>(target + f0, GATED ? gate + f0 : gate, tap + f0, chan, m);
    if (LEFT)
        grouped_tile<T, LEFT ? LEFT : 1, F, GATED, G>(target + WHOLE * N, GATED ? gate + WHOLE * N : gate,
                                                      tap + WHOLE * N, chan, m);
    for (int32_t f = VECTORS * N; f < VECTORS * N + TAIL; f++) {  // the last F % N targets, one by one
        T acc = target[f];
        for (int32_t j = 0; j < m; j++) acc += GATED ? tap[chan[j] * F + f] * gate[f] : tap[chan[j] * F + f];
        target[f] = acc;
    }
}

// Samples side by side: source neuron s of the spike list is neuron s % n_source of sample s / n_source, whose
// targets start at (s / n_source) * n_target.
// The spike list as runs of spikes of one sample at one input pixel (the index map ascends, so a pixel's spikes
// are consecutive): group(copy, pixel, channels, m) for each, with the run's m channels at channels (ascending).
// KEEP: every run's channels stay, one run after another, in chan (n entries); else each run starts at chan[0]
// (C entries).
template <int C, int32_t n_source, bool KEEP, typename V>
inline void each_pixel_group(const int32_t* spikes, int32_t n, const int32_t* pos, int32_t* chan, V&& group) {
    int32_t k = 0, used = 0;
    while (k < n) {
        const int32_t copy = spikes[k] / n_source;
        int32_t p = pos[spikes[k] - copy * n_source];
        if (p < 0) {
            k++;
            continue;
        }
        const int32_t q = p / C, first = KEEP ? used : 0;
        int32_t m = 0;
        while (k < n && spikes[k] / n_source == copy && (p = pos[spikes[k] - copy * n_source]) >= 0 && p / C == q) {
            chan[first + m++] = p % C;
            k++;
        }
        used += m;
        group(copy, q, chan + first, m);
    }
}

template <typename T, int H, int W, int C, int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL, int F,
          bool GATED, typename G, int32_t n_source, int32_t n_target>
inline void scatter_grouped(const int32_t* spikes, int32_t n, const int32_t* pos, const T* __restrict w,
                            T* __restrict targets, const G* __restrict gates) {
    static int32_t chan[C];
    each_pixel_group<C, n_source, false>(spikes, n, pos, chan, [&](int32_t copy, int32_t q, const int32_t* ch, int32_t m) {
        T* __restrict u = targets + copy * n_target;
        const G* __restrict gate = GATED ? gates + copy * n_target : gates;
        each_target<OH, OW, KH, KW, SY, SX, PT, PL>(q / W, q % W, [&](int32_t o, int32_t ky, int32_t kx) {
            const int32_t t0 = o * F;
            grouped_row<T, F, GATED, G>(u + t0, GATED ? gate + t0 : gate, w + (ky * KW + kx) * C * F, ch, m);
        });
    });
}

// --- the same, tap by tap: for kernels bigger than the core's caches --------------------------------------------
// scatter_grouped walks the spikes pixel by pixel, and each pixel reads the rows of its spiking channels from
// every tap: a kernel of megabytes (VGG-16's 3x3x512x512 is 9.4 MB in float) streams from memory once per step
// and sample, and even a small one (3x3x64x64, 147 KB) does not stay in the first-level cache. Here the spikes of
// all samples are grouped by pixel first; then, for a block of ROWS input rows at a time and tap after tap, every
// pixel group of the block adds the rows of its channels to its target row through that tap: the tap's kernel
// slice [C, F] that all of them read stays in cache for all those pixels and samples, and the target rows of a
// block of rows for all samples stay in cache for all the taps. (tools/bench_scatter.cpp, VGG-16's convolutions,
// float, 8 samples: 10-40 % less time per event than scatter_grouped with ROWS = 2; whole rows measured faster
// than tiles of 64 or 256 targets.) A target gets its additions in the same
// order as from scatter_grouped (and Brian2's synapses): from its source pixels in ascending order (earlier row
// blocks first; within a block through the taps in ascending order, which is ascending source pixels), and within
// a pixel from its channels in ascending order; so the results are the same, bit for bit.
struct pixel_group {
    int32_t copy, pixel, first, m;  // sample, input pixel, its channels chan[first .. first + m)
};

template <typename T, int H, int W, int C, int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL, int F,
          bool GATED, typename G, int32_t n_source, int32_t n_target, int ROWS>
inline void scatter_by_tap(const int32_t* spikes, int32_t n, const int32_t* pos, const T* __restrict w,
                           T* __restrict targets, const G* __restrict gates) {
    static std::vector<int32_t> chan;
    static std::vector<pixel_group> groups, by_block;
    static std::vector<int32_t> reached;  // per tap: (group, target pixel) of the groups that reach one through it
    constexpr int BLOCKS = (H + ROWS - 1) / ROWS;
    int32_t first_of[BLOCKS + 1];
    if (chan.size() < static_cast<size_t>(n)) chan.resize(n);
    groups.clear();
    for (int b = 0; b <= BLOCKS; b++) first_of[b] = 0;
    each_pixel_group<C, n_source, true>(spikes, n, pos, chan.data(), [&](int32_t copy, int32_t q, const int32_t* ch,
                                                                        int32_t m) {
        const pixel_group g = {copy, q, static_cast<int32_t>(ch - chan.data()), m};
        groups.push_back(g);
        first_of[q / W / ROWS + 1]++;
    });
    const pixel_group* order = groups.data();
    if (BLOCKS > 1) {  // by block, keeping the order (sample, pixel) within one
        for (int b = 0; b < BLOCKS; b++) first_of[b + 1] += first_of[b];
        by_block.resize(groups.size());
        int32_t next[BLOCKS];
        for (int b = 0; b < BLOCKS; b++) next[b] = first_of[b];
        for (size_t i = 0; i < groups.size(); i++) by_block[next[groups[i].pixel / W / ROWS]++] = groups[i];
        order = by_block.data();
    } else {
        first_of[1] = static_cast<int32_t>(groups.size());
    }
    for (int b = 0; b < BLOCKS; b++)
        for (int32_t ky = 0; ky < KH; ky++)
            for (int32_t kx = 0; kx < KW; kx++) {
                reached.clear();
                for (int32_t i = first_of[b]; i < first_of[b + 1]; i++) {
                    const int32_t oy = reach<OH, SY, PT>(order[i].pixel / W, ky);
                    const int32_t ox = reach<OW, SX, PL>(order[i].pixel % W, kx);
                    if (oy < 0 || ox < 0) continue;
                    reached.push_back(i);
                    reached.push_back(order[i].copy * n_target + (oy * OW + ox) * F);
                }
                const T* tap = w + (ky * KW + kx) * C * F;
                const int32_t r = static_cast<int32_t>(reached.size());
                for (int32_t j = 0; j < r; j += 2) {
                    const pixel_group& g = order[reached[j]];
                    const int32_t t0 = reached[j + 1];
                    grouped_row<T, F, GATED, G>(targets + t0, GATED ? gates + t0 : gates, tap, &chan[g.first], g.m);
                }
            }
}

// --- thresholds: the indices of the neurons that fire, without a branch per neuron ------------------------------
// cond[k] (0 or 1) says whether neuron start + k fires; their indices are appended to spikes[count..] in ascending
// order, eight neurons at a time: the eight conditions as a bit mask pick a row of a table that lists the set
// bits, which is stored as eight indices at once (the ones after the set bits are overwritten by the next store
// or lie past the count). A branch per neuron, as Brian2's threshold has, is mispredicted about as often as
// neurons fire. Returns the new count. spikes must hold start + n entries (it never writes past them).
struct set_bits {
    int32_t row[256][8];
    set_bits() {
        for (int m = 0; m < 256; m++) {
            int c = 0;
            for (int k = 0; k < 8; k++)
                if (m >> k & 1) row[m][c++] = k;
            for (; c < 8; c++) row[m][c] = 0;
        }
    }
};

inline int32_t pack_indices(const char* cond, int32_t n, int32_t start, int32_t* spikes, int32_t count) {
    typedef int32_t v8 __attribute__((vector_size(32), aligned(4)));
    static const set_bits table;
    int32_t k = 0;
    for (; k + 8 <= n; k += 8) {  // count <= start + k: the eight stored indices end before start + k + 8
        uint64_t w;
        std::memcpy(&w, cond + k, 8);
        const unsigned m = static_cast<unsigned>(((w & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56);
        *reinterpret_cast<v8*>(spikes + count) = *reinterpret_cast<const v8*>(table.row[m]) + (start + k);
        count += __builtin_popcount(m);
    }
    for (; k < n; k++) {
        spikes[count] = start + k;
        count += cond[k] != 0;
    }
    return count;
}

// --- max pooling: members that spiked bid for their windows ---------------------------------------------------
// A member's bid for window j is K - key + K*(key == winner[j]) when its count in this sample before this step
// (a gate of gates: best - 1) is at least the window's best so far, else 0; cand[j] keeps the largest bid (a
// maximum: the order of the spikes does not matter). off/win/key list each member's windows.
// Samples side by side: member s is member s % n_source of sample s / n_source, whose windows start at
// (s / n_source) * n_gates.
template <int32_t n_source, int32_t n_gates, typename TC, typename TG>
inline void elect(const int32_t* spikes, int32_t n, const TC* count, bool of_gates, const TG* best, const TG* winner,
                  TG* cand, const int32_t* off, const int32_t* win, const double* key, double K) {
    for (int32_t k = 0; k < n; k++) {
        const int32_t s = spikes[k], copy = s / n_source, local = s - copy * n_source;
        const double c = of_gates ? count[s] - 1 : count[s];
        for (int32_t m = off[local]; m < off[local + 1]; m++) {
            const int32_t j = win[m] + copy * n_gates;
            const double w = winner[j], key_m = key[m];
            const TG bid = static_cast<TG>((c >= best[j]) * (K - key_m + K * (key_m == w)));
            const TG now = cand[j];
            cand[j] = bid > now ? bid : now;  // a maximum without a branch (mispredicted as often as not)
        }
    }
}

// --- counters: a layer's spikes in this step, and their operations (the sum of their fan-outs) ----------------
// of one sample: the spike list of a group of `batch` copies of `size` neurons holds them in ascending order, so
// sample `copy`'s spikes are one range of it.
inline void copy_range(const int32_t* spikespace, int32_t size, int32_t batch, int32_t copy, int32_t* lo,
                       int32_t* hi) {
    const int32_t* spikes = spikespace;
    const int32_t* end = spikespace + spikespace[size * batch];
    *lo = static_cast<int32_t>(std::lower_bound(spikes, end, copy * size) - spikes);
    *hi = static_cast<int32_t>(std::lower_bound(spikes, end, (copy + 1) * size) - spikes);
}

inline int32_t copy_spikes(const int32_t* spikespace, int32_t size, int32_t batch, int32_t copy) {
    int32_t lo, hi;
    copy_range(spikespace, size, batch, copy, &lo, &hi);
    return hi - lo;
}

inline int32_t copy_operations(const int32_t* spikespace, int32_t size, int32_t batch, int32_t copy,
                               const int32_t* fanout) {
    int32_t lo, hi;
    copy_range(spikespace, size, batch, copy, &lo, &hi);
    int64_t sum = 0;
    for (int32_t k = lo; k < hi; k++) sum += fanout[spikespace[k] - copy * size];
    return static_cast<int32_t>(sum);
}

}  // namespace netspec
