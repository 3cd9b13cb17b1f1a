// Attribution axioms on analytic models (xtensor backend): exact answers in closed form.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "salient/attribution/blur_ig.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/attribution/guided_ig.hpp"
#include "salient/attribution/integrated_gradients.hpp"
#include "salient/core/analytic_cnn.hpp"
#include "salient/attribution/noise_tunnel.hpp"
#include "salient/attribution/xrai.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "xtensor_helpers.hpp"

using salient::XtensorBackend;
using Tensor = xt::xarray<double>;

namespace {
using salient::test::random_tensor;

salient::LinearModel linear_model() {
  return {random_tensor({3, 6}, 1), random_tensor({3}, 2)};
}
salient::QuadraticModel quadratic_model() {
  return {random_tensor({3, 6, 6}, 3, 0.5), random_tensor({3, 6}, 4)};
}
salient::MlpModel mlp_model() {
  return {random_tensor({8, 6}, 5, 0.7), random_tensor({8}, 6), random_tensor({3, 8}, 7), random_tensor({3}, 8)};
}

template <class M>
std::vector<double> scores(M& model, const Tensor& x, int64_t cls) {
  salient::ResolvedTarget<Tensor> target{std::vector<int64_t>(x.shape()[0], cls), {}};
  return salient::target_scores(model, x, target);
}

// Central finite differences of the model's class score: checks the analytic gradients.
template <class M>
Tensor numeric_gradient(M& model, const Tensor& x, int64_t cls) {
  Tensor g = xt::zeros<double>(x.shape());
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    Tensor up = x, down = x;
    up.data()[i] += h;
    down.data()[i] -= h;
    auto su = scores(model, up, cls), sd = scores(model, down, cls);
    g.data()[i] = (su[i / (x.size() / x.shape()[0])] - sd[i / (x.size() / x.shape()[0])]) / (2 * h);
  }
  return g;
}
}  // namespace

TEMPLATE_TEST_CASE("analytic gradients agree with finite differences", "[xtensor]",
                   salient::LinearModel, salient::QuadraticModel, salient::MlpModel) {
  TestType model = [] {
    if constexpr (std::is_same_v<TestType, salient::LinearModel>) return linear_model();
    else if constexpr (std::is_same_v<TestType, salient::QuadraticModel>) return quadratic_model();
    else return mlp_model();
  }();
  Tensor x = random_tensor({2, 6}, 11);
  auto g = salient::saliency(model, x, 1, {.abs = false});
  auto expected = numeric_gradient(model, x, 1);
  REQUIRE(xt::allclose(g, expected, 1e-6, 1e-6));
}

TEST_CASE("integrated gradients of a linear model is exactly (x - b) * w", "[xtensor][ig]") {
  auto model = linear_model();
  Tensor x = random_tensor({2, 6}, 12);
  Tensor b = random_tensor({1, 6}, 13);
  for (auto method : {salient::IntegrationMethod::gauss_legendre, salient::IntegrationMethod::riemann_left,
                      salient::IntegrationMethod::riemann_middle, salient::IntegrationMethod::riemann_right}) {
    CAPTURE(salient::to_string(method));
    auto ig = salient::integrated_gradients(model, x, 2, {.steps = 16, .method = method, .baseline = b});
    Tensor expected = (x - b) * xt::view(model.weight, xt::newaxis(), 2, xt::all());
    // Exact up to double rounding: the gradient is constant and the weights sum to 1.
    REQUIRE(xt::allclose(ig, expected, 1e-13, 1e-14));
  }
}

TEST_CASE("Captum's trapezoid weights scale a linear model's IG by (n-1)/n", "[xtensor][ig]") {
  auto model = linear_model();
  Tensor x = random_tensor({1, 6}, 14);
  auto ig = salient::integrated_gradients(model, x, 0, {.steps = 10, .method = salient::IntegrationMethod::riemann_trapezoid});
  Tensor expected = 0.9 * x * xt::view(model.weight, xt::newaxis(), 0, xt::all());
  REQUIRE(xt::allclose(ig, expected, 1e-13, 1e-14));
}

TEST_CASE("integrated gradients is complete on nonlinear models (Gauss-Legendre, 64 steps)", "[xtensor][ig]") {
  Tensor x = random_tensor({3, 6}, 21);
  Tensor b = random_tensor({1, 6}, 22, 0.3);
  SECTION("quadratic") {
    auto model = quadratic_model();
    auto ig = salient::integrated_gradients(model, x, 0, {.steps = 64, .baseline = b});
    for (double d : salient::convergence_delta(model, ig, x, 0, b)) REQUIRE(std::abs(d) < 1e-4);
  }
  SECTION("mlp, top-1 target, small batch") {
    auto model = mlp_model();
    auto ig = salient::integrated_gradients(model, x, salient::top1, {.steps = 64, .baseline = b, .batch_size = 5});
    for (double d : salient::convergence_delta(model, ig, x, salient::top1, b)) REQUIRE(std::abs(d) < 1e-4);
  }
}

TEST_CASE("the Riemann trapezoid keeps Captum's weights", "[ig]") {
  auto steps = salient::integration_steps(salient::IntegrationMethod::riemann_trapezoid, 4);
  // Values printed by torch.linspace(0, 1, 4).tolist() (the second half is filled from the end).
  REQUIRE(steps.alphas == std::vector<double>{0.0, 0.3333333432674408, 0.6666666269302368, 1.0});
  REQUIRE(steps.weights == std::vector<double>{0.125, 0.25, 0.25, 0.125});
  // torch.linspace(0, 1 - 1/50, 50).tolist(), as Captum's riemann_left with 50 steps.
  auto left = salient::integration_steps(salient::IntegrationMethod::riemann_left, 50);
  REQUIRE(left.alphas[1] == 0.019999999552965164);
  REQUIRE(left.alphas[5] == 0.09999999403953552);
  REQUIRE(left.alphas[48] == 0.9600000381469727);
  REQUIRE(left.alphas[49] == 0.9800000190734863);
  auto gl = salient::integration_steps(salient::IntegrationMethod::gauss_legendre, 3);
  // leggauss(3): nodes -sqrt(3/5), 0, sqrt(3/5); weights 5/9, 8/9, 5/9.
  REQUIRE(gl.alphas[0] == Approx(0.5 * (1 - std::sqrt(0.6))).epsilon(1e-15));
  REQUIRE(gl.alphas[1] == Approx(0.5).margin(1e-15));
  REQUIRE(gl.weights[1] == Approx(4.0 / 9).epsilon(1e-14));
  REQUIRE_THROWS_WITH(salient::integration_steps(salient::IntegrationMethod::riemann_left, 1),
                      Catch::Contains("steps >= 2"));
}

TEST_CASE("Guided IG: (x - b) * w on a linear model, IG at max_dist 0, complete on an MLP", "[xtensor][guided_ig]") {
  Tensor x = random_tensor({3, 6}, 41);
  Tensor b = random_tensor({1, 6}, 42, 0.3);
  auto linear = linear_model();
  auto guided = salient::guided_integrated_gradients(linear, x, 2, {.steps = 20, .baseline = b});
  Tensor expected = (x - b) * xt::view(linear.weight, xt::newaxis(), 2, xt::all());
  REQUIRE(xt::allclose(guided, expected, 1e-12, 1e-13));
  // No deviation from the straight line: IG with left Riemann points (Captum's float32 points).
  auto mlp = mlp_model();
  auto straight = salient::guided_integrated_gradients(mlp, x, 1, {.steps = 50, .max_dist = 0, .baseline = b, .batch_size = 2});
  auto ig = salient::integrated_gradients(mlp, x, 1, {.steps = 50, .method = salient::IntegrationMethod::riemann_left, .baseline = b});
  REQUIRE(xt::allclose(straight, ig, 1e-5, 1e-7));
  // The guided path ends at the input: the sum converges to F(x) - F(b).
  auto complete = salient::guided_integrated_gradients(mlp, x, 1, {.steps = 2000, .baseline = b});
  const auto delta = salient::convergence_delta(mlp, complete, x, 1, b);
  for (double d : delta) REQUIRE(std::abs(d) < 1e-3);
  REQUIRE(xt::amax(xt::abs(complete - ig))() > 1e-3);  // and the path is not the straight line
  // An input equal to its baseline gets nothing.
  auto nothing = salient::guided_integrated_gradients(mlp, Tensor(xt::zeros<double>({1, 6}) + b), 0, {.baseline = b});
  REQUIRE(xt::amax(xt::abs(nothing))() == 0);
}

TEST_CASE("The backend's separable filter with Gaussian operators is SciPy's blur", "[xtensor][blur_ig]") {
  // In double precision (the xtensor backend's element type) the matrix products equal the
  // SciPy-ordered loops up to the order of the double sums.
  Tensor image = random_tensor({1, 2, 9, 13}, 5);
  std::vector<double> values(image.begin(), image.end());
  for (double sigma : {0.0, 0.3, 1.0, 2.5, 7.0}) {
    std::vector<double> vertical(81), horizontal(169);
    salient::detail::gaussian_operator(9, sigma, vertical.data());
    salient::detail::gaussian_operator(13, sigma, horizontal.data());
    const Tensor filtered = XtensorBackend::separable_filter(image, vertical, horizontal);
    const auto expected = salient::detail::gaussian_filter(values, 2, 9, 13, sigma, salient::detail::FilterBoundary::constant);
    REQUIRE(filtered.shape() == image.shape());
    for (std::size_t i = 0; i < expected.size(); ++i) REQUIRE(filtered.data()[i] == Approx(expected[i]).margin(1e-14));
  }
  // Two operator pairs give two filtered images; a wrong operator count is refused.
  std::vector<double> vertical(2 * 81), horizontal(2 * 169);
  salient::detail::gaussian_operator(9, 0.0, vertical.data());
  salient::detail::gaussian_operator(13, 0.0, horizontal.data());
  salient::detail::gaussian_operator(9, 1.0, vertical.data() + 81);
  salient::detail::gaussian_operator(13, 1.0, horizontal.data() + 169);
  const Tensor both = XtensorBackend::separable_filter(image, vertical, horizontal);
  REQUIRE(both.shape()[0] == 2);
  REQUIRE(xt::amax(xt::abs(xt::view(both, 0) - xt::view(image, 0)))() == 0);  // sigma 0: the image
  horizontal.pop_back();
  REQUIRE_THROWS_WITH(XtensorBackend::separable_filter(image, vertical, horizontal), Catch::Contains("do not make pairs"));
}

TEST_CASE("Guided IG's radix selection finds NumPy's lower quantile", "[xtensor][guided_ig]") {
  std::mt19937_64 random(9);
  std::lognormal_distribution<double> spread(-8.0, 3.0);
  for (std::size_t n : {1u, 7u, 5000u, 150528u}) {
    std::vector<double> values(n);
    for (auto& v : values) v = spread(random);
    for (std::size_t i = 0; i < n; i += 7) values[i] = values[i / 2];  // ties
    for (std::size_t i = 3; i < n; i += 11) values[i] = std::numeric_limits<double>::infinity();  // fixed features
    if (n > 2) values[1] = 0.0;
    for (double fraction : {0.0, 0.25, 0.5, 0.999, 1.0}) {
      const auto k = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(n - 1)));
      auto sorted = values;
      std::sort(sorted.begin(), sorted.end());
      auto work = values;
      CAPTURE(n, fraction);
      REQUIRE(salient::detail::kth_smallest_nonnegative(work, k) == sorted[k]);
    }
  }
}

TEST_CASE("Blur IG: SciPy's Gaussian blur, and the path sums to F(x) - F(blurred x)", "[xtensor][blur_ig]") {
  // An impulse far from the border keeps its mass and spreads symmetrically.
  std::vector<float> impulse(2 * 33 * 33, 0.0f);
  impulse[33 * 33 + 16 * 33 + 16] = 1.0f;
  auto spread = salient::detail::gaussian_filter(impulse, 2, 33, 33, 2.0, salient::detail::FilterBoundary::constant);
  double mass = 0;
  for (std::size_t i = 33 * 33; i < spread.size(); ++i) mass += spread[i];
  REQUIRE(mass == Approx(1.0).epsilon(1e-6));
  REQUIRE(spread[33 * 33 + 16 * 33 + 13] == spread[33 * 33 + 16 * 33 + 19]);
  REQUIRE(spread[33 * 33 + 13 * 33 + 16] == Approx(spread[33 * 33 + 16 * 33 + 13]).epsilon(1e-6));  // rounded per pass
  REQUIRE(spread[0] == 0.0f);  // the other channel stays empty
  REQUIRE(salient::detail::gaussian_filter(impulse, 2, 33, 33, 0.0, salient::detail::FilterBoundary::constant) == impulse);

  auto model = salient::AnalyticCnn::random(3, 4, 8, 8, 3, 11);
  Tensor x = random_tensor({2, 3, 8, 8}, 43);
  const double sigma = 1.5;
  auto attribution = salient::blur_integrated_gradients(model, x, 1, {.max_sigma = sigma, .steps = 400, .batch_size = 64});
  // The path's start, blurred as the method does (in float, as PAIR).
  std::vector<double> start;
  for (std::size_t i = 0; i < 2; ++i) {
    std::vector<float> image(x.begin() + i * 192, x.begin() + (i + 1) * 192);
    auto blurred = salient::detail::gaussian_filter(image, 3, 8, 8, sigma, salient::detail::FilterBoundary::constant);
    start.insert(start.end(), blurred.begin(), blurred.end());
  }
  Tensor blurred = xt::adapt(start, std::vector<std::size_t>{2, 3, 8, 8});
  const auto at_x = scores(model, x, 1), at_start = scores(model, blurred, 1);
  for (std::size_t i = 0; i < 2; ++i) {
    const double sum = xt::sum(xt::view(attribution, i))();
    CAPTURE(i, sum, at_x[i] - at_start[i]);
    REQUIRE(std::abs(sum - (at_x[i] - at_start[i])) <= 1e-2 * std::abs(at_x[i] - at_start[i]) + 1e-4);
  }
  auto linear = linear_model();
  REQUIRE_THROWS_WITH(salient::blur_integrated_gradients(linear, Tensor(random_tensor({1, 6}, 44)), 0),
                      Catch::Contains("needs images [N, C, H, W], got [1,6]"));
  REQUIRE_THROWS_WITH(salient::blur_integrated_gradients(model, Tensor(xt::zeros<double>({1, 3, 0, 8})), 1),
                      Catch::Contains("needs images of 1 to 8192 pixels per side, got 0x8"));
}

TEST_CASE("integrated gradients does not depend on batch size", "[xtensor][ig]") {
  auto model = mlp_model();
  Tensor x = random_tensor({3, 6}, 31);
  auto a = salient::integrated_gradients(model, x, 1, {.steps = 20, .batch_size = 1});
  auto b = salient::integrated_gradients(model, x, 1, {.steps = 20, .batch_size = 1000});
  REQUIRE(xt::allclose(a, b, 1e-12, 1e-12));
  auto per_item = salient::integrated_gradients(model, xt::view(x, xt::range(1, 2), xt::all()), 1, {.steps = 20});
  REQUIRE(xt::allclose(xt::view(a, xt::range(1, 2), xt::all()), per_item, 1e-12, 1e-12));
}

TEST_CASE("noise tunnel", "[xtensor][noise]") {
  auto model = linear_model();
  Tensor x = random_tensor({2, 6}, 41);
  auto gradient = [](auto& m, const Tensor& in, const auto& t) { return salient::saliency(m, in, t, {.abs = false}); };
  SECTION("SmoothGrad of a linear model equals its weights") {
    auto sg = salient::noise_tunnel(model, x, 1, gradient, {.samples = 10, .stdev = 0.5, .seed = 3});
    Tensor w = xt::view(model.weight, xt::newaxis(), 1, xt::all());
    REQUIRE(xt::allclose(sg, xt::zeros<double>(x.shape()) + w, 1e-12, 1e-12));
    auto vg = salient::noise_tunnel(model, x, 1, gradient, {.type = salient::NoiseTunnelType::vargrad, .samples = 10, .stdev = 0.5});
    REQUIRE(xt::allclose(vg, xt::zeros<double>(x.shape()), 1e-12, 1e-12));
  }
  SECTION("same seed, same output; another seed, another; batch size does not matter") {
    auto mlp = mlp_model();
    auto ixg = [](auto& m, const Tensor& in, const auto& t) { return salient::input_x_gradient(m, in, t); };
    auto a = salient::noise_tunnel(mlp, x, 0, ixg, {.samples = 7, .stdev = 0.3, .seed = 5, .batch_size = 3});
    auto b = salient::noise_tunnel(mlp, x, 0, ixg, {.samples = 7, .stdev = 0.3, .seed = 5, .batch_size = 14});
    auto c = salient::noise_tunnel(mlp, x, 0, ixg, {.samples = 7, .stdev = 0.3, .seed = 6, .batch_size = 3});
    REQUIRE(xt::allclose(a, b, 1e-12, 1e-12));
    REQUIRE_FALSE(xt::allclose(a, c, 1e-6, 1e-6));
  }
  SECTION("smoothgrad_sq and vargrad against a direct computation") {
    auto mlp = mlp_model();
    salient::NoiseTunnelOptions options{.samples = 4, .stdev = 0.2, .seed = 9};
    auto sq = salient::noise_tunnel(mlp, x, 2, gradient, {.type = salient::NoiseTunnelType::smoothgrad_sq, .samples = 4, .stdev = 0.2, .seed = 9});
    auto vg = salient::noise_tunnel(mlp, x, 2, gradient, {.type = salient::NoiseTunnelType::vargrad, .samples = 4, .stdev = 0.2, .seed = 9});
    auto sg = salient::noise_tunnel(mlp, x, 2, gradient, options);
    REQUIRE(xt::allclose(vg, sq - sg * sg, 1e-12, 1e-12));
    // Recompute item 0 by hand from the documented noise.
    Tensor mean = xt::zeros<double>({size_t{6}});
    for (int64_t j = 0; j < 4; ++j) {
      Tensor item = xt::view(x, xt::range(0, 1), xt::all());
      Tensor noisy = item;
      XtensorBackend::add_normal_noise(noisy, 0.2, {salient::detail::mix_seed(9, 0, j)});
      mean += xt::view(salient::saliency(mlp, noisy, 2, {.abs = false}), 0, xt::all()) / 4.0;
    }
    REQUIRE(xt::allclose(xt::view(sg, 0, xt::all()), mean, 1e-12, 1e-12));
  }
  SECTION("maps of another shape than the inputs (one value per item, as a CAM's one channel) keep it") {
    auto mlp = mlp_model();
    auto summed = [&](auto& m, const Tensor& in, const auto& t) {
      Tensor g = salient::saliency(m, in, t, {.abs = false});
      return Tensor(xt::sum(g, {1}, xt::keep_dims));
    };
    auto sg = salient::noise_tunnel(mlp, x, 1, summed, {.samples = 4, .stdev = 0.2, .seed = 4, .batch_size = 3});
    auto full = salient::noise_tunnel(mlp, x, 1, gradient, {.samples = 4, .stdev = 0.2, .seed = 4, .batch_size = 3});
    REQUIRE(sg.shape() == std::vector<size_t>{2, 1});
    REQUIRE(xt::allclose(sg, xt::sum(full, {1}, xt::keep_dims), 1e-12, 1e-12));
    auto shrinking = [&](auto& m, const Tensor& in, const auto& t) {
      Tensor g = salient::saliency(m, in, t, {.abs = false});
      return in.shape()[0] == 3 ? g : Tensor(xt::sum(g, {1}, xt::keep_dims));
    };
    REQUIRE_THROWS_WITH(salient::noise_tunnel(mlp, x, 1, shrinking, {.samples = 4, .stdev = 0.2, .batch_size = 3}),
                        Catch::Contains("noise tunnel: the method returned maps of shape [2,1] after maps of [2,6]"));
  }
  SECTION("relative_stdev scales the noise by each input's value range") {
    auto mlp = mlp_model();
    Tensor wide = x;
    xt::view(wide, 1, xt::all()) *= 3.0;  // item 1 has three times item 0's range
    auto relative = salient::noise_tunnel(mlp, wide, 0, gradient, {.samples = 3, .relative_stdev = 0.15, .seed = 2, .batch_size = 4});
    for (int64_t i = 0; i < 2; ++i) {
      Tensor item = xt::view(wide, xt::range(i, i + 1), xt::all());
      const double stdev = 0.15 * (xt::amax(item)() - xt::amin(item)());
      // The same seeds per (item, sample) as a one-item call: item i's result with its absolute stdev.
      Tensor mean = xt::zeros<double>({size_t{6}});
      for (int64_t j = 0; j < 3; ++j) {
        Tensor noisy = item;
        XtensorBackend::add_normal_noise(noisy, stdev, {salient::detail::mix_seed(2, static_cast<uint64_t>(i), j)});
        mean += xt::view(salient::saliency(mlp, noisy, 0, {.abs = false}), 0, xt::all()) / 3.0;
      }
      REQUIRE(xt::allclose(xt::view(relative, i, xt::all()), mean, 1e-12, 1e-12));
    }
  }
}

TEST_CASE("bad inputs give clear errors", "[xtensor][errors]") {
  auto model = linear_model();
  Tensor x = random_tensor({2, 6}, 51);
  REQUIRE_THROWS_WITH(salient::saliency(model, x, 3), Catch::Contains("target class 3 out of range [0, 3)"));
  REQUIRE_THROWS_WITH(salient::saliency(model, x, std::vector<int64_t>{0}), Catch::Contains("1 class indices for a batch of 2"));
  Tensor bad = x;
  bad(1, 2) = std::nan("");
  REQUIRE_THROWS_WITH(salient::integrated_gradients(model, bad, 0), Catch::Contains("input contains NaN"));
  REQUIRE_THROWS_WITH(salient::integrated_gradients(model, x, 0, {.baseline = Tensor(xt::zeros<double>({2, 5}))}),
                      Catch::Contains("baseline of shape [2,5] does not match inputs of shape [2,6]"));
  REQUIRE_THROWS_WITH(salient::saliency(model, Tensor(xt::zeros<double>({2, 5})), 0), Catch::Contains("expects 6 input features"));
}

TEST_CASE("evaluate runs many inputs in chunks with progress", "[xtensor][batching]") {
  auto model = mlp_model();
  Tensor x = random_tensor({7, 6}, 61);
  std::vector<std::pair<int64_t, int64_t>> calls;
  auto chunked = salient::evaluate(model, x, {.batch_size = 3, .progress = [&](int64_t done, int64_t total) {
                                                calls.emplace_back(done, total);
                                              }});
  REQUIRE(xt::allclose(chunked, model.forward(x), 1e-12, 1e-12));
  REQUIRE(calls == std::vector<std::pair<int64_t, int64_t>>{{3, 7}, {6, 7}, {7, 7}});
  REQUIRE_THROWS_WITH(salient::evaluate(model, x, {.batch_size = 0}), Catch::Contains("batch_size must be at least 1"));
}

TEST_CASE("XRAI regions: a hand-made two-segment image, dilation, area threshold, leftover", "[xtensor][xrai]") {
  // Left half black, right half white: Felzenszwalb gives the two halves (no smoothing).
  // The right half's attribution is 2, the left's -1.
  const int64_t h = 20, w = 40, half = 20;
  salient::Image image(3, h, w);
  std::vector<double> attribution(static_cast<std::size_t>(h * w));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t c = 0; c < 3; ++c) image.at(c, y, x) = x < half ? 0.0f : 1.0f;
      attribution[y * w + x] = x < half ? -1.0 : 2.0;
    }
  salient::XraiOptions options{.scales = {100}, .sigma = 0, .min_segment_size = 1, .dilation_radius = 0, .min_pixel_diff = 1};
  auto plain = salient::xrai_regions(attribution, image, options);
  REQUIRE(plain.regions.size() == 2);
  CHECK_FALSE(plain.leftover);
  CHECK(plain.regions[0].gain == 2.0);
  CHECK(plain.regions[1].gain == -1.0);
  CHECK(plain.ranks[0] == 2);
  CHECK(plain.ranks[w - 1] == 1);
  CHECK(plain.attribution == std::vector<double>(attribution));

  // A disk of radius 2 stretches the right half over two columns of the left: 400 + 40 pixels
  // of mean (800 - 40) / 440; the left half keeps its other 360 pixels.
  options.dilation_radius = 2;
  auto dilated = salient::xrai_regions(attribution, image, options);
  REQUIRE(dilated.regions.size() == 2);
  CHECK(dilated.regions[0].pixels.size() == 440);
  CHECK(dilated.regions[0].gain == Approx(760.0 / 440.0).epsilon(1e-15));
  CHECK(dilated.regions[1].pixels.size() == 360);
  CHECK(dilated.ranks[17] == 2);
  CHECK(dilated.ranks[18] == 1);

  // Past the area threshold the rest is the leftover region, valued by its mean.
  options.area_threshold = 0.3;
  auto early = salient::xrai_regions(attribution, image, options);
  REQUIRE(early.regions.size() == 2);
  CHECK(early.leftover);
  CHECK(early.regions[1].gain == -1.0);
  // No mask adds enough pixels: one leftover region of everything.
  options.min_pixel_diff = 500;
  auto none = salient::xrai_regions(attribution, image, options);
  REQUIRE(none.regions.size() == 1);
  CHECK(none.leftover);
  CHECK(none.regions[0].gain == Approx(0.5));
  CHECK_THROWS_WITH(salient::xrai_regions(std::vector<double>(5, 0.0), image, options), Catch::Contains("5 values for a 20x40 image"));
}

TEST_CASE("XRAI on an analytic CNN: the regions partition the image, ranked by gain", "[xtensor][xrai]") {
  auto model = salient::AnalyticCnn::random(3, 4, 24, 24, 3, 17);
  Tensor x = random_tensor({2, 3, 24, 24}, 5);
  const auto result = salient::xrai(model, x, 1, {.steps = 20, .scales = {20, 100}, .min_segment_size = 20, .dilation_radius = 2,
                                                  .min_pixel_diff = 10, .batch_size = 7});
  REQUIRE(result.attribution.shape() == std::vector<std::size_t>{2, 1, 24, 24});
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& item = result.regions[i];
    std::vector<int> covered(24 * 24, 0);
    double previous = std::numeric_limits<double>::infinity();
    for (std::size_t r = 0; r < item.regions.size(); ++r) {
      const auto& region = item.regions[r];
      REQUIRE_FALSE(region.pixels.empty());
      const bool leftover = item.leftover && r + 1 == item.regions.size();
      if (!leftover) {
        CHECK(region.gain <= previous);  // ranked by gain
        CHECK(static_cast<int64_t>(region.pixels.size()) >= 10);
        previous = region.gain;
      }
      for (const int32_t p : region.pixels) {
        ++covered[p];
        CHECK(item.ranks[p] == static_cast<int32_t>(r + 1));
        CHECK(result.attribution(i, 0, p / 24, p % 24) == region.gain);
      }
    }
    CHECK(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; }));  // a partition
    CHECK(item.regions.size() >= 2);
  }
}
