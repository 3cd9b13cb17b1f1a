#pragma once
// The tensor-backend concept: the few operations attribution algorithms need, so each
// algorithm is written once and runs on LibTorch (real CNNs, autograd) and on xtensor
// (analytic models with closed-form gradients, for exact tests of the axioms).
//
// Tensors are batches: dimension 0 indexes the items. Elementwise `+ - *` between tensors
// of one shape and `* double` come from the tensor types themselves.
#include <array>
#include <concepts>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "salient/core/target.hpp"

namespace salient {

namespace detail {
// "[1,3,16,16]", for messages.
inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t d = 0; d < shape.size(); ++d) out << (d ? "," : "") << shape[d];
  out << "]";
  return out.str();
}

// separable_filter's checks, one for every backend: one image [1, C, H, W] and as many H x H
// as W x W operators; returns their count.
inline int64_t separable_operator_count(const std::vector<int64_t>& shape, std::size_t vertical, std::size_t horizontal) {
  if (shape.size() != 4 || shape[0] != 1) fail("separable_filter needs one image [1, C, H, W], got ", shape_text(shape));
  const auto height = static_cast<std::size_t>(shape[2]), width = static_cast<std::size_t>(shape[3]);
  const std::size_t count = height == 0 ? 0 : vertical / (height * height);
  if (count * height * height != vertical || count * width * width != horizontal)
    fail("separable_filter: ", vertical, " and ", horizontal, " operator values do not make pairs of ", height, "x", height,
         " and ", width, "x", width, " operators");
  return static_cast<int64_t>(count);
}
}  // namespace detail

// Model scores for a target ([N]) and their gradient w.r.t. the input (input's shape).
template <class Tensor>
struct ScoredGradient {
  Tensor scores;
  Tensor gradient;
};

template <class B>
concept TensorBackend = requires(const typename B::Tensor& t, typename B::Tensor& acc,
                                 const std::vector<typename B::Tensor>& parts, int64_t n,
                                 const std::vector<int64_t>& rows, const std::vector<double>& alphas,
                                 const std::vector<uint64_t>& seeds,
                                 double s, std::string_view what,
                                 const ResolvedTarget<typename B::Tensor>& target) {
  typename B::Tensor;
  { B::rows(t) } -> std::same_as<int64_t>;                       // batch size
  { B::slice_rows(t, n, n) } -> std::same_as<typename B::Tensor>;  // items [begin, end)
  { B::concat_rows(parts) } -> std::same_as<typename B::Tensor>;
  { B::take_rows(t, rows) } -> std::same_as<typename B::Tensor>;             // t[rows]
  // [start + a_0 delta, start + a_1 delta, ...] (step-major), as one batch.
  { B::lerp_batch(t, t, alphas) } -> std::same_as<typename B::Tensor>;
  { B::zeros_like(t) } -> std::same_as<typename B::Tensor>;
  { B::abs(t) } -> std::same_as<typename B::Tensor>;
  // acc += sum_k weights[k] * t[k-th block of rows(acc) rows] (t is step-major).
  { B::add_weighted_blocks(acc, t, alphas) };
  { B::add_rows_grouped(acc, t, n, n) };  // acc[(first + r) / group] += t[r]
  // Adds N(0, stdev^2) noise in place, row r drawn from a generator seeded with seeds[r].
  { B::add_normal_noise(acc, s, seeds) };
  // Baseline broadcast to the inputs' shape (scalar, one item, or one per item).
  { B::broadcast_to(t, t) } -> std::same_as<typename B::Tensor>;
  { B::row_sums(t) } -> std::same_as<std::vector<double>>;
  { B::to_vector(t) } -> std::same_as<std::vector<double>>;     // a [N] tensor
  { B::argmax_rows(t) } -> std::same_as<std::vector<int64_t>>;  // per item of [N, K]
  { B::select(t, target) } -> std::same_as<typename B::Tensor>;  // [N, K] -> [N] scores
  { B::check_finite(t, what) };                                  // throws on NaN/Inf
  // For the forward-only (perturbation) family: masks and maps are made as plain doubles
  // and become tensors with the inputs' element type and device.
  { B::shape(t) } -> std::same_as<std::vector<int64_t>>;
  { B::reshape(t, rows) } -> std::same_as<typename B::Tensor>;
  { B::from_values(alphas, rows, t) } -> std::same_as<typename B::Tensor>;  // like t
  { B::value_range(t) } -> std::same_as<std::array<double, 2>>;            // min, max
  { B::labels(t) } -> std::same_as<std::vector<int64_t>>;  // an integer label map, flattened
  // x * m + fill * (1 - m): x and fill [1 or M, C, H, W], masks [M, 1, H, W] -> [M, C, H, W].
  { B::blend(t, t, t) } -> std::same_as<typename B::Tensor>;
  { B::softmax_rows(t) } -> std::same_as<typename B::Tensor>;  // over dimension 1 of [N, K]
  // A separable linear filter of one image [1, C, H, W] by P operator pairs, V_p [H, H] and
  // W_p [W, W] (row-major doubles, P of each): [P, C, H, W] = V_p x W_p^T per channel,
  // computed in double and rounded to t's element type after each axis (as SciPy's
  // ndimage filters round to the input's type after each axis).
  { B::separable_filter(t, alphas, alphas) } -> std::same_as<typename B::Tensor>;
};

}  // namespace salient
