// Relevance propagation (LRP composites): the same numbers as zennit and Captum on their
// reference arrays, conservation, the model untouched, clear errors.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "salient/salient.hpp"
#include "error_matchers.hpp"
#include "shared_data.hpp"
#include "torch_helpers.hpp"

namespace {
namespace fs = std::filesystem;

using salient::test::reference_array;

// ImageNet normalisation's image range, the z-box bounds.
std::pair<torch::Tensor, torch::Tensor> imagenet_bounds() {
  auto mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  auto std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return {(0 - mean) / std, (1 - mean) / std};
}

// conv (no bias) -> relu -> max pool -> conv (no bias) -> relu -> mean -> linear (no bias).
salient::TorchModel bias_free_relu_network() {
  torch::manual_seed(5);
  torch::jit::Module net("BiasFree");
  net.register_parameter("c1", torch::randn({6, 3, 3, 3}) * 0.5, false);
  net.register_parameter("c2", torch::randn({5, 6, 3, 3}) * 0.3, false);
  net.register_parameter("fc", torch::randn({4, 5}), false);
  net.define(R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.c1, None, [1, 1], [1, 1]))
    y = torch.max_pool2d(y, [2, 2], [2, 2], [0, 0], [1, 1], False)
    y = torch.relu(torch.conv2d(y, self.c2, None, [1, 1], [1, 1]))
    return torch.linear(torch.adaptive_avg_pool2d(y, [1, 1]).flatten(1), self.fc)
)");
  return salient::TorchModel(net);
}
}  // namespace

TEST_CASE("LRP composites give zennit's and Captum's numbers on vgg16 and resnet18", "[relevance][shared]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  const auto references = *shared / "references";
  const auto input = reference_array(references / "input.npy");
  for (const auto& [arch, target] : {std::pair<std::string, int64_t>{"vgg16", 100}, {"resnet18", 238}}) {
    auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / (arch + ".pt"));
    for (const char* composite : {"epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1_flat", "epsilon_plus"}) {
      INFO(arch << " " << composite);
      auto relevance = salient::lrp(model, input, target, {.composite = composite});
      auto expected = reference_array(references / (arch + ".zennit." + composite + ".npy"));
      CHECK(salient::test::max_relative(relevance, expected) <= 1e-4);
    }
    if (arch == "vgg16") {  // Captum's LRP: epsilon everywhere, relevance starting at the logit
      auto relevance = salient::lrp(model, input, target, {.composite = "epsilon", .times_score = true});
      CHECK(salient::test::max_relative(relevance, reference_array(references / "vgg16.captum.lrp.npy")) <= 1e-4);
    }
  }
}

TEST_CASE("LRP conserves relevance on a bias-free ReLU network", "[relevance]") {
  auto model = bias_free_relu_network();
  torch::manual_seed(6);
  auto x = torch::randn({3, 3, 12, 12});
  torch::Tensor scores;
  {
    torch::NoGradGuard no_grad;
    scores = model.forward(x).select(1, 2);
  }
  for (const char* composite : {"epsilon_plus", "epsilon", "epsilon_alpha2_beta1"}) {
    INFO(composite);
    auto relevance = salient::lrp(model, x, 2, {.composite = composite, .times_score = true});
    auto sums = relevance.sum({1, 2, 3});
    CHECK(torch::allclose(sums, scores, 1e-4, 1e-6));
    // Starting at 1 instead: the relevance sums to 1 per item.
    auto unit = salient::lrp(model, x, 2, {.composite = composite});
    CHECK(torch::allclose(unit.sum({1, 2, 3}), torch::ones({3}), 1e-4, 1e-6));
  }
  // Flat spreads the same relevance over each pixel's channels.
  auto flat = salient::lrp(model, x, 2, {.composite = "epsilon_plus_flat"});
  CHECK(torch::allclose(flat.select(1, 0), flat.select(1, 2)));
}

TEST_CASE("LRP conserves relevance through MobileNetV2's depthwise blocks and residuals once its biases are zero", "[relevance][shared]") {
  // ../shared's MobileNetV2 loses nearly all relevance to its (folded batch-norm) biases: z-plus
  // keeps the positive bias in the denominator, as zennit's ZPlus does (input relevance sums
  // to ~1e-6 on a photo). Without biases, every rule of the composites conserves it, through
  // zero padding, depthwise convolutions, ReLU6, residual additions and average pooling; the
  // model's first op multiplies by the ImageNet-to-TF scale per channel, which the relevance
  // (a modified gradient) carries to the input.
  const auto data = salient::test::shipped_dir();
  auto model = salient::TorchModel::load(data / "models" / "mobilenet_v2_imagenet.pt");
  {
    torch::NoGradGuard no_grad;
    for (auto p : model.module()->named_parameters())
      if (p.name.ends_with("bias")) p.value.zero_();
  }
  const auto input = salient::load_input(data / "images" / "cat.png");
  const auto scale = torch::tensor({0.458, 0.448, 0.450}, torch::kFloat).view({1, 3, 1, 1});  // ImageNetToTF
  for (const char* composite : {"epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box"}) {
    INFO(composite);
    auto relevance = salient::lrp(model, input, 285, {.composite = composite});
    const double transformed = (relevance / scale).sum().item<double>();
    CHECK(transformed > 0.95);
    CHECK(transformed < 1.0 + 1e-4);
  }
}

TEST_CASE("LRP leaves the model unchanged and its forward intact", "[relevance]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  std::vector<torch::Tensor> before;
  for (const auto& p : model.module()->named_parameters()) before.push_back(p.value.clone());
  for (const auto& b : model.module()->named_buffers()) before.push_back(b.value.clone());
  torch::manual_seed(2);
  auto x = torch::randn({2, 3, 64, 64});
  auto relevance = salient::lrp(model, x, salient::top1, {.composite = "epsilon_plus_flat"});
  CHECK(relevance.sizes() == x.sizes());
  CHECK(torch::isfinite(relevance).all().item<bool>());
  std::size_t i = 0;
  for (const auto& p : model.module()->named_parameters()) CHECK(torch::equal(p.value, before[i++]));
  for (const auto& b : model.module()->named_buffers()) CHECK(torch::equal(b.value, before[i++]));
  // The canonical program (batch norms folded) computes the model's forward.
  torch::NoGradGuard no_grad;
  auto expected = model.forward(x);
  auto canonical = salient::run_layers(model, salient::canonical_program_of(model), x, {}, salient::graph::plain_rules());
  CHECK(salient::test::max_relative(canonical.output, expected) <= 1e-4);
}

TEST_CASE("LRP runs on inverted residuals and refuses what it has no rule for", "[relevance]") {
  auto mobilenet = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "mobilenet_v2.pt");
  torch::manual_seed(3);
  auto x = torch::randn({1, 3, 64, 64});
  auto relevance = salient::lrp(mobilenet, x, 7, {.composite = "epsilon_plus"});
  CHECK(torch::isfinite(relevance).all().item<bool>());
  CHECK(relevance.abs().sum().item<double>() > 0);
  // Squeeze-excitation multiplies two activations: named with its module path.
  auto v3 = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "mobilenet_v3_small.pt");
  salient::test::require_error_mentioning([&] { salient::lrp(v3, x, 7); }, "'aten::mul of two activations' at 'features.1.block.1'");
  salient::test::require_error_mentioning([&] { salient::lrp(mobilenet, x, 7, {.composite = "epsilon_plus_flatt"}); },
                                          "valid composites: epsilon_plus_flat, epsilon_gamma_box");
  salient::test::require_error_mentioning([&] { salient::lrp(mobilenet, x, 7, {.epsilon = -1}); }, "epsilon must be >= 0");
}

TEST_CASE("DeepLIFT gives Captum's numbers on vgg16 and sums to F(x) - F(baseline)", "[relevance][shared]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  const auto references = *shared / "references";
  const auto input = reference_array(references / "input.npy");
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "vgg16.pt");
  auto attribution = salient::deeplift(model, input, 100);
  CHECK(salient::test::max_relative(attribution, reference_array(references / "vgg16.captum.deeplift.npy")) <= 1e-4);
  // DeepLIFT-SHAP over zero, black and grey, as Captum computes it: its max pools pass the
  // gradient (they follow ReLU modules), so the sum is not F(x) - mean F(b) (0.0691 vs 0.0617).
  const auto [black, white] = imagenet_bounds();
  auto baselines = torch::cat({torch::zeros({1, 3, 224, 224}), black.expand({1, 3, 224, 224}),
                               ((black + white) / 2).expand({1, 3, 224, 224})});
  auto shap = salient::deeplift_shap(model, input, 100, baselines);
  CHECK(salient::test::max_relative(shap, reference_array(references / "vgg16.captum.deepliftshap.npy")) <= 1e-4);
  // With the cross-max rule at the max pools, each DeepLIFT sums to F(x) - F(b).
  const salient::DeepLiftOptions rescale{.max_pool = salient::DeepLiftMaxPool::rescale};
  auto complete = salient::deeplift_shap(model, input, 100, baselines, rescale);
  torch::NoGradGuard no_grad;
  auto scores = model.forward(torch::cat({input, baselines})).select(1, 100);
  const double expected = (scores[0] - scores.slice(0, 1).mean()).item<double>();
  CHECK(complete.sum().item<double>() == Approx(expected).epsilon(1e-4));
  CHECK(std::abs(shap.sum().item<double>() - expected) > 1e-3);
  auto black_only = salient::deeplift(model, input, 100, baselines.slice(0, 1, 2), rescale);
  CHECK(black_only.sum().item<double>() == Approx((scores[0] - scores[2]).item<double>()).epsilon(1e-4));
}

// (Windows that overlap, as ResNet's 3x3 / 2 max pool, break the sum: Captum's max-pool rule,
// which salient follows, unpools one window's contribution per input position.)
TEST_CASE("DeepLIFT's rescale and max-pool rules conserve F(x) - F(b) with biases and functional activations", "[relevance]") {
  torch::manual_seed(8);
  torch::jit::Module net("Biased");
  net.register_parameter("c1", torch::randn({6, 3, 3, 3}) * 0.5, false);
  net.register_parameter("b1", torch::randn({6}) * 0.1, false);
  net.register_parameter("c2", torch::randn({5, 6, 3, 3}) * 0.3, false);
  net.register_parameter("fc", torch::randn({4, 5}), false);
  net.register_parameter("fb", torch::randn({4}), false);
  net.define(R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.c1, self.b1, [1, 1], [1, 1]))
    y = torch.max_pool2d(y, [2, 2], [2, 2], [0, 0], [1, 1], False)
    y = torch.sigmoid(torch.conv2d(y, self.c2, None, [1, 1], [1, 1])) + torch.relu(y[:, :5])
    return torch.linear(torch.adaptive_avg_pool2d(y, [1, 1]).flatten(1), self.fc, self.fb)
)");
  salient::TorchModel model(net);
  auto x = torch::randn({3, 3, 12, 12});
  auto baseline = torch::randn({1, 3, 12, 12}) * 0.2;
  auto attribution = salient::deeplift(model, x, 1, baseline, {.max_pool = salient::DeepLiftMaxPool::rescale});
  torch::NoGradGuard no_grad;
  auto expected = model.forward(x).select(1, 1) - model.forward(baseline).select(1, 1);
  CHECK(torch::allclose(attribution.sum({1, 2, 3}), expected, 1e-4, 1e-5));
  salient::test::require_error_mentioning([&] { salient::deeplift(model, x, 1, torch::zeros({2, 3, 12, 12})); },
                                          "does not match the inputs");
  salient::test::require_error_mentioning([&] { salient::deeplift_shap(model, x, 1, torch::Tensor()); }, "needs a set of baselines");
  salient::DeepLiftOptions options;
  salient::test::require_error_mentioning([&] { salient::set_option(options, "max_pool", "rescal"); },
                                          "expected gradient or rescale");
}

TEST_CASE("GradientSHAP is seeded and equals (x - b) * w on a linear model", "[relevance]") {
  torch::manual_seed(9);
  torch::jit::Module net("Linear");
  net.register_parameter("w", torch::randn({3, 2 * 4 * 4}), false);
  net.define("def forward(self, x):\n  return torch.linear(x.flatten(1), self.w)\n");
  salient::TorchModel model(net);
  auto x = torch::randn({2, 2, 4, 4});
  auto baseline = torch::randn({1, 2, 4, 4});
  auto attribution = salient::gradient_shap(model, x, 2, baseline, {.samples = 7, .seed = 3});
  auto w = net.attr("w").toTensor()[2].view({1, 2, 4, 4});
  CHECK(torch::allclose(attribution, (x - baseline) * w, 1e-5, 1e-6));
  // Several baselines and noise: the same seed gives the same draws, another seed others.
  auto baselines = torch::randn({4, 2, 4, 4});
  auto a = salient::gradient_shap(model, x, 2, baselines, {.samples = 5, .stdev = 0.1, .seed = 1});
  auto b = salient::gradient_shap(model, x, 2, baselines, {.samples = 5, .stdev = 0.1, .seed = 1});
  auto c = salient::gradient_shap(model, x, 2, baselines, {.samples = 5, .stdev = 0.1, .seed = 2});
  CHECK(torch::equal(a, b));
  CHECK(!torch::allclose(a, c));
}

TEST_CASE("LRP and DeepLIFT on a torch::nn::Sequential match the same network as TorchScript", "[relevance]") {
  torch::manual_seed(12);
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)), torch::nn::BatchNorm2d(4),
                            torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(), torch::nn::Linear(4 * 4 * 4, 3));
  net->eval();
  auto* conv = net[0]->as<torch::nn::Conv2d>();
  auto* norm = net[1]->as<torch::nn::BatchNorm2d>();
  auto* fc = net[5]->as<torch::nn::Linear>();
  {
    torch::NoGradGuard no_grad;
    norm->running_mean.uniform_(-0.2, 0.2);
    norm->running_var.uniform_(0.5, 2.0);
    norm->weight.uniform_(0.5, 1.5);
  }
  torch::jit::Module scripted("Same");
  scripted.register_parameter("cw", conv->weight.detach(), false);
  scripted.register_parameter("cb", conv->bias.detach(), false);
  scripted.register_buffer("mean", norm->running_mean);
  scripted.register_buffer("var", norm->running_var);
  scripted.register_parameter("nw", norm->weight.detach(), false);
  scripted.register_parameter("nb", norm->bias.detach(), false);
  scripted.register_parameter("fw", fc->weight.detach(), false);
  scripted.register_parameter("fb", fc->bias.detach(), false);
  scripted.define(R"(
def forward(self, x):
    y = torch.conv2d(x, self.cw, self.cb, [1, 1], [1, 1])
    y = torch.batch_norm(y, self.nw, self.nb, self.mean, self.var, False, 0.1, 1e-5, False)
    y = torch.max_pool2d(torch.relu(y), [2, 2], [2, 2], [0, 0], [1, 1], False)
    return torch.linear(y.flatten(1), self.fw, self.fb)
)");
  salient::TorchModel sequential_model(net.ptr()), script_model(scripted);
  auto x = torch::randn({2, 3, 8, 8});
  for (const char* composite : {"epsilon_plus_flat", "epsilon_gamma_box"}) {
    INFO(composite);
    auto a = salient::lrp(sequential_model, x, 1, {.composite = composite});
    auto b = salient::lrp(script_model, x, 1, {.composite = composite});
    CHECK(salient::test::max_relative(a, b) <= 1e-5);
  }
  CHECK(salient::test::max_relative(salient::deeplift(sequential_model, x, 1), salient::deeplift(script_model, x, 1)) <= 1e-5);
}
