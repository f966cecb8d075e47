// The kernel-form projection alone, netspec::scatter_one (a spike adds its kernel slice to its targets) against
// netspec::scatter_grouped (a target tile takes the rows of every channel spiking at a pixel), on the geometries of
// LeNet's and VGG-16's convolutions, random spikes at a given density, float and double: the ns per synaptic event
// of each, on the same spikes, and whether the two results are bit-identical.
//
//   g++ -O3 -march=native -std=c++11 -I netspec/brian/runner tools/bench_scatter.cpp -o /tmp/bench_scatter
//   /tmp/bench_scatter [density=0.1] [steps=50]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "netspec_kernels.h"

// each variant a function of its own, so that profilers (valgrind --tool=cachegrind) tell them apart
template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
__attribute__((noinline)) void push(const std::vector<int32_t>& s, const int32_t* pos, const T* w, T* u) {
    const char* gate = nullptr;
    for (int32_t k = 0; k < static_cast<int32_t>(s.size()); k++)
        netspec::scatter_one<T, netspec::FULL, H, W, C, OH, OW, K, K, S, S, P, P, F, false>(s[k], pos, w, u, gate);
}

template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
__attribute__((noinline)) void grouped(const std::vector<int32_t>& s, const int32_t* pos, const T* w, T* u) {
    const char* gate = nullptr;
    netspec::scatter_grouped<T, H, W, C, OH, OW, K, K, S, S, P, P, F, false, char, H * W * C, OH * OW * F>(
        s.data(), s.size(), pos, w, u, gate);
}

template <typename T, int H, int W, int C, int OH, int OW, int K, int S, int P, int F>
void run(const char* what, double density, int steps) {
    std::mt19937 rng(1);
    std::normal_distribution<double> normal(0.0, 0.1);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const int n_src = H * W * C, n_tgt = OH * OW * F;
    std::vector<T> w(K * K * C * F);
    for (auto& v : w) v = static_cast<T>(normal(rng));
    std::vector<int32_t> pos(n_src);
    for (int i = 0; i < n_src; i++) pos[i] = i;
    std::vector<std::vector<int32_t>> spikes(steps);
    long long events = 0;
    std::vector<int64_t> fan(n_src, 0);
    for (int i = 0; i < n_src; i++) {  // fan-out of every source neuron, for the event count
        const int c = i % C, ix = (i / C) % W, iy = i / (C * W);
        (void)c;
        int n = 0;
        for (int ky = 0; ky < K; ky++) {
            const int ty = iy + P - ky;
            if (ty < 0 || ty % S || ty / S >= OH) continue;
            for (int kx = 0; kx < K; kx++) {
                const int tx = ix + P - kx;
                if (tx < 0 || tx % S || tx / S >= OW) continue;
                n += F;
            }
        }
        fan[i] = n;
    }
    for (auto& s : spikes)
        for (int i = 0; i < n_src; i++)
            if (uniform(rng) < density) {
                s.push_back(i);
                events += fan[i];
            }
    std::vector<T> u_push(n_tgt, 0);
    auto t0 = std::chrono::steady_clock::now();
    for (auto& s : spikes) push<T, H, W, C, OH, OW, K, S, P, F>(s, pos.data(), w.data(), u_push.data());
    auto t1 = std::chrono::steady_clock::now();
    const double push = std::chrono::duration<double>(t1 - t0).count();
    double sum = 0;
    for (auto v : u_push) sum += v;
    std::vector<T> u_g(n_tgt, 0);
    auto t2 = std::chrono::steady_clock::now();
    for (auto& s : spikes) grouped<T, H, W, C, OH, OW, K, S, P, F>(s, pos.data(), w.data(), u_g.data());
    const double group = std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count();
    const bool same = std::memcmp(u_g.data(), u_push.data(), n_tgt * sizeof(T)) == 0;
    std::printf("%-38s %-6s %7.1f M events  push %6.3f  grouped %6.3f ns/event (%.2fx)  %s (checksum %.6g)\n", what,
                sizeof(T) == 4 ? "float" : "double", events / 1e6, push / events * 1e9, group / events * 1e9, push / group,
                same ? "identical" : "DIFFERENT", sum);
}

int main(int argc, char** argv) {
    const double density = argc > 1 ? std::atof(argv[1]) : 0.1;
    const int steps = argc > 2 ? std::atoi(argv[2]) : 50;
    std::printf("spike density %.3f per source neuron and step, %d steps\n", density, steps);
    run<double, 12, 12, 16, 8, 8, 5, 1, 0, 32>("LeNet conv2 12x12x16 -> 8x8x32, 5x5", density, steps);
    run<float, 12, 12, 16, 8, 8, 5, 1, 0, 32>("LeNet conv2 12x12x16 -> 8x8x32, 5x5", density, steps);
    run<double, 32, 32, 64, 32, 32, 3, 1, 1, 64>("VGG-16 conv1_2 32x32x64, 3x3", density, steps);
    run<float, 32, 32, 64, 32, 32, 3, 1, 1, 64>("VGG-16 conv1_2 32x32x64, 3x3", density, steps);
    run<double, 8, 8, 256, 8, 8, 3, 1, 1, 256>("VGG-16 conv3_2 8x8x256, 3x3", density, steps);
    run<float, 8, 8, 256, 8, 8, 3, 1, 1, 256>("VGG-16 conv3_2 8x8x256, 3x3", density, steps);
    run<double, 4, 4, 512, 4, 4, 3, 1, 1, 512>("VGG-16 conv4_2 4x4x512, 3x3", density, steps);
    run<float, 4, 4, 512, 4, 4, 3, 1, 1, 512>("VGG-16 conv4_2 4x4x512, 3x3", density, steps);
    run<double, 2, 2, 512, 2, 2, 3, 1, 1, 512>("VGG-16 conv5_2 2x2x512, 3x3", density, steps);
    run<float, 2, 2, 512, 2, 2, 3, 1, 1, 512>("VGG-16 conv5_2 2x2x512, 3x3", density, steps);
    return 0;
}
