#pragma once
// What the benchmarks share: process settings (as the command-line tools use them) and
// interleaved best-of-N timing.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/cli.hpp"

namespace salient::bench {

// A kiB figure of this process from /proc/self/status ("VmRSS:", "VmHWM:"); -1 when absent.
inline long status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size()));
  return -1;
}

// All cores (or SALIENT_BENCH_THREADS, 1..cores), simple TorchScript executor, freed memory
// kept in the heap; returns the threads.
inline int configure() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = cores;
  if (const char* text = std::getenv("SALIENT_BENCH_THREADS")) threads = std::clamp(std::atoi(text), 1, cores);
  cli::configure_process(threads);
  return threads;
}

// Best time of `repeats` runs of each variant, run interleaved (after one warm-up each) so
// that slow drifts of the machine hit all variants alike.
inline std::vector<double> interleaved_best(int repeats, const std::vector<std::function<void()>>& variants) {
  std::vector<double> best(variants.size(), 1e30);
  for (const auto& v : variants) v();
  for (int r = 0; r < repeats; ++r)
    for (std::size_t i = 0; i < variants.size(); ++i) {
      auto start = std::chrono::steady_clock::now();
      variants[i]();
      best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  return best;
}

}  // namespace salient::bench
