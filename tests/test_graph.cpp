// The graph executor: same numbers as module.forward on every supported CNN, layers with
// module paths, rule sets, clear errors, torch::nn Sequential-style models.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "salient/salient.hpp"
#include "shared_data.hpp"
#include "error_matchers.hpp"
#include "torch_helpers.hpp"

namespace {
namespace fs = std::filesystem;

torch::Tensor first_tensor(const c10::IValue& v) {
  return v.isTensor() ? v.toTensor() : v.toTupleRef().elements()[0].toTensor();
}

// A module scripted from source: x -> relu(x @ W1^T) @ W2^T, with a named submodule.
torch::jit::Module tiny_mlp(const torch::Tensor& w1, const torch::Tensor& w2) {
  torch::jit::Module hidden("Hidden");
  hidden.register_parameter("weight", w1, false);
  hidden.define("def forward(self, x):\n  return torch.relu(torch.matmul(x, self.weight.t()))\n");
  torch::jit::Module head("Head");
  head.register_parameter("weight", w2, false);
  head.define("def forward(self, x):\n  return torch.matmul(x, self.weight.t())\n");
  torch::jit::Module model("TinyMlp");
  model.register_module("hidden", hidden);
  model.register_module("head", head);
  model.define("def forward(self, x):\n  return self.head.forward(self.hidden.forward(x))\n");
  return model;
}
}  // namespace

TEST_CASE("the plain executor reproduces module.forward on every supported CNN", "[graph]") {
  std::vector<std::pair<fs::path, int64_t>> models;
  // 72 x 72 halves to odd sizes (9 -> 5 ...) that pooling and padding must get right.
  for (const char* name : {"resnet18", "resnet50", "vgg11_bn", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1",
                           "densenet121", "efficientnet_b0", "alexnet", "googlenet", "shufflenet_v2_x0_5"})
    for (const char* suffix : {".pt", ".script.pt"})
      models.emplace_back(fs::path(SALIENT_MODELS_DIR) / (std::string(name) + suffix), 72);
  for (const char* name : {"regnet_y_400mf", "convnext_tiny", "efficientnet_v2_s", "mnasnet1_0"})
    models.emplace_back(fs::path(SALIENT_MODELS_DIR) / (std::string(name) + ".pt"), 72);
  models.emplace_back(fs::path(SALIENT_MODELS_DIR) / "inception_v3.pt", 80);  // 75 at least
  if (auto shared = salient::test::shared_dir()) {
    models.emplace_back(*shared / "models/mobilenet_v2_imagenet.pt", 224);
    models.emplace_back(*shared / "models/mobilenet_v1_025_128_imagenet.pt", 128);
    models.emplace_back(*shared / "models/deeplabv3_mnv2_pascal.pt", 129);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [path, size] : models) {
    INFO(path.string());
    REQUIRE(fs::exists(path));
    auto module = torch::jit::load(path.string());
    module.eval();
    auto program = salient::graph::from_torchscript(module, path.filename().string());
    CHECK(!program.layers.empty());
    for (int64_t batch : {1, 3}) {
      torch::manual_seed(batch);
      auto x = torch::randn({batch, 3, size, size});
      auto expected = first_tensor(module.forward({x}));
      auto actual = first_tensor(salient::graph::run(program, salient::graph::plain_rules(), {x}).front());
      REQUIRE(actual.sizes() == expected.sizes());
      CHECK(salient::test::max_relative(actual, expected) <= 1e-5);
    }
  }
}

TEST_CASE("layers are named by module path, with shapes and aliases", "[graph]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  auto layers = salient::list_layers(model, torch::zeros({1, 3, 224, 224}));
  auto find = [&](const std::string& name) {
    auto it = std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.name == name; });
    REQUIRE(it != layers.end());
    return *it;
  };
  CHECK(find("layer4").shape == std::vector<int64_t>{1, 512, 7, 7});
  CHECK(find("layer3.1.conv2").shape == std::vector<int64_t>{1, 256, 14, 14});
  CHECK(find("fc").shape == std::vector<int64_t>{1, 1000});
  auto relu = find("layer1.0.relu");  // the BasicBlock's ReLU runs twice: its last call
  CHECK(relu.calls == 2);
  CHECK(find("layer1.0.relu@0").shape == std::vector<int64_t>{1, 64, 56, 56});
  auto aliases = find("layer4").aliases;
  CHECK(std::find(aliases.begin(), aliases.end(), "layer4.1") != aliases.end());
  CHECK(salient::default_cam_layer(model, torch::zeros({2, 3, 224, 224})) == "layer4");

  // Activations equal the module's own submodule outputs.
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 3, 224, 224});
  auto run = salient::run_layers(model, x, {{"layer1"}, {"layer2", true}});
  auto m = *model.module();
  auto stem = m.attr("maxpool").toModule().forward({m.attr("relu").toModule().forward(
      {m.attr("bn1").toModule().forward({m.attr("conv1").toModule().forward({x})})})}).toTensor();
  auto layer1 = m.attr("layer1").toModule().forward({stem}).toTensor();
  CHECK(torch::allclose(run.activations[0], layer1, 1e-5, 1e-6));
  CHECK(torch::allclose(run.activations[1], layer1, 1e-5, 1e-6));  // layer2's input is layer1's output
  CHECK(torch::allclose(run.output, model.forward(x), 1e-5, 1e-6));
}

// Architectures beyond the plain CNNs: ShuffleNet (sizes computed by ops no rule set names, a
// channel split and shuffle), RegNet (grouped convolutions, squeeze-excitation), ConvNeXt
// (channels-last layer norm between permutes, layer scale), EfficientNetV2 (fused MBConv,
// SiLU), MnasNet, Inception v3 (asymmetric kernels, concatenations), and scripted ResNet and
// MobileNetV3 (the graphs scripting keeps: prim::If argument checks, list ops).
TEST_CASE("methods and layer masking run on ShuffleNet, RegNet, ConvNeXt, EfficientNetV2, MnasNet, Inception v3 and scripted models", "[graph]") {
  for (const char* file : {"shufflenet_v2_x0_5.pt", "shufflenet_v2_x0_5.script.pt", "regnet_y_400mf.pt", "convnext_tiny.pt",
                           "efficientnet_v2_s.pt", "mnasnet1_0.pt", "inception_v3.pt", "resnet18.script.pt",
                           "mobilenet_v3_small.script.pt"}) {
    INFO(file);
    auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / file);
    torch::manual_seed(4);
    auto x = torch::randn({2, 3, 96, 96});
    std::string layer;
    auto cam = salient::grad_cam(model, x, salient::top1, {.on_layer = [&](const std::string& l) { layer = l; }});
    CHECK(!layer.empty());
    CHECK(cam.sizes() == torch::IntArrayRef{2, 1, 96, 96});
    CHECK(cam.max().item<double>() > 0);
    auto guided = salient::guided_backprop(model, x, 7);
    CHECK(guided.sizes() == x.sizes());
    CHECK(torch::isfinite(guided).all().item<bool>());
    CHECK(guided.abs().max().item<double>() > 0);
    // Layer masking carries the mask through the channel split and shuffle and the final
    // mean: an all-ones mask is the plain forward, and what removed pixels hold does not matter.
    torch::NoGradGuard no_grad;
    const auto plain = model.forward(x);
    auto all = salient::layer_masked_forward(model, x, torch::ones({1, 1, 96, 96}));
    CHECK((all - plain).abs().max().item<double>() <= 1e-5 * plain.abs().max().item<double>());
    auto keep = torch::ones({1, 1, 96, 96});
    keep.slice(3, 0, 40).zero_();
    auto other = x.clone();
    other.slice(3, 0, 40).uniform_(-5, 5);
    auto masked = salient::layer_masked_forward(model, x, keep);
    auto masked_other = salient::layer_masked_forward(model, other, keep);
    // (Random weights make the output nearly constant: compare with how much the plain
    // forward moves when those pixels change.)
    const double plain_change = (model.forward(other) - plain).abs().max().item<double>();
    const double masked_change = (masked - masked_other).abs().max().item<double>();
    INFO("plain change " << plain_change << ", masked change " << masked_change);
    CHECK(plain_change > 0);
    CHECK(masked_change <= 1e-3 * plain_change);
  }
}

TEST_CASE("unknown layer names list the closest valid names", "[graph]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  auto x = torch::zeros({1, 3, 64, 64});
  CHECK_THROWS_WITH(salient::run_layers(model, x, {{"layer4.1.conv9"}}),
                    Catch::Contains("unknown layer 'layer4.1.conv9'") && Catch::Contains("layer4.1.conv1") &&
                        Catch::Contains("layer4.1.conv2"));
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 1, {.layer = "layr3"}),
                    Catch::Contains("closest valid names: layer3"));
  salient::TorchModel function_model([](const torch::Tensor& t) { return t.flatten(1); });
  CHECK_THROWS_WITH(salient::list_layers(function_model, x), Catch::Contains("made from a C++ function"));
}

TEST_CASE("rule sets run ops they do not change as themselves; an op no rule covers is an error naming it", "[graph]") {
  torch::jit::Module block("Block");
  block.define("def forward(self, x):\n  return torch.cumsum(x, 1)\n");
  torch::jit::Module net("Net");
  net.register_module("block", block);
  net.define("def forward(self, x):\n  return self.block.forward(torch.relu(x))\n");
  salient::TorchModel model(net);
  auto x = torch::randn({2, 5});
  const auto& program = salient::program_of(model);
  // An op no built-in set names (aten::cumsum) runs as itself in plain and guided backprop.
  auto plain = first_tensor(salient::graph::run(program, salient::graph::plain_rules(), {x}).front());
  CHECK(torch::equal(plain, torch::cumsum(torch::relu(x), 1)));
  auto guided = salient::guided_backprop(model, x, 0);  // score relu(x0): its gradient is >= 0, guided or not
  CHECK(torch::equal(guided, salient::saliency(model, x, 0, {.abs = false})));
  // A set without a rule for it, or one that refuses it, stops before anything runs.
  salient::graph::RuleSet relu_only("relu_only");
  relu_only.add({"aten::relu"}, salient::graph::run_as_is);
  CHECK_THROWS_WITH(salient::graph::run(program, relu_only, {x}),
                    Catch::Contains("rule set 'relu_only' has no rule for op 'aten::cumsum' at 'block'"));
  relu_only.otherwise(salient::graph::run_as_is).refuse({"aten::cumsum"});
  CHECK_THROWS_WITH(salient::graph::run(program, relu_only, {x}),
                    Catch::Contains("rule set 'relu_only' refuses op 'aten::cumsum' at 'block'"));
  // A caller can tell "unsupported" from bad input.
  salient::test::require_error_of_kind([&] { salient::graph::run(program, relu_only, {x}); }, salient::error_kind::unsupported,
                                       "refuses op");
  salient::test::require_error_of_kind([&] { salient::saliency(model, x, 9); }, salient::error_kind::bad_input,
                                       "target class 9 out of range");
  // Layer masking runs an unknown op on unmasked values, and refuses it on a masked activation.
  torch::jit::Module image_net("ImageNet");
  image_net.register_module("block", block);
  image_net.define("def forward(self, x):\n  return self.block.forward(torch.relu(x)).flatten(1)\n");
  salient::TorchModel image_model(image_net);
  auto image = torch::randn({1, 2, 4, 4});
  auto half = torch::ones({1, 1, 4, 4});
  half.slice(3, 0, 2).zero_();
  CHECK_THROWS_WITH(salient::layer_masked_forward(image_model, image, half),
                    Catch::Contains("rule set 'masked' cannot apply op 'aten::cumsum' at 'block' to a masked activation"));
  // A rearrangement that merges positions (H and W into one dimension) is refused too.
  torch::jit::Module merge_net("MergeNet");
  merge_net.define("def forward(self, x):\n  return torch.relu(x).reshape([1, 2, 16]).sum(2)\n");
  salient::TorchModel merge_model(merge_net);
  CHECK_THROWS_WITH(salient::layer_masked_forward(merge_model, image, half),
                    Catch::Contains("cannot apply op 'aten::reshape'") && Catch::Contains("moves values between positions"));
  // A transpose moves the mask with the values: pooling the transposed activation equals
  // transposing the pooled one, under any mask.
  torch::jit::Module pool_then_swap("PoolThenSwap"), swap_then_pool("SwapThenPool");
  pool_then_swap.define("def forward(self, x):\n  return torch.max_pool2d(torch.relu(x), [3, 3], [1, 1], [1, 1]).transpose(2, 3).flatten(1)\n");
  swap_then_pool.define("def forward(self, x):\n  return torch.max_pool2d(torch.relu(x).transpose(2, 3), [3, 3], [1, 1], [1, 1]).flatten(1)\n");
  salient::TorchModel pool_first(pool_then_swap), swap_first(swap_then_pool);
  auto corner = torch::ones({1, 1, 4, 4});
  corner.slice(2, 0, 2).slice(3, 0, 3).zero_();
  CHECK(torch::equal(salient::layer_masked_forward(pool_first, image, corner),
                     salient::layer_masked_forward(swap_first, image, corner)));
  CHECK(!torch::equal(salient::layer_masked_forward(pool_first, image, corner), pool_first.forward(image)));
  // A permute to channels-last, then an op that mixes positions: refused, naming the op.
  torch::jit::Module channels_last("ChannelsLast");
  channels_last.define("def forward(self, x):\n  return torch.max_pool2d(torch.relu(x).permute([0, 2, 3, 1]), [2, 2]).flatten(1)\n");
  salient::TorchModel channels_last_model(channels_last);
  CHECK_THROWS_WITH(salient::layer_masked_forward(channels_last_model, image, half),
                    Catch::Contains("op 'aten::max_pool2d'") && Catch::Contains("whose positions are not its last two dimensions"));
}

// Channels-last blocks as ConvNeXt writes them: permute to [N,H,W,C], layer norm and linear
// layers per position, permute back, then a convolution.
TEST_CASE("layer masking follows a channels-last block (permute, layer norm, linear, permute back)", "[graph][masking]") {
  torch::jit::Module block("ChannelsLastBlock");
  torch::manual_seed(11);
  block.register_parameter("norm_weight", torch::rand({4}) + 0.5, false);
  block.register_parameter("norm_bias", torch::randn({4}), false);
  block.register_parameter("w1", torch::randn({8, 4}), false);
  block.register_parameter("w2", torch::randn({4, 8}), false);
  block.register_parameter("conv", torch::randn({3, 4, 3, 3}), false);
  block.define(R"(
def forward(self, x):
    y = x.permute([0, 2, 3, 1])
    y = torch.layer_norm(y, [4], self.norm_weight, self.norm_bias, 1e-6)
    y = torch.gelu(torch.linear(y, self.w1))
    y = torch.linear(y, self.w2).permute([0, 3, 1, 2])
    return torch.conv2d(x + y, self.conv, None, [1, 1], [1, 1]).mean([2, 3])
)");
  salient::TorchModel model(block);
  auto x = torch::randn({2, 4, 10, 10});
  torch::NoGradGuard no_grad;
  const auto plain = model.forward(x);
  CHECK(salient::test::max_relative(salient::layer_masked_forward(model, x, torch::ones({2, 1, 10, 10})), plain) <= 1e-6);
  auto keep = torch::ones({2, 1, 10, 10});
  keep.slice(3, 0, 4).zero_();
  auto other = x.clone();
  other.slice(3, 0, 4).uniform_(-50, 50);
  const auto masked = salient::layer_masked_forward(model, x, keep);
  CHECK(torch::allclose(masked, salient::layer_masked_forward(model, other, keep), 1e-5, 1e-6));
  CHECK(!torch::allclose(model.forward(other), plain, 1e-3, 1e-3));
  // A linear layer over W (not channels-last) would mix positions: refused, naming the op.
  torch::jit::Module over_width("OverWidth");
  over_width.register_parameter("w", torch::randn({10, 10}), false);
  over_width.define("def forward(self, x):\n  return torch.linear(x, self.w).mean([2, 3])\n");
  salient::TorchModel over_width_model(over_width);
  CHECK_THROWS_WITH(salient::layer_masked_forward(over_width_model, x, keep),
                    Catch::Contains("op 'aten::linear'") && Catch::Contains("mixes the positions"));
}

TEST_CASE("guided backprop and deconvnet change the gradient exactly where ReLU gates it", "[graph]") {
  // Known weights: hidden pre-activations h = W1 x, score = W2[0] relu(h).
  auto w1 = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, 1.0f}, {-1.0f, 0.0f}});
  auto w2 = torch::tensor({{2.0f, -3.0f, -1.0f, 4.0f}});
  salient::TorchModel model(tiny_mlp(w1, w2));
  auto x = torch::tensor({{1.0f, 2.0f}});  // h = [1, 2, 3, -1]: units 0-2 active, unit 3 not
  auto plain = salient::saliency(model, x, 0, {.abs = false});
  auto guided = salient::guided_backprop(model, x, 0);
  auto deconv = salient::deconvolution(model, x, 0);
  // plain:   dh = [2, -3, -1, 0]      -> dx = W1^T dh = [2 - 1, -3 - 1] = [1, -4]
  // guided:  dh = [2, 0, 0, 0]        -> dx = [2, 0]
  // deconv:  dh = relu(w2) = [2,0,0,4] -> dx = [2 - 4, 0] = [-2, 0]
  CHECK(torch::equal(plain, torch::tensor({{1.0f, -4.0f}})));
  CHECK(torch::equal(guided, torch::tensor({{2.0f, 0.0f}})));
  CHECK(torch::equal(deconv, torch::tensor({{-2.0f, 0.0f}})));
  // The forward pass is unchanged by the rules.
  auto plain_out = salient::run_layers(model, x, {}).output;
  auto guided_out = salient::run_layers(model, x, {}, salient::graph::guided_relu_rules()).output;
  CHECK(torch::equal(plain_out, guided_out));
}

TEST_CASE("torch::nn Sequential models have the same layer API", "[graph]") {
  torch::manual_seed(5);
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 6, 3).padding(1)), torch::nn::ReLU(),
                            torch::nn::Conv2d(6, 4, 3), torch::nn::ReLU6(), torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), torch::nn::Linear(4, 3));
  salient::TorchModel model(net);
  auto x = torch::randn({3, 3, 16, 16});
  auto layers = salient::list_layers(model, x);
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  CHECK(names == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"});
  CHECK(salient::default_cam_layer(model, x) == "3");
  torch::NoGradGuard no_grad;
  auto run = salient::run_layers(model, x, {{"2"}});
  CHECK(torch::allclose(run.output, net->forward(x)));
  CHECK(run.activations[0].sizes() == torch::IntArrayRef{3, 4, 14, 14});
}

TEST_CASE("a module whose children run in order works; one whose forward differs is refused", "[graph]") {
  struct InOrder : torch::nn::Module {
    torch::nn::Conv2d conv{nullptr};
    torch::nn::ReLU relu;
    torch::nn::Flatten flat;
    InOrder() {
      conv = register_module("conv", torch::nn::Conv2d(2, 3, 3));
      register_module("relu", relu);
      register_module("flat", flat);
    }
    torch::Tensor forward(const torch::Tensor& x) { return flat(relu(conv(x))); }
  };
  struct Shuffled : InOrder {
    torch::Tensor forward(const torch::Tensor& x) { return flat(conv(relu(x))); }  // not registration order
  };
  auto x = torch::randn({2, 2, 5, 5});
  salient::TorchModel good(std::make_shared<InOrder>());
  CHECK(salient::run_layers(good, x, {{"relu"}}).activations[0].min().item<float>() >= 0);
  salient::TorchModel bad(std::make_shared<Shuffled>());
  CHECK_THROWS_WITH(salient::run_layers(bad, x, {{"relu"}}), Catch::Contains("does not reproduce its forward"));
}

TEST_CASE("scripted models with control flow and tuple outputs work through the layer API", "[graph]") {
  const auto dir = fs::path(SALIENT_MODELS_DIR);
  // Scripted GoogLeNet returns (logits, aux2, aux1) and keeps argument checks (prim::If).
  CHECK_THROWS_WITH(salient::TorchModel::load(dir / "googlenet.script.pt").forward(torch::zeros({1, 3, 64, 64})),
                    Catch::Contains("choose an element with ModelOptions::output_element"));
  auto scripted = salient::TorchModel::load(dir / "googlenet.script.pt", {.output_element = 0});
  auto traced = salient::TorchModel::load(dir / "googlenet.pt");  // the same weights (same seed)
  torch::manual_seed(6);
  auto x = torch::randn({2, 3, 96, 96});
  CHECK(torch::allclose(scripted.forward(x), traced.forward(x), 1e-4, 1e-5));
  auto a = salient::grad_cam(scripted, x, 7, {.layer = "inception5b"});
  auto b = salient::grad_cam(traced, x, 7, {.layer = "inception5b"});
  CHECK(torch::allclose(a, b, 1e-4, 1e-6));
  CHECK(salient::default_cam_layer(scripted, x) == salient::default_cam_layer(traced, x));
  CHECK(torch::allclose(salient::guided_backprop(scripted, x, 7), salient::guided_backprop(traced, x, 7), 1e-4, 1e-7));
}
