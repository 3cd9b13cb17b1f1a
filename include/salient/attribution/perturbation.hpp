#pragma once
// Perturbation attributions: they need only model outputs, so they work on any model. Each
// removes pixels through a masker (masking/maskers.hpp: an input fill, or layer masking) and
// evaluates the masked copies of an image in batches. Region methods take a segmentation
// `[H,W]` (or `[N,H,W]`, one per input) of integer labels.
//
// - occlusion: a window slides over the image; each pixel gets the mean output drop
//   F(x) - F(x without window) over the windows that cover it (Captum's `Occlusion`; the last
//   window of a row or column is clipped at the border).
// - feature_ablation: each segment gets F(x) - F(x without the segment) (Captum's
//   `FeatureAblation` with a feature mask).
// - rise: N random masks (a cells x cells grid kept with probability p, bilinearly upsampled
//   to (cells + 1) x the cell size and cropped at a random shift); the saliency is
//   sum_i score_i * mask_i / (N p), scores are softmax probabilities (Petsiuk et al. 2018).
// - lime: binary segment vectors z (the first all ones, then Bernoulli(0.5)), weights
//   pi = sqrt(exp(-d^2 / width^2)) with d the cosine distance of z to all ones (the `lime`
//   package's image explainer, width 0.25), a weighted ridge fit (alpha 1), optionally on the
//   K segments with the largest coefficients of a first fit (lime's "highest_weights").
// - kernel_shap: coalitions sampled with the Shapley kernel's size distribution, each with its
//   complement (all coalitions with their kernel weights when there are at most `samples`),
//   and a least-squares fit under the efficiency constraint: attributions sum exactly to
//   F(x) - F(nothing kept).
// Scores are the target's raw output (as Captum) unless `probabilities` is set (RISE's
// default). Every random method takes a seed: the same seed gives identical output.
// Attributions are [N,1,H,W] (one value per pixel: the masks remove all channels).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Dense>
#include <torch/torch.h>

#include "salient/attribution/linear_surrogate.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"

namespace salient {

// How masked inputs are evaluated.
struct PerturbationOptions {
  AnyMasker masker = FillMasker::baseline(BaselineKind::zero);  // Captum's default baseline: 0 in model input
  int64_t batch_size = 32;                                      // masked inputs per forward pass
  bool probabilities = false;  // score = softmax probability of the target, else its raw output
  Progress progress = {};      // (masked inputs evaluated, total)
};

struct OcclusionOptions {
  std::array<int64_t, 2> window{15, 15};  // height, width
  std::array<int64_t, 2> strides{8, 8};
  PerturbationOptions evaluation = {};
};

struct AblationOptions {
  PerturbationOptions evaluation = {};
};

struct RiseOptions {
  int64_t masks = 4000;
  int64_t cells = 7;             // the random grid is cells x cells
  double keep_probability = 0.5;
  uint64_t seed = 0;
  PerturbationOptions evaluation = {.probabilities = true};
};

struct LimeOptions {
  int64_t samples = 1000;
  double kernel_width = 0.25;
  double ridge = 1.0;     // the surrogate's regularisation
  int64_t features = 0;   // fit on the K segments with the largest first-fit weights; 0: all
  uint64_t seed = 0;
  PerturbationOptions evaluation = {};
};

struct KernelShapOptions {
  int64_t samples = 1000;
  uint64_t seed = 0;
  PerturbationOptions evaluation = {};
};

namespace detail {

// Counts masked evaluations across the items of a batch for the progress callback.
class EvaluationCounter {
 public:
  EvaluationCounter(const Progress& progress, int64_t total) : progress_(progress), total_(total) {}
  void add(int64_t n) {
    done_ += n;
    if (progress_) progress_(done_, total_);
  }

 private:
  const Progress& progress_;
  int64_t done_ = 0, total_;
};

inline void check_perturbation_inputs(const torch::Tensor& inputs, const PerturbationOptions& options) {
  check_inputs<TorchBackend>(inputs);
  if (inputs.dim() != 4) fail("perturbation methods need images [N,C,H,W], got shape ", shape_string(inputs));
  if (options.batch_size < 1) fail("batch size must be at least 1, got ", options.batch_size);
}

// The target's score in each row of `outputs` (one image's masked copies).
inline torch::Tensor target_scores(const torch::Tensor& outputs, const ResolvedTarget<torch::Tensor>& target,
                                   bool probabilities) {
  auto scored = probabilities ? torch::softmax(outputs.to(torch::kFloat), 1) : outputs;
  auto t = target.is_custom() ? target : target.tiled(outputs.size(0));
  return TorchBackend::select(scored, t).to(torch::kDouble).cpu();
}

// Scores [count] (double) of the image [1,C,H,W] under masks made chunk by chunk by
// `make_masks(begin, end)` ([end - begin, 1, H, W], 1 = keep), so that no more than one
// batch of masks exists at a time.
template <class MakeMasks>
torch::Tensor masked_scores(TorchModel& model, const torch::Tensor& image, const ResolvedTarget<torch::Tensor>& target,
                            int64_t count, MakeMasks&& make_masks, const PerturbationOptions& options,
                            EvaluationCounter& counter) {
  std::vector<torch::Tensor> parts;
  for_each_chunk(count, options.batch_size, [&](int64_t begin, int64_t end) {
    auto outputs = options.masker.outputs(model, image, make_masks(begin, end), {.batch_size = options.batch_size});
    parts.push_back(target_scores(outputs, target, options.probabilities));
    counter.add(end - begin);
  });
  return torch::cat(parts);
}

// The unmasked score of the image.
inline double full_score(TorchModel& model, const torch::Tensor& image, const ResolvedTarget<torch::Tensor>& target,
                         const PerturbationOptions& options) {
  torch::NoGradGuard no_grad;
  return target_scores(model.forward(image), target, options.probabilities).item<double>();
}

// The segmentation of item `item` as consecutive labels 0..K-1 ([H*W] int64) and K.
struct Segments {
  torch::Tensor labels;  // [H*W]
  int64_t count = 0;
};

inline Segments segments_of(const torch::Tensor& segments, const torch::Tensor& inputs, int64_t item) {
  const int64_t h = inputs.size(2), w = inputs.size(3);
  if (segments.scalar_type() != torch::kLong && segments.scalar_type() != torch::kInt)
    fail("segments must be an integer label map, got ", segments.scalar_type());
  auto s = segments;
  if (s.dim() == 2) s = s.unsqueeze(0);
  if (s.dim() != 3 || s.size(1) != h || s.size(2) != w || (s.size(0) != 1 && s.size(0) != inputs.size(0)))
    fail("segments of shape ", shape_string(segments), " do not fit ", inputs.size(0), " images of ", h, "x", w,
         " (expected [", h, ",", w, "] or [", inputs.size(0), ",", h, ",", w, "])");
  auto labels = s[s.size(0) == 1 ? 0 : item].reshape({-1}).to(torch::kLong).cpu();
  auto [values, inverse] = torch::_unique(labels, /*sorted=*/true, /*return_inverse=*/true);
  return {inverse, values.numel()};
}

// Masks [M,1,H,W] keeping the segments whose entry of z [M,K] is 1.
inline torch::Tensor coalition_masks(const torch::Tensor& z, const Segments& segments, int64_t h, int64_t w,
                                     const torch::TensorOptions& options) {
  return z.to(options.dtype()).index_select(1, segments.labels).view({z.size(0), 1, h, w}).to(options.device());
}

// Per-segment values [K] painted onto the image: [1,1,H,W].
inline torch::Tensor paint(const torch::Tensor& values, const Segments& segments, int64_t h, int64_t w,
                           const torch::TensorOptions& options) {
  return values.index_select(0, segments.labels).view({1, 1, h, w}).to(options);
}

inline Eigen::MatrixXd to_eigen(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous().cpu();
  Eigen::MatrixXd m(d.size(0), d.size(1));
  auto a = d.accessor<double, 2>();
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) m(i, j) = a[i][j];
  return m;
}

inline Eigen::VectorXd to_eigen_vector(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous().cpu();
  return Eigen::Map<const Eigen::VectorXd>(d.data_ptr<double>(), d.numel());
}

inline torch::Tensor from_values(const std::vector<double>& values) {
  return torch::tensor(values, torch::kDouble);
}

inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

}  // namespace detail

inline torch::Tensor occlusion(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                               const OcclusionOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = inputs.size(0), size[2] = {inputs.size(2), inputs.size(3)};
  int64_t counts[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t window = options.window[d], stride = options.strides[d];
    if (window < 1 || window > size[d])
      detail::fail("occlusion window ", options.window[0], "x", options.window[1], " does not fit the image of ",
                   size[0], "x", size[1]);
    if (stride < 1 || (stride > window && window < size[d]))
      detail::fail("occlusion stride ", stride, " must be in [1, window ", window,
                   "] (a larger stride leaves pixels that no window covers)");
    counts[d] = (size[d] - window + stride - 1) / stride + 1;
  }
  const int64_t windows = counts[0] * counts[1];
  auto window_box = [&](int64_t k) {
    const int64_t top = (k / counts[1]) * options.strides[0], left = (k % counts[1]) * options.strides[1];
    return std::array<int64_t, 4>{top, std::min(top + options.window[0], size[0]), left,
                                  std::min(left + options.window[1], size[1])};
  };
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, n * windows);
  // How many windows cover each pixel: the same for every item.
  auto coverage = torch::zeros({size[0], size[1]}, torch::kDouble);
  for (int64_t k = 0; k < windows; ++k) {
    auto [y0, y1, x0, x1] = window_box(k);
    coverage.slice(0, y0, y1).slice(1, x0, x1) += 1;
  }
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto image = inputs.slice(0, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    auto scores = detail::masked_scores(
        model, image, item_target, windows,
        [&](int64_t begin, int64_t end) {
          auto masks = torch::ones({end - begin, 1, size[0], size[1]}, inputs.options());
          for (int64_t k = begin; k < end; ++k) {
            auto [y0, y1, x0, x1] = window_box(k);
            masks[k - begin].slice(1, y0, y1).slice(2, x0, x1).zero_();
          }
          return masks;
        },
        evaluation, counter);
    auto drops = (full - scores).to(torch::kDouble);
    auto total = torch::zeros({size[0], size[1]}, torch::kDouble);
    auto d = drops.accessor<double, 1>();
    for (int64_t k = 0; k < windows; ++k) {
      auto [y0, y1, x0, x1] = window_box(k);
      total.slice(0, y0, y1).slice(1, x0, x1) += d[k];
    }
    maps.push_back((total / coverage).view({1, 1, size[0], size[1]}));
  }
  return torch::cat(maps).to(inputs.options());
}

inline torch::Tensor feature_ablation(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                      const torch::Tensor& segments, const AblationOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = inputs.size(0), h = inputs.size(2), w = inputs.size(3);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<detail::Segments> per_item;
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += per_item.emplace_back(detail::segments_of(segments, inputs, i)).count;
  detail::EvaluationCounter counter(evaluation.progress, total);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto& seg = per_item[i];
    auto image = inputs.slice(0, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    auto scores = detail::masked_scores(
        model, image, item_target, seg.count,
        [&](int64_t begin, int64_t end) {
          auto z = torch::ones({end - begin, seg.count});
          for (int64_t k = begin; k < end; ++k) z[k - begin][k] = 0;
          return detail::coalition_masks(z, seg, h, w, inputs.options());
        },
        evaluation, counter);
    maps.push_back(detail::paint(full - scores, seg, h, w, inputs.options()));
  }
  return torch::cat(maps);
}

inline torch::Tensor rise(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                          const RiseOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  if (options.masks < 1) detail::fail("RISE needs at least one mask, got ", options.masks);
  if (options.cells < 1) detail::fail("RISE needs at least one cell per side, got ", options.cells);
  if (!(options.keep_probability > 0 && options.keep_probability <= 1))
    detail::fail("RISE keep probability must be in (0, 1], got ", options.keep_probability);
  const int64_t n = inputs.size(0), h = inputs.size(2), w = inputs.size(3);
  const int64_t cell_h = (h + options.cells - 1) / options.cells, cell_w = (w + options.cells - 1) / options.cells;
  // Every random draw up front, from the seed: the masks do not depend on the batch size.
  auto generator = detail::seeded(options.seed);
  auto grids = (at::rand({options.masks, 1, options.cells, options.cells}, generator) < options.keep_probability)
                   .to(torch::kFloat);
  auto shift_y = at::randint(0, cell_h, {options.masks}, generator);
  auto shift_x = at::randint(0, cell_w, {options.masks}, generator);
  auto make_masks = [&](int64_t begin, int64_t end) {
    namespace F = torch::nn::functional;
    auto up = F::interpolate(grids.slice(0, begin, end),
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{(options.cells + 1) * cell_h, (options.cells + 1) * cell_w})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
    auto masks = torch::empty({end - begin, 1, h, w});
    for (int64_t k = begin; k < end; ++k) {
      const int64_t dy = shift_y[k].item<int64_t>(), dx = shift_x[k].item<int64_t>();
      masks[k - begin] = up[k - begin].slice(1, dy, dy + h).slice(2, dx, dx + w);
    }
    return masks.clamp_(0, 1).to(inputs.options());  // interpolation rounding can step past [0, 1]
  };
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, n * options.masks);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto image = inputs.slice(0, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    // The weighted sum is accumulated chunk by chunk, with the masks of that chunk.
    auto saliency = torch::zeros({h * w}, torch::kDouble);
    detail::for_each_chunk(options.masks, evaluation.batch_size, [&](int64_t begin, int64_t end) {
      auto masks = make_masks(begin, end);
      auto outputs = evaluation.masker.outputs(model, image, masks, {.batch_size = evaluation.batch_size});
      auto scores = detail::target_scores(outputs, item_target, evaluation.probabilities);
      saliency += scores.matmul(masks.reshape({end - begin, h * w}).to(torch::kDouble).cpu());
      counter.add(end - begin);
    });
    maps.push_back((saliency / (static_cast<double>(options.masks) * options.keep_probability)).view({1, 1, h, w}));
  }
  return torch::cat(maps).to(inputs.options());
}

// LIME of one image [1,C,H,W]: the surrogate's fit and its attribution map [1,1,H,W].
struct LimeExplanation {
  torch::Tensor attribution;
  LinearFit fit;                  // coefficients per segment (0 for segments not selected)
  std::vector<int64_t> features;  // the segments the surrogate was fitted on
};

inline LimeExplanation lime_explanation(TorchModel& model, const torch::Tensor& image, const Target& target,
                                        const torch::Tensor& segments, const LimeOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(image, evaluation);
  if (image.size(0) != 1) detail::fail("lime_explanation explains one image, got a batch of ", image.size(0));
  if (options.samples < 2) detail::fail("LIME needs at least 2 samples, got ", options.samples);
  if (!(options.kernel_width > 0)) detail::fail("LIME kernel width must be positive, got ", options.kernel_width);
  if (options.features < 0) detail::fail("LIME feature count must be >= 0, got ", options.features);
  const int64_t h = image.size(2), w = image.size(3);
  const auto seg = detail::segments_of(segments, image, 0);
  const auto resolved = resolve_target(model, image, target);
  auto generator = detail::seeded(options.seed);
  auto z = at::randint(0, 2, {options.samples, seg.count}, generator).to(torch::kFloat);
  z[0].fill_(1);  // the image itself
  detail::EvaluationCounter counter(evaluation.progress, options.samples);
  auto scores = detail::masked_scores(
      model, image, resolved, options.samples,
      [&](int64_t begin, int64_t end) { return detail::coalition_masks(z.slice(0, begin, end), seg, h, w, image.options()); },
      evaluation, counter);
  // Cosine distance to all ones: 1 - |z|_1 / sqrt(|z|_1 K) for binary z (1 for the empty z).
  auto kept = z.sum(1).to(torch::kDouble);
  auto distance = 1.0 - torch::sqrt(kept / static_cast<double>(seg.count));
  auto weights = torch::sqrt(torch::exp(-distance.square() / (options.kernel_width * options.kernel_width)));
  const Eigen::MatrixXd all = detail::to_eigen(z);
  const Eigen::VectorXd y = detail::to_eigen_vector(scores), pi = detail::to_eigen_vector(weights);
  LimeExplanation result;
  if (options.features > 0 && options.features < seg.count) {
    const auto first = weighted_ridge(all, y, pi, 0.01);
    std::vector<int64_t> order(static_cast<std::size_t>(seg.count));
    for (int64_t k = 0; k < seg.count; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return std::abs(first.coefficients[a]) > std::abs(first.coefficients[b]);
    });
    result.features.assign(order.begin(), order.begin() + options.features);
    std::sort(result.features.begin(), result.features.end());
  } else {
    for (int64_t k = 0; k < seg.count; ++k) result.features.push_back(k);
  }
  Eigen::MatrixXd selected(all.rows(), static_cast<Eigen::Index>(result.features.size()));
  for (std::size_t j = 0; j < result.features.size(); ++j) selected.col(j) = all.col(result.features[j]);
  const auto fit = weighted_ridge(selected, y, pi, options.ridge);
  result.fit = fit;
  result.fit.coefficients.assign(static_cast<std::size_t>(seg.count), 0.0);
  for (std::size_t j = 0; j < result.features.size(); ++j) result.fit.coefficients[result.features[j]] = fit.coefficients[j];
  result.attribution = detail::paint(detail::from_values(result.fit.coefficients), seg, h, w, image.options());
  return result;
}

inline torch::Tensor lime(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                          const torch::Tensor& segments, const LimeOptions& options = {}) {
  detail::check_perturbation_inputs(inputs, options.evaluation);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < inputs.size(0); ++i) {
    auto item_options = options;
    if (options.evaluation.progress)
      item_options.evaluation.progress = [&, i](int64_t done, int64_t) {
        options.evaluation.progress(i * options.samples + done, inputs.size(0) * options.samples);
      };
    auto item_segments = segments.dim() == 3 && segments.size(0) > 1 ? segments[i] : segments;
    const auto item_target = resolved.slice(i, i + 1);
    Target bound = item_target.is_custom() ? Target(item_target.custom) : Target(item_target.classes[0]);
    maps.push_back(lime_explanation(model, inputs.slice(0, i, i + 1), bound, item_segments, item_options).attribution);
  }
  return torch::cat(maps);
}

inline torch::Tensor kernel_shap(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                 const torch::Tensor& segments, const KernelShapOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  if (options.samples < 2) detail::fail("KernelSHAP needs at least 2 samples, got ", options.samples);
  const int64_t n = inputs.size(0), h = inputs.size(2), w = inputs.size(3);
  const auto resolved = resolve_target(model, inputs, target);
  auto generator = detail::seeded(options.seed);
  detail::EvaluationCounter counter(evaluation.progress, n * (options.samples + 1));
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto seg = detail::segments_of(segments, inputs, i);
    const int64_t m = seg.count;
    auto image = inputs.slice(0, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    // Coalitions z [S,m] and their regression weights.
    torch::Tensor z, weights;
    if (m <= 1) {
      z = torch::zeros({0, m});
    } else if (m < 31 && (int64_t{1} << m) - 2 <= options.samples) {
      // Every coalition but the empty and the full one, with the Shapley kernel's weight
      // (m - 1) / (C(m, k) k (m - k)).
      const int64_t count = (int64_t{1} << m) - 2;
      z = torch::zeros({count, m});
      weights = torch::empty({count}, torch::kDouble);
      auto za = z.accessor<float, 2>();
      for (int64_t c = 1; c <= count; ++c) {
        int64_t k = 0;
        for (int64_t j = 0; j < m; ++j)
          if ((c >> j) & 1) za[c - 1][j] = 1, ++k;
        const double log_choose = std::lgamma(m + 1.0) - std::lgamma(k + 1.0) - std::lgamma(m - k + 1.0);
        weights[c - 1] = (m - 1.0) / (std::exp(log_choose) * k * (m - k));
      }
    } else {
      // Sizes k in 1..m-1 with probability proportional to (m - 1) / (k (m - k)); each
      // coalition with its complement (paired sampling); weights 1.
      auto sizes = torch::arange(1, m, torch::kDouble);
      auto size_probability = (m - 1.0) / (sizes * (m - sizes));
      const int64_t pairs = options.samples / 2;
      auto k = at::multinomial(size_probability, pairs, /*replacement=*/true, generator) + 1;
      auto ranks = at::rand({pairs, m}, generator).argsort(int64_t{1}).argsort(int64_t{1});  // a random permutation per row
      auto half = (ranks < k.unsqueeze(1)).to(torch::kFloat);
      z = torch::cat(std::vector<torch::Tensor>{half, 1 - half});
      weights = torch::ones({z.size(0)}, torch::kDouble);
    }
    auto empty_score = detail::masked_scores(
        model, image, item_target, 1,
        [&](int64_t, int64_t) { return torch::zeros({1, 1, h, w}, inputs.options()); }, evaluation, counter);
    const double empty = empty_score.item<double>();
    std::vector<double> phi;
    if (m == 1) {
      phi = {full - empty};
    } else {
      auto scores = detail::masked_scores(
          model, image, item_target, z.size(0),
          [&](int64_t begin, int64_t end) { return detail::coalition_masks(z.slice(0, begin, end), seg, h, w, inputs.options()); },
          evaluation, counter);
      phi = efficient_least_squares(detail::to_eigen(z), detail::to_eigen_vector(scores),
                                    detail::to_eigen_vector(weights), empty, full)
                .coefficients;
    }
    maps.push_back(detail::paint(detail::from_values(phi), seg, h, w, inputs.options()));
  }
  return torch::cat(maps);
}

}  // namespace salient
