#pragma once
// Helpers shared by the xtensor-backend tests.
#include <cstdint>
#include <random>
#include <vector>

#include <xtensor/xarray.hpp>

namespace salient::test {
// Normal(0, scale^2) values of the given shape from a seeded generator.
inline xt::xarray<double> random_tensor(std::vector<size_t> shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<double> normal(0.0, scale);
  xt::xarray<double> t(shape);
  for (auto& v : t) v = normal(generator);
  return t;
}
}  // namespace salient::test
