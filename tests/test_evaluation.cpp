// Evaluation: parameter randomisation (exactly the intended parameters change, and are restored
// bit-for-bit), the randomisation test on MobileNetV2, faithfulness metrics on a linear model
// whose true attributions are known, and the data randomisation training.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include "../examples/common/fashion_mnist.hpp"
#include "salient/evaluation/faithfulness.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/sanity.hpp"
#include "salient/evaluation/training.hpp"
#include "salient/salient.hpp"
#include "shared_data.hpp"

namespace {
namespace fs = std::filesystem;

std::map<std::string, torch::Tensor> snapshot(const salient::TorchModel& model) {
  std::map<std::string, torch::Tensor> copy;
  for (const auto& [name, t] : model.named_parameters()) copy[name] = t.detach().clone();
  return copy;
}

// Names of the parameters that differ from `before`.
std::vector<std::string> changed(const salient::TorchModel& model, const std::map<std::string, torch::Tensor>& before) {
  std::vector<std::string> names;
  for (const auto& [name, t] : model.named_parameters())
    if (!torch::equal(t.detach(), before.at(name))) names.push_back(name);
  return names;
}

bool all_equal(const salient::TorchModel& model, const std::map<std::string, torch::Tensor>& before) {
  return changed(model, before).empty();
}

torch::nn::Sequential small_net() {
  torch::manual_seed(3);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)),
                               torch::nn::BatchNorm2d(4), torch::nn::ReLU(), torch::nn::Flatten(),
                               torch::nn::Linear(4 * 8 * 8, 5));
}

salient::SanityMethod gradient_method() {
  return {"gradient", [](salient::TorchModel& m, const torch::Tensor& x, const salient::Target& t) {
            return salient::saliency(m, x, t, {.abs = false});
          }};
}
}  // namespace

TEST_CASE("parameter groups follow module paths", "[randomisation]") {
  salient::TorchModel model(small_net());
  auto groups = salient::parameter_groups(model);
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].name == "0");
  CHECK(groups[0].parameters == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK(groups[2].name == "4");

  auto resnet = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  auto blocks = salient::parameter_groups(resnet, 2);
  std::vector<std::string> names;
  for (const auto& g : blocks) names.push_back(g.name);
  CHECK(names == std::vector<std::string>{"conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0",
                                          "layer3.1", "layer4.0", "layer4.1", "fc"});
  auto modules = salient::parameter_groups(resnet, 0);
  CHECK(modules.size() == 41);  // 20 convs, 20 batch norms, fc
  CHECK(modules[2].name == "layer1.0.conv1");
  CHECK_THROWS_WITH(salient::parameter_groups(salient::TorchModel([](const torch::Tensor& x) { return x; })),
                    Catch::Contains("TorchScript or torch::nn"));
}

TEST_CASE("cascading randomisation changes exactly the intended parameters and restores them", "[randomisation]") {
  for (const bool scripted : {false, true}) {
    auto model = scripted ? salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt")
                          : salient::TorchModel(small_net());
    auto before = snapshot(model);
    auto groups = salient::parameter_groups(model, 2);
    std::vector<std::string> expected_changed;
    int64_t visits = 0;
    auto steps = salient::for_each_randomisation(model, {}, [&](salient::TorchModel& m, const salient::RandomisationStep& step) {
      CHECK(step.index == visits++);
      if (step.index > 0) {
        const auto& group = groups[groups.size() - static_cast<size_t>(step.index)];  // from the top down
        CHECK(step.group == group.name);
        // Batch-norm biases re-initialise to 0 and scales to 1: those that already were stay equal.
        for (const auto& p : group.parameters) expected_changed.push_back(p);
      }
      auto now = changed(m, before);
      for (const auto& name : now)
        CHECK(std::find(expected_changed.begin(), expected_changed.end(), name) != expected_changed.end());
      if (step.index > 0) CHECK(!now.empty());
      CHECK(step.randomised.size() == static_cast<size_t>(step.index));
    });
    CHECK(steps.size() == groups.size() + 1);
    CHECK(all_equal(model, before));  // bit-for-bit
  }
}

TEST_CASE("independent randomisation changes one group at a time; layer-default init matches PyTorch's bounds",
          "[randomisation]") {
  salient::TorchModel model(small_net());
  auto before = snapshot(model);
  salient::for_each_randomisation(model, {.mode = salient::RandomisationMode::independent, .group_depth = 0},
                                  [&](salient::TorchModel& m, const salient::RandomisationStep& step) {
    if (step.index == 0) {
      CHECK(all_equal(m, before));
      return;
    }
    CHECK(step.randomised == std::vector<std::string>{step.group});
    for (const auto& name : changed(m, before)) CHECK(name.substr(0, name.find('.')) == step.group);
    auto parameters = m.named_parameters();
    for (const auto& [name, t] : parameters) {
      if (name.substr(0, name.find('.')) != step.group) continue;
      if (step.group == "0") CHECK(t.abs().max().item<double>() <= 1 / std::sqrt(27.0));  // fan_in 3*3*3
      if (step.group == "1") CHECK(torch::equal(t, name == "1.weight" ? torch::ones({4}) : torch::zeros({4})));
      if (step.group == "4") CHECK(t.abs().max().item<double>() <= 1 / std::sqrt(256.0));
    }
  });
  CHECK(all_equal(model, before));
}

TEST_CASE("randomisation is seeded, restores after a throwing visitor, and refreshes the optimised copy",
          "[randomisation]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt", {.optimize_for_inference = true});
  auto before = snapshot(model);
  auto x = torch::randn({1, 3, 64, 64}, torch::Generator(at::detail::createCPUGenerator(1)));
  auto original = model.forward(x);
  std::vector<torch::Tensor> first, second;
  for (auto* out : {&first, &second})
    salient::for_each_randomisation(model, {.init = {.scheme = salient::Reinitialisation::normal, .seed = 5},
                                            .groups = {"fc", "layer4.1"}},
                                    [&](salient::TorchModel& m, const salient::RandomisationStep&) {
                                      out->push_back(m.forward(x));
                                    });
  REQUIRE(first.size() == 3);
  for (size_t k = 0; k < 3; ++k) CHECK(torch::equal(first[k], second[k]));
  CHECK(torch::equal(first[0], original));
  CHECK(!torch::allclose(first[1], original));  // the frozen copy was rebuilt with the new weights
  CHECK(torch::equal(model.forward(x), original));

  CHECK_THROWS_WITH(salient::for_each_randomisation(model, {}, [&](salient::TorchModel&, const salient::RandomisationStep& s) {
                      if (s.index == 2) throw std::runtime_error("visitor failed");
                    }),
                    "visitor failed");
  CHECK(all_equal(model, before));
  CHECK(torch::equal(model.forward(x), original));
  CHECK_THROWS_WITH(salient::for_each_randomisation(model, {.groups = {"layer9"}}, [](auto&, const auto&) {}),
                    Catch::Contains("no parameter group 'layer9'") && Catch::Contains("layer4.1"));
}

TEST_CASE("cascading randomisation decorrelates MobileNetV2's gradient map", "[randomisation][shared]") {
  const auto data = salient::test::shipped_dir();
  auto model = salient::TorchModel::load(data / "models/mobilenet_v2_imagenet.pt");
  auto input = salient::load_input(data / "images/cat.png");
  auto before = snapshot(model);
  auto result = salient::parameter_randomisation_test(model, input, salient::top1,
                                                      {gradient_method(), {"edges", [](salient::TorchModel&, const torch::Tensor& x, const salient::Target&) {
                                                                              return salient::sobel_edges(x);
                                                                            }}});
  REQUIRE(result.steps.size() == 21);  // original + features.0..18 + classifier.1
  CHECK(result.steps.back().group == "features.0");
  const auto original = result.mean(0, 0), randomised = result.mean(result.steps.size() - 1, 0);
  CHECK(original.spearman_abs == Approx(1.0));
  CHECK(original.ssim == Approx(1.0));
  INFO("gradient |map| Spearman after full cascading randomisation: " << randomised.spearman_abs);
  CHECK(randomised.spearman_abs < 0.5);
  // The edge detector ignores the model: identical at every step.
  CHECK(result.mean(result.steps.size() - 1, 1).spearman_abs == Approx(1.0));
  CHECK(all_equal(model, before));
}

TEST_CASE("Sobel edges peak on an edge", "[sanity]") {
  auto x = torch::zeros({1, 3, 8, 8});
  x.slice(3, 4, 8).fill_(1);
  auto edges = salient::sobel_edges(x);
  REQUIRE(edges.sizes() == torch::IntArrayRef({1, 1, 8, 8}));
  CHECK(edges[0][0][4][3].item<float>() == Approx(4.0f));
  CHECK(edges[0][0][4][4].item<float>() == Approx(4.0f));
  CHECK(edges[0][0][4][0].item<float>() == 0.0f);
  CHECK(edges[0][0][4][7].item<float>() == 0.0f);
}

namespace {
// f(x) = w . x per class on 1x8x8 inputs: exact attributions are known.
struct Linear {
  torch::Tensor w = torch::linspace(-1, 2, 64).view({1, 64}).repeat({2, 1}) * torch::tensor({1.f, -1.f}).view({2, 1});
  salient::TorchModel model() const {
    auto weights = w;
    return salient::TorchModel([weights](const torch::Tensor& x) { return x.reshape({x.size(0), -1}).matmul(weights.t()); });
  }
};
}  // namespace

TEST_CASE("deletion and insertion rank a perfect attribution above a random one", "[faithfulness]") {
  Linear linear;
  auto model = linear.model();
  auto x = torch::rand({1, 1, 8, 8}, torch::Generator(at::detail::createCPUGenerator(2))) + 0.5;
  auto oracle = linear.w[0].view({1, 1, 8, 8}) * x;  // each pixel's exact contribution to class 0
  auto random = torch::rand({1, 1, 8, 8}, torch::Generator(at::detail::createCPUGenerator(3)));
  salient::CurveOptions<salient::TorchModel> options{.step = 4, .evaluation = {.probabilities = false}};
  auto del_oracle = salient::deletion_curves(model, x, 0, oracle, options)[0];
  auto del_random = salient::deletion_curves(model, x, 0, random, options)[0];
  auto ins_oracle = salient::insertion_curves(model, x, 0, oracle, options)[0];
  auto ins_random = salient::insertion_curves(model, x, 0, random, options)[0];
  REQUIRE(del_oracle.scores.size() == 17);  // 0, 4, ..., 64 pixels
  CHECK(del_oracle.fractions.front() == 0.0);
  CHECK(del_oracle.fractions.back() == 1.0);
  const double full = (linear.w[0] * x.reshape({-1})).sum().item<double>();
  CHECK(del_oracle.scores.front() == Approx(full));
  CHECK(del_oracle.scores.back() == Approx(0.0).margin(1e-5));  // zero fill removes everything
  CHECK(ins_oracle.scores.front() == Approx(0.0).margin(1e-5));
  CHECK(ins_oracle.scores.back() == Approx(full));
  // Deleting the strongest contributions first: the curve is the full score minus the
  // running sum of the sorted contributions (exactly).
  auto sorted = std::get<0>(oracle.reshape({-1}).sort(0, true));
  CHECK(del_oracle.scores[1] == Approx(full - sorted.slice(0, 0, 4).sum().item<double>()).epsilon(1e-5));
  CHECK(del_oracle.area < del_random.area);
  CHECK(ins_oracle.area > ins_random.area);
  // Segments: 4 column bands ranked by mean attribution.
  auto bands = torch::arange(8).div(2, "floor").view({1, 8}).expand({8, 8}).to(torch::kLong).contiguous();
  auto by_segment = salient::deletion_curves(model, x, 0, oracle, {.step = 1, .segments = bands, .evaluation = {.probabilities = false}})[0];
  CHECK(by_segment.scores.size() == 5);
  CHECK(by_segment.area < salient::deletion_curves(model, x, 0, random, {.step = 1, .segments = bands, .evaluation = {.probabilities = false}})[0].area + 1e-9);
  CHECK_THROWS_WITH(salient::deletion_curves(model, x, 0, torch::zeros({1, 1, 4, 4})), Catch::Contains("do not fit inputs"));
}

TEST_CASE("infidelity is zero for the exact attribution of a linear model; sensitivity of its gradient is zero",
          "[faithfulness]") {
  Linear linear;
  auto model = linear.model();
  auto x = torch::rand({3, 1, 8, 8}, torch::Generator(at::detail::createCPUGenerator(4)));
  auto gradient = linear.w[0].view({1, 1, 8, 8}).expand({3, 1, 8, 8}).contiguous();  // F(x) - F(x - I) = w . I
  const auto largest = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  const auto smallest = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  auto exact = salient::infidelity(model, x, 0, gradient, {.samples = 20});
  REQUIRE(exact.size() == 3);
  CHECK(largest(exact) < 1e-10);
  auto doubled = salient::infidelity(model, x, 0, 2 * gradient, {.samples = 20});
  CHECK(smallest(doubled) > 1e-8);
  // normalize=True rescales 2w back to w: zero again.
  CHECK(largest(salient::infidelity(model, x, 0, 2 * gradient, {.samples = 20, .normalize = true})) < 1e-10);
  auto noise = salient::infidelity(model, x, 0, torch::randn_like(gradient), {.samples = 20});
  CHECK(smallest(noise) > largest(doubled) * 0.01);
  // Seeded, and the same whatever the batch size.
  CHECK(salient::infidelity(model, x, 0, gradient * 2, {.samples = 5, .seed = 1}) ==
        salient::infidelity(model, x, 0, gradient * 2, {.samples = 5, .seed = 1, .batch_size = 4}));
  CHECK(salient::infidelity(model, x, 0, gradient * 2, {.samples = 5, .seed = 1}) !=
        salient::infidelity(model, x, 0, gradient * 2, {.samples = 5, .seed = 2}));
  // A custom perturbation: I = x (all of the input removed): F(x) - F(0) = w . x exactly.
  salient::InfidelityOptions<salient::TorchModel> remove_all{.samples = 2};
  remove_all.perturb = [](const torch::Tensor& copies, const std::vector<uint64_t>&) {
    return salient::Perturbation<torch::Tensor>{copies, torch::zeros_like(copies)};
  };
  CHECK(largest(salient::infidelity(model, x, 0, gradient, remove_all)) < 1e-8);
  CHECK(smallest(salient::infidelity(model, x, 0, 2 * gradient, remove_all)) > 1e-3);

  auto grad_explain = [](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    return salient::saliency(m, in, t, {.abs = false});
  };
  CHECK(largest(salient::sensitivity_max(model, x, 0, grad_explain)) == Approx(0.0).margin(1e-12));
  salient::Method<salient::TorchModel> ixg = [](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
    return salient::input_x_gradient(m, in, t);
  };
  auto s = salient::sensitivity_max(model, x, 0, ixg, {.samples = 10, .radius = 0.02});
  // |(x + d) w - x w| / |x w| <= radius * |w| / |x w| elementwise; positive for noise.
  CHECK(smallest(s) > 0);
  auto bound = 0.02 * linear.w[0].norm().item<double>() /
               (x.reshape({3, -1}) * linear.w[0]).norm(2, 1).min().item<double>();
  CHECK(largest(s) <= bound + 1e-9);
}

TEST_CASE("a small CNN memorises permuted Fashion-MNIST labels and is at chance on test images",
          "[training][dataset]") {
  if (!fs::exists(salient::demo::fashion_mnist_dir / "train-images-idx3-ubyte.gz")) {
    std::cout << "SKIPPED: Fashion-MNIST not installed\n";
    return;
  }
  auto train = salient::demo::load_fashion_mnist("train"), test = salient::demo::load_fashion_mnist("t10k");
  auto images = train.images.slice(0, 0, 512), labels = salient::permuted_labels(train.labels.slice(0, 0, 512), 1);
  CHECK(!torch::equal(labels, train.labels.slice(0, 0, 512)));
  CHECK(torch::equal(std::get<0>(labels.sort()), std::get<0>(train.labels.slice(0, 0, 512).sort())));  // same labels
  torch::manual_seed(0);
  salient::demo::SmallCnn net;
  auto report = salient::train_classifier(net, images, labels,
                                          {.epochs = 150, .batch_size = 64, .learning_rate = 3e-3, .stop_accuracy = 0.95});
  salient::TorchModel model(net);
  const double memorised = salient::classification_accuracy(model, images, labels);
  const double on_test = salient::classification_accuracy(model, test.images.slice(0, 0, 2000), test.labels.slice(0, 0, 2000));
  INFO("epochs " << report.epoch << ", train accuracy " << memorised << ", test accuracy " << on_test);
  CHECK(memorised >= 0.9);
  CHECK(on_test < 0.2);

  // The data randomisation test compares the two models' maps for the same classes.
  torch::manual_seed(0);
  salient::demo::SmallCnn true_net;
  salient::train_classifier(true_net, train.images.slice(0, 0, 2048), train.labels.slice(0, 0, 2048), {.epochs = 3});
  salient::TorchModel trained(true_net);
  auto x = test.images.slice(0, 0, 4);
  auto y = std::vector<int64_t>(test.labels.data_ptr<int64_t>(), test.labels.data_ptr<int64_t>() + 4);
  auto result = salient::data_randomisation_test(trained, model, x, y, {gradient_method()});
  REQUIRE(result.similarity.size() == 1);
  REQUIRE(result.similarity[0].size() == 4);
  for (const auto& s : result.similarity[0]) CHECK(s.spearman_abs < 0.99);
  CHECK_THROWS_WITH(salient::train_classifier(net, images, labels.slice(0, 0, 5)), Catch::Contains("do not fit 512 images"));
}
