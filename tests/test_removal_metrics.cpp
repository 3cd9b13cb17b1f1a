// Quantus' removal metrics (evaluation/removal.hpp) and noisy linear imputation
// (masking/imputation.hpp) on analytic xtensor models, with values known by construction.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "salient/core/xtensor_backend.hpp"
#include "salient/evaluation/removal.hpp"
#include "salient/masking/imputation.hpp"
#include "xtensor_helpers.hpp"

namespace salient::test::removal {
using Tensor = xt::xarray<double>;
using Model = salient::LinearModel;

// Per pixel, the logit change of class k when the pixel (all channels) takes `fill`.
inline std::vector<double> contributions(const Model& model, const Tensor& x, double fill, size_t k) {
  const size_t c = x.shape()[1], pixels = x.shape()[2] * x.shape()[3];
  std::vector<double> out(pixels, 0.0);
  for (size_t ch = 0; ch < c; ++ch)
    for (size_t p = 0; p < pixels; ++p) out[p] += model.weight(k, ch * pixels + p) * (x.data()[ch * pixels + p] - fill);
  return out;
}

inline Tensor pixel_map(const std::vector<double>& values, size_t h, size_t w) {
  Tensor a = xt::zeros<double>({size_t{1}, size_t{1}, h, w});
  std::copy(values.begin(), values.end(), a.begin());
  return a;
}
}  // namespace salient::test::removal

namespace removal = salient::test::removal;
using salient::test::random_tensor;

TEST_CASE("pixel flipping removes pixels in numpy's argsort(-a) order, down to the input minimum",
          "[xtensor][removal]") {
  const size_t C = 2, H = 5, W = 6, D = C * H * W;
  removal::Model model{random_tensor({2, D}, 31), random_tensor({2}, 32)};
  const removal::Tensor x = random_tensor({1, C, H, W}, 33);
  const double minimum = xt::amin(x)();
  const auto drop = removal::contributions(model, x, minimum, 0);
  const removal::Tensor a = removal::pixel_map(drop, H, W);  // the exact contributions: distinct values
  salient::PixelFlippingOptions<removal::Model> options{.features_in_step = 4, .evaluation = {.probabilities = false}};
  const auto curve = salient::pixel_flipping(model, x, 0, a, options).at(0);
  std::vector<double> sorted = drop;
  std::sort(sorted.rbegin(), sorted.rend());
  REQUIRE(curve.scores.size() == (H * W + 3) / 4);  // the last step removes the 2 left
  double score = model.forward(x)(0, 0);
  for (size_t k = 0; k < curve.scores.size(); ++k) {
    for (size_t q = 4 * k; q < std::min(H * W, 4 * k + 4); ++q) score -= sorted[q];
    CHECK(curve.scores[k] == Approx(score).margin(1e-9));
    CHECK(curve.fractions[k] == Approx(std::min(1.0, 4.0 * (k + 1) / (H * W))));
  }
  // Quantus' AUC: numpy.trapz(scores, dx=1).
  double trapz = 0;
  for (size_t k = 1; k < curve.scores.size(); ++k) trapz += (curve.scores[k] + curve.scores[k - 1]) / 2;
  CHECK(salient::quantus_auc(curve) == Approx(trapz));
  // Softmax probabilities by default; every step is one masked input.
  const auto probabilities = salient::pixel_flipping(model, x, 0, a, {.features_in_step = 4}).at(0);
  for (double p : probabilities.scores) CHECK((p > 0 && p < 1));
  CHECK_THROWS_WITH(salient::pixel_flipping(model, x, 0, a, {.features_in_step = 0}),
                    Catch::Contains("features_in_step must be in [1, 30]"));
  CHECK_THROWS_WITH(salient::pixel_flipping(model, x, 0, removal::Tensor(xt::zeros<double>({size_t{1}, C, H, W}))),
                    Catch::Contains("one value per pixel"));
}

TEST_CASE("region perturbation takes the best non-overlapping windows; selectivity scores what is left",
          "[xtensor][removal]") {
  const size_t H = 4, W = 4, D = H * W;
  removal::Model model{random_tensor({2, D}, 41), random_tensor({2}, 42)};
  const removal::Tensor x = random_tensor({1, 1, H, W}, 43);
  // Window sums (2x2, clipped at the edges): (2,2) holds 40; every window worth 20 or 10 overlaps
  // it; (0,0) holds 5 and is next.
  std::vector<double> values(D, 0.0);
  for (size_t p : {10, 11, 14, 15}) values[p] = 10;
  values[0] = 5;
  const removal::Tensor a = removal::pixel_map(values, H, W);
  salient::RegionPerturbationOptions<removal::Model> options{.patch_size = 2, .regions = 2, .evaluation = {.probabilities = false}};
  const auto curve = salient::region_perturbation(model, x, 0, a, options).at(0);
  const auto drop = removal::contributions(model, x, xt::amin(x)(), 0);
  REQUIRE(curve.scores.size() == 2);
  const double first = drop[10] + drop[11] + drop[14] + drop[15], second = first + drop[0] + drop[1] + drop[4] + drop[5];
  CHECK(curve.scores[0] == Approx(first).margin(1e-9));  // F(x) - F(x~)
  CHECK(curve.scores[1] == Approx(second).margin(1e-9));
  CHECK(curve.fractions == std::vector<double>{0.25, 0.5});
  // LeRF starts from the other end: a zero window first, so the drop differs from MoRF's.
  options.order = salient::RemovalOrder::lerf;
  const auto lerf = salient::region_perturbation(model, x, 0, a, options).at(0);
  CHECK(lerf.scores[0] != Approx(first));
  // Selectivity: the scores themselves, over every window that fits.
  const auto kept = salient::selectivity(model, x, 0, a, {.patch_size = 2, .evaluation = {.probabilities = false}}).at(0);
  const double full = model.forward(x)(0, 0);
  REQUIRE(kept.scores.size() >= 4);  // the two above, then windows of sum 0 in numpy's tie order
  CHECK(kept.scores[0] == Approx(full - first).margin(1e-9));
  CHECK(kept.scores[1] == Approx(full - second).margin(1e-9));
  CHECK(kept.fractions.back() <= 1.0);
  // Random order: seeded, repeatable.
  options.order = salient::RemovalOrder::random;
  CHECK(salient::region_perturbation(model, x, 0, a, options).at(0).scores ==
        salient::region_perturbation(model, x, 0, a, options).at(0).scores);
  CHECK_THROWS_WITH(salient::region_perturbation(model, x, 0, a, {.patch_size = 5}), Catch::Contains("patch_size must be in [1, 4]"));
  CHECK_THROWS_WITH(salient::region_perturbation(model, x, 0, a, {.patch_size = 2, .regions = -1}), Catch::Contains("regions must be in [0, 10000000]"));
  // A cap above the windows that fit takes all of them.
  CHECK(salient::region_perturbation(model, x, 0, a, {.patch_size = 2, .regions = 1000}).at(0).scores.size() == kept.scores.size());
}

TEST_CASE("monotonicity correlation is 1 for attributions ordered like the effects and -1 reversed",
          "[xtensor][removal]") {
  const size_t H = 3, W = 4, D = H * W;
  // Weights 2^p: each pixel's effect is 4x the previous one's, far beyond the spread of the
  // mean squared uniform fill over 100 samples.
  removal::Tensor weight = xt::zeros<double>({size_t{2}, D});
  std::vector<double> magnitude(D), inverse(D);
  for (size_t p = 0; p < D; ++p) {
    weight(0, p) = std::pow(2.0, static_cast<double>(p)) * (p % 2 ? -1 : 1);
    magnitude[p] = std::abs(weight(0, p));
    inverse[p] = 1 / magnitude[p];
  }
  removal::Model model{weight, removal::Tensor{1.0, 0.0}};
  removal::Tensor x = xt::zeros<double>({size_t{1}, size_t{1}, H, W});
  x(0, 0, 1, 1) = 1;  // inputs in [0, 1]: fills U(0, 1)
  salient::MonotonicityOptions<removal::Model> options{.evaluation = {.probabilities = false}};
  CHECK(salient::monotonicity_correlation(model, x, 0, removal::pixel_map(magnitude, H, W), options).at(0) == Approx(1.0));
  CHECK(salient::monotonicity_correlation(model, x, 0, removal::pixel_map(inverse, H, W), options).at(0) == Approx(-1.0));
  // Signed maps: abs by default (Quantus), so the sign of the weights does not matter.
  std::vector<double> signed_map(D);
  for (size_t p = 0; p < D; ++p) signed_map[p] = weight(0, p);
  CHECK(salient::monotonicity_correlation(model, x, 0, removal::pixel_map(signed_map, H, W), options).at(0) == Approx(1.0));
  // A model that ignores the input: no change anywhere, a constant side, 0.
  removal::Model constant{xt::zeros<double>({size_t{2}, D}), removal::Tensor{1.0, 0.0}};
  CHECK(salient::monotonicity_correlation(constant, x, 0, removal::pixel_map(magnitude, H, W), options).at(0) == 0.0);
  // Batch size does not change the draws.
  auto small = options;
  small.evaluation.batch_size = 7;
  small.samples = 10;
  options.samples = 10;
  CHECK(salient::monotonicity_correlation(model, x, 0, removal::pixel_map(signed_map, H, W), small) ==
        salient::monotonicity_correlation(model, x, 0, removal::pixel_map(signed_map, H, W), options));
  CHECK_THROWS_WITH(salient::monotonicity_correlation(model, x, 0, removal::pixel_map(magnitude, H, W), {.samples = 0}),
                    Catch::Contains("samples must be in [1,"));
}

TEST_CASE("noisy linear imputation reproduces a linear image inside, is seeded by the mask, and adds its noise",
          "[xtensor][removal][masking]") {
  const size_t C = 2, H = 7, W = 8;
  removal::Tensor image = xt::zeros<double>({size_t{1}, C, H, W});
  for (size_t c = 0; c < C; ++c)
    for (size_t y = 0; y < H; ++y)
      for (size_t x = 0; x < W; ++x) image(0, c, y, x) = 0.3 * y - 0.7 * x + c;
  // Remove an interior block (no removed pixel on the border): the weighted mean of the 8
  // neighbours reproduces a linear function exactly.
  removal::Tensor masks = xt::ones<double>({size_t{2}, size_t{1}, H, W});
  for (size_t y = 2; y < 5; ++y)
    for (size_t x = 1; x < 6; ++x) masks(0, 0, y, x) = 0;
  masks(1, 0, 3, 3) = 0;
  const salient::BasicImputationMasker<salient::XtensorBackend> exact(0.0);
  const removal::Tensor imputed = exact.masked_inputs(image, masks);
  const double block_error = xt::amax(xt::abs(xt::view(imputed, 0) - xt::view(image, 0)))();
  const double pixel_error = xt::amax(xt::abs(xt::view(imputed, 1) - xt::view(image, 0)))();
  CHECK(block_error < 1e-12);
  CHECK(pixel_error < 1e-12);
  // A removed corner: its in-image neighbours' weights are divided by their sum (1/6 + 1/6 +
  // 1/12), the rest of the image kept.
  removal::Tensor corner = xt::ones<double>({size_t{1}, size_t{1}, H, W});
  corner(0, 0, 0, 0) = 0;
  const removal::Tensor filled = exact.masked_inputs(image, corner);
  const double expected = (image(0, 0, 0, 1) / 6 + image(0, 0, 1, 0) / 6 + image(0, 0, 1, 1) / 12) / (5.0 / 12);
  CHECK(filled(0, 0, 0, 0) == Approx(expected));
  // Noise: seeded by the mask, so the same mask gives the same values in any batch.
  const salient::BasicImputationMasker<salient::XtensorBackend> noisy(0.5, 7);
  const removal::Tensor both = noisy.masked_inputs(image, masks);
  const removal::Tensor second = noisy.masked_inputs(image, removal::Tensor(xt::view(masks, xt::range(1, 2))));
  const double repeat = xt::amax(xt::abs(xt::view(both, 1) - xt::view(second, 0)))();
  CHECK(repeat == 0.0);
  double squares = 0;
  for (size_t c = 0; c < C; ++c)
    for (size_t y = 2; y < 5; ++y)
      for (size_t x = 1; x < 6; ++x) squares += std::pow(both(0, c, y, x) - image(0, c, y, x), 2);
  CHECK(squares > 0);
  const double kept_row = xt::amax(xt::abs(xt::view(both, 0, xt::all(), 0, xt::all()) - xt::view(image, 0, xt::all(), 0, xt::all())))();
  CHECK(kept_row == 0.0);  // kept rows kept
  removal::Tensor everything = xt::zeros<double>({size_t{1}, size_t{1}, H, W});
  CHECK_THROWS_WITH(exact.masked_inputs(image, everything), Catch::Contains("at least one kept pixel"));
  CHECK_THROWS_WITH(salient::BasicImputationMasker<salient::XtensorBackend>(-1.0), Catch::Contains("noise must be finite and >= 0"));
}

TEST_CASE("ROAD: imputing away the one pixel that decides the class flips it under MoRF, never under LeRF",
          "[xtensor][removal]") {
  const size_t H = 4, W = 4, D = H * W;
  removal::Tensor weight = xt::zeros<double>({size_t{2}, D});
  weight(0, 5) = 1;  // logit 0 = x[1,1] - 5, logit 1 = 0
  removal::Model model{weight, removal::Tensor{-5.0, 0.0}};
  removal::Tensor x = xt::zeros<double>({size_t{1}, size_t{1}, H, W});
  x(0, 0, 1, 1) = 10;
  std::vector<double> values(D, 0.0);
  for (size_t p = 0; p < D; ++p) values[p] = static_cast<double>(p % 5);  // ties, as numpy would break them
  values[5] = 100;
  const removal::Tensor a = removal::pixel_map(values, H, W);
  salient::RoadOptions<removal::Model> options{.percentages = {10, 50, 99}};
  const auto morf = salient::road(model, x, 0, a, options).at(0);
  CHECK(morf.scores == std::vector<double>{0, 0, 0});
  CHECK(morf.fractions == std::vector<double>{0.1, 0.5, 0.99});
  options.order = salient::RemovalOrder::lerf;
  CHECK(salient::road(model, x, 0, a, options).at(0).scores == std::vector<double>{1, 1, 1});
  // Under 1 % of 16 pixels removes none: the prediction stands.
  CHECK(salient::road(model, x, 0, a, {.percentages = {1}}).at(0).scores == std::vector<double>{1});
  // Levels evaluated in batches keep their order across the batch boundaries.
  for (const int64_t batch : {1, 3, 64})
    CHECK(salient::road(model, x, 0, a, {.percentages = {1, 10, 50, 99}, .batch_size = batch}).at(0).scores ==
          std::vector<double>{1, 0, 0, 0});
  CHECK_THROWS_WITH(salient::road(model, x, 0, a, {.percentages = {100}}), Catch::Contains("percentages must be in (0, 100)"));
  CHECK_THROWS_WITH(salient::road(model, x, 0, a, {.order = salient::RemovalOrder::random}), Catch::Contains("morf or lerf"));
}
