// Layer masking and maskers: an all-ones mask is the plain forward; under layer masking the
// output does not depend on what the removed pixels contain; masks follow the activations
// through strided convolutions, pools, residual additions and concatenations; bad masks fail.
#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <string>

#include "salient/core/analytic_cnn.hpp"
#include "salient/masking/maskers.hpp"
#include "salient/salient.hpp"
#include "shared_data.hpp"
#include "torch_helpers.hpp"

namespace {
namespace fs = std::filesystem;

// Random rectangles kept (1) on a removed background, one mask per item: [n,1,h,w].
torch::Tensor rectangle_masks(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto masks = torch::zeros({n, 1, h, w});
  for (int64_t i = 0; i < n; ++i) {
    auto r = at::randint(0, 1 << 20, {4}, generator);
    int64_t top = r[0].item<int64_t>() % (h / 2), left = r[1].item<int64_t>() % (w / 2);
    int64_t height = h / 4 + r[2].item<int64_t>() % (h / 2), width = w / 4 + r[3].item<int64_t>() % (w / 2);
    masks[i].slice(1, top, std::min(h, top + height)).slice(2, left, std::min(w, left + width)).fill_(1);
  }
  return masks;
}

std::vector<fs::path> covered_models() {
  std::vector<fs::path> models;
  for (const char* name : {"resnet18", "resnet50", "vgg11_bn", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1",
                           "densenet121", "efficientnet_b0", "alexnet", "googlenet"})
    for (const char* suffix : {".pt", ".script.pt"})
      models.push_back(fs::path(SALIENT_MODELS_DIR) / (std::string(name) + suffix));
  if (auto shared = salient::test::shared_dir()) {
    models.push_back(*shared / "models/mobilenet_v2_imagenet.pt");
    models.push_back(*shared / "models/mobilenet_v1_025_128_imagenet.pt");
  }
  return models;
}
}  // namespace

TEST_CASE("an all-ones mask gives the plain forward on every covered model", "[masking][every_model]") {
  torch::NoGradGuard no_grad;
  for (const auto& path : covered_models()) {
    INFO(path.string());
    const bool tuple = path.filename() == "googlenet.script.pt";
    auto model = salient::TorchModel::load(path, {.output_element = tuple ? 0 : -1});
    torch::manual_seed(1);
    auto x = torch::randn({2, 3, 96, 96});
    auto plain = model.forward(x);
    CHECK(salient::test::max_relative(salient::layer_masked_forward(model, x, torch::ones({96, 96})), plain) <= 1e-5);
    // In a batch where another item is masked, the kept item still gets its plain output.
    auto masks = torch::ones({2, 1, 96, 96});
    masks[1].slice(1, 0, 48).zero_();
    auto mixed = salient::layer_masked_forward(model, x, masks);
    CHECK(salient::test::max_relative(mixed[0], plain[0]) <= 1e-5);
    // (GoogLeNet's random init gives outputs that do not depend on the input at all.)
    if (salient::test::max_relative(plain[0], plain[1]) > 1e-3) CHECK(salient::test::max_relative(mixed[1], plain[1]) > 1e-3);
    CHECK(torch::isfinite(mixed).all().item<bool>());
  }
}

TEST_CASE("under layer masking the output does not depend on the removed pixels' colour", "[masking]") {
  const std::vector<std::pair<fs::path, int64_t>> models{{fs::path(SALIENT_MODELS_DIR) / "resnet18.pt", 128},
                                                         {salient::test::shipped_dir() / "models/mobilenet_v2_imagenet.pt", 224}};
  for (const auto& [path, size] : models) {
    INFO(path.string());
    auto model = salient::TorchModel::load(path);
    torch::manual_seed(2);
    auto image = torch::randn({1, 3, size, size});
    auto masks = rectangle_masks(6, size, size, 3);
    salient::LayerMasker layer;
    torch::Tensor reference;
    double fill_spread = 0;
    for (auto kind : {salient::BaselineKind::zero, salient::BaselineKind::black, salient::BaselineKind::grey,
                      salient::BaselineKind::noise}) {
      // The removed pixels hold the fill colour: layer masking must not see it.
      auto filled = salient::FillMasker::baseline(kind).masked_inputs(image, masks);
      auto layer_out = salient::layer_masked_forward(model, filled, masks);
      auto fill_out = model.forward(filled);
      if (!reference.defined()) {
        reference = layer_out;
        CHECK(salient::test::max_relative(layer.outputs(model, image, masks, {.batch_size = 4}), reference) <= 1e-5);
      }
      CHECK((layer_out - reference).abs().max().item<double>() <= 1e-4);
      fill_spread = std::max(fill_spread, (fill_out - reference).abs().max().item<double>());
    }
    CHECK(fill_spread > 1e-2);  // input fills do change the output
  }
}

TEST_CASE("masks follow activations through strides, pools, residual additions and concatenations", "[masking]") {
  for (const char* name : {"resnet18.pt", "densenet121.pt", "googlenet.pt", "squeezenet1_1.pt", "mobilenet_v3_small.pt"}) {
    INFO(name);
    auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / name);
    const auto& program = salient::program_of(model);
    auto x = torch::randn({2, 3, 64, 64});
    auto masks = rectangle_masks(2, 64, 64, 5);
    auto state = std::make_shared<salient::graph::MaskState>(program.value_count());
    state->masks[program.body.inputs[0]] = masks;
    salient::graph::Watch watch;
    for (const auto& layer : program.layers) watch.values.push_back(layer.output);
    int checked = 0;
    watch.on_value = [&](salient::graph::ValueId v, salient::graph::Value& value) {
      const auto& mask = state->masks[v];
      if (!value.isTensor() || !mask.defined()) return;
      auto t = value.toTensor();
      REQUIRE(mask.dim() == 4);
      CHECK(mask.size(0) == 2);
      CHECK(mask.size(1) == 1);
      CHECK(mask.size(2) == t.size(2));
      CHECK(mask.size(3) == t.size(3));
      // Removed positions hold 0 unless the value is marked dirty; cleaned, they always do.
      if (!state->dirty[static_cast<std::size_t>(v)]) CHECK((t * (1 - mask)).abs().max().item<float>() == 0.0f);
      CHECK((state->clean(v, t) * (1 - mask)).abs().max().item<float>() == 0.0f);
      ++checked;
    };
    torch::NoGradGuard no_grad;
    salient::graph::run(program, salient::graph::masked_rules(state), {x}, &watch);
    CHECK(checked > 10);
  }
  // Geometry: keeping the left half of a 64x64 input, resnet18's first conv (7x7, stride 2,
  // padding 3) keeps output column j when its window [2j-3, 2j+3] reaches a kept column.
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  const auto& program = salient::program_of(model);
  auto state = std::make_shared<salient::graph::MaskState>(program.value_count());
  auto left = torch::zeros({1, 1, 64, 64});
  left.slice(3, 0, 32).fill_(1);
  state->masks[program.body.inputs[0]] = left;
  salient::graph::Watch watch;
  watch.values = {program.layer("conv1").output, program.layer("maxpool").output};
  std::vector<torch::Tensor> seen;
  watch.on_value = [&](salient::graph::ValueId v, salient::graph::Value&) { seen.push_back(state->masks[v]); };
  torch::NoGradGuard no_grad;
  salient::graph::run(program, salient::graph::masked_rules(state), {torch::randn({1, 3, 64, 64})}, &watch);
  REQUIRE(seen.size() == 2);
  auto conv_columns = seen[0][0][0][0];  // [32]
  for (int64_t j = 0; j < 32; ++j) CHECK(conv_columns[j].item<float>() == (2 * j - 3 <= 31 ? 1.0f : 0.0f));
  auto pool_columns = seen[1][0][0][0];  // 3x3 stride 2 padding 1 over conv1's 32 columns
  for (int64_t j = 0; j < 16; ++j) CHECK(pool_columns[j].item<float>() == (2 * j - 1 <= 17 ? 1.0f : 0.0f));
}

TEST_CASE("the planned neighbour fill and mask pooling agree with their tensor-op definitions", "[masking]") {
  namespace F = torch::nn::functional;
  using namespace salient::graph::detail;
  torch::manual_seed(4);
  auto masks = torch::cat({rectangle_masks(3, 23, 31, 7), (torch::rand({2, 1, 23, 31}) > 0.7).to(torch::kFloat),
                           torch::zeros({1, 1, 23, 31}), torch::ones({1, 1, 23, 31})});
  auto x = torch::randn({7, 5, 23, 31});
  for (int64_t rounds : {1, 2, 4, 6}) {
    INFO("rounds " << rounds);
    const auto plans = plan_neighbour_fill(masks, rounds);
    auto planned = neighbour_fill(x + 100 * (1 - masks), plans, true);  // removed: anything
    auto dense = neighbour_fill_dense(x * masks, masks, rounds);
    CHECK((planned - dense).abs().max().item<float>() <= 1e-5f);
    // In place (an activation no one reads afterwards): the same values, in the same tensor.
    auto owned = x + 100 * (1 - masks);
    auto filled = neighbour_fill(owned, plans, true, /*in_place=*/true);
    CHECK(filled.is_same(owned));
    CHECK(torch::equal(filled, planned));
    // The fill changed removed positions near kept ones and nothing else.
    CHECK(torch::equal(planned * masks, x * masks));
    CHECK((planned - x * masks).abs().sum().item<float>() > 0);
  }
  for (auto [kernel, stride, padding, dilation] : std::vector<std::array<int64_t, 4>>{
           {3, 1, 1, 1}, {3, 2, 1, 1}, {7, 2, 3, 1}, {3, 1, 2, 2}, {1, 2, 0, 1}, {5, 1, 2, 1}, {2, 2, 0, 1}}) {
    INFO("kernel " << kernel << " stride " << stride << " padding " << padding << " dilation " << dilation);
    auto expected = F::max_pool2d(F::pad(masks, F::PadFuncOptions({padding, padding, padding, padding})),
                                  F::MaxPool2dFuncOptions(kernel).stride(stride).dilation(dilation));
    CHECK(torch::equal(mask_max_pool(masks, {{kernel, kernel}, {stride, stride}, {padding, padding}, {dilation, dilation}}),
                       expected));
  }
}

TEST_CASE("layer masking under autograd (tensor-op fill) gives the no-grad outputs", "[masking]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "mobilenet_v2.pt");
  const auto& program = salient::program_of(model);
  auto x = torch::randn({2, 3, 64, 64});
  auto masks = rectangle_masks(2, 64, 64, 9);
  auto run = [&](const torch::Tensor& input) {
    auto state = std::make_shared<salient::graph::MaskState>(program.value_count());
    state->set(program.body.inputs[0], masks, true);
    return salient::graph::run(program, salient::graph::masked_rules(state), {input}).at(0).toTensor();
  };
  auto with_grad = run(x.clone().requires_grad_());
  REQUIRE(with_grad.requires_grad());
  torch::NoGradGuard no_grad;
  CHECK(salient::test::max_relative(with_grad.detach(), run(x)) <= 1e-5);
  CHECK(salient::test::max_relative(with_grad.detach(), salient::layer_masked_forward(model, x, masks)) <= 1e-5);
}

TEST_CASE("bad masks give clear errors; an empty mask has a defined output", "[masking]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  auto x = torch::randn({1, 3, 64, 64});
  CHECK_THROWS_WITH(salient::layer_masked_forward(model, x, torch::ones({32, 32})),
                    Catch::Contains("does not fit an image of 64x64"));
  CHECK_THROWS_WITH(salient::layer_masked_forward(model, x, torch::full({64, 64}, 2.0)),
                    Catch::Contains("mask values must be in [0, 1]"));
  auto nan_mask = torch::ones({64, 64});
  nan_mask[3][3] = std::nanf("");
  CHECK_THROWS_WITH(salient::layer_masked_forward(model, x, nan_mask), Catch::Contains("mask contains NaN"));
  CHECK_THROWS_WITH(salient::LayerMasker{}.outputs(model, torch::randn({2, 3, 64, 64}), torch::ones({3, 1, 64, 64})),
                    Catch::Contains("masking 2 images with 3 masks"));
  CHECK_THROWS_WITH(salient::make_masker("purple"), Catch::Contains("unknown masker 'purple'"));
  CHECK_THROWS_WITH(salient::layer_masked_forward(model, torch::randn({2, 3, 64, 64}), torch::ones({3, 1, 64, 64})),
                    Catch::Contains("2 inputs but 3 masks"));
  // Nothing kept: the output for all-zero pooled features (resnet18: the classifier bias).
  auto empty = salient::layer_masked_forward(model, x, torch::zeros({64, 64}));
  auto fc_bias = model.module()->attr("fc").toModule().attr("bias").toTensor();
  CHECK(torch::allclose(empty[0], fc_bias, 1e-5, 1e-6));
}

TEST_CASE("fill maskers blend the fill into removed pixels", "[masking]") {
  auto image = torch::randn({1, 3, 8, 8});
  auto masks = torch::ones({2, 1, 8, 8});
  masks[0][0][2][3] = 0;
  masks[1][0][5][5] = 0.25;
  auto grey = salient::FillMasker::baseline(salient::BaselineKind::grey);
  auto out = grey.masked_inputs(image, masks);
  auto fill = salient::make_baseline(salient::BaselineKind::grey, image);
  CHECK(torch::allclose(out[0].select(1, 2).select(1, 3), fill[0].select(1, 2).select(1, 3)));
  CHECK(torch::allclose(out[1].select(1, 5).select(1, 5),
                        0.25 * image[0].select(1, 5).select(1, 5) + 0.75 * fill[0].select(1, 5).select(1, 5)));
  CHECK(torch::equal(out[0][0][0], image[0][0][0]));
}

TEST_CASE("layer masking works on torch::nn Sequential models", "[masking]") {
  torch::manual_seed(7);
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)), torch::nn::BatchNorm2d(8),
                            torch::nn::ReLU(), torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)),
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).stride(2).padding(1)), torch::nn::ReLU6(),
                            torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), torch::nn::Linear(8, 4));
  salient::TorchModel model(net);
  auto image = torch::randn({1, 3, 32, 32});
  CHECK(torch::allclose(salient::layer_masked_forward(model, image, torch::ones({32, 32})), model.forward(image)));
  auto masks = rectangle_masks(3, 32, 32, 9);
  torch::Tensor reference;
  for (auto kind : {salient::BaselineKind::black, salient::BaselineKind::noise}) {
    auto out = salient::layer_masked_forward(model, salient::FillMasker::baseline(kind).masked_inputs(image, masks), masks);
    if (reference.defined()) CHECK((out - reference).abs().max().item<double>() <= 1e-5);
    reference = out;
  }
}

TEST_CASE("a fill masker can take the removed pixels from another image", "[masking]") {
  auto image = torch::randn({1, 3, 6, 6}), other = torch::randn({1, 3, 6, 6});
  auto keep_left = torch::zeros({6, 6});
  keep_left.slice(1, 0, 3).fill_(1);
  auto out = salient::FillMasker::image(other).masked_inputs(image, keep_left);
  CHECK(torch::equal(out.slice(3, 0, 3), image.slice(3, 0, 3)));
  CHECK(torch::equal(out.slice(3, 3, 6), other.slice(3, 3, 6)));
  CHECK_THROWS_WITH(salient::FillMasker::image(torch::randn({1, 3, 5, 5})).masked_inputs(image, keep_left),
                    Catch::Contains("does not match inputs"));
}

TEST_CASE("the TorchScript driver and the AnalyticCnn driver of layer masking agree", "[masking]") {
  // The same network twice: the AnalyticCnn (xtensor, double) and a torch::nn::Sequential with
  // its weights; both drive masking/layer_masking.hpp, through different op sets.
  auto analytic = salient::AnalyticCnn::random(3, 4, 16, 16, 5, 17);
  auto to_torch = [](const xt::xarray<double>& a) {
    std::vector<int64_t> shape(a.shape().begin(), a.shape().end());
    return torch::from_blob(const_cast<double*>(a.data()), shape, torch::kDouble).clone();
  };
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
  torch::nn::Linear fc(4 * 7 * 7, 5);
  {
    torch::NoGradGuard no_grad;
    conv->weight.set_data(to_torch(analytic.conv_weight).to(torch::kFloat));
    conv->bias.set_data(to_torch(analytic.conv_bias).to(torch::kFloat));
    fc->weight.set_data(to_torch(analytic.fc_weight).to(torch::kFloat));
    fc->bias.set_data(to_torch(analytic.fc_bias).to(torch::kFloat));
  }
  torch::nn::Sequential net(conv, torch::nn::ReLU(), torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)),
                            torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2).stride(1)), torch::nn::Flatten(), fc);
  salient::TorchModel model(net);
  torch::manual_seed(8);
  auto x = torch::randn({4, 3, 16, 16});
  auto masks = rectangle_masks(4, 16, 16, 10);
  masks[3].fill_(1);
  xt::xarray<double> xa = xt::zeros<double>({4, 3, 16, 16}), ma = xt::zeros<double>({4, 1, 16, 16});
  auto xd = x.to(torch::kDouble).contiguous(), md = masks.to(torch::kDouble).contiguous();
  std::copy_n(xd.data_ptr<double>(), xd.numel(), xa.data());
  std::copy_n(md.data_ptr<double>(), md.numel(), ma.data());
  torch::NoGradGuard no_grad;
  CHECK(salient::test::max_relative(model.forward(x).to(torch::kDouble), to_torch(analytic.forward(xa))) <= 1e-5);
  auto by_torch = salient::layer_masked_forward(model, x, masks).to(torch::kDouble);
  auto by_analytic = to_torch(salient::layer_masked_forward(analytic, xa, ma));
  CHECK(salient::test::max_relative(by_torch, by_analytic) <= 1e-5);
  CHECK(salient::test::max_relative(by_torch[0], model.forward(x)[0].to(torch::kDouble)) > 1e-3);  // masking did something
}

TEST_CASE("incremental forwards equal full forwards on every covered model", "[masking][incremental][every_model]") {
  torch::NoGradGuard no_grad;
  for (const auto& path : covered_models()) {
    INFO(path.string());
    const bool tuple = path.filename() == "googlenet.script.pt";
    auto model = salient::TorchModel::load(path, {.output_element = tuple ? 0 : -1});
    torch::manual_seed(4);
    auto image = torch::randn({1, 3, 128, 128});
    auto inputs = image.repeat({6, 1, 1, 1});
    // 9x9 windows at the corners, edges and inside (strided layers see them at every phase);
    // one filled with noise instead of zeros.
    const int64_t places[6][2] = {{0, 0}, {119, 119}, {40, 13}, {5, 100}, {70, 71}, {120, 30}};
    for (int i = 0; i < 6; ++i)
      inputs[i].narrow(1, places[i][0], std::min<int64_t>(9, 128 - places[i][0])).narrow(2, places[i][1], 9).zero_();
    inputs[5].narrow(1, 120, 8).narrow(2, 30, 9).normal_();
    auto incremental = salient::forward_changed(model, image, inputs);
    if (!incremental) {
      // Squeeze-and-excitation nets: a whole-map scale early on makes it not worth it; the
      // rules must still be exact there.
      INFO(salient::incremental_stats(model).refused);
      CHECK_FALSE(salient::incremental_stats(model).declined.empty());
      incremental = salient::detail::forward_changed(model, image, inputs, /*decide=*/false);
    }
    const auto stats = salient::incremental_stats(model);
    INFO(stats.refused);
    REQUIRE(incremental);
    CHECK(salient::test::max_relative(*incremental, model.forward(inputs)) <= 1e-4);
    // Networks without global pooling or concatenation early on compute a fraction of the work.
    const auto name = path.filename().string();
    if (name.rfind("resnet", 0) == 0 || name.rfind("mobilenet_v2", 0) == 0 || name.rfind("vgg", 0) == 0) {
      INFO(stats.ended);
      CHECK(stats.macs < 0.75 * stats.full_macs);
    }
    // Changes over more than a quarter of the image run the ordinary forward.
    auto large = image.repeat({2, 1, 1, 1});
    large.narrow(2, 0, 80).narrow(3, 0, 80).zero_();
    CHECK_FALSE(salient::forward_changed(model, image, large));
  }
}

TEST_CASE("occlusion and feature ablation run incrementally, as exact as the full recompute", "[masking][incremental]") {
  const auto path = fs::path(SALIENT_MODELS_DIR) / "resnet18.pt";
  auto incremental = salient::TorchModel::load(path);
  auto full = salient::TorchModel::load(path, {.incremental = false});
  torch::manual_seed(5);
  auto x = torch::randn({1, 3, 128, 128});
  const salient::OcclusionOptions<salient::TorchModel> occlusion{.window = {16, 16}, .strides = {16, 16}, .evaluation = {.batch_size = 16}};
  auto check = [&] {
    auto a = salient::occlusion(incremental, x, 3, occlusion), b = salient::occlusion(full, x, 3, occlusion);
    CHECK(salient::test::max_relative(a, b) <= 1e-4);
    CHECK(b.abs().max().item<double>() > 0);
    auto segments = salient::to_tensor(salient::grid_segments(128, 128, 16));
    auto c = salient::feature_ablation(incremental, x, 3, {.segments = segments});
    auto d = salient::feature_ablation(full, x, 3, {.segments = segments});
    CHECK(salient::test::max_relative(c, d) <= 1e-4);
  };
  check();
  auto stats = salient::incremental_stats(incremental);
  INFO(stats.ended);
  CHECK(stats.runs >= 1);
  CHECK(stats.macs < 0.75 * stats.full_macs);
  CHECK(salient::incremental_stats(full).runs == 0);
}

TEST_CASE("incremental forwards see changed parameters", "[masking][incremental]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  torch::NoGradGuard no_grad;
  torch::manual_seed(6);
  auto image = torch::randn({1, 3, 128, 128});
  auto inputs = image.repeat({2, 1, 1, 1});
  inputs[0].narrow(1, 10, 9).narrow(2, 20, 9).zero_();
  inputs[1].narrow(1, 60, 9).narrow(2, 0, 9).zero_();
  auto before = salient::forward_changed(model, image, inputs);
  REQUIRE(before);
  CHECK(salient::test::max_relative(*before, model.forward(inputs)) <= 1e-4);
  // Through the parameter capability (parameters_changed) and in place (version counters).
  auto [name, weight] = model.named_parameters().front();
  std::vector<double> values(static_cast<std::size_t>(weight.numel()));
  auto scaled = (weight * 1.5).to(torch::kDouble).contiguous();
  std::copy(scaled.data_ptr<double>(), scaled.data_ptr<double>() + values.size(), values.begin());
  salient::set_parameter(model, name, values);
  auto after = salient::forward_changed(model, image, inputs);
  REQUIRE(after);
  CHECK(salient::test::max_relative(*after, model.forward(inputs)) <= 1e-4);
  CHECK(salient::test::max_relative(*after, *before) > 1e-3);
  model.named_parameters().at(1).second.mul_(-1.0);  // bn1.weight: every kept activation changes
  auto flipped = salient::forward_changed(model, image, inputs);
  REQUIRE(flipped);
  CHECK(salient::test::max_relative(*flipped, model.forward(inputs)) <= 1e-4);
  CHECK(salient::test::max_relative(*flipped, *after) > 1e-3);
}
