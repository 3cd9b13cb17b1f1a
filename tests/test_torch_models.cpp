// Model adapters and the preprocessing pipeline on real models from ../shared.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "salient/salient.hpp"
#include "shared_data.hpp"

namespace fs = std::filesystem;

TEST_CASE("MobileNetV2 reproduces the expected top-1 through salient's image loading", "[shared][model]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  auto model = salient::TorchModel::load(*shared / "models" / "mobilenet_v2_imagenet.pt");
  std::ifstream in(*shared / "models" / "expected_predictions.json");
  auto expected = nlohmann::json::parse(in)["models"]["mobilenet_v2_imagenet"]["top5"];
  int checked = 0;
  for (const auto& [image, top5] : expected.items()) {
    const double p1 = top5[0][2].get<double>(), p2 = top5[1][2].get<double>();
    if (p1 - p2 < 0.1) continue;  // near ties may flip with another resize filter
    auto x = salient::load_input(*shared / "images" / image);
    auto probabilities = torch::softmax(model.forward(x), 1)[0];
    CAPTURE(image, p1);
    REQUIRE(probabilities.argmax().item<int64_t>() == top5[0][0].get<int64_t>());
    REQUIRE(probabilities.max().item<double>() == Approx(p1).margin(0.05));
    ++checked;
  }
  REQUIRE(checked >= 15);
}

TEST_CASE("the shipped MobileNetV2 gives data/'s expected top-1 on every shipped photo", "[model]") {
  const auto data = salient::test::shipped_dir();
  auto model = salient::TorchModel::load(data / "models" / "mobilenet_v2_imagenet.pt");
  std::ifstream in(data / "models" / "expected_predictions.json");
  const auto expected = nlohmann::json::parse(in)["top5"];
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(data / "images")) {
    if (entry.path().extension() != ".png" && entry.path().extension() != ".jpg") continue;
    const auto name = entry.path().filename().string();
    INFO(name);
    REQUIRE(expected.contains(name));  // every shipped photo has its expected prediction
    const auto probabilities = torch::softmax(model.forward(salient::load_input(entry.path())), 1)[0];
    CHECK(probabilities.argmax().item<int64_t>() == expected[name][0][0].get<int64_t>());
    CHECK(probabilities.max().item<double>() == Approx(expected[name][0][2].get<double>()).margin(0.05));  // another resize filter than PIL's
    ++checked;
  }
  CHECK(checked == 8);
  CHECK(expected.size() == 8);
}

TEST_CASE("the inference-optimised copy computes the plain forward", "[shared][model]") {
  const auto data = salient::test::shipped_dir();
  auto path = data / "models" / "mobilenet_v2_imagenet.pt";
  auto optimized = salient::TorchModel::load(path, {.optimize_for_inference = true, .inference_batch = 1});
  auto plain = salient::TorchModel::load(path, {.optimize_for_inference = false});
  auto x = torch::randn({2, 3, 224, 224}, torch::TensorOptions().dtype(torch::kFloat32));
  auto a = optimized.forward(x), b = plain.forward(x);
  REQUIRE(torch::allclose(a, b, 1e-4, 1e-4));
  REQUIRE_FALSE(a.requires_grad());
  // The autograd path is the plain module.
  REQUIRE(torch::allclose(plain(x), b, 1e-5, 1e-5));
}

TEST_CASE("the inference-optimised copy: for calls of enough inputs, shared by copies, remade after in-place changes", "[model]") {
  const auto path = fs::path(SALIENT_MODELS_DIR) / "resnet18.pt";  // batch norms: folding changes the last digits
  auto model = salient::TorchModel::load(path, {.optimize_for_inference = true, .inference_batch = 3});
  auto plain = salient::TorchModel::load(path);
  torch::manual_seed(3);
  const auto x = torch::rand({3, 3, 64, 64});
  const auto expected = plain.forward(x);
  // Calls of fewer than 3 inputs run the plain module (bit for bit), before and after.
  const auto two = x.slice(0, 0, 2);
  REQUIRE(torch::equal(model.forward(two), plain.forward(two)));
  const auto optimized = model.forward(x);
  CHECK_FALSE(torch::equal(optimized, expected));  // folded batch norms round differently
  CHECK(torch::allclose(optimized, expected, 1e-4, 1e-5));
  CHECK(torch::equal(model.forward(x), optimized));
  REQUIRE(torch::equal(model.forward(two), plain.forward(two)));
  // A copy shares the module and its optimised copy; a parameter changed in place through one
  // is seen by every copy's next forward (the frozen constants are made again).
  auto copy = model;
  {
    torch::NoGradGuard no_grad;
    model.named_parameters().front().second.mul_(0.5);
  }
  const auto changed = plain.forward(x);  // `plain` is another load: unchanged
  const auto after = copy.forward(x);
  CHECK_FALSE(torch::allclose(after, changed, 1e-3, 1e-3));
  CHECK(torch::allclose(after, model(x).detach(), 1e-4, 1e-5));  // the autograd path runs the changed module

  // MKLDNN's adaptive pooling in the optimised VGG refuses 64x64 inputs (2x2 -> 7x7): the plain
  // module answers instead, now and from then on.
  auto vgg = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "vgg11_bn.pt", {.optimize_for_inference = true, .inference_batch = 1});
  const auto vgg_plain = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "vgg11_bn.pt").forward(x);
  CHECK(torch::equal(vgg.forward(x), vgg_plain));
  CHECK(torch::equal(vgg.forward(x), vgg_plain));
}

TEST_CASE("model adapters: torch::nn modules and callables", "[model]") {
  torch::manual_seed(0);
  auto linear = torch::nn::Linear(6, 3);
  salient::TorchModel module_model(linear);
  auto x = torch::randn({4, 6});
  auto g = salient::saliency(module_model, x, 2, {.abs = false});
  REQUIRE(torch::allclose(g, linear->weight[2].detach().expand({4, 6})));

  auto w = torch::randn({3, 6});
  salient::TorchModel callable([w](const torch::Tensor& in) { return in.matmul(w.t()).pow(2); });
  auto ixg = salient::input_x_gradient(callable, x, salient::top1);
  auto top = x.matmul(w.t()).pow(2).argmax(1);
  for (int64_t i = 0; i < 4; ++i) {
    auto c = top[i].item<int64_t>();
    auto expected = x[i] * 2 * x[i].dot(w[c]) * w[c];
    REQUIRE(torch::allclose(ixg[i], expected, 1e-5, 1e-5));
  }

  SECTION("moving a model: its module goes, a plain callable is refused by name") {
    const auto before = module_model.forward(x);
    module_model.to(torch::kCPU);  // the one device Debian's LibTorch has; the CLI's --device uses this
    REQUIRE(torch::equal(module_model.forward(x), before));
    REQUIRE_THROWS_WITH(callable.to(torch::kCPU), Catch::Contains("a model made from a plain function cannot be moved to cpu"));
  }

  SECTION("custom targets: a margin between two logits") {
    salient::Target margin([](const torch::Tensor& out) { return out.select(1, 0) - out.select(1, 1); });
    auto gm = salient::saliency(module_model, x, margin, {.abs = false});
    REQUIRE(torch::allclose(gm, (linear->weight[0] - linear->weight[1]).detach().expand({4, 6}), 1e-6, 1e-6));
    salient::Target bad([](const torch::Tensor& out) { return out; });
    REQUIRE_THROWS_WITH(salient::saliency(module_model, x, bad), Catch::Contains("one score per item [4]"));
  }
}

TEST_CASE("model errors are clear", "[model][errors]") {
  const auto dir = fs::temp_directory_path() / ("salient_models_" + std::to_string(getpid()));
  fs::create_directories(dir);
  REQUIRE_THROWS_WITH(salient::TorchModel::load(dir / "absent.pt"), Catch::Contains("file not found"));
  std::ofstream(dir / "garbage.pt") << "this is not a model";
  REQUIRE_THROWS_WITH(salient::TorchModel::load(dir / "garbage.pt"),
                      Catch::Contains("garbage.pt") && Catch::Contains("not a TorchScript file"));
  fs::remove_all(dir);

  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3));
  salient::TorchModel model([conv](const torch::Tensor& x) mutable { return conv->forward(x).mean({2, 3}); });
  REQUIRE_THROWS_WITH(salient::saliency(model, torch::randn({1, 1, 8, 8}), 0),
                      Catch::Contains("the model rejected an input of shape [1,1,8,8]"));
  REQUIRE_THROWS_WITH(salient::saliency(model, torch::randn({1, 3, 8, 8}), 4),
                      Catch::Contains("target class 4 out of range [0, 4)"));
  auto nan = torch::randn({1, 3, 8, 8});
  nan[0][1][2][3] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(salient::integrated_gradients(model, nan, 0), Catch::Contains("input contains NaN"));
}

TEST_CASE("one TorchModel used from 4 threads at once gives the serial results", "[model][threads]") {
  // Every lazily made part of a model (the executor's program, the canonical program of the
  // relevance rules, the inference-optimised copy, the incremental cache) is first made while
  // four threads ask for it, each running the methods in another order.
  const salient::ModelOptions options{.optimize_for_inference = true, .inference_batch = 8};
  const auto path = fs::path(SALIENT_MODELS_DIR) / "resnet18.pt";
  torch::manual_seed(21);
  const auto x = torch::randn({1, 3, 64, 64});
  const std::vector<std::pair<std::string, salient::MethodSettings>> methods{
      {"saliency", {}},
      {"integrated_gradients", {.options = {{"steps", "8"}}}},
      {"smoothgrad", {.options = {{"samples", "4"}}, .seed = 3}},
      {"gradcam", {}},
      {"lrp", {}},
      {"occlusion", {.options = {{"window", "16"}, {"stride", "16"}}, .batch_size = 8}},
      {"feature_ablation", {.batch_size = 8, .segments = "grid:16"}},
      {"lime", {.options = {{"samples", "16"}}, .batch_size = 8, .seed = 5, .masker = "layer", .segments = "grid:16"}},
      {"rise", {.options = {{"masks", "16"}}, .batch_size = 8, .seed = 7}},
  };
  auto run_all = [&](salient::TorchModel& model, std::size_t first) {
    std::vector<torch::Tensor> maps(methods.size());
    for (std::size_t k = 0; k < methods.size(); ++k) {
      const auto i = (first + k) % methods.size();
      maps[i] = salient::find_method(methods[i].first).bind(methods[i].second)(model, x, 7);
    }
    return maps;
  };
  auto serial_model = salient::TorchModel::load(path, options);
  const auto serial = run_all(serial_model, 0);

  auto shared_model = salient::TorchModel::load(path, options);
  constexpr int threads = 4;
  std::vector<std::vector<torch::Tensor>> results(threads);
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        results[t] = run_all(shared_model, static_cast<std::size_t>(t) * 2);
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& thread : pool) thread.join();
  for (int t = 0; t < threads; ++t) {
    CAPTURE(t, errors[t]);
    REQUIRE(errors[t].empty());
    for (std::size_t i = 0; i < methods.size(); ++i) {
      CAPTURE(methods[i].first);
      CHECK(torch::equal(results[t][i], serial[i]));
    }
  }
}
