#pragma once
// The seeded random draws of the random methods (RISE's grids, LIME's and KernelSHAP's
// coalitions): the same numbers for a seed on every platform, standard library and backend.
// std::mt19937_64's output is fixed by the standard, but std's distributions are not, so the
// draws from it are written out here.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "salient/core/error.hpp"

namespace salient::detail {

// A well-spread seed for draw `sample` of batch item `item` (splitmix64 of the three), so
// that per-item draws do not depend on how items are batched.
inline uint64_t mix_seed(uint64_t seed, uint64_t item, uint64_t sample) {
  uint64_t z = seed ^ (item * 0x9E3779B97F4A7C15ull) ^ (sample * 0xC2B2AE3D27D4EB4Full);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1), from the top 53 bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Normal(mean, stdev^2) by the Box-Muller transform (two uniform draws per value).
  double normal(double mean = 0.0, double stdev = 1.0) {
    const double u = 1.0 - uniform(), v = uniform();  // u in (0, 1]
    return mean + stdev * std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * 3.14159265358979323846 * v);
  }
  // Uniform in [0, n) without modulo bias.
  int64_t below(int64_t n) {
    if (n < 1) fail("Random::below needs n >= 1, got ", n);
    const uint64_t range = static_cast<uint64_t>(n);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t draw;
    do draw = engine_();
    while (draw >= limit);
    return static_cast<int64_t>(draw % range);
  }
  // An index drawn with probability proportional to weights[i] (non-negative, not all 0).
  int64_t weighted(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    if (!(total > 0)) fail("Random::weighted needs a positive total weight");
    double u = uniform() * total;
    for (std::size_t i = 0; i + 1 < weights.size(); ++i) {
      if (u < weights[i]) return static_cast<int64_t>(i);
      u -= weights[i];
    }
    return static_cast<int64_t>(weights.size()) - 1;
  }
  // k distinct indices of [0, n), in random order (a partial Fisher-Yates shuffle).
  std::vector<int64_t> choose(int64_t n, int64_t k) {
    if (k < 0 || k > n) fail("Random::choose: cannot choose ", k, " of ", n);
    std::vector<int64_t> order(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = 0; i < k; ++i) std::swap(order[i], order[i + below(n - i)]);
    order.resize(static_cast<std::size_t>(k));
    return order;
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace salient::detail
