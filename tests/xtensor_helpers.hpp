#pragma once
// Helpers shared by the xtensor-backend tests.
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xsort.hpp>

namespace salient::test {
// Normal(0, scale^2) values of the given shape from a seeded generator.
inline xt::xarray<double> random_tensor(std::vector<size_t> shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<double> normal(0.0, scale);
  xt::xarray<double> t(shape);
  for (auto& v : t) v = normal(generator);
  return t;
}

// max |a - b| of two arrays of one shape.
inline double max_difference(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  REQUIRE(a.shape() == b.shape());
  return xt::amax(xt::abs(a - b))();
}
}  // namespace salient::test
