// Gradient methods on LibTorch models: the definitions (Captum's), real CNNs from
// ../shared, batching and repeated calls.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "salient/salient.hpp"
#include "shared_data.hpp"

namespace {
// The same integral written out with torch.linspace and autograd, as Captum computes it.
torch::Tensor reference_riemann_ig(salient::TorchModel& model, const torch::Tensor& x, const torch::Tensor& b,
                                   int64_t cls, int64_t n) {
  auto alphas = torch::linspace(0, 1 - 1.0 / n, n);  // riemann_left
  auto total = torch::zeros_like(x);
  for (int64_t k = 0; k < n; ++k) {
    auto point = (b + (x - b) * alphas[k].item<double>()).detach().requires_grad_(true);
    auto score = model(point).select(1, cls).sum();
    total += torch::autograd::grad({score}, {point})[0] * static_cast<double>(static_cast<float>(1.0 / n));
  }
  return total * (x - b);
}

torch::nn::Sequential small_cnn() {
  torch::manual_seed(3);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)), torch::nn::ReLU(),
                               torch::nn::AdaptiveAvgPool2d(2), torch::nn::Flatten(), torch::nn::Linear(32, 5));
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}
}  // namespace

TEST_CASE("integrated gradients matches the written-out Captum computation", "[ig]") {
  salient::TorchModel model(small_cnn());
  auto x = torch::randn({2, 3, 6, 6}), b = torch::randn({1, 3, 6, 6});
  auto ig = salient::integrated_gradients(model, x, 4,
                                          {.steps = 12, .method = salient::IntegrationMethod::riemann_left,
                                           .baseline = b, .batch_size = 5});
  REQUIRE(torch::allclose(ig, reference_riemann_ig(model, x, b.expand_as(x), 4, 12), 1e-5, 1e-6));
  auto unmultiplied = salient::integrated_gradients(
      model, x, 4, {.steps = 12, .method = salient::IntegrationMethod::riemann_left, .baseline = b, .multiply_by_inputs = false});
  REQUIRE(torch::allclose(unmultiplied * (x - b), ig, 1e-5, 1e-6));
}

TEST_CASE("baselines", "[ig][baselines]") {
  auto x = torch::rand({1, 3, 16, 16});
  auto n = salient::Normalization::imagenet();
  auto black = salient::make_baseline(salient::BaselineKind::black, x);
  REQUIRE(black[0][0][3][3].item<float>() == Approx(-0.485 / 0.229));
  auto grey = salient::make_baseline(salient::BaselineKind::grey, x);
  REQUIRE(grey[0][2][0][0].item<float>() == Approx((0.5 - 0.406) / 0.225));
  auto blur = salient::make_baseline(salient::BaselineKind::blur, x, {.blur_sigma = 2});
  REQUIRE(blur.sizes() == x.sizes());
  REQUIRE(blur.std().item<float>() < x.std().item<float>());  // smoother
  auto constant = salient::make_baseline(salient::BaselineKind::blur, torch::full({1, 3, 16, 16}, 0.7));
  REQUIRE(torch::allclose(constant, torch::full({1, 3, 16, 16}, 0.7), 1e-5, 1e-5));
  auto noise = salient::make_baseline(salient::BaselineKind::noise, x, {.seed = 4});
  REQUIRE(torch::equal(noise, salient::make_baseline(salient::BaselineKind::noise, x, {.seed = 4})));
  auto pixels = noise * torch::tensor({0.229f, 0.224f, 0.225f}).reshape({1, 3, 1, 1}) +
                torch::tensor({0.485f, 0.456f, 0.406f}).reshape({1, 3, 1, 1});
  REQUIRE(pixels.min().item<float>() >= -1e-5);
  REQUIRE(pixels.max().item<float>() <= 1 + 1e-5);
  REQUIRE_THROWS_WITH(salient::parse_baseline("purple"), Catch::Contains("unknown baseline 'purple'"));
}

TEST_CASE("noise tunnel on LibTorch: seeded and batch-size independent", "[noise]") {
  salient::TorchModel model(small_cnn());
  auto x = torch::randn({2, 3, 6, 6});
  auto gradient = [](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    return salient::saliency(m, in, t, {.abs = false});
  };
  auto a = salient::noise_tunnel(model, x, 1, gradient, {.samples = 6, .stdev = 0.2, .seed = 1, .batch_size = 4});
  auto b = salient::noise_tunnel(model, x, 1, gradient, {.samples = 6, .stdev = 0.2, .seed = 1, .batch_size = 12});
  auto c = salient::noise_tunnel(model, x, 1, gradient, {.samples = 6, .stdev = 0.2, .seed = 2, .batch_size = 4});
  REQUIRE(torch::allclose(a, b, 1e-6, 1e-7));
  REQUIRE_FALSE(torch::allclose(a, c, 1e-3, 1e-4));
  auto vg = salient::noise_tunnel(model, x, 1, gradient,
                                  {.type = salient::NoiseTunnelType::vargrad, .samples = 6, .stdev = 0.2, .seed = 1});
  REQUIRE(vg.min().item<float>() >= -1e-6);
}

TEST_CASE("IG on MobileNetV2: convergence delta below 5% of f(x) - f(b)", "[shared][ig]") {
  const auto data = salient::test::shipped_dir();
  auto model = salient::TorchModel::load(data / "models" / "mobilenet_v2_imagenet.pt");
  auto x = salient::load_input(data / "images" / "cat.png");
  auto ig = salient::integrated_gradients(model, x, salient::top1, {.steps = 64});
  auto delta = salient::convergence_delta(model, ig, x, salient::top1);
  auto ends = salient::target_scores(model, torch::cat({x, torch::zeros_like(x)}),
                                     salient::ResolvedTarget<torch::Tensor>{{285, 285}, {}});
  CAPTURE(delta[0], ends[0] - ends[1]);
  REQUIRE(std::abs(delta[0]) < 0.05 * std::abs(ends[0] - ends[1]));
}

TEST_CASE("the attribution of a batch equals the per-image attributions (MobileNetV2)", "[shared][batch]") {
  const auto data = salient::test::shipped_dir();
  auto model = salient::TorchModel::load(data / "models" / "mobilenet_v2_imagenet.pt");
  auto x = torch::cat({salient::load_input(data / "images" / "bird.png"),
                       salient::load_input(data / "images" / "hot_dog.jpg")});
  salient::IntegratedGradientsOptions<torch::Tensor> options{.steps = 6, .batch_size = 5};
  auto batch = salient::integrated_gradients(model, x, salient::top1, options);
  auto grads = salient::saliency(model, x, salient::top1);
  for (int64_t i = 0; i < 2; ++i) {
    auto item = x.slice(0, i, i + 1);
    REQUIRE(torch::allclose(batch.slice(0, i, i + 1), salient::integrated_gradients(model, item, salient::top1, options),
                            1e-4, 1e-6));
    REQUIRE(torch::allclose(grads.slice(0, i, i + 1), salient::saliency(model, item, salient::top1), 1e-4, 1e-6));
  }
}

TEST_CASE("200 integrated-gradients calls keep resident memory flat", "[shared][memory]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  auto model = salient::TorchModel::load(*shared / "models" / "mobilenet_v1_025_128_imagenet.pt");
  auto x = salient::load_input(*shared / "images" / "parrot.jpg", {.size = 128});
  auto call = [&] { return salient::integrated_gradients(model, x, salient::top1, {.steps = 4}); };
  for (int i = 0; i < 20; ++i) call();  // allocator caches and JIT profiling settle
  const long before = resident_kib();
  for (int i = 0; i < 200; ++i) call();
  const long after = resident_kib();
  CAPTURE(before, after);
  // A leak of one input-sized tensor per call (192 KiB) would add ~38 MiB.
  REQUIRE(after - before < 8 * 1024);
}
