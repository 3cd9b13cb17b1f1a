#pragma once
// Quantus 0.6's randomisation metrics beyond the classic model parameter randomisation test
// (evaluation/sanity.hpp), for TorchModel and any attribution method of the uniform calling
// convention (MethodOf<TorchModel>). Each call fixes the explained class of every input first
// (its top-1 on the original model unless given), and restores the model's parameters
// bit-for-bit afterwards, also when the method throws.
//
// - random_logit_test: Sixt, Granz & Landgraf 2020, "When Explanations Lie: Why Many Modified
//   BP Attributions Fail" (ICML); Quantus `RandomLogit`. Per item, the similarity of the map
//   of its target class and the map of one other class drawn at random. A map that does not
//   depend on the class scores 1; lower is better. Quantus' defaults: similarity_func = ssim,
//   normalise = True (normalise_by_max), abs = False, num_classes = 1000, seed = 42.
//   * Quantus' ssim compares the *flattened* maps, so it is a 1-D SSIM: scikit-image's
//     structural_similarity of two vectors with its defaults (a uniform window of 7 values,
//     sample covariance, K1 = 0.01, K2 = 0.03) and data_range = max - min over both maps,
//     averaged over the n - 6 windows inside the vector. Row-major flattening lets windows run
//     across image rows (and channels), as there. `flat_ssim` below; computed in double.
//   * The other class: Quantus 0.6 seeds NumPy's legacy generator once per evaluation batch
//     (np.random.seed(42)), draws randint(0, num_classes - 1, batch_size) and maps draw j to
//     the j-th class other than the target (j if j < target, else j + 1). Reproduced exactly:
//     NumPy's int seeding is MT19937's init_genrand (= std::mt19937(seed)), and its legacy
//     randint takes 32-bit draws masked to the range's bit width, rejecting those above it.
//     Item i takes draw i mod quantus_batch_size (Quantus' __call__ batch_size, 64 by default;
//     1 reproduces Quantus called with batch_size = 1 and the per-instance versions before
//     0.5, where every item takes the first draw). Or give the classes (`other_classes`).
//   * Deviation: Quantus' base class divides the maps by the largest |value| of its whole
//     evaluation batch (normalise_by_max's default axes); here each map is divided by its own
//     largest |value| (the same when the batch holds one item or its maps share their
//     maximum), so a score does not depend on the other inputs. Two equal constant maps
//     (data range 0) score 1 (Quantus: NaN, 0 / 0).
// - smooth_mprt: Hedström et al. 2023, "Sanity Checks Revisited: An Exploration to Repair the
//   Model Parameter Randomisation Test" (XAI in Action, NeurIPS workshop); Quantus
//   `SmoothMPRT`. The model parameter randomisation test on denoised maps: each map is the
//   mean of the method's maps of `samples` copies of the input (Quantus nr_samples = 50), the
//   first samples - 1 with noise N(0, sigma^2), sigma = noise_magnitude (0.1) * (max - min) of
//   the input, the last one clean (as Quantus, so samples = 1 is the plain map). Per model
//   state, the Spearman rank correlation (Quantus' correlation_spearman, of the flattened
//   maps) of |denoised map| (abs = True) with the original model's. Quantus' normalisation
//   divides by a positive number and does not change ranks, so it is left out.
//   * Layers are randomised in Quantus' default layer_order "bottom_up" (cascading from the
//     input; the paper advises against top-down), or top_down (cascading from the logits, as
//     the classic MPRT) or independent. A Quantus "layer" is a module with reset_parameters:
//     group_depth = 0 (every module owning parameters is a group) is the default here. New
//     weights: evaluation/randomisation.hpp's reinitialise (PyTorch's layer defaults, drawn
//     from salient's seeded generator); unlike reset_parameters, batch-norm running
//     statistics are kept, as in the MPRT paper's code.
//   * The noise of copy j of item i comes from its own generator seeded from (seed, i, j), the
//     same for every model state: the differences between states come from the parameters
//     alone, and a map that does not depend on them scores exactly 1 at every state. Quantus
//     draws fresh noise from NumPy's unseeded global generator for every state; its
//     "original" entry (two independent denoisings of the original model) is therefore 1
//     here and is reported as step 0.
//   * Results per state and item, plus Quantus' per-item reductions: `last()`
//     (return_last_correlation: the last state) and `average()` (return_average_correlation:
//     the mean over the randomised states; Quantus means to skip the original entry but
//     compares its key against "orig", so it averages it in, too). skip_layers explains only
//     the original and the last state, as Quantus.
// - efficient_mprt: same paper; Quantus `EfficientMPRT`. The relative rise in explanation
//   complexity from the original model to the fully randomised one (bottom-up by default;
//   skip_layers = True: only those two states are explained): score = (H_last - H_orig) /
//   H_orig, with H Quantus' complexity_func default, discrete_entropy: the Shannon entropy
//   (natural log) of the histogram of the map's values in n_bins = 100 equal-width bins over
//   [min, max] (NumPy's np.histogram, every value of the item; pass one-channel maps to match
//   Quantus' default explanations). Quantus' defaults abs = False and normalise = False
//   (normalising by a positive number leaves the histogram's counts unchanged). Also
//   `fraction` = H_last / H_orig (Quantus' scores_extra "scores_fraction_explanation", NaN
//   when H_orig = 0) and, with skip_layers = false, the complexity of every state. A map
//   that does not depend on the parameters scores 0 (fraction 1); the rise is +inf or NaN
//   when the original map is constant (H_orig = 0), as Quantus' division.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "salient/attribution/noise_tunnel.hpp"
#include "salient/core/options.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/complexity.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/similarity.hpp"

namespace salient {

// The order in which layer groups are randomised (Quantus' layer_order).
enum class LayerOrder {
  bottom_up,    // cascading from the input side: step k randomises the first k groups
  top_down,     // cascading from the logits: step k randomises the last k groups
  independent,  // step k randomises only the k-th group from the top
};

inline std::string_view to_string(LayerOrder order) {
  switch (order) {
    case LayerOrder::bottom_up: return "bottom_up";
    case LayerOrder::top_down: return "top_down";
    case LayerOrder::independent: return "independent";
  }
  return "?";
}
inline void from_string(std::string_view name, LayerOrder& order) {
  for (auto o : {LayerOrder::bottom_up, LayerOrder::top_down, LayerOrder::independent})
    if (name == to_string(o)) {
      order = o;
      return;
    }
  detail::fail("unknown layer order '", name, "' (expected bottom_up, top_down or independent)");
}

// ---------------------------------------------------------------------------------------------
// Building blocks

namespace detail {
inline double flat_ssim_of(const std::vector<double>& x, const std::vector<double>& y) {
  constexpr int64_t window = 7;  // scikit-image's default win_size
  const auto n = static_cast<int64_t>(x.size());
  if (n < window)
    fail("flat_ssim: maps of ", n, " values are shorter than the ", window,
         "-value window; expected at least ", window, " values");
  const auto [xmin, xmax] = std::minmax_element(x.begin(), x.end());
  const auto [ymin, ymax] = std::minmax_element(y.begin(), y.end());
  const double range = std::max(*xmax, *ymax) - std::min(*xmin, *ymin);
  if (range == 0) return 1.0;  // two equal constant maps
  if (!std::isfinite(range)) fail("flat_ssim: the maps' range ", range, " overflows");
  const double c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range);
  const double count = static_cast<double>(window), cov_norm = count / (count - 1);
  double total = 0;
  // Windows [i, i + 7): exactly the ones scikit-image keeps after cropping 3 values each side.
  for (int64_t i = 0; i + window <= n; ++i) {
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int64_t k = i; k < i + window; ++k) {
      const double a = x[static_cast<size_t>(k)], b = y[static_cast<size_t>(k)];
      sx += a, sy += b, sxx += a * a, syy += b * b, sxy += a * b;
    }
    const double ux = sx / count, uy = sy / count;
    const double vx = cov_norm * (sxx / count - ux * ux), vy = cov_norm * (syy / count - uy * uy);
    const double vxy = cov_norm * (sxy / count - ux * uy);
    total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  }
  return total / static_cast<double>(n - window + 1);
}

// NumPy's np.histogram(values, bins) with equal-width bins over [min, max] (a constant
// vector: [v - 0.5, v + 0.5]), last bin closed; computed in double.
inline std::vector<int64_t> histogram_counts(const std::vector<double>& values, int64_t bins) {
  auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  double first = *lo_it, last = *hi_it;
  if (first == last) first -= 0.5, last += 0.5;
  std::vector<double> edges(static_cast<size_t>(bins + 1));
  // np.linspace: first + k * step, the last edge exactly `last`.
  const double step = (last - first) / static_cast<double>(bins);
  for (int64_t k = 0; k <= bins; ++k) edges[static_cast<size_t>(k)] = first + static_cast<double>(k) * step;
  edges.back() = last;
  const double norm = static_cast<double>(bins) / (last - first);
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (const double v : values) {
    auto index = static_cast<int64_t>((v - first) * norm);
    if (index == bins) --index;
    // NumPy's correction for rounding at the edges.
    if (v < edges[static_cast<size_t>(index)]) --index;
    else if (index != bins - 1 && v >= edges[static_cast<size_t>(index + 1)]) ++index;
    ++counts[static_cast<size_t>(index)];
  }
  return counts;
}

inline double discrete_entropy_of(const std::vector<double>& values, int64_t bins) {
  const auto counts = histogram_counts(values, bins);
  double total = 0;
  for (const auto c : counts) total += static_cast<double>(c);
  double entropy = 0;  // scipy.stats.entropy: natural log of the normalised counts
  for (const auto c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / total;
      entropy -= p * std::log(p);
    }
  return entropy;
}

inline void check_bins(int64_t bins) {
  if (bins < 1 || bins > max_option_count) fail("n_bins must be in [1, ", max_option_count, "], got ", bins);
}
}  // namespace detail

// Quantus' ssim of two maps with the same number of values, flattened (row-major): the 1-D
// SSIM described above. At least 7 values; values must be finite.
inline double flat_ssim(const torch::Tensor& a, const torch::Tensor& b) {
  const auto [x, y] = detail::similarity_pair(a, b, "flat_ssim", /*finite=*/true);
  return detail::flat_ssim_of(x, y);
}

// Quantus' discrete_entropy of every item of a batch [N, ...]: the entropy of the histogram
// of the item's values in `n_bins` equal-width bins over [min, max].
inline std::vector<double> discrete_entropy(const torch::Tensor& attributions, int64_t n_bins = 100) {
  detail::check_bins(n_bins);
  std::vector<double> result;
  for (const auto& item : detail::metric_items(attributions, "discrete_entropy"))
    result.push_back(detail::discrete_entropy_of(item, n_bins));
  return result;
}

// The other class of each item, drawn as Quantus 0.6's RandomLogit does (see above): NumPy's
// legacy generator seeded with `seed` at the start of every `quantus_batch_size` items.
inline std::vector<int64_t> random_logit_classes(const std::vector<int64_t>& targets, int64_t num_classes,
                                                 uint64_t seed = 42, int64_t quantus_batch_size = 64) {
  if (num_classes < 2 || num_classes > max_option_count)
    detail::fail("random logit needs num_classes in [2, ", max_option_count, "], got ", num_classes);
  if (quantus_batch_size < 1 || quantus_batch_size > max_option_count)
    detail::fail("random logit quantus_batch_size must be in [1, ", max_option_count, "], got ", quantus_batch_size);
  if (seed > 0xFFFFFFFFull) detail::fail("random logit seed must be in [0, 2^32 - 1] (NumPy's seed range), got ", seed);
  detail::check_class_range(targets, num_classes);
  // randint(0, num_classes - 1): values in [0, num_classes - 2].
  const auto range = static_cast<uint32_t>(num_classes - 2);
  uint32_t mask = range;
  for (int shift : {1, 2, 4, 8, 16}) mask |= mask >> shift;
  std::mt19937 engine;
  std::vector<int64_t> others;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (static_cast<int64_t>(i) % quantus_batch_size == 0) engine.seed(static_cast<uint32_t>(seed));
    uint32_t draw = 0;  // randint's masked rejection sampling (no draw at all for range 0)
    while (range > 0 && (draw = static_cast<uint32_t>(engine()) & mask) > range) {
    }
    others.push_back(draw < targets[i] ? static_cast<int64_t>(draw) : static_cast<int64_t>(draw) + 1);
  }
  return others;
}

// ---------------------------------------------------------------------------------------------
// Random logit

struct RandomLogitOptions {
  int64_t num_classes = 0;          // classes to draw from; 0: the model's output width (Quantus: 1000)
  uint64_t seed = 42;               // NumPy's seed, in [0, 2^32 - 1]
  int64_t quantus_batch_size = 64;  // the generator is re-seeded every this many items (see above)
  bool normalise = true;            // divide each map by its largest |value| (normalise_by_max)
  bool abs = false;                 // then take absolute values
  std::vector<int64_t> other_classes = {};  // one per item: explain these instead of drawing
};

template <class Visit>
void for_each_option(RandomLogitOptions& o, Visit&& visit) {
  visit("num_classes", o.num_classes), visit("seed", o.seed), visit("quantus_batch_size", o.quantus_batch_size);
  visit("normalise", o.normalise), visit("abs", o.abs), visit("other_classes", o.other_classes);
}

struct RandomLogitResult {
  std::vector<double> scores;           // per item: flat SSIM of the two maps
  std::vector<int64_t> targets;         // the class explained per item
  std::vector<int64_t> other_classes;   // the other class per item

  double mean() const {
    double sum = 0;
    for (double s : scores) sum += s;
    return scores.empty() ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(scores.size());
  }
};

namespace detail {
inline std::vector<int64_t> class_targets(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                          std::string_view what) {
  check_inputs<TorchBackend>(inputs);
  auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) fail(what, " needs a class target (one class per input), not a custom score");
  return resolved.classes;
}

// The method's maps for a batch, checked: defined, one per input, finite.
template <class F>
torch::Tensor explain_batch(F& method, TorchModel& model, const torch::Tensor& inputs, const std::vector<int64_t>& classes,
                            std::string_view what) {
  torch::Tensor maps = method(model, inputs, Target(classes));
  if (!maps.defined() || maps.dim() < 2 || maps.size(0) != inputs.size(0))
    fail(what, ": the method returned ", maps.defined() ? shape_string(maps) : std::string("an undefined tensor"),
         " for ", inputs.size(0), " inputs; expected maps [N, ...] with one map per input");
  return maps.detach();
}

inline void check_same_shape(const torch::Tensor& reference, const torch::Tensor& other, std::string_view what,
                             std::string_view when) {
  if (reference.sizes() != other.sizes())
    fail(what, ": the method returned maps of shape ", shape_string(other), " ", when, " but ",
         shape_string(reference), " for the original; expected the same shape");
}
}  // namespace detail

// The random logit test: per item, flat SSIM between the (normalised) maps of its target class
// and of another class (drawn as Quantus does, or `options.other_classes`).
template <MethodOf<TorchModel> F>
RandomLogitResult random_logit_test(TorchModel& model, const torch::Tensor& inputs, const Target& target, F&& method,
                                    const RandomLogitOptions& options = {}) {
  if (options.num_classes < 0 || options.num_classes > max_option_count)
    detail::fail("random logit num_classes must be in [0, ", max_option_count, "] (0: the model's output width), got ",
                 options.num_classes);
  RandomLogitResult result;
  result.targets = detail::class_targets(model, inputs, target, "the random logit test");
  int64_t classes = options.num_classes;
  if (classes == 0) {
    const auto output = model.forward(inputs.slice(0, 0, 1));
    if (output.dim() != 2)
      detail::fail("random logit: the model's output has shape ", shape_string(output),
                   "; expected logits [N, classes] (or set num_classes)");
    classes = output.size(1);
  }
  const auto n = static_cast<int64_t>(result.targets.size());
  if (options.other_classes.empty()) {
    result.other_classes = random_logit_classes(result.targets, classes, options.seed, options.quantus_batch_size);
  } else {
    if (static_cast<int64_t>(options.other_classes.size()) != n)
      detail::fail("random logit: ", options.other_classes.size(), " other classes for ", n,
                   " inputs; expected one per input");
    detail::check_class_range(result.targets, classes);
    detail::check_class_range(options.other_classes, classes);
    for (int64_t i = 0; i < n; ++i)
      if (options.other_classes[i] == result.targets[i])
        detail::fail("random logit: other class ", options.other_classes[i], " of input ", i,
                     " is its target class; expected a different class");
    result.other_classes = options.other_classes;
  }
  const auto own = detail::explain_batch(method, model, inputs, result.targets, "random logit");
  const auto other = detail::explain_batch(method, model, inputs, result.other_classes, "random logit");
  detail::check_same_shape(own, other, "random logit", "for the other classes");
  const ComplexityOptions preprocess{.normalise = options.normalise, .abs = options.abs};
  auto a = detail::metric_items(own, "random logit"), b = detail::metric_items(other, "random logit");
  for (int64_t i = 0; i < n; ++i)
    result.scores.push_back(detail::flat_ssim_of(detail::complexity_values(std::move(a[i]), preprocess),
                                                 detail::complexity_values(std::move(b[i]), preprocess)));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Layer randomisation in Quantus' orders

namespace detail {
// Visits the original model (step 0) and each randomised state in `order`. Top-down and
// independent are for_each_randomisation's cascading and independent modes; bottom-up adds one
// group per step from the input side, with the same weights per group (each group draws from
// its own stream, its index). Parameters are restored afterwards, also when `visit` throws.
template <ParameterModel M, class Visit>
std::vector<RandomisationStep> for_each_layer_state(M& model, LayerOrder order, const ReinitOptions& init,
                                                    int64_t group_depth, const std::vector<std::string>& groups,
                                                    Visit&& visit) {
  if (group_depth < 0 || group_depth > max_option_count)
    fail("group_depth must be in [0, ", max_option_count, "] (0: every module with parameters), got ", group_depth);
  const int depth = static_cast<int>(group_depth);
  if (order != LayerOrder::bottom_up) {
    const RandomisationOptions options{
        .mode = order == LayerOrder::top_down ? RandomisationMode::cascading : RandomisationMode::independent,
        .init = init, .group_depth = depth, .groups = groups};
    return for_each_randomisation(model, options, visit);
  }
  // Bottom-up: the reverse of for_each_randomisation's cascade, with its checks.
  const auto all = parameter_groups(model, depth);
  for (const auto& wanted : groups)
    if (std::none_of(all.begin(), all.end(), [&](const auto& g) { return g.name == wanted; })) {
      std::string known;
      for (const auto& g : all) known += (known.empty() ? "" : ", ") + g.name;
      fail("no parameter group '", wanted, "' at group_depth ", depth, " (groups: ", known, ")");
    }
  ParameterSnapshot snapshot(model);
  std::vector<RandomisationStep> steps{{0, "original", {}}};
  visit(model, steps.back());
  for (size_t i = 0; i < all.size(); ++i) {
    if (!groups.empty() && std::find(groups.begin(), groups.end(), all[i].name) == groups.end()) continue;
    RandomisationStep step{static_cast<int64_t>(steps.size()), all[i].name, steps.back().randomised};
    step.randomised.push_back(all[i].name);
    reinitialise(model, all[i], init, i);
    steps.push_back(step);
    visit(model, steps.back());
  }
  return steps;
}

// How many randomised states `for_each_layer_state` visits.
template <ParameterModel M>
int64_t randomised_state_count(const M& model, int64_t group_depth, const std::vector<std::string>& groups) {
  if (group_depth < 0 || group_depth > max_option_count)
    fail("group_depth must be in [0, ", max_option_count, "] (0: every module with parameters), got ", group_depth);
  int64_t count = 0;
  for (const auto& g : parameter_groups(model, static_cast<int>(group_depth)))
    count += groups.empty() || std::find(groups.begin(), groups.end(), g.name) != groups.end();
  return count;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Smooth MPRT

struct SmoothMprtOptions {
  LayerOrder order = LayerOrder::bottom_up;  // Quantus' default layer_order
  ReinitOptions init = {.seed = 42};         // new weights (scheme, its parameters, seed)
  int64_t group_depth = 0;                   // 0: every module with parameters is a layer (Quantus)
  std::vector<std::string> groups = {};      // randomise only these groups (names from parameter_groups)
  int64_t samples = 50;                      // maps averaged per denoised map; the last is noise-free
  double noise_magnitude = 0.1;              // noise stdev relative to each input's max - min
  uint64_t seed = 42;                        // of the noise
  bool abs = true;                           // compare |denoised map|
  bool skip_layers = false;                  // explain only the original and the last state
  int64_t batch_size = 64;                   // noisy inputs per method call
};

template <class Visit>
void for_each_option(SmoothMprtOptions& o, Visit&& visit) {
  visit("order", o.order), visit("init_seed", o.init.seed), visit("group_depth", o.group_depth);
  visit("groups", o.groups), visit("samples", o.samples), visit("noise_magnitude", o.noise_magnitude);
  visit("seed", o.seed), visit("abs", o.abs), visit("skip_layers", o.skip_layers), visit("batch_size", o.batch_size);
}

struct SmoothMprtResult {
  std::vector<RandomisationStep> steps;         // the states explained; steps[0]: the original model
  std::vector<std::vector<double>> similarity;  // [step][item]: Spearman with the original's map (step 0: 1)
  std::vector<int64_t> targets;                 // the class explained per input

  // Per item: the similarity at the last state (Quantus' return_last_correlation).
  std::vector<double> last() const { return similarity.back(); }
  // Per item: the mean over the randomised states (Quantus' return_average_correlation).
  std::vector<double> average() const {
    std::vector<double> mean(similarity.front().size(), 0.0);
    const auto states = static_cast<double>(similarity.size() - 1);
    for (size_t s = 1; s < similarity.size(); ++s)
      for (size_t i = 0; i < mean.size(); ++i) mean[i] += similarity[s][i] / states;
    if (similarity.size() < 2) std::fill(mean.begin(), mean.end(), std::numeric_limits<double>::quiet_NaN());
    return mean;
  }
  // The mean over the items of one state.
  double mean(size_t step) const {
    double sum = 0;
    for (double v : similarity.at(step)) sum += v;
    return sum / static_cast<double>(similarity.at(step).size());
  }
};

namespace detail {
inline void check_smoothing(int64_t samples, double noise_magnitude, int64_t batch_size) {
  if (samples < 1 || samples > max_option_count)
    fail("smooth MPRT samples must be in [1, ", max_option_count, "], got ", samples);
  if (!(noise_magnitude >= 0) || !std::isfinite(noise_magnitude))
    fail("smooth MPRT noise_magnitude must be finite and >= 0, got ", noise_magnitude);
  check_batch_size(batch_size, "smooth MPRT");
}
}  // namespace detail

// The denoised maps of SmoothMPRT: the mean of the method's maps of samples - 1 noisy copies
// of each input (stdev noise_magnitude * (max - min) of the input, copy j of item i seeded
// from (seed, i, j)) and of the clean input.
template <MethodOf<TorchModel> F>
torch::Tensor denoised_attributions(TorchModel& model, const torch::Tensor& inputs, const Target& target, F&& method,
                                    int64_t samples = 50, double noise_magnitude = 0.1, uint64_t seed = 42,
                                    int64_t batch_size = 64) {
  detail::check_smoothing(samples, noise_magnitude, batch_size);
  const auto classes = detail::class_targets(model, inputs, target, "denoised attributions");
  const auto clean = detail::explain_batch(method, model, inputs, classes, "denoised attributions");
  if (samples == 1) return clean;
  const NoiseTunnelOptions noisy{.samples = samples - 1, .stdev = 0, .relative_stdev = noise_magnitude,
                                 .seed = seed, .batch_size = batch_size};
  auto noisy_mean = noise_tunnel(model, inputs, Target(classes), method, noisy).detach();
  detail::check_same_shape(clean, noisy_mean, "denoised attributions", "for noisy inputs");
  const double m = static_cast<double>(samples);
  return noisy_mean * ((m - 1) / m) + clean / m;
}

// The smooth model parameter randomisation test (see above).
template <MethodOf<TorchModel> F>
SmoothMprtResult smooth_mprt(TorchModel& model, const torch::Tensor& inputs, const Target& target, F&& method,
                             const SmoothMprtOptions& options = {}) {
  detail::check_smoothing(options.samples, options.noise_magnitude, options.batch_size);
  SmoothMprtResult result;
  result.targets = detail::class_targets(model, inputs, target, "smooth MPRT");
  const Target fixed(result.targets);
  const int64_t last = detail::randomised_state_count(model, options.group_depth, options.groups);
  std::vector<std::vector<double>> original;  // |denoised map| of each item on the original model
  detail::for_each_layer_state(
      model, options.order, options.init, options.group_depth, options.groups,
      [&](TorchModel& m, const RandomisationStep& step) {
        if (options.skip_layers && step.index != 0 && step.index != last) return;
        auto maps = denoised_attributions(m, inputs, fixed, method, options.samples, options.noise_magnitude,
                                          options.seed, options.batch_size);
        if (options.abs) maps = maps.abs();
        auto items = detail::metric_items(maps, "smooth MPRT");
        if (step.index == 0) original = items;
        else if (items.front().size() != original.front().size())
          detail::fail("smooth MPRT: the method returned maps of ", items.front().size(), " values per input at state '",
                       step.group, "' but ", original.front().size(), " for the original; expected the same");
        std::vector<double> scores;
        for (size_t i = 0; i < items.size(); ++i)
          scores.push_back(detail::pearson_of(detail::average_ranks(original[i]), detail::average_ranks(items[i])));
        result.steps.push_back(step);
        result.similarity.push_back(std::move(scores));
      });
  return result;
}

// ---------------------------------------------------------------------------------------------
// Efficient MPRT

struct EfficientMprtOptions {
  LayerOrder order = LayerOrder::bottom_up;  // Quantus' default layer_order
  ReinitOptions init = {.seed = 42};         // new weights (scheme, its parameters, seed)
  int64_t group_depth = 0;                   // 0: every module with parameters is a layer (Quantus)
  std::vector<std::string> groups = {};      // randomise only these groups
  int64_t n_bins = 100;                      // histogram bins of discrete_entropy
  bool abs = false;                          // histogram of |map|
  bool skip_layers = true;                   // explain only the original and the last state
};

template <class Visit>
void for_each_option(EfficientMprtOptions& o, Visit&& visit) {
  visit("order", o.order), visit("init_seed", o.init.seed), visit("group_depth", o.group_depth);
  visit("groups", o.groups), visit("n_bins", o.n_bins), visit("abs", o.abs), visit("skip_layers", o.skip_layers);
}

struct EfficientMprtResult {
  std::vector<RandomisationStep> steps;         // the states explained; steps[0]: the original model
  std::vector<std::vector<double>> complexity;  // [step][item]: discrete entropy of the map
  std::vector<double> scores;                   // per item: (H_last - H_orig) / H_orig (Quantus' scores)
  std::vector<double> fraction;                 // per item: H_last / H_orig, NaN when H_orig = 0
  std::vector<int64_t> targets;                 // the class explained per input

  double mean() const {
    double sum = 0;
    for (double v : scores) sum += v;
    return sum / static_cast<double>(scores.size());
  }
};

// The efficient model parameter randomisation test (see above).
template <MethodOf<TorchModel> F>
EfficientMprtResult efficient_mprt(TorchModel& model, const torch::Tensor& inputs, const Target& target, F&& method,
                                   const EfficientMprtOptions& options = {}) {
  detail::check_bins(options.n_bins);
  EfficientMprtResult result;
  result.targets = detail::class_targets(model, inputs, target, "efficient MPRT");
  const int64_t last = detail::randomised_state_count(model, options.group_depth, options.groups);
  torch::Tensor original;
  detail::for_each_layer_state(
      model, options.order, options.init, options.group_depth, options.groups,
      [&](TorchModel& m, const RandomisationStep& step) {
        if (options.skip_layers && step.index != 0 && step.index != last) return;
        auto maps = detail::explain_batch(method, m, inputs, result.targets, "efficient MPRT");
        if (step.index == 0) original = maps;
        else detail::check_same_shape(original, maps, "efficient MPRT", "at state '" + step.group + "'");
        std::vector<double> entropy;
        for (const auto& item : detail::metric_items(options.abs ? maps.abs() : maps, "efficient MPRT"))
          entropy.push_back(detail::discrete_entropy_of(item, options.n_bins));
        result.steps.push_back(step);
        result.complexity.push_back(std::move(entropy));
      });
  const auto& before = result.complexity.front();
  const auto& after = result.complexity.back();
  for (size_t i = 0; i < before.size(); ++i) {
    result.scores.push_back((after[i] - before[i]) / before[i]);
    result.fraction.push_back(before[i] != 0 ? after[i] / before[i] : std::numeric_limits<double>::quiet_NaN());
  }
  return result;
}

}  // namespace salient
