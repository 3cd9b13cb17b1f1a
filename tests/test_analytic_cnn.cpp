// The xtensor backend's AnalyticCnn: its backward pass against finite differences, each CAM
// against its closed form (the linear head makes the gradient at the avgpool layer a row of
// fc_weight, so the maps follow from the activations alone), and parameter randomisation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "salient/attribution/cam.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/core/analytic_cnn.hpp"
#include "salient/core/resample.hpp"
#include "salient/attribution/perturbation.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/masking/masker.hpp"
#include "xtensor_helpers.hpp"

namespace {
using Tensor = xt::xarray<double>;
using salient::XtensorBackend;

constexpr std::size_t kChannels = 4, kSide = 8, kClasses = 3;

salient::AnalyticCnn cnn() { return salient::AnalyticCnn::random(2, kChannels, kSide, kSide, kClasses, 5); }

// The avgpool activation [N, C, 3, 3] and the gradient there of class k (fc_weight[k]).
struct Head {
  Tensor activation;
  Tensor weight;  // [C, 3, 3]
};
Head head(salient::AnalyticCnn& model, const Tensor& x, std::size_t k) {
  auto run = run_layers(model, x, {{"avgpool"}});
  Tensor row = xt::view(model.fc_weight, k, xt::all());
  return {run.activations[0], xt::reshape_view(row, {kChannels, std::size_t{3}, std::size_t{3}})};
}

using salient::test::max_difference;
}  // namespace

TEST_CASE("AnalyticCnn: the backward pass agrees with finite differences", "[xtensor][layers]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({2, 2, kSide, kSide}, 3);
  for (int64_t k = 0; k < 3; ++k) {
    auto g = salient::saliency(model, x, k, {.abs = false});
    Tensor numeric = xt::zeros<double>(x.shape());
    const double h = 1e-6;
    for (std::size_t i = 0; i < x.size(); ++i) {
      Tensor up = x, down = x;
      up.data()[i] += h, down.data()[i] -= h;
      const std::size_t item = i / (x.size() / 2);
      numeric.data()[i] = (model.forward(up)(item, k) - model.forward(down)(item, k)) / (2 * h);
    }
    CHECK(max_difference(g, numeric) < 1e-6);
  }
  // A layer's input is the output of the layer before it; conv's input is the image.
  salient::ResolvedTarget<Tensor> target{{1, 2}, {}};
  auto layers = layer_gradients(model, x, target, {{"maxpool", true}, {"relu"}, {"conv", true}});
  CHECK(max_difference(layers.activations[0], layers.activations[1]) == 0);
  CHECK(max_difference(layers.gradients[0], layers.gradients[1]) == 0);
  CHECK(max_difference(layers.activations[2], x) == 0);
  CHECK(max_difference(layers.gradients[2], model.gradient(x, target).gradient) == 0);
  CHECK_THROWS_WITH(run_layers(model, x, {{"pool"}}), Catch::Contains("unknown layer 'pool'"));
}

TEST_CASE("Grad-CAM family on the AnalyticCnn equals the hand formula", "[xtensor][layers][cam]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({2, 2, kSide, kSide}, 7);
  const std::vector<int64_t> classes{2, 0};
  std::string used;
  const salient::CamOptions raw{.relu = false, .upsample = false, .batch_size = 1,
                                .on_layer = [&](const std::string& layer) { used = layer; }};
  auto grad_cam = salient::grad_cam(model, x, classes, raw);
  CHECK(used == "avgpool");  // the last 4-D layer with more than one position
  auto layer_cam = salient::layer_cam(model, x, classes, raw);
  auto plus_plus = salient::grad_cam_plus_plus(model, x, classes, raw);
  auto xgrad = salient::xgrad_cam(model, x, classes, raw);
  REQUIRE(grad_cam.shape() == std::vector<std::size_t>{2, 1, 3, 3});
  for (std::size_t i = 0; i < 2; ++i) {
    auto [activations, g] = head(model, x, static_cast<std::size_t>(classes[i]));
    Tensor a = xt::view(activations, i);
    Tensor expected_grad = xt::zeros<double>({3, 3}), expected_layer = expected_grad, expected_pp = expected_grad,
           expected_x = expected_grad;
    for (std::size_t c = 0; c < kChannels; ++c) {
      Tensor ac = xt::view(a, c), gc = xt::view(g, c);
      const double sum_a = xt::sum(ac)();
      expected_grad += xt::mean(gc)() * ac;                                     // w_c = mean G_c
      expected_layer += xt::maximum(gc, 0.0) * ac;                               // relu(G) A
      Tensor alpha = xt::where(xt::equal(gc, 0.0), 0.0, gc * gc / (2 * gc * gc + sum_a * gc * gc * gc + 1e-6));
      expected_pp += xt::sum(xt::maximum(gc, 0.0) * alpha)() * ac;              // Grad-CAM++
      expected_x += xt::sum(gc * ac / (sum_a + 1e-7))() * ac;                    // XGrad-CAM
    }
    CHECK(max_difference(xt::view(grad_cam, i, 0), expected_grad) < 1e-12);
    CHECK(max_difference(xt::view(layer_cam, i, 0), expected_layer) < 1e-12);
    CHECK(max_difference(xt::view(plus_plus, i, 0), expected_pp) < 1e-12);
    CHECK(max_difference(xt::view(xgrad, i, 0), expected_x) < 1e-12);
  }
  // Grad-CAM and Layer-CAM differ here (the comparisons above tell them apart).
  CHECK(max_difference(grad_cam, layer_cam) > 1e-3);
  // Post-processing: ReLU, then bilinear upsampling to the input size.
  auto full = salient::grad_cam(model, x, classes);
  REQUIRE(full.shape() == std::vector<std::size_t>{2, 1, kSide, kSide});
  const auto relu = salient::XtensorBackend::to_vector(xt::maximum(grad_cam, 0.0));
  const auto upsampled = salient::detail::resize_bilinear(relu, 2, 3, 3, kSide, kSide, false);
  CHECK(std::equal(upsampled.begin(), upsampled.end(), full.begin()));
  // Errors name the problem.
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 0, {.layer = "fc"}), Catch::Contains("CAM methods need a 4-D"));
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 0, {.layer = "pool"}), Catch::Contains("unknown layer 'pool'"));
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 3), Catch::Contains("out of range"));
}

TEST_CASE("layer gradient x activation at the head sums to the score minus the bias", "[xtensor][layers]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({3, 2, kSide, kSide}, 9);
  const std::vector<int64_t> classes{0, 1, 2};
  auto gxa = salient::layer_gradient_x_activation(model, x, classes, {.layer = "avgpool", .batch_size = 2});
  auto logits = model.forward(x);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto k = static_cast<std::size_t>(classes[i]);
    CHECK(xt::sum(xt::view(gxa, i))() == Approx(logits(i, k) - model.fc_bias(k)).margin(1e-12));
  }
  // At the layer's input (maxpool's output) it is the maxpool activation times its gradient.
  auto at_input = salient::layer_gradient_x_activation(model, x, classes, {.layer = "avgpool", .layer_input = true});
  auto maxpool = layer_gradients(model, x, salient::ResolvedTarget<Tensor>{classes, {}}, {{"maxpool"}});
  CHECK(max_difference(at_input, maxpool.activations[0] * maxpool.gradients[0]) == 0);
}

TEST_CASE("Score-CAM and Eigen-CAM on the AnalyticCnn", "[xtensor][layers][cam]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({2, 2, kSide, kSide}, 11);
  SECTION("Score-CAM: softmax of the masked inputs' scores weighs the channels") {
    auto map = salient::score_cam(model, x, 1, {.layer = "relu", .relu = false, .upsample = false, .batch_size = 3});
    auto activations = run_layers(model, x, {{"relu"}}).activations[0];
    for (std::size_t i = 0; i < 2; ++i) {
      std::vector<double> scores;
      for (std::size_t c = 0; c < kChannels; ++c) {
        Tensor plane = xt::view(activations, i, c);  // already the input's size: upsampling is the identity
        Tensor mask = (plane - xt::amin(plane)()) / (xt::amax(plane)() - xt::amin(plane)() + 1e-8);
        Tensor masked = xt::view(x, xt::range(i, i + 1)) * mask;
        scores.push_back(model.forward(masked)(0, 1));
      }
      double total = 0;
      for (double s : scores) total += std::exp(s);
      Tensor expected = xt::zeros<double>({kSide, kSide});
      for (std::size_t c = 0; c < kChannels; ++c) expected += std::exp(scores[c]) / total * xt::view(activations, i, c);
      CHECK(max_difference(xt::view(map, i, 0), expected) < 1e-12);
    }
    // The same for any batch size.
    CHECK(max_difference(map, salient::score_cam(model, x, 1, {.layer = "relu", .relu = false, .upsample = false,
                                                                .batch_size = 1})) < 1e-15);
  }
  SECTION("Eigen-CAM: the projection on the activations' first principal axis") {
    auto map = salient::eigen_cam(model, x, salient::top1, {.layer = "maxpool", .relu = false, .upsample = false});
    auto activations = run_layers(model, x, {{"maxpool"}}).activations[0];
    for (std::size_t i = 0; i < 2; ++i) {
      Eigen::MatrixXd positions(16, kChannels);
      for (std::size_t c = 0; c < kChannels; ++c)
        for (std::size_t p = 0; p < 16; ++p) positions(p, c) = activations(i, c, p / 4, p % 4);
      const Eigen::MatrixXd centred = positions.rowwise() - positions.colwise().mean();
      // The covariance's top eigenvector (another algorithm than the SVD Eigen-CAM uses).
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(centred.transpose() * centred);
      Eigen::VectorXd expected = centred * eigen.eigenvectors().col(kChannels - 1);
      if (expected.dot(positions.rowwise().mean()) < 0) expected = -expected;
      for (std::size_t p = 0; p < 16; ++p) CHECK(map(i, 0, p / 4, p % 4) == Approx(expected(p)).margin(1e-9));
    }
  }
}

TEST_CASE("bilinear resampling follows PyTorch's conventions", "[resample]") {
  // interpolate([[0,1],[2,3]], size=4, mode="bilinear", align_corners=False) and True (size 3).
  const std::vector<double> grid{0, 1, 2, 3};
  const std::vector<double> half_pixel{0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3};
  CHECK(salient::detail::resize_bilinear(grid, 1, 2, 2, 4, 4, false) == half_pixel);
  const std::vector<double> corners{0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3};
  CHECK(salient::detail::resize_bilinear(grid, 1, 2, 2, 3, 3, true) == corners);
}

TEST_CASE("randomisation of the AnalyticCnn: groups, seeded draws, bit-for-bit restore", "[xtensor][randomisation]") {
  auto model = cnn();
  const auto original = snapshot_parameters(model);
  auto equal_to_original = [&](const salient::AnalyticCnn& m) {
    const auto now = snapshot_parameters(m);
    for (std::size_t k = 0; k < 4; ++k)
      if (!std::equal(now[k].begin(), now[k].end(), original[k].begin(), original[k].end())) return false;
    return true;
  };
  auto groups = salient::parameter_groups(model);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "conv");
  CHECK(groups[1].parameters == std::vector<std::string>{"fc.weight", "fc.bias"});
  Tensor x = salient::test::random_tensor({1, 2, kSide, kSide}, 13);
  const Tensor logits = model.forward(x);

  SECTION("cascading: fc first, then conv; layer-default bounds; restored afterwards") {
    std::vector<Tensor> outputs;
    auto steps = salient::for_each_randomisation(model, {}, [&](salient::AnalyticCnn& m, const salient::RandomisationStep& step) {
      outputs.push_back(m.forward(x));
      if (step.index == 1) {
        CHECK(step.group == "fc");
        CHECK(std::equal(m.conv_weight.begin(), m.conv_weight.end(), original[0].begin()));
        CHECK(xt::amax(xt::abs(m.fc_weight))() <= 1 / std::sqrt(36.0));  // fan_in 4 * 3 * 3
        CHECK(xt::amax(xt::abs(m.fc_weight - original[2]))() > 0);
      }
      if (step.index == 2) {
        CHECK(step.randomised == std::vector<std::string>{"fc", "conv"});
        CHECK(xt::amax(xt::abs(m.conv_weight))() <= 1 / std::sqrt(18.0));  // fan_in 2 * 3 * 3
        CHECK(xt::amax(xt::abs(m.conv_bias))() <= 1 / std::sqrt(18.0));
      }
    });
    CHECK(steps.size() == 3);
    CHECK(max_difference(outputs[0], logits) == 0);
    CHECK(max_difference(outputs[2], logits) > 1e-3);
    CHECK(equal_to_original(model));
    // The same seed gives the same weights; independent mode randomises one group at a time.
    std::vector<Tensor> again;
    salient::for_each_randomisation(model, {}, [&](salient::AnalyticCnn& m, const auto&) { again.push_back(m.forward(x)); });
    for (std::size_t k = 0; k < 3; ++k) CHECK(max_difference(again[k], outputs[k]) == 0);
    salient::for_each_randomisation(model, {.mode = salient::RandomisationMode::independent},
                                    [&](salient::AnalyticCnn& m, const salient::RandomisationStep& step) {
                                      if (step.index == 2)
                                        CHECK(std::equal(m.fc_weight.begin(), m.fc_weight.end(), original[2].begin()));
                                    });
    CHECK(equal_to_original(model));
  }
  SECTION("restored when the visitor throws") {
    CHECK_THROWS_WITH(salient::for_each_randomisation(model, {.init = {.scheme = salient::Reinitialisation::normal, .stdev = 1}},
                                                      [](salient::AnalyticCnn&, const salient::RandomisationStep& step) {
                                                        if (step.index == 2) throw std::runtime_error("visitor failed");
                                                      }),
                      "visitor failed");
    CHECK(equal_to_original(model));
    CHECK(max_difference(model.forward(x), logits) == 0);
  }
}

TEST_CASE("layer masking on the AnalyticCnn: a 6x6 example by hand", "[xtensor][masking]") {
  // One channel in, one out: conv sums the 3x3 window, bias -10; fc weights 1, 2, 3, 4 and
  // bias 0.5 over the 2x2 avgpool output. Pixel (y, x) holds x; columns 0-2 are removed.
  salient::AnalyticCnn model{xt::ones<double>({1, 1, 3, 3}), Tensor{-10.0}, Tensor{{1.0, 2.0, 3.0, 4.0}}, Tensor{0.5}};
  static_assert(salient::LayerMaskingModel<salient::AnalyticCnn>);
  Tensor x = xt::zeros<double>({1, 1, 6, 6});
  for (std::size_t y = 0; y < 6; ++y)
    for (std::size_t c = 0; c < 6; ++c) x(0, 0, y, c) = static_cast<double>(c);
  Tensor mask = xt::zeros<double>({6, 6});
  xt::view(mask, xt::all(), xt::range(3, 6)) = 1;
  // Fill (2 rounds for a 3x3 kernel): column 2 takes the mean of its known neighbours in
  // column 3 (3), then column 1 that of column 2 (3); column 0 is not reached (0). Filled
  // columns: 0 3 3 3 4 5.
  // conv keeps columns 2-5 (their windows see a kept pixel); inner rows sum three rows of
  // the column windows 9, 10, 12, 9 (col 5 pads), minus 10: 17 20 26 17; top and bottom
  // rows two rows: 8 10 14 8.
  // maxpool 2x2: column pair (0,1) removed -> 0; (2,3) -> max(8,10,17,20) = 20; (4,5) -> 26,
  // in every row pair. avgpool 2x2 over kept only: left windows see column 1 only -> 20;
  // right windows -> (20 + 26) / 2 = 23. fc: 20 + 2*23 + 3*20 + 4*23 + 0.5 = 218.5.
  Tensor out = salient::layer_masked_forward(model, x, mask);
  REQUIRE(out.shape() == std::vector<std::size_t>{1, 1});
  CHECK(out(0, 0) == Approx(218.5).epsilon(1e-12));
  // Whatever the removed pixels hold.
  Tensor garbage = x;
  xt::view(garbage, xt::all(), xt::all(), xt::all(), xt::range(0, 3)) = 1e6;
  garbage(0, 0, 4, 1) = -1e300;
  CHECK(salient::layer_masked_forward(model, garbage, mask)(0, 0) == out(0, 0));
  // Masks are binarised at 0.5: 0.49 removes, 0.5 keeps.
  Tensor soft = mask * 0.5 + (1 - mask) * 0.49;
  CHECK(salient::layer_masked_forward(model, x, soft)(0, 0) == out(0, 0));
  // A fill masker sees the removed columns (0 there): conv then sums 0 0 0 3 4 5.
  CHECK(std::abs(salient::BasicFillMasker<XtensorBackend>::zero().outputs(model, x, mask)(0, 0) - 218.5) > 1);
}

TEST_CASE("layer masking on the AnalyticCnn: all-ones is the forward pass, removed pixels do not matter",
          "[xtensor][masking]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({3, 2, kSide, kSide}, 21);
  const Tensor plain = model.forward(x);
  CHECK(max_difference(salient::layer_masked_forward(model, x, xt::ones<double>({kSide, kSide})), plain) == 0);
  // Random masks, one per item; what the removed pixels hold does not change the output.
  Tensor masks = xt::cast<double>(salient::test::random_tensor({3, 1, kSide, kSide}, 22) > -0.3);
  masks(2, 0, 0, 0) = 0;  // (random masks may keep everything)
  const Tensor masked = salient::layer_masked_forward(model, x, masks);
  for (uint64_t seed : {23, 24}) {
    Tensor other = salient::test::random_tensor({3, 2, kSide, kSide}, seed, 100.0);
    Tensor mixed = x * masks + other * (1 - masks);
    CHECK(max_difference(salient::layer_masked_forward(model, mixed, masks), masked) == 0);
  }
  CHECK(max_difference(masked, plain) > 1e-6);
  // One mask for all inputs, one input for all masks, and the masker's chunks agree.
  Tensor first = xt::view(masks, xt::range(0, 1));
  Tensor shared = salient::layer_masked_forward(model, x, first);
  CHECK(max_difference(xt::view(shared, xt::range(0, 1)), xt::view(masked, xt::range(0, 1))) == 0);
  Tensor image = xt::view(x, xt::range(0, 1));
  Tensor by_masker = salient::LayerMasker{}.outputs(model, image, masks, {.batch_size = 2});
  for (std::size_t i = 0; i < 3; ++i) {
    Tensor one = salient::layer_masked_forward(model, image, Tensor(xt::view(masks, xt::range(i, i + 1))));
    CHECK(max_difference(xt::view(by_masker, xt::range(i, i + 1)), one) == 0);
  }
  // Every mask removed: all-zero features into the head, the output is fc's bias.
  Tensor none = salient::layer_masked_forward(model, image, xt::zeros<double>({kSide, kSide}));
  CHECK(max_difference(xt::view(none, 0), model.fc_bias) < 1e-15);
  CHECK_THROWS_WITH(salient::layer_masked_forward(model, x, xt::ones<double>(std::vector<std::size_t>{2, 1, kSide, kSide})),
                    Catch::Contains("3 inputs but 2 masks"));
}

TEST_CASE("occlusion through the layer masker on the AnalyticCnn", "[xtensor][masking][perturbation]") {
  auto model = cnn();
  Tensor x = salient::test::random_tensor({1, 2, kSide, kSide}, 31);
  salient::OcclusionOptions<salient::AnalyticCnn> options{.window = {4, 4}, .strides = {4, 4}};
  options.evaluation.masker = salient::LayerMasker{};
  Tensor map = salient::occlusion(model, x, 1, options);
  // Each 4x4 block's value is the drop of class 1's score when that block is removed inside the network.
  const double full = model.forward(x)(0, 1);
  for (std::size_t by = 0; by < 2; ++by)
    for (std::size_t bx = 0; bx < 2; ++bx) {
      Tensor mask = xt::ones<double>({kSide, kSide});
      xt::view(mask, xt::range(4 * by, 4 * by + 4), xt::range(4 * bx, 4 * bx + 4)) = 0;
      const double drop = full - salient::layer_masked_forward(model, x, mask)(0, 1);
      CHECK(map(0, 0, 4 * by + 1, 4 * bx + 2) == Approx(drop).epsilon(1e-12));
    }
}

TEST_CASE("layer-masking arithmetic: mask pooling and masked pools against brute force", "[masking]") {
  namespace masking = salient::masking;
  const int64_t h = 7, w = 9;
  std::vector<double> mask(h * w), x(h * w);
  for (int64_t i = 0; i < h * w; ++i) mask[i] = (i * 7 % 5) < 2 ? 1.0 : 0.0, x[i] = std::sin(0.7 * i) * 3;
  for (const masking::Window window : {masking::Window{{3, 3}, {1, 1}, {1, 1}, {1, 1}}, masking::Window{{3, 2}, {2, 1}, {1, 0}, {1, 1}},
                                       masking::Window{{3, 3}, {1, 2}, {2, 2}, {2, 2}}, masking::Window{{2, 2}, {2, 2}}}) {
    const int64_t oh = window.output_size(h, 0), ow = window.output_size(w, 1);
    std::vector<double> pooled(oh * ow), maxed(oh * ow);
    masking::pool_mask(mask.data(), h, w, window, pooled.data());
    masking::masked_max_pool(x.data(), mask.data(), h, w, window, maxed.data());
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t c = 0; c < ow; ++c) {
        double any = 0, best = -1e300;
        for (int64_t ky = 0; ky < window.kernel[0]; ++ky)
          for (int64_t kx = 0; kx < window.kernel[1]; ++kx) {
            const int64_t sy = y * window.stride[0] - window.padding[0] + ky * window.dilation[0];
            const int64_t sx = c * window.stride[1] - window.padding[1] + kx * window.dilation[1];
            if (sy < 0 || sx < 0 || sy >= h || sx >= w || mask[sy * w + sx] == 0) continue;
            any = 1, best = std::max(best, x[sy * w + sx]);
          }
        CHECK(pooled[y * ow + c] == any);
        CHECK(maxed[y * ow + c] == (any ? best : 0.0));
      }
  }
  // Masked averages: all-ones gives the plain average (count_include_pad or not).
  const masking::Window padded{{3, 3}, {2, 2}, {1, 1}};
  const int64_t oh = padded.output_size(h, 0), ow = padded.output_size(w, 1);
  std::vector<double> ones(h * w, 1.0), with_pad(oh * ow), without(oh * ow), masked(oh * ow);
  masking::masked_average_pool(x.data(), ones.data(), h, w, padded, true, with_pad.data());
  masking::masked_average_pool(x.data(), ones.data(), h, w, padded, false, without.data());
  masking::masked_average_pool(x.data(), mask.data(), h, w, padded, false, masked.data());
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t c = 0; c < ow; ++c) {
      double sum = 0, kept_sum = 0;
      int real = 0, kept = 0;
      for (int64_t sy = 2 * y - 1; sy <= 2 * y + 1; ++sy)
        for (int64_t sx = 2 * c - 1; sx <= 2 * c + 1; ++sx)
          if (sy >= 0 && sx >= 0 && sy < h && sx < w) {
            sum += x[sy * w + sx], ++real;
            if (mask[sy * w + sx] > 0) kept_sum += x[sy * w + sx], ++kept;
          }
      CHECK(with_pad[y * ow + c] == Approx(sum / 9).margin(1e-12));
      CHECK(without[y * ow + c] == Approx(sum / real).margin(1e-12));
      CHECK(masked[y * ow + c] == Approx(kept ? kept_sum / kept : 0.0).margin(1e-12));
    }
}
