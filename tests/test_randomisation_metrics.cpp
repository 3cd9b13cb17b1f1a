// Quantus 0.6's randomisation metrics (evaluation/randomisation_metrics.hpp): random logit,
// smooth MPRT and efficient MPRT. Known values: NumPy's legacy draws and a NumPy/SciPy
// re-implementation of Quantus' RandomLogit, ssim and discrete_entropy (numbers below), maps
// that do not depend on the class or the parameters (exactly 1, or 0 complexity rise), and
// independent re-computations; the model's parameters are restored bit-for-bit every time.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "error_matchers.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/core/options.hpp"
#include "salient/evaluation/randomisation_metrics.hpp"

// Helpers in their own namespace: test files are compiled together (unity build).
namespace rmt {
using salient::Target;
using salient::TorchModel;

std::map<std::string, torch::Tensor> snapshot(const TorchModel& model) {
  std::map<std::string, torch::Tensor> copy;
  for (const auto& [name, t] : model.named_parameters()) copy[name] = t.detach().clone();
  return copy;
}

bool unchanged(const TorchModel& model, const std::map<std::string, torch::Tensor>& before) {
  for (const auto& [name, t] : model.named_parameters())
    if (!torch::equal(t.detach(), before.at(name))) return false;
  return true;
}

// Two parameter groups at group_depth 0: "0" (conv, input side) and "3" (linear, logits).
torch::nn::Sequential small_cnn() {
  torch::manual_seed(11);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 3, 3).padding(1)), torch::nn::ReLU(),
                               torch::nn::Flatten(), torch::nn::Linear(3 * 6 * 6, 4));
}

torch::Tensor small_inputs() {
  torch::manual_seed(5);
  return torch::rand({2, 1, 6, 6});
}

const auto gradient = [](TorchModel& m, const torch::Tensor& x, const Target& t) {
  return salient::saliency(m, x, t, {.abs = false});
};
// A map that depends neither on the class nor on the parameters.
const auto input_map = [](TorchModel&, const torch::Tensor& x, const Target&) { return x * 2; };

// Shannon entropy of a histogram of `bins` equal-width bins over [min, max], plain loops.
double histogram_entropy(const torch::Tensor& map, int64_t bins) {
  auto flat = map.detach().to(torch::kDouble).contiguous().reshape({-1});
  std::vector<double> v(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
  double lo = v[0], hi = v[0];
  for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  std::vector<double> counts(static_cast<size_t>(bins), 0.0);
  for (double x : v) counts[std::min<int64_t>(static_cast<int64_t>((x - lo) / (hi - lo) * bins), bins - 1)] += 1;
  double h = 0;
  for (double c : counts)
    if (c > 0) h -= c / v.size() * std::log(c / v.size());
  return h;
}
}  // namespace rmt

TEST_CASE("random logit draws the other class as Quantus' seeded NumPy generator", "[randomisation_metrics]") {
  // np.random.seed(42); np.random.randint(0, num_classes - 1, batch) mapped past the target.
  CHECK(salient::random_logit_classes({0, 1, 999, 500, 102, 103}, 1000) ==
        std::vector<int64_t>{103, 436, 860, 270, 107, 71});
  CHECK(salient::random_logit_classes({0, 1, 1}, 2) == std::vector<int64_t>{1, 0, 0});
  CHECK(salient::random_logit_classes({2, 0, 1, 1}, 3) == std::vector<int64_t>{0, 2, 0, 0});
  // Re-seeded at every Quantus batch: items 64.. repeat the draws of items 0.. (without the
  // restart they would be 274, 388, ...).
  std::vector<int64_t> targets(70);
  for (int64_t i = 0; i < 70; ++i) targets[i] = i;
  const auto others = salient::random_logit_classes(targets, 1000);
  CHECK(std::vector<int64_t>(others.begin(), others.begin() + 6) == std::vector<int64_t>{103, 436, 861, 271, 107, 72});
  CHECK(std::vector<int64_t>(others.begin() + 60, others.end()) ==
        std::vector<int64_t>{647, 20, 841, 167, 103, 436, 861, 271, 107, 72});
  // Quantus batch size 1 (and the per-instance Quantus versions): every item's first draw,
  // np.random.seed(42); np.random.choice([c for c in range(10) if c != t]).
  CHECK(salient::random_logit_classes({3, 0, 9}, 10, 42, 1) == std::vector<int64_t>{7, 7, 6});
}

TEST_CASE("flat SSIM and discrete entropy equal Quantus' functions", "[randomisation_metrics]") {
  auto p = torch::arange(10, torch::kDouble);
  auto q = torch::tensor({1., 0., 3., 2., 5., 4., 7., 6., 9., 8.}, torch::kDouble);
  // skimage.metrics.structural_similarity(p, q, data_range=9) of the 1-D vectors.
  CHECK(salient::flat_ssim(p, q) == Approx(0.8911216781141902).epsilon(1e-12));
  CHECK(salient::flat_ssim(p.view({2, 5}), q) == Approx(0.8911216781141902).epsilon(1e-12));  // flattened
  CHECK(salient::flat_ssim(q, q) == 1.0);
  CHECK(salient::flat_ssim(torch::full({8}, 3.0), torch::full({8}, 3.0)) == 1.0);

  // scipy.stats.entropy(np.histogram(a, bins)[0]).
  auto h = salient::discrete_entropy(torch::tensor({0., 0., 1., 1., 2., 2., 2., 2.}).view({1, 8}), 2);
  CHECK(h[0] == Approx(0.5623351446188083).epsilon(1e-12));  // counts 2, 6
  auto v = torch::tensor({0.1, 0.35, 0.35, 0.9, 1.0, 0.6, 0.61, -0.2, 0.3}, torch::kDouble).view({1, 9});
  CHECK(salient::discrete_entropy(v, 3)[0] == Approx(1.0608569471580214).epsilon(1e-12));  // counts 2, 3, 4
  CHECK(salient::discrete_entropy(v)[0] == Approx(2.04319187054512).epsilon(1e-12));       // 100 bins
  // Values on the inner edges fall in the upper bin, the maximum in the last: counts 2,2,2,2,3.
  CHECK(salient::discrete_entropy(torch::arange(11, torch::kDouble).view({1, 11}), 5)[0] ==
        Approx(1.5941666991180168).epsilon(1e-12));
  CHECK(salient::discrete_entropy(torch::full({2, 3}, 5.0)) == std::vector<double>{0.0, 0.0});  // one bin

  salient::test::require_error_mentioning([&] { salient::flat_ssim(p.slice(0, 0, 6), q.slice(0, 0, 6)); }, "shorter than the 7");
  salient::test::require_error_mentioning([&] { salient::flat_ssim(p, q.slice(0, 0, 9)); }, "the same number");
  salient::test::require_error_mentioning([&] { salient::discrete_entropy(v, 0); }, "n_bins must be in [1,");
}

TEST_CASE("random logit equals a NumPy re-implementation of Quantus on a linear model", "[randomisation_metrics]") {
  // logits = x.flatten() @ W.T: the signed gradient of class c is W[c] whatever the input.
  // W[c][k] = sin(0.7 c + 1.3 k + 0.2), W[c][0] = 1 (every row's max |value| is 1, so Quantus'
  // batch-wide normalise_by_max equals the per-map one here).
  auto c = torch::arange(10, torch::kDouble).unsqueeze(1), k = torch::arange(16, torch::kDouble).unsqueeze(0);
  auto W = torch::sin(0.7 * c + 1.3 * k + 0.2);
  W.select(1, 0).fill_(1.0);
  salient::TorchModel model([W](const torch::Tensor& x) { return x.reshape({x.size(0), -1}).matmul(W.t()); });
  torch::manual_seed(1);
  auto x = torch::rand({3, 1, 4, 4}, torch::kDouble);
  auto result = salient::random_logit_test(model, x, std::vector<int64_t>{3, 0, 9}, rmt::gradient);
  CHECK(result.other_classes == std::vector<int64_t>{7, 4, 7});
  // Quantus 0.6 RandomLogit (ssim, normalise_by_max, abs False, seed 42), NumPy/skimage.
  REQUIRE(result.scores.size() == 3);
  CHECK(result.scores[0] == Approx(0.582379303717572).epsilon(1e-10));
  CHECK(result.scores[1] == Approx(0.5369431789668642).epsilon(1e-10));
  CHECK(result.scores[2] == Approx(0.04860719257125274).epsilon(1e-10));
  CHECK(result.mean() == Approx((0.582379303717572 + 0.5369431789668642 + 0.04860719257125274) / 3).epsilon(1e-10));

  // Explicit other classes: the same classes give the same scores.
  auto given = salient::random_logit_test(model, x, std::vector<int64_t>{3, 0, 9}, rmt::gradient,
                                          {.other_classes = {7, 4, 7}});
  CHECK(given.scores == result.scores);
}

TEST_CASE("random logit of a class-independent map is exactly 1", "[randomisation_metrics]") {
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto before = rmt::snapshot(model);
  auto result = salient::random_logit_test(model, x, salient::top1, rmt::input_map, {.abs = true});
  CHECK(result.scores == std::vector<double>{1.0, 1.0});
  CHECK(result.other_classes.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(result.other_classes[i] != result.targets[i]);
  // The CNN's gradient does depend on the class.
  auto grad = salient::random_logit_test(model, x, salient::top1, rmt::gradient);
  for (double s : grad.scores) CHECK(s < 0.999);
  CHECK(rmt::unchanged(model, before));
}

TEST_CASE("random logit rejects bad input", "[randomisation_metrics]") {
  using salient::test::require_error_mentioning;
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  require_error_mentioning([&] { salient::random_logit_test(model, x, 7, rmt::input_map); }, "target class 7 out of range [0, 4)");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.num_classes = 1}); },
                           "num_classes in [2,");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.num_classes = -1}); },
                           "num_classes must be in [0,");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.quantus_batch_size = 0}); },
                           "quantus_batch_size must be in [1,");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.seed = 1ull << 32}); },
                           "NumPy's seed range");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.other_classes = {2}}); },
                           "1 other classes for 2 inputs");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.other_classes = {2, 1}}); },
                           "is its target class");
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, rmt::input_map, {.other_classes = {2, 4}}); },
                           "target class 4 out of range");
  const salient::Target custom(salient::Target::Score([](const torch::Tensor& out) { return out.sum(1); }));
  require_error_mentioning([&] { salient::random_logit_test(model, x, custom, rmt::input_map); }, "needs a class target");
  auto tiny = [](salient::TorchModel&, const torch::Tensor& in, const salient::Target&) { return in.slice(2, 0, 2).slice(3, 0, 2); };
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, tiny); }, "shorter than the 7");
  auto one_map = [](salient::TorchModel&, const torch::Tensor& in, const salient::Target&) { return in.slice(0, 0, 1); };
  require_error_mentioning([&] { salient::random_logit_test(model, x, 1, one_map); }, "one map per input");
}

TEST_CASE("smooth MPRT of a parameter-independent map is 1 at every state; layer orders", "[randomisation_metrics]") {
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto before = rmt::snapshot(model);
  auto result = salient::smooth_mprt(model, x, salient::top1, rmt::input_map, {.samples = 4});
  REQUIRE(result.steps.size() == 3);
  // Quantus' default bottom-up order: the input-side layer first.
  CHECK(result.steps[1].group == "0");
  CHECK(result.steps[2].randomised == std::vector<std::string>{"0", "3"});
  for (const auto& step : result.similarity)
    for (double s : step) CHECK(s == Approx(1.0).margin(1e-12));
  for (double s : result.last()) CHECK(s == Approx(1.0).margin(1e-12));
  for (double s : result.average()) CHECK(s == Approx(1.0).margin(1e-12));
  CHECK(rmt::unchanged(model, before));

  auto top_down = salient::smooth_mprt(model, x, salient::top1, rmt::input_map, {.order = salient::LayerOrder::top_down, .samples = 1});
  CHECK(top_down.steps[1].group == "3");
  auto independent = salient::smooth_mprt(model, x, salient::top1, rmt::input_map,
                                          {.order = salient::LayerOrder::independent, .samples = 1});
  CHECK(independent.steps[2].randomised == std::vector<std::string>{"0"});
  auto skipped = salient::smooth_mprt(model, x, salient::top1, rmt::input_map, {.samples = 1, .skip_layers = true});
  REQUIRE(skipped.steps.size() == 2);
  CHECK(skipped.steps[1].index == 2);
  CHECK(rmt::unchanged(model, before));
}

TEST_CASE("smooth MPRT of the gradient equals an independent re-computation and drops", "[randomisation_metrics]") {
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto before = rmt::snapshot(model);
  // samples = 1: the plain map; the last bottom-up state has every group re-initialised.
  auto result = salient::smooth_mprt(model, x, salient::top1, rmt::gradient, {.samples = 1});
  REQUIRE(result.steps.size() == 3);
  CHECK(rmt::unchanged(model, before));

  auto original = rmt::gradient(model, x, result.targets).abs();
  torch::Tensor randomised;
  {
    salient::ParameterSnapshot restore(model);
    const auto groups = salient::parameter_groups(model, 0);
    for (size_t i = 0; i < groups.size(); ++i) salient::reinitialise(model, groups[i], {.seed = 42}, i);
    randomised = rmt::gradient(model, x, result.targets).abs();
  }
  CHECK(rmt::unchanged(model, before));
  for (int64_t i = 0; i < 2; ++i) {
    const double expected = salient::spearman(original[i], randomised[i]);
    CHECK(result.last()[i] == Approx(expected).margin(1e-12));
    CHECK(result.last()[i] < 0.9);  // randomising the model changes the gradient
    CHECK(result.similarity[0][i] == Approx(1.0).margin(1e-12));
    CHECK(result.average()[i] == Approx((result.similarity[1][i] + result.similarity[2][i]) / 2).margin(1e-12));
  }
}

TEST_CASE("denoised maps average noisy copies with the last one clean", "[randomisation_metrics]") {
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto identity = [](salient::TorchModel&, const torch::Tensor& in, const salient::Target&) { return in.clone(); };
  // No noise: the input (up to float rounding of the mean).
  CHECK(torch::allclose(salient::denoised_attributions(model, x, 0, identity, 5, 0.0), x, 1e-6, 1e-7));
  // Two copies: (x + e) / 2 + x / 2, e ~ N(0, (0.1 (max - min))^2) per input (the model is not
  // run: explicit classes, and the map ignores it).
  torch::manual_seed(2);
  auto many = torch::cat({torch::rand({1, 1, 40, 40}), torch::rand({1, 1, 40, 40}) * 3 - 1}, 0);
  auto d = salient::denoised_attributions(model, many, 0, identity, 2, 0.1, 7);
  for (int64_t i = 0; i < 2; ++i) {
    auto noise = 2 * (d[i] - many[i]);
    const double range = (many[i].max() - many[i].min()).item<double>();
    INFO("item " << i << ": noise stdev " << noise.std().item<double>() << " for range " << range);
    CHECK(noise.std().item<double>() == Approx(0.1 * range).epsilon(0.1));  // 1600 draws
    CHECK(std::abs(noise.mean().item<double>()) < 0.01 * range);
  }
  // Seeded: the same seed gives the same maps, another seed other maps.
  CHECK(torch::equal(d, salient::denoised_attributions(model, many, 0, identity, 2, 0.1, 7)));
  CHECK(!torch::equal(d, salient::denoised_attributions(model, many, 0, identity, 2, 0.1, 8)));
}

TEST_CASE("efficient MPRT: complexity rise of the fully randomised model", "[randomisation_metrics]") {
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto before = rmt::snapshot(model);
  // A parameter-independent map: the same histogram before and after, rise 0, fraction 1.
  auto flat = salient::efficient_mprt(model, x, salient::top1, rmt::input_map);
  REQUIRE(flat.steps.size() == 2);  // skip_layers: the original and the last state only
  CHECK(flat.steps[1].randomised == std::vector<std::string>{"0", "3"});
  CHECK(flat.scores == std::vector<double>{0.0, 0.0});
  CHECK(flat.fraction == std::vector<double>{1.0, 1.0});

  // The gradient, every state: complexities re-computed with plain loops from the maps.
  std::vector<torch::Tensor> maps;
  auto recording = [&](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    maps.push_back(rmt::gradient(m, in, t).detach().clone());
    return maps.back();
  };
  auto result = salient::efficient_mprt(model, x, salient::top1, recording, {.skip_layers = false});
  REQUIRE(result.steps.size() == 3);
  REQUIRE(maps.size() == 3);
  for (size_t s = 0; s < 3; ++s)
    for (int64_t i = 0; i < 2; ++i) CHECK(result.complexity[s][i] == Approx(rmt::histogram_entropy(maps[s][i], 100)).margin(1e-12));
  for (int64_t i = 0; i < 2; ++i) {
    const double a = result.complexity[0][i], b = result.complexity[2][i];
    CHECK(result.scores[i] == Approx((b - a) / a).margin(1e-12));
    CHECK(result.fraction[i] == Approx(b / a).margin(1e-12));
    CHECK(result.fraction[i] != 1.0);  // the randomised model's gradient differs
  }
  CHECK(rmt::unchanged(model, before));
}

TEST_CASE("smooth and efficient MPRT reject bad input and restore parameters after errors", "[randomisation_metrics]") {
  using salient::test::require_error_mentioning;
  salient::TorchModel model(rmt::small_cnn());
  auto x = rmt::small_inputs();
  auto before = rmt::snapshot(model);
  require_error_mentioning([&] { salient::smooth_mprt(model, x, 0, rmt::input_map, {.samples = 0}); }, "samples must be in [1,");
  require_error_mentioning([&] { salient::smooth_mprt(model, x, 0, rmt::input_map, {.noise_magnitude = -1}); },
                           "noise_magnitude must be finite and >= 0");
  require_error_mentioning([&] { salient::smooth_mprt(model, x, 0, rmt::input_map, {.samples = 1, .batch_size = 0}); },
                           "batch_size must be in [1,");
  require_error_mentioning([&] { salient::efficient_mprt(model, x, 0, rmt::input_map, {.n_bins = 0}); }, "n_bins must be in [1,");
  require_error_mentioning([&] { salient::efficient_mprt(model, x, 0, rmt::input_map, {.group_depth = -1}); },
                           "group_depth must be in [0,");
  require_error_mentioning([&] { salient::efficient_mprt(model, x, 0, rmt::input_map, {.groups = {"nope"}}); },
                           "no parameter group 'nope' at group_depth 0 (groups: 0, 3)");
  require_error_mentioning([&] { salient::smooth_mprt(model, x, 0, rmt::input_map, {.order = salient::LayerOrder::top_down, .groups = {"nope"}}); },
                           "no parameter group 'nope'");
  salient::TorchModel plain([](const torch::Tensor& in) { return in.reshape({in.size(0), -1}); });
  require_error_mentioning([&] { salient::efficient_mprt(plain, x, 0, rmt::input_map); }, "needs a model with parameters");
  // A method that fails on a randomised model: the error propagates, the parameters come back.
  int calls = 0;
  auto failing = [&](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    if (++calls > 1) return rmt::gradient(m, in, t).slice(0, 0, 1);
    return rmt::gradient(m, in, t);
  };
  require_error_mentioning([&] { salient::efficient_mprt(model, x, 0, failing); }, "one map per input");
  CHECK(rmt::unchanged(model, before));
  calls = 0;
  auto resized = [&](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    auto g = rmt::gradient(m, in, t);
    return ++calls > 1 ? g.reshape({g.size(0), -1}).slice(1, 0, 20) : g;
  };
  require_error_mentioning([&] { salient::smooth_mprt(model, x, 0, resized, {.samples = 1}); }, "values per input");
  CHECK(rmt::unchanged(model, before));
}

TEST_CASE("randomisation metric options are set by name", "[randomisation_metrics]") {
  salient::SmoothMprtOptions smooth;
  CHECK(salient::set_option(smooth, "order", "top_down"));
  CHECK(smooth.order == salient::LayerOrder::top_down);
  CHECK(salient::set_option(smooth, "samples", "8"));
  CHECK(smooth.samples == 8);
  salient::test::require_error_mentioning([&] { salient::set_option(smooth, "order", "sideways"); }, "unknown layer order 'sideways'");
  salient::test::require_error_mentioning([&] { salient::set_option(smooth, "samples", "99999999"); }, "at most");
  CHECK(salient::options_json(salient::SmoothMprtOptions{})["noise_magnitude"] == 0.1);
  CHECK(salient::options_json(salient::EfficientMprtOptions{})["n_bins"] == 100);
  CHECK(salient::options_json(salient::RandomLogitOptions{})["seed"] == 42);
  salient::RandomLogitOptions logit;
  CHECK(salient::set_option(logit, "quantus_batch_size", "1"));
  CHECK(logit.quantus_batch_size == 1);
  const auto names = salient::option_names(salient::EfficientMprtOptions{});
  CHECK(std::find(names.begin(), names.end(), "skip_layers") != names.end());
}
