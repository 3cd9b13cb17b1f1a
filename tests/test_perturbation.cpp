// Perturbation attributions: exact recovery on an additive (linear) model, KernelSHAP's
// efficiency on real CNNs, Captum's occlusion written out by hand, RISE and LIME on models
// with a known answer, seeds, and bad input.
#include <catch2/catch.hpp>

#include <filesystem>

#include "salient/attribution/perturbation.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "salient/salient.hpp"
#include "shared_data.hpp"
#include "torch_helpers.hpp"

namespace {
namespace fs = std::filesystem;

// A linear model on 3x16x16 images: f(x) = W x + b, 3 classes.
struct LinearModel {
  torch::nn::Sequential net;
  torch::Tensor weight, bias;
  explicit LinearModel(const torch::Tensor& pixel_weights = {}) {
    torch::manual_seed(7);
    net = torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(3 * 16 * 16, 3));
    auto linear = net[1]->as<torch::nn::Linear>();
    torch::NoGradGuard no_grad;
    if (pixel_weights.defined()) linear->weight.copy_(pixel_weights.reshape({3, -1}));
    weight = linear->weight.detach().clone();
    bias = linear->bias.detach().clone();
  }
  // The true contribution of each segment of `labels` [16,16] to class `cls` at input x,
  // against a zero fill: sum over the segment's pixels and channels of W x.
  torch::Tensor contributions(const torch::Tensor& x, const torch::Tensor& labels, int64_t cls, int64_t count) const {
    auto per_pixel = (weight[cls].view({3, 16, 16}) * x[0]).sum(0).reshape({-1}).to(torch::kDouble);
    return torch::zeros({count}, torch::kDouble).index_add_(0, labels.reshape({-1}), per_pixel);
  }
};

// 4x4 cells of 4x4 pixels: 16 segments.
torch::Tensor grid16() {
  auto rows = torch::arange(16).div(4, "floor");
  return (rows.view({16, 1}) * 4 + rows.view({1, 16})).to(torch::kLong);
}

// The value of each segment in a painted map [1,1,H,W] (the first pixel of the segment).
torch::Tensor segment_values(const torch::Tensor& map, const torch::Tensor& labels, int64_t count) {
  auto flat = map.reshape({-1}).to(torch::kDouble);
  auto values = torch::empty({count}, torch::kDouble);
  auto l = labels.reshape({-1});
  for (int64_t k = 0; k < count; ++k) values[k] = flat[torch::nonzero(l == k)[0][0]];
  return values;
}

}  // namespace

TEST_CASE("feature ablation and KernelSHAP recover an additive model's contributions exactly", "[perturbation]") {
  LinearModel linear;
  salient::TorchModel model(linear.net);
  torch::manual_seed(8);
  auto x = torch::randn({1, 3, 16, 16});
  auto labels = grid16();
  const auto truth = linear.contributions(x, labels, 2, 16);

  auto ablation = salient::feature_ablation(model, x, 2, {.segments = labels});
  CHECK(ablation.sizes() == torch::IntArrayRef({1, 1, 16, 16}));
  CHECK(salient::test::max_relative(segment_values(ablation, labels, 16), truth) <= 1e-4);

  // 16 segments: sampled coalitions (2^16 - 2 > 1000).
  auto shap = salient::kernel_shap(model, x, 2, {.segments = labels, .samples = 400, .seed = 3});
  CHECK(salient::test::max_relative(segment_values(shap, labels, 16), truth) <= 1e-4);
  // 4 segments: every coalition, exact Shapley weights.
  auto four = (torch::arange(16).div(8, "floor").view({16, 1}) * 2 + torch::arange(16).div(8, "floor").view({1, 16}));
  auto shap4 = salient::kernel_shap(model, x, 2, {.segments = four, .samples = 100});
  CHECK(salient::test::max_relative(segment_values(shap4, four, 4), linear.contributions(x, four, 2, 4)) <= 1e-4);

  // LIME with (almost) no regularisation fits the additive model exactly, R^2 = 1; the
  // default ridge (alpha 1) shrinks the coefficients a little.
  auto exact = salient::lime_explanation(model, x, 2, {.segments = labels, .samples = 300, .ridge = 1e-8, .seed = 5});
  CHECK(exact.fit.r2 == Approx(1.0).margin(1e-9));
  CHECK(salient::test::max_relative(torch::tensor(exact.fit.coefficients, torch::kDouble), truth) <= 1e-4);
  auto shrunk = salient::lime_explanation(model, x, 2, {.segments = labels, .samples = 300, .seed = 5});
  auto c = torch::tensor(shrunk.fit.coefficients, torch::kDouble);
  CHECK(salient::test::max_relative(c, truth) > 1e-4);
  CHECK(torch::cosine_similarity(c, truth, 0).item<double>() > 0.99);
  // Only the K strongest segments.
  auto top = salient::lime_explanation(model, x, 2, {.segments = labels, .samples = 300, .features = 4, .seed = 5});
  REQUIRE(top.features.size() == 4);
  auto order = truth.abs().argsort(int64_t{0}, /*descending=*/true);
  for (int64_t k = 0; k < 4; ++k)
    CHECK(std::find(top.features.begin(), top.features.end(), order[k].item<int64_t>()) != top.features.end());
  CHECK(torch::count_nonzero(top.attribution).item<int64_t>() == 4 * 16);
}

TEST_CASE("KernelSHAP attributions sum to f(x) - f(nothing kept) on real CNNs, with any masker", "[perturbation]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  torch::manual_seed(9);
  auto x = torch::randn({2, 3, 64, 64});
  auto labels = (torch::arange(64).div(16, "floor").view({64, 1}) * 4 + torch::arange(64).div(16, "floor").view({1, 64}))
                    .to(torch::kLong);  // 16 segments
  for (const char* masker : {"mean", "layer"}) {
    INFO(masker);
    salient::PerturbationOptions<salient::TorchModel> evaluation{.masker = salient::make_masker(masker), .batch_size = 64};
    auto shap = salient::kernel_shap(model, x, salient::top1, {.segments = labels, .samples = 200, .evaluation = evaluation});
    auto classes = torch::argmax(model.forward(x), 1);
    for (int64_t i = 0; i < 2; ++i) {
      auto image = x.slice(0, i, i + 1);
      const int64_t cls = classes[i].item<int64_t>();
      const double full = model.forward(image)[0][cls].item<double>();
      const double empty = evaluation.masker.outputs(model, image, torch::zeros({1, 1, 64, 64}))[0][cls].item<double>();
      const double total = segment_values(shap[i], labels, 16).sum().item<double>();
      CHECK(total == Approx(full - empty).epsilon(1e-4).margin(1e-4 * std::abs(full)));
    }
  }
}

TEST_CASE("occlusion is Captum's mean output drop over covering windows", "[perturbation]") {
  // A model that looks only at rows 4..7, columns 8..11.
  auto w = torch::zeros({3, 3, 16, 16});
  w.slice(2, 4, 8).slice(3, 8, 12).fill_(1);
  LinearModel region(w);
  salient::TorchModel model(region.net);
  auto x = torch::rand({1, 3, 16, 16}) + 0.5;

  // Aligned windows: the attribution is non-zero exactly on the region.
  auto aligned = salient::occlusion(model, x, 0, {.window = {4, 4}, .strides = {4, 4}});
  auto region_mask = (w[0][0] != 0);
  CHECK(torch::equal(aligned[0][0] != 0, region_mask));

  // Overlapping, clipped windows against the definition written out.
  const int64_t wh = 5, ww = 3, sh = 3, sw = 2;
  auto attribution = salient::occlusion(model, x, 0, {.window = {wh, ww}, .strides = {sh, sw}});
  auto total = torch::zeros({16, 16}, torch::kDouble), count = torch::zeros({16, 16}, torch::kDouble);
  torch::NoGradGuard no_grad;
  const double full = model.forward(x)[0][0].item<double>();
  for (int64_t top = 0;; top += sh) {
    for (int64_t left = 0;; left += sw) {
      auto occluded = x.clone();
      occluded.slice(2, top, top + wh).slice(3, left, left + ww).zero_();
      const double drop = full - model.forward(occluded)[0][0].item<double>();
      total.slice(0, top, top + wh).slice(1, left, left + ww) += drop;
      count.slice(0, top, top + wh).slice(1, left, left + ww) += 1;
      if (left + ww >= 16) break;
    }
    if (top + wh >= 16) break;
  }
  CHECK(salient::test::max_relative(attribution[0][0].to(torch::kDouble), total / count) <= 1e-5);
  CHECK(torch::count_nonzero(attribution).item<int64_t>() > region_mask.sum().item<int64_t>());  // windows spill over
}

TEST_CASE("RISE highlights the pixels a model looks at; seeds make random methods repeatable", "[perturbation]") {
  auto w = torch::zeros({3, 3, 16, 16});
  w.slice(2, 4, 8).slice(3, 8, 12).fill_(1);
  LinearModel region(w);
  salient::TorchModel model(region.net);
  auto x = torch::ones({1, 3, 16, 16});
  salient::RiseOptions<salient::TorchModel> options{.masks = 500, .cells = 4, .seed = 11};
  options.evaluation.probabilities = false;  // the raw linear output
  auto saliency = salient::rise(model, x, 0, options);
  auto inside = (w[0][0] != 0);
  const double in = saliency[0][0].masked_select(inside).mean().item<double>();
  const double out = saliency[0][0].masked_select(~inside).mean().item<double>();
  CHECK(in > 1.2 * out);  // smooth masks correlate neighbouring pixels: the contrast is modest
  CHECK(inside.reshape({-1})[saliency.reshape({-1}).argmax()].item<bool>());
  // Same seed, same output; another seed, another.
  CHECK(torch::equal(saliency, salient::rise(model, x, 0, options)));
  auto other = options;
  other.seed = 12;
  CHECK(!torch::equal(saliency, salient::rise(model, x, 0, other)));
  // The batch size does not change the masks.
  auto batched = options;
  batched.evaluation.batch_size = 7;
  CHECK(salient::test::max_relative(salient::rise(model, x, 0, batched), saliency) <= 1e-6);

  LinearModel linear;
  salient::TorchModel dense(linear.net);
  auto y = torch::randn({1, 3, 16, 16});
  auto labels = grid16();
  CHECK(torch::equal(salient::lime(dense, y, 1, {.segments = labels, .samples = 50, .seed = 2}),
                     salient::lime(dense, y, 1, {.segments = labels, .samples = 50, .seed = 2})));
  CHECK(!torch::equal(salient::lime(dense, y, 1, {.segments = labels, .samples = 50, .seed = 2}),
                      salient::lime(dense, y, 1, {.segments = labels, .samples = 50, .seed = 3})));
  CHECK(torch::equal(salient::kernel_shap(dense, y, 1, {.segments = labels, .samples = 50, .seed = 2}),
                     salient::kernel_shap(dense, y, 1, {.segments = labels, .samples = 50, .seed = 2})));
}

TEST_CASE("random methods draw the same masks on both backends: one seed, one answer", "[perturbation]") {
  LinearModel linear;
  salient::TorchModel model(linear.net);
  torch::manual_seed(10);
  auto x = torch::randn({1, 3, 16, 16});
  auto labels = grid16();
  // The same model in double precision on the xtensor backend.
  auto to_xt = [](const torch::Tensor& t) {
    auto d = t.to(torch::kDouble).contiguous();
    std::vector<size_t> shape(d.sizes().begin(), d.sizes().end());
    xt::xarray<double> out(shape);
    std::copy(d.data_ptr<double>(), d.data_ptr<double>() + d.numel(), out.data());
    return out;
  };
  auto from_xt = [](const xt::xarray<double>& a) {
    return torch::tensor(std::vector<double>(a.begin(), a.end()), torch::kDouble)
        .view(std::vector<int64_t>(a.shape().begin(), a.shape().end()));
  };
  salient::LinearModel analytic{to_xt(linear.weight), to_xt(linear.bias)};
  const auto xx = to_xt(x), xlabels = to_xt(labels);

  salient::RiseOptions<salient::TorchModel> rise_torch{.masks = 200, .cells = 4, .seed = 21};
  salient::RiseOptions<salient::LinearModel> rise_xt{.masks = 200, .cells = 4, .seed = 21};
  CHECK(salient::test::max_relative(salient::rise(model, x, 1, rise_torch).to(torch::kDouble), from_xt(salient::rise(analytic, xx, 1, rise_xt))) <= 1e-5);
  CHECK(salient::test::max_relative(salient::lime(model, x, 1, {.segments = labels, .samples = 100, .seed = 22}).to(torch::kDouble),
                     from_xt(salient::lime(analytic, xx, 1, {.segments = xlabels, .samples = 100, .seed = 22}))) <= 1e-4);
  CHECK(salient::test::max_relative(salient::kernel_shap(model, x, 1, {.segments = labels, .samples = 100, .seed = 23}).to(torch::kDouble),
                     from_xt(salient::kernel_shap(analytic, xx, 1, {.segments = xlabels, .samples = 100, .seed = 23}))) <= 1e-4);
  CHECK(salient::test::max_relative(salient::occlusion(model, x, 1, {.window = {5, 5}, .strides = {3, 3}}).to(torch::kDouble),
                     from_xt(salient::occlusion(analytic, xx, 1, {.window = {5, 5}, .strides = {3, 3}}))) <= 1e-4);
}

TEST_CASE("perturbation methods reject bad windows, segments and options", "[perturbation]") {
  LinearModel linear;
  salient::TorchModel model(linear.net);
  auto x = torch::randn({1, 3, 16, 16});
  CHECK_THROWS_WITH(salient::occlusion(model, x, 0, {.window = {20, 4}}), Catch::Contains("does not fit the image"));
  CHECK_THROWS_WITH(salient::occlusion(model, x, 0, {.window = {4, 4}, .strides = {5, 1}}),
                    Catch::Contains("no window covers"));
  CHECK_THROWS_WITH(salient::feature_ablation(model, x, 0, {.segments = torch::zeros({8, 8}, torch::kLong)}),
                    Catch::Contains("do not fit 1 images of 16x16"));
  CHECK_THROWS_WITH(salient::feature_ablation(model, x, 0, {.segments = torch::zeros({16, 16})}),
                    Catch::Contains("integer label map"));
  CHECK_THROWS_WITH(salient::lime(model, x, 0, {.segments = grid16(), .samples = 1}), Catch::Contains("at least 2 samples"));
  CHECK_THROWS_WITH(salient::rise(model, x, 0, {.keep_probability = 0}), Catch::Contains("keep probability"));
  CHECK_THROWS_WITH(salient::feature_ablation(model, x, 7, {.segments = grid16()}), Catch::Contains("target class 7 out of range"));
  auto nan = x.clone();
  nan[0][0][0][0] = std::nanf("");
  CHECK_THROWS(salient::occlusion(model, nan, 0));
}

TEST_CASE("PAMI scores the regions a model looks at highest; its two-stage variant refines", "[perturbation]") {
  auto w = torch::zeros({3, 3, 16, 16});
  w[0].slice(1, 4, 8).slice(2, 8, 12).fill_(0.2);  // only class 0 looks, and only at the region
  LinearModel region(w);
  salient::TorchModel model(region.net);
  auto x = torch::rand({1, 3, 16, 16}) * 0.5 + 0.5;
  salient::PamiOptions<salient::TorchModel> options{.segmentations = {"grid:4", "grid:8"},
                               .shifts = {{0, 0}, {2, 2}},
                               .normalization = salient::Normalization::none()};
  auto map = salient::pami(model, x, 0, options);
  REQUIRE(map.sizes() == torch::IntArrayRef({1, 1, 16, 16}));
  auto inside = (w[0][0] != 0);
  CHECK(inside.reshape({-1})[map.reshape({-1}).argmax()].item<bool>());
  CHECK(map[0][0].masked_select(inside).mean().item<double>() > map[0][0].masked_select(~inside).mean().item<double>());
  // Probabilities of 3 classes: every value in [0, 1].
  CHECK(map.min().item<double>() >= 0);
  CHECK(map.max().item<double>() <= 1);
  options.two_stage = true;
  auto refined = salient::pami(model, x, 0, options);
  CHECK(inside.reshape({-1})[refined.reshape({-1}).argmax()].item<bool>());
  CHECK(!torch::equal(refined, map));
  CHECK_THROWS_WITH(salient::pami(model, x, 0, {.segmentations = {"slic:x"}, .normalization = salient::Normalization::none()}),
                    Catch::Contains("slic:x"));
}

TEST_CASE("a segmentation model's classes become connected segments", "[perturbation][shared]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  auto deeplab = salient::TorchModel::load(*shared / "models/deeplabv3_mnv2_pascal.pt");
  auto input = salient::load_input(*shared / "images/dog_segmentation.png", {.size = 257});
  auto labels = salient::model_segments(deeplab, input);
  REQUIRE(labels.sizes() == torch::IntArrayRef({257, 257}));
  const int64_t count = labels.max().item<int64_t>() + 1;
  CHECK(count >= 2);
  CHECK(std::get<0>(torch::_unique(labels)).numel() == count);  // every label used
  // The segments drive a region method.
  auto classifier = salient::TorchModel::load(*shared / "models/mobilenet_v1_025_128_imagenet.pt");
  auto small = salient::load_input(*shared / "images/dog_segmentation.png", {.size = 128});
  auto small_labels = salient::model_segments(deeplab, small);
  auto ablation = salient::feature_ablation(classifier, small, salient::top1, {.segments = small_labels});
  CHECK(torch::isfinite(ablation).all().item<bool>());
}
