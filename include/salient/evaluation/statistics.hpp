#pragma once
// Statistics the evaluation measures share, on plain vectors (LibTorch-free).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace salient::detail {

// Quantus' normalise_by_max on one item: divide by the largest |value| (all zeros: unchanged).
inline void normalise_by_max(std::span<double> a) {
  double largest = 0;
  for (const double v : a) largest = std::max(largest, std::abs(v));
  if (largest > 0)
    for (auto& v : a) v /= largest;
}

// Quantus' normalise_by_average_second_moment_estimate on one item: divide by sqrt(mean(a^2))
// (all zeros: unchanged).
inline void normalise_by_second_moment(std::span<double> a) {
  if (a.empty()) return;
  double sum = 0;
  for (const double v : a) sum += v * v;
  const double root = std::sqrt(sum / static_cast<double>(a.size()));
  if (root > 0)
    for (auto& v : a) v /= root;
}

// Pearson correlation; 0 when either side is constant (SciPy returns NaN there), so that "no
// variation" reads as "no linear relation" in averages over many maps.
inline double pearson_of(const std::vector<double>& x, const std::vector<double>& y) {
  const auto [xmin, xmax] = std::minmax_element(x.begin(), x.end());
  const auto [ymin, ymax] = std::minmax_element(y.begin(), y.end());
  if (*xmin == *xmax || *ymin == *ymax) return 0.0;
  const auto n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  // Rounding can push |r| a hair past 1.
  return std::clamp(sxy / (std::sqrt(sxx) * std::sqrt(syy)), -1.0, 1.0);
}

// Ranks 1..n, ties sharing their average rank (scipy.stats.rankdata's 'average').
inline std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<std::pair<double, size_t>> order(values.size());
  for (size_t i = 0; i < values.size(); ++i) order[i] = {values[i], i};
  std::sort(order.begin(), order.end());
  std::vector<double> ranks(values.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && order[end].first == order[begin].first) ++end;
    // Ranks begin+1 .. end share their mean.
    const double rank = 0.5 * static_cast<double>(begin + 1 + end);
    for (size_t i = begin; i < end; ++i) ranks[order[i].second] = rank;
    begin = end;
  }
  return ranks;
}

// Spearman rank correlation (scipy.stats.spearmanr): the Pearson correlation of the average
// ranks; 0 when either side is constant.
inline double spearman_of(const std::vector<double>& x, const std::vector<double>& y) {
  return pearson_of(average_ranks(x), average_ranks(y));
}

}  // namespace salient::detail
