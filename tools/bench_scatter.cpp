// The kernel-form projection alone, on the geometries of LeNet's and VGG-16's convolutions, random spikes at a given
// density in `batch` samples side by side, float and double: the ns per synaptic event of netspec::scatter_one (a
// spike adds its kernel slice to its targets, spike after spike), netspec::scatter_grouped (a target tile takes the
// rows of every channel spiking at a pixel, pixel after pixel) and netspec::scatter_by_tap (the same, a block of
// ROWS input rows of all samples at a time, tap after tap: what netspec uses), on the same spikes, each the best of
// `reps` runs taken in turn (the machine's other load moves single runs), and whether the results are bit-identical.
//
//   g++ -O3 -march=native -std=c++11 -I netspec/brian/runner tools/bench_scatter.cpp -o /tmp/bench_scatter
//   /tmp/bench_scatter [density=0.09] [steps=8] [batch=8] [reps=7]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "netspec_kernels.h"

#define GEOMETRY T, H, W, C, OH, OW, K, K, S, S, P, P, F, false, char, H * W * C, OH * OW * F
enum Variant { PUSH, GROUPED, BY_TAP_1, BY_TAP_2, BY_TAP_4, VARIANTS };
static const char* NAMES[VARIANTS] = {"push", "grouped", "by_tap rows=1", "rows=2", "rows=4"};

// each variant a function of its own, so that profilers (valgrind --tool=cachegrind) tell them apart
template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
__attribute__((noinline)) void push(const std::vector<int32_t>& s, const int32_t* pos, const T* w, T* u) {
    const char* gate = nullptr;
    for (int32_t k = 0; k < static_cast<int32_t>(s.size()); k++) {
        const int32_t copy = s[k] / (H * W * C);
        netspec::scatter_one<T, netspec::FULL, H, W, C, OH, OW, K, K, S, S, P, P, F, false>(
            s[k] - copy * H * W * C, pos, w, u + copy * OH * OW * F, gate);
    }
}

template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
__attribute__((noinline)) void grouped(const std::vector<int32_t>& s, const int32_t* pos, const T* w, T* u) {
    const char* gate = nullptr;
    netspec::scatter_grouped<GEOMETRY>(s.data(), s.size(), pos, w, u, gate);
}

template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F, int ROWS>
__attribute__((noinline)) void by_tap(const std::vector<int32_t>& s, const int32_t* pos, const T* w, T* u) {
    const char* gate = nullptr;
    netspec::scatter_by_tap<GEOMETRY, ROWS>(s.data(), s.size(), pos, w, u, gate);
}

template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
void run(const char* what, double density, int steps, int batch, int reps) {
    std::mt19937 rng(1);
    std::normal_distribution<double> normal(0.0, 0.1);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const int n_src = H * W * C, n_tgt = OH * OW * F;
    std::vector<T> w(K * K * C * F);
    for (auto& v : w) v = static_cast<T>(normal(rng));
    std::vector<int32_t> pos(n_src);
    for (int i = 0; i < n_src; i++) pos[i] = i;
    std::vector<int64_t> fan(n_src, 0);  // fan-out of every source neuron, for the event count
    for (int i = 0; i < n_src; i++)
        netspec::each_target<OH, OW, K, K, S, S, P, P>(i / (C * W), (i / C) % W, [&](int32_t, int32_t, int32_t) {
            fan[i] += F;
        });
    std::vector<std::vector<int32_t>> spikes(steps);
    long long events = 0;
    for (auto& s : spikes)
        for (int i = 0; i < n_src * batch; i++)
            if (uniform(rng) < density) {
                s.push_back(i);
                events += fan[i % n_src];
            }
    std::vector<std::vector<T>> u(VARIANTS, std::vector<T>(static_cast<size_t>(n_tgt) * batch));
    double best[VARIANTS];
    for (int v = 0; v < VARIANTS; v++) best[v] = 1e30;
    for (int rep = 0; rep < reps; rep++)
        for (int v = 0; v < VARIANTS; v++) {
            std::fill(u[v].begin(), u[v].end(), T(0));
            T* out = u[v].data();
            const auto t0 = std::chrono::steady_clock::now();
            for (auto& s : spikes) {
                if (v == PUSH) push<T, H, W, C, OH, OW, K, S, P, F>(s, pos.data(), w.data(), out);
                if (v == GROUPED) grouped<T, H, W, C, OH, OW, K, S, P, F>(s, pos.data(), w.data(), out);
                if (v == BY_TAP_1) by_tap<T, H, W, C, OH, OW, K, S, P, F, 1>(s, pos.data(), w.data(), out);
                if (v == BY_TAP_2) by_tap<T, H, W, C, OH, OW, K, S, P, F, 2>(s, pos.data(), w.data(), out);
                if (v == BY_TAP_4) by_tap<T, H, W, C, OH, OW, K, S, P, F, 4>(s, pos.data(), w.data(), out);
            }
            const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (t < best[v]) best[v] = t;
        }
    bool same = true;
    for (int v = 1; v < VARIANTS; v++)
        same = same && std::memcmp(u[v].data(), u[PUSH].data(), u[PUSH].size() * sizeof(T)) == 0;
    std::printf("%-36s %-6s %7.1f M events, ns/event:", what, sizeof(T) == 4 ? "float" : "double", events / 1e6);
    for (int v = 0; v < VARIANTS; v++) std::printf("  %s %.3f", NAMES[v], best[v] / events * 1e9);
    std::printf("  (grouped / rows=2 %.2fx)  %s\n", best[GROUPED] / best[BY_TAP_2], same ? "identical" : "DIFFERENT");
}

int main(int argc, char** argv) {
    const double density = argc > 1 ? std::atof(argv[1]) : 0.09;
    const int steps = argc > 2 ? std::atoi(argv[2]) : 8;
    const int batch = argc > 3 ? std::atoi(argv[3]) : 8;
    const int reps = argc > 4 ? std::atoi(argv[4]) : 7;
    std::printf("spike density %.3f per source neuron and step, %d steps, %d samples side by side, best of %d\n",
                density, steps, batch, reps);
    run<float, 12, 12, 16, 8, 8, 5, 1, 0, 32>("LeNet conv2 12x12x16 -> 8x8x32, 5x5", density, steps, batch, reps);
    run<float, 32, 32, 64, 32, 32, 3, 1, 1, 64>("VGG-16 conv1_2 32x32x64, 3x3", density, steps, batch, reps);
    run<float, 16, 16, 64, 16, 16, 3, 1, 1, 128>("VGG-16 conv2_1 16x16x64 -> 128, 3x3", density, steps, batch, reps);
    run<float, 16, 16, 128, 16, 16, 3, 1, 1, 128>("VGG-16 conv2_2 16x16x128, 3x3", density, steps, batch, reps);
    run<float, 8, 8, 256, 8, 8, 3, 1, 1, 256>("VGG-16 conv3_2 8x8x256, 3x3", density, steps, batch, reps);
    run<float, 4, 4, 256, 4, 4, 3, 1, 1, 512>("VGG-16 conv4_1 4x4x256 -> 512, 3x3", density, steps, batch, reps);
    run<float, 4, 4, 512, 4, 4, 3, 1, 1, 512>("VGG-16 conv4_2 4x4x512, 3x3", density, steps, batch, reps);
    run<float, 2, 2, 512, 2, 2, 3, 1, 1, 512>("VGG-16 conv5_2 2x2x512, 3x3", density, steps, batch, reps);
    run<double, 8, 8, 256, 8, 8, 3, 1, 1, 256>("VGG-16 conv3_2 8x8x256, 3x3", density, steps, batch, reps);
    run<double, 4, 4, 512, 4, 4, 3, 1, 1, 512>("VGG-16 conv4_2 4x4x512, 3x3", density, steps, batch, reps);
    return 0;
}
