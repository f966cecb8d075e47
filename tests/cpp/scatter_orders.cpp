// netspec::scatter_by_tap against netspec::scatter_one (Brian2's order: spike after spike) and
// netspec::scatter_grouped, on random spikes in several samples side by side: prints one line per geometry and
// variant, "identical" when the targets are bit for bit the same. Built and run by tests/test_kernel_scatter.py.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "netspec_kernels.h"

template <typename T, int H, int W, int C, int OH, int OW, int KH, int KW, int SY, int SX, int PT, int PL, int F,
          bool GATED>
void check(const char* what, int batch) {
    const int n_src = H * W * C, n_tgt = OH * OW * F;
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0.0, 0.3);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<T> w(KH * KW * C * F);
    for (auto& v : w) v = static_cast<T>(normal(rng));
    std::vector<int32_t> pos(n_src);
    for (int i = 0; i < n_src; i++) pos[i] = (i % 5 == 3) ? -1 : i;  // some sources reach nothing
    std::vector<char> gate(static_cast<size_t>(n_tgt) * batch);
    for (auto& g : gate) g = uniform(rng) < 0.8;
    std::vector<std::vector<T>> u(5, std::vector<T>(static_cast<size_t>(n_tgt) * batch));
    for (int step = 0; step < 6; step++) {
        std::vector<int32_t> spikes;
        for (int i = 0; i < n_src * batch; i++)
            if (uniform(rng) < 0.15 + 0.1 * (step % 3)) spikes.push_back(i);
        const int32_t n = static_cast<int32_t>(spikes.size());
        for (int32_t k = 0; k < n; k++) {
            const int32_t copy = spikes[k] / n_src;
            netspec::scatter_one<T, netspec::FULL, H, W, C, OH, OW, KH, KW, SY, SX, PT, PL, F, GATED>(
                spikes[k] - copy * n_src, pos.data(), w.data(), u[0].data() + copy * n_tgt, gate.data() + copy * n_tgt);
        }
#define GEOMETRY T, H, W, C, OH, OW, KH, KW, SY, SX, PT, PL, F, GATED, char, H * W * C, OH * OW * F
        netspec::scatter_grouped<GEOMETRY>(spikes.data(), n, pos.data(), w.data(), u[1].data(), gate.data());
        netspec::scatter_by_tap<GEOMETRY, 1>(spikes.data(), n, pos.data(), w.data(), u[2].data(), gate.data());
        netspec::scatter_by_tap<GEOMETRY, 2>(spikes.data(), n, pos.data(), w.data(), u[3].data(), gate.data());
        netspec::scatter_by_tap<GEOMETRY, H>(spikes.data(), n, pos.data(), w.data(), u[4].data(), gate.data());
#undef GEOMETRY
    }
    const char* names[5] = {"one", "grouped", "by_tap rows=1", "by_tap rows=2", "by_tap rows=H"};
    for (int v = 1; v < 5; v++) {
        const bool same = std::memcmp(u[v].data(), u[0].data(), u[0].size() * sizeof(T)) == 0;
        std::printf("%s %s %s batch %d: %s\n", what, sizeof(T) == 4 ? "float" : "double", names[v], batch,
                    same ? "identical" : "DIFFERENT");
    }
}

int main() {
    check<float, 7, 6, 12, 7, 6, 3, 3, 1, 1, 1, 1, 20, false>("7x6x12 3x3 same, 20 filters", 3);
    check<float, 7, 6, 12, 7, 6, 3, 3, 1, 1, 1, 1, 20, true>("7x6x12 3x3 same, 20 filters, gated", 3);
    check<double, 9, 8, 5, 4, 4, 3, 2, 2, 2, 0, 1, 67, false>("9x8x5 3x2 stride 2, 67 filters", 2);
    check<float, 9, 9, 3, 5, 5, 5, 5, 2, 2, 2, 2, 8, true>("9x9x3 5x5 stride 2, 8 filters, gated", 4);
    check<double, 1, 1, 40, 1, 1, 1, 1, 1, 1, 0, 0, 33, false>("dense 40 -> 33", 5);
    return 0;
}
