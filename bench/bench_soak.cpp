// Soak benchmark: every method family called many times in one process on one model, the
// resident memory sampled after each call. Target (issue 21): after a warm-up, resident memory
// stays within 5% of what it was at the end of the warm-up (nothing accumulates per call).
//
//   bench_soak MODEL.pt [CALLS]        prints a Markdown report (CALLS: 500 by default, 60..5000)
//
// Input: one 96x96 item (random, seeded), target class 7; each method's settings small enough
// that 500 calls of every family take minutes. Warm-up: the first 10% of a method's calls.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_soak MODEL.pt [CALLS]\n";
    return 2;
  }
  const long calls = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 500;
  if (calls < 60 || calls > 5000) {
    std::cerr << "bench_soak: CALLS must be 60..5000\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  const std::vector<std::pair<std::string, salient::MethodSettings>> methods{
      {"saliency", {}},
      {"integrated_gradients", {.options = {{"steps", "16"}}}},
      {"smoothgrad", {.options = {{"samples", "8"}}, .seed = 3}},
      {"gradcam", {}},
      {"gradcampp", {}},
      {"guided_backprop", {}},
      {"lrp", {}},
      {"deeplift", {}},
      {"occlusion", {.options = {{"window", "16"}, {"stride", "16"}}, .batch_size = 16}},
      {"feature_ablation", {.batch_size = 16, .segments = "grid:16"}},
      {"lime", {.options = {{"samples", "32"}}, .batch_size = 16, .seed = 5, .masker = "layer", .segments = "grid:16"}},
      {"kernelshap", {.options = {{"samples", "32"}}, .batch_size = 16, .seed = 6, .segments = "grid:16"}},
      {"rise", {.options = {{"masks", "32"}}, .batch_size = 16, .seed = 7}},
  };
  try {
    auto model = salient::TorchModel::load(argv[1], {.optimize_for_inference = true});
    torch::manual_seed(0);
    const auto x = torch::randn({1, 3, 96, 96});
    const long warm_up = calls / 10;
    std::cout << "### Soak (bench/bench_soak.cpp)\n\nModel " << argv[1] << ", threads: " << threads << ", one 96x96 input, "
              << calls << " calls per method in one process (methods one after another), resident memory after each call; "
              << "growth: the largest resident size after the warm-up (" << warm_up
              << " calls) over the size at its end. Target: <= 5%.\n\n"
              << "| method | ms per call | RSS after warm-up (MiB) | largest after (MiB) | at the end (MiB) | growth | met? |\n"
              << "|---|---|---|---|---|---|---|\n";
    bool all_met = true;
    for (const auto& [name, settings] : methods) {
      const auto method = salient::find_method(name).bind(settings);
      double base = 0, largest = 0, last = 0;
      const auto start = std::chrono::steady_clock::now();
      for (long call = 1; call <= calls; ++call) {
        method(model, x, 7);
        last = static_cast<double>(salient::bench::status_kib("VmRSS:")) / 1024.0;
        if (call == warm_up) base = last;
        if (call > warm_up) largest = std::max(largest, last);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double growth = largest / base - 1.0;
      const bool met = growth <= 0.05;
      all_met = all_met && met;
      std::cout << "| " << name << " | " << std::setprecision(3) << 1000.0 * seconds / static_cast<double>(calls) << " | "
                << std::fixed << std::setprecision(1) << base << " | " << largest << " | " << last << " | "
                << std::setprecision(2) << 100.0 * growth << "% | " << (met ? "yes" : "**no**") << " |\n"
                << std::defaultfloat;
    }
    return all_met ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "bench_soak: error: " << e.what() << "\n";
    return 2;
  }
}
