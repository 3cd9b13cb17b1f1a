#pragma once
// Complexity: how concentrated is an attribution map? Quantus 0.6's three measures, with its
// defaults: each map is first divided by its largest absolute value (normalise_by_max; an
// all-zero map is left as it is), then its absolute value is taken (abs=True).
// - sparseness (Chalasani et al. 2020, "Concise Explanations of Neural Networks using
//   Adversarial Training"): the Gini index of the values plus 1e-7, sorted ascending:
//   sum_i (2i - n - 1) a_i / (n sum_i a_i). 0 for a uniform map, (n - 1) / (n (1 + n 1e-7)) ~
//   1 - 1/n for a one-hot map. Higher is sparser.
// - complexity (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
//   Explanations"): the Shannon entropy (natural log) of p = |a| / sum |a|: 0 for a one-hot
//   map, log n for a uniform one. Lower is simpler. An all-zero map has no distribution: NaN
//   (as Quantus).
// - effective complexity (Nguyen & Martínez 2020, "On quantitative aspects of model
//   interpretability"): how many values exceed eps (1e-5) after the normalisation.
// Every value of an item counts (Quantus expects one-channel maps [N,1,H,W]; pass those for
// its numbers, or [N,C,H,W] to count channels separately). One result per item (first axis).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/evaluation/similarity.hpp"
#include "salient/evaluation/statistics.hpp"

namespace salient {

struct ComplexityOptions {
  bool normalise = true;  // divide each map by its largest |value| first (Quantus' normalise_by_max)
  bool abs = true;        // then take absolute values (Quantus' abs)
  double eps = 1e-5;      // effective complexity: values above this count
};

template <class Visit>
void for_each_option(ComplexityOptions& o, Visit&& visit) {
  visit("normalise", o.normalise), visit("abs", o.abs), visit("eps", o.eps);
}

namespace detail {
// One item's values after Quantus' preprocessing.
inline std::vector<double> complexity_values(std::vector<double> a, const ComplexityOptions& options) {
  if (options.normalise) normalise_by_max(a);
  if (options.abs)
    for (auto& v : a) v = std::abs(v);
  return a;
}

inline double gini_sparseness(std::vector<double> a) {
  for (auto& v : a) v += 1e-7;
  std::sort(a.begin(), a.end());
  const auto n = static_cast<double>(a.size());
  double weighted = 0, total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    weighted += (2.0 * static_cast<double>(i + 1) - n - 1.0) * a[i];
    total += a[i];
  }
  return weighted / (n * total);
}

inline double entropy_complexity(const std::vector<double>& a) {
  double total = 0;
  for (const double v : a) total += std::abs(v);
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  double entropy = 0;
  for (const double v : a)
    if (v != 0) {
      const double p = std::abs(v) / total;
      entropy -= p * std::log(p);
    }
  return entropy;
}

// The items of a batch [N, ...] as finite doubles, one vector per item.
inline std::vector<std::vector<double>> metric_items(const torch::Tensor& attributions, std::string_view what) {
  if (!attributions.defined() || attributions.dim() < 2)
    fail(what, " needs attributions [N, ...] with one map per item, got ",
         attributions.defined() ? shape_string(attributions) : std::string("an undefined tensor"));
  std::vector<std::vector<double>> items;
  for (int64_t i = 0; i < attributions.size(0); ++i)
    items.push_back(similarity_values(attributions[i], what, "item " + std::to_string(i), true));
  return items;
}

template <class Measure>
std::vector<double> per_item(const torch::Tensor& attributions, std::string_view what, const ComplexityOptions& options,
                             Measure&& measure) {
  std::vector<double> scores;
  for (auto& item : metric_items(attributions, what)) scores.push_back(measure(complexity_values(std::move(item), options)));
  return scores;
}
}  // namespace detail

inline std::vector<double> sparseness(const torch::Tensor& attributions, const ComplexityOptions& options = {}) {
  return detail::per_item(attributions, "sparseness", options, [](const std::vector<double>& a) { return detail::gini_sparseness(a); });
}

inline std::vector<double> complexity(const torch::Tensor& attributions, const ComplexityOptions& options = {}) {
  return detail::per_item(attributions, "complexity", options, [](const std::vector<double>& a) { return detail::entropy_complexity(a); });
}

inline std::vector<double> effective_complexity(const torch::Tensor& attributions, const ComplexityOptions& options = {}) {
  if (!(options.eps >= 0) || !std::isfinite(options.eps)) detail::fail("effective complexity eps must be >= 0, got ", options.eps);
  return detail::per_item(attributions, "effective complexity", options, [&](const std::vector<double>& a) {
    return static_cast<double>(std::count_if(a.begin(), a.end(), [&](double v) { return std::abs(v) > options.eps; }));
  });
}

}  // namespace salient
