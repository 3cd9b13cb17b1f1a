#pragma once
// The xtensor backend: double-precision tensors and analytic models whose gradients are
// known in closed form (linear, quadratic, a small tanh MLP). Attribution axioms
// (completeness of integrated gradients, SmoothGrad of a linear model, ...) are tested on
// them against exact answers. Needs no LibTorch.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"
#include "salient/core/model.hpp"

namespace salient {

struct XtensorBackend {
  using Tensor = xt::xarray<double>;

  static int64_t rows(const Tensor& t) {
    return t.dimension() == 0 ? 0 : static_cast<int64_t>(t.shape()[0]);
  }
  static int64_t row_size(const Tensor& t) {
    return rows(t) == 0 ? 0 : static_cast<int64_t>(t.size()) / rows(t);
  }
  // Rows are contiguous (row-major storage), so row operations work on raw spans.
  static Tensor slice_rows(const Tensor& t, int64_t begin, int64_t end) {
    auto shape = t.shape();
    shape[0] = static_cast<size_t>(end - begin);
    Tensor out(shape);
    std::copy(t.data() + begin * row_size(t), t.data() + end * row_size(t), out.data());
    return out;
  }
  static Tensor concat_rows(const std::vector<Tensor>& parts) {
    if (parts.empty()) detail::fail("concat_rows: nothing to concatenate");
    auto shape = parts.front().shape();
    int64_t total = 0;
    for (const auto& p : parts) total += rows(p);
    shape[0] = static_cast<size_t>(total);
    Tensor out = xt::zeros<double>(shape);
    double* at = out.data();
    for (const auto& p : parts) at = std::copy(p.begin(), p.end(), at);
    return out;
  }
  static Tensor take_rows(const Tensor& t, const std::vector<int64_t>& indices) {
    std::vector<Tensor> parts;
    for (int64_t r : indices) parts.push_back(slice_rows(t, r, r + 1));
    return concat_rows(parts);
  }
  static Tensor lerp_batch(const Tensor& start, const Tensor& delta, const std::vector<double>& alphas) {
    std::vector<Tensor> parts;
    for (double a : alphas) parts.push_back(start + delta * a);
    return concat_rows(parts);
  }
  static Tensor zeros_like(const Tensor& t) { return xt::zeros<double>(t.shape()); }
  static Tensor abs(const Tensor& t) { return xt::abs(t); }
  static void add_weighted_blocks(Tensor& acc, const Tensor& t, const std::vector<double>& weights) {
    const size_t block = acc.size();
    for (size_t k = 0; k < weights.size(); ++k)
      for (size_t i = 0; i < block; ++i) acc.data()[i] += weights[k] * t.data()[k * block + i];
  }
  static void add_rows_grouped(Tensor& acc, const Tensor& t, int64_t first, int64_t group) {
    const int64_t per_row = row_size(t);
    for (int64_t r = 0; r < rows(t); ++r) {
      double* target = acc.data() + (first + r) / group * per_row;
      const double* source = t.data() + r * per_row;
      for (int64_t i = 0; i < per_row; ++i) target[i] += source[i];
    }
  }
  static void add_normal_noise(Tensor& t, double stdev, const std::vector<uint64_t>& seeds) {
    const int64_t per_row = row_size(t);
    for (int64_t r = 0; r < rows(t); ++r) {
      std::mt19937_64 generator(seeds.at(r));
      std::normal_distribution<double> normal(0.0, stdev);
      for (int64_t i = 0; i < per_row; ++i) t.data()[r * per_row + i] += normal(generator);
    }
  }
  static Tensor broadcast_to(const Tensor& baseline, const Tensor& inputs) {
    if (baseline.dimension() == 0 || baseline.size() == 1)
      return xt::zeros<double>(inputs.shape()) + *baseline.begin();
    bool same_item_shape = baseline.dimension() == inputs.dimension() &&
                           std::equal(baseline.shape().begin() + 1, baseline.shape().end(),
                                      inputs.shape().begin() + 1);
    if (same_item_shape && (rows(baseline) == rows(inputs) || rows(baseline) == 1))
      return xt::zeros<double>(inputs.shape()) + baseline;
    detail::fail("baseline of shape ", shape_string(baseline), " does not match inputs of shape ",
                 shape_string(inputs), " (expected a scalar, one item or one per input)");
  }
  static std::vector<double> row_sums(const Tensor& t) {
    std::vector<double> sums(rows(t), 0.0);
    const int64_t per_row = row_size(t);
    for (int64_t i = 0; i < static_cast<int64_t>(t.size()); ++i) sums[i / per_row] += t.data()[i];
    return sums;
  }
  static std::vector<double> to_vector(const Tensor& t) { return {t.begin(), t.end()}; }
  static std::vector<int64_t> argmax_rows(const Tensor& output) {
    check_logits(output);
    std::vector<int64_t> best(rows(output));
    const int64_t classes = row_size(output);
    for (int64_t r = 0; r < rows(output); ++r) {
      const double* row = output.data() + r * classes;
      best[r] = std::max_element(row, row + classes) - row;
    }
    return best;
  }
  static Tensor select(const Tensor& output, const ResolvedTarget<Tensor>& target) {
    if (target.is_custom()) return target.custom(output);
    check_logits(output);
    const int64_t classes = static_cast<int64_t>(output.shape()[1]);
    detail::check_class_range(target.classes, classes);
    if (static_cast<int64_t>(target.classes.size()) != rows(output))
      detail::fail("target has ", target.classes.size(), " classes for ", rows(output), " outputs");
    Tensor scores = xt::zeros<double>({static_cast<size_t>(rows(output))});
    for (int64_t r = 0; r < rows(output); ++r) scores(r) = output(r, target.classes[r]);
    return scores;
  }
  static void check_finite(const Tensor& t, std::string_view what) {
    for (double v : t)
      if (!std::isfinite(v)) detail::fail(what, " contains NaN or Inf");
  }

  static std::vector<int64_t> shape(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }
  static std::string shape_string(const Tensor& t) { return detail::shape_text(shape(t)); }
  static Tensor reshape(const Tensor& t, const std::vector<int64_t>& shape) {
    Tensor out = t;
    out.reshape(std::vector<size_t>(shape.begin(), shape.end()));
    return out;
  }
  static Tensor from_values(const std::vector<double>& values, const std::vector<int64_t>& shape, const Tensor&) {
    Tensor out = xt::adapt(values, std::vector<size_t>{values.size()});
    return reshape(out, shape);
  }
  static std::array<double, 2> value_range(const Tensor& t) {
    if (t.size() == 0) return {0, 0};
    auto [lo, hi] = std::minmax_element(t.begin(), t.end());
    return {*lo, *hi};
  }
  static std::vector<int64_t> labels(const Tensor& t) {
    std::vector<int64_t> out;
    out.reserve(t.size());
    for (double v : t) {
      if (!(std::abs(v) <= 0x1p53) || v != std::floor(v)) detail::fail("segments must be an integer label map, got ", v);
      out.push_back(static_cast<int64_t>(v));
    }
    return out;
  }
  // Rows of x and fill repeat when there is one; the mask's single channel covers all.
  static Tensor blend(const Tensor& x, const Tensor& masks, const Tensor& fill) {
    auto shape = x.shape();
    const size_t count = masks.shape()[0], channels = shape[1], pixels = masks.size() / count;
    shape[0] = count;
    Tensor out(shape);
    const size_t per_row = channels * pixels;
    for (size_t r = 0; r < count; ++r) {
      const double* xr = x.data() + (x.shape()[0] == 1 ? 0 : r) * per_row;
      const double* fr = fill.data() + (fill.shape()[0] == 1 ? 0 : r) * per_row;
      const double* mr = masks.data() + r * pixels;
      double* o = out.data() + r * per_row;
      for (size_t c = 0; c < channels; ++c)
        for (size_t p = 0; p < pixels; ++p) o[c * pixels + p] = fr[c * pixels + p] + mr[p] * (xr[c * pixels + p] - fr[c * pixels + p]);
    }
    return out;
  }
  static Tensor softmax_rows(const Tensor& t) {
    check_logits(t);
    Tensor out = t;
    const int64_t classes = row_size(t);
    for (int64_t r = 0; r < rows(t); ++r) {
      double* row = out.data() + r * classes;
      const double top = *std::max_element(row, row + classes);
      double sum = 0;
      for (int64_t k = 0; k < classes; ++k) sum += (row[k] = std::exp(row[k] - top));
      for (int64_t k = 0; k < classes; ++k) row[k] /= sum;
    }
    return out;
  }
  // Plain loops: the analytic test models' images are a few pixels wide.
  static Tensor separable_filter(const Tensor& image, const std::vector<double>& vertical,
                                 const std::vector<double>& horizontal) {
    const auto count = static_cast<size_t>(detail::separable_operator_count(shape(image), vertical.size(), horizontal.size()));
    const size_t channels = image.shape()[1], height = image.shape()[2], width = image.shape()[3];
    Tensor out = xt::zeros<double>({count, channels, height, width});
    std::vector<double> first(height * width);
    for (size_t p = 0; p < count; ++p)
      for (size_t c = 0; c < channels; ++c) {
        const double* x = image.data() + c * height * width;
        const double* v = vertical.data() + p * height * height;
        const double* h = horizontal.data() + p * width * width;
        for (size_t i = 0; i < height; ++i)
          for (size_t j = 0; j < width; ++j) {
            double sum = 0;
            for (size_t k = 0; k < height; ++k) sum += v[i * height + k] * x[k * width + j];
            first[i * width + j] = sum;
          }
        double* o = out.data() + (p * channels + c) * height * width;
        for (size_t i = 0; i < height; ++i)
          for (size_t j = 0; j < width; ++j) {
            double sum = 0;
            for (size_t k = 0; k < width; ++k) sum += h[j * width + k] * first[i * width + k];
            o[i * width + j] = sum;
          }
      }
    return out;
  }

 private:
  static void check_logits(const Tensor& output) {
    if (output.dimension() != 2)
      detail::fail("model output has shape ", shape_string(output), "; class targets need [N, classes]");
  }
};
static_assert(TensorBackend<XtensorBackend>);

namespace detail {
// Shared gradient for analytic models: each item's gradient of its target class, from the
// model's `class_gradient(x_item_flat, class)`. Custom targets need autograd.
template <class AnalyticModel>
ScoredGradient<xt::xarray<double>> analytic_gradient(AnalyticModel& model, const xt::xarray<double>& x,
                                                     const ResolvedTarget<xt::xarray<double>>& target) {
  using B = XtensorBackend;
  if (target.is_custom()) fail("custom targets need a LibTorch model (autograd); analytic models take class targets");
  auto scores = B::select(model.forward(x), target);
  xt::xarray<double> gradient = xt::zeros<double>(x.shape());
  const auto per_row = static_cast<size_t>(B::row_size(x));
  for (int64_t r = 0; r < B::rows(x); ++r) {
    xt::xarray<double> item = xt::adapt(x.data() + r * per_row, per_row, xt::no_ownership(),
                                        std::vector<size_t>{per_row});
    xt::xarray<double> g = model.class_gradient(item, target.classes[r]);
    std::copy(g.begin(), g.end(), gradient.data() + r * per_row);
  }
  return {scores, gradient};
}

// y[n, k] = sum_d x[n, d] * w[k, d] over inputs flattened per item (no xtensor-blas needed).
inline xt::xarray<double> rows_times_transpose(const xt::xarray<double>& x, const xt::xarray<double>& w) {
  const auto n = static_cast<size_t>(XtensorBackend::rows(x));
  const size_t d = n ? x.size() / n : 0, k = w.shape()[0];
  if (w.dimension() != 2 || w.shape()[1] != d)
    fail("analytic model expects ", w.dimension() == 2 ? w.shape()[1] : 0, " input features per item, got ", d);
  xt::xarray<double> y = xt::zeros<double>({n, k});
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < k; ++c) {
      double sum = 0;
      for (size_t i = 0; i < d; ++i) sum += x.data()[r * d + i] * w(c, i);
      y(r, c) = sum;
    }
  return y;
}
}  // namespace detail

// f_k(x) = w_k . x + b_k; gradient w_k. Inputs [N, D] (or [N, ...] flattened to D).
struct LinearModel {
  using backend = XtensorBackend;
  xt::xarray<double> weight;  // [K, D]
  xt::xarray<double> bias;    // [K]

  xt::xarray<double> forward(const xt::xarray<double>& x) {
    return detail::rows_times_transpose(x, weight) + bias;
  }
  xt::xarray<double> class_gradient(const xt::xarray<double>&, int64_t k) const {
    return xt::view(weight, k, xt::all());
  }
  ScoredGradient<xt::xarray<double>> gradient(const xt::xarray<double>& x,
                                              const ResolvedTarget<xt::xarray<double>>& t) {
    return detail::analytic_gradient(*this, x, t);
  }
};

// f_k(x) = x^T A_k x + c_k . x; gradient (A_k + A_k^T) x + c_k.
struct QuadraticModel {
  using backend = XtensorBackend;
  xt::xarray<double> quadratic;  // A: [K, D, D]
  xt::xarray<double> linear;     // c: [K, D]

  xt::xarray<double> forward(const xt::xarray<double>& x) {
    const auto n = static_cast<size_t>(XtensorBackend::rows(x));
    const size_t k = quadratic.shape()[0], d = quadratic.shape()[1];
    if (n && x.size() / n != d) detail::fail("quadratic model expects ", d, " input features per item, got ", x.size() / n);
    xt::xarray<double> y = detail::rows_times_transpose(x, linear);
    for (size_t r = 0; r < n; ++r)
      for (size_t c = 0; c < k; ++c)
        for (size_t i = 0; i < d; ++i)
          for (size_t j = 0; j < d; ++j) y(r, c) += x.data()[r * d + i] * quadratic(c, i, j) * x.data()[r * d + j];
    return y;
  }
  xt::xarray<double> class_gradient(const xt::xarray<double>& x, int64_t k) const {
    auto a = xt::view(quadratic, k, xt::all(), xt::all());
    const size_t d = x.size();
    xt::xarray<double> g = xt::view(linear, k, xt::all());
    for (size_t i = 0; i < d; ++i)
      for (size_t j = 0; j < d; ++j) g(i) += (a(i, j) + a(j, i)) * x(j);
    return g;
  }
  ScoredGradient<xt::xarray<double>> gradient(const xt::xarray<double>& x,
                                              const ResolvedTarget<xt::xarray<double>>& t) {
    return detail::analytic_gradient(*this, x, t);
  }
};

// f(x) = W2 tanh(W1 x + b1) + b2; gradient of class k: W1^T ((1 - h^2) * W2[k]).
struct MlpModel {
  using backend = XtensorBackend;
  xt::xarray<double> w1;  // [H, D]
  xt::xarray<double> b1;  // [H]
  xt::xarray<double> w2;  // [K, H]
  xt::xarray<double> b2;  // [K]

  xt::xarray<double> forward(const xt::xarray<double>& x) {
    xt::xarray<double> h = xt::tanh(detail::rows_times_transpose(x, w1) + b1);
    return detail::rows_times_transpose(h, w2) + b2;
  }
  xt::xarray<double> class_gradient(const xt::xarray<double>& x, int64_t k) const {
    xt::xarray<double> item = xt::reshape_view(x, {size_t{1}, x.size()});
    xt::xarray<double> h = xt::tanh(xt::view(detail::rows_times_transpose(item, w1), 0) + b1);
    xt::xarray<double> delta = (1.0 - h * h) * xt::view(w2, k, xt::all());
    xt::xarray<double> g = xt::zeros<double>({x.size()});
    for (size_t j = 0; j < w1.shape()[0]; ++j)
      for (size_t i = 0; i < x.size(); ++i) g(i) += delta(j) * w1(j, i);
    return g;
  }
  ScoredGradient<xt::xarray<double>> gradient(const xt::xarray<double>& x,
                                              const ResolvedTarget<xt::xarray<double>>& t) {
    return detail::analytic_gradient(*this, x, t);
  }
};

static_assert(Model<LinearModel> && Model<QuadraticModel> && Model<MlpModel>);
}  // namespace salient
