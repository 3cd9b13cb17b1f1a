// Model guidance: each loss against hand-computed values, double backpropagation through every
// differentiable attribution (torch::nn and TorchScript), zero loss without annotations, bad
// boxes, and a few Energy-loss steps that move attribution into the boxes.
#include <catch2/catch.hpp>

#include <filesystem>

#include "error_matchers.hpp"
#include "salient/guidance/attributions.hpp"
#include "salient/guidance/losses.hpp"
#include "salient/salient.hpp"

namespace {
namespace fs = std::filesystem;
using salient::test::require_error_mentioning;

// Two 2x2 maps: image 0 annotated (box = left column), image 1 not.
struct Fixture {
  torch::Tensor a = torch::tensor({{{1.f, -1.f}, {3.f, 4.f}}, {{5.f, 6.f}, {7.f, 8.f}}});
  salient::Annotations annotations = salient::box_annotations({{{0, 0, 1, 2}}, {}}, 2, 2, 2, 2);
};

torch::nn::Sequential toy_net() {
  torch::manual_seed(11);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3).padding(1)), torch::nn::ReLU(),
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).padding(1)), torch::nn::ReLU(),
                               torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), torch::nn::Linear(8, 2));
}

std::vector<torch::Tensor> parameters_of(const salient::TorchModel& model) {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : model.named_parameters()) out.push_back(t);
  return out;
}
}  // namespace

TEST_CASE("guidance losses match hand-computed values", "[guidance]") {
  Fixture f;
  REQUIRE(torch::equal(f.annotations.masks[0], torch::tensor({{1.f, 0.f}, {1.f, 0.f}})));
  REQUIRE(f.annotations.annotated[0].item<bool>());
  REQUIRE(!f.annotations.annotated[1].item<bool>());
  // Image 0: A+ = [[1,0],[3,4]], inside (left column) 1 + 3 = 4 of 8.
  auto energy = salient::guidance_loss_per_image(salient::GuidanceLoss::energy, f.a, f.annotations);
  CHECK(energy[0].item<float>() == Approx(1 - 4.0 / 8.0));
  // A^ = A+ / 4 = [[.25,0],[.75,1]]; |A^ - M| = [[.75,0],[.25,1]] -> mean 0.5.
  auto l1 = salient::guidance_loss_per_image(salient::GuidanceLoss::l1, f.a, f.annotations);
  CHECK(l1[0].item<float>() == Approx(0.5));
  // Outside the box: -1 and 4 -> 1 + 16.
  auto rrr = salient::guidance_loss_per_image(salient::GuidanceLoss::rrr, f.a, f.annotations);
  CHECK(rrr[0].item<float>() == Approx(17.0));
  // Inside: A^ = .25 and .75 -> mean of -log.
  auto ppce = salient::guidance_loss_per_image(salient::GuidanceLoss::ppce, f.a, f.annotations);
  CHECK(ppce[0].item<float>() == Approx(-(std::log(0.25) + std::log(0.75)) / 2));
  // The batch loss averages the annotated images only (image 1 would give other values).
  for (auto kind : {salient::GuidanceLoss::energy, salient::GuidanceLoss::l1, salient::GuidanceLoss::rrr,
                    salient::GuidanceLoss::ppce}) {
    auto per_image = salient::guidance_loss_per_image(kind, f.a, f.annotations);
    CHECK(salient::guidance_loss(kind, f.a, f.annotations).item<float>() == Approx(per_image[0].item<float>()));
  }
}

TEST_CASE("the Energy loss is 0 with all positive attribution inside the box and 1 with none", "[guidance]") {
  auto boxes = salient::box_annotations({{{1, 1, 3, 3}}}, 4, 4, 4, 4);
  auto inside = torch::zeros({1, 4, 4});
  inside[0].slice(0, 1, 3).slice(1, 1, 3).fill_(2);
  inside[0][0][0] = -5;  // negative attribution outside does not count
  CHECK(salient::guidance_loss(salient::GuidanceLoss::energy, inside, boxes).item<float>() == Approx(0.0).margin(1e-7));
  auto outside = torch::ones({1, 4, 4}) - boxes.masks;
  CHECK(salient::guidance_loss(salient::GuidanceLoss::energy, outside, boxes).item<float>() == Approx(1.0));
  // No positive attribution at all: 1 - 0.
  CHECK(salient::guidance_loss(salient::GuidanceLoss::energy, -torch::ones({1, 4, 4}), boxes).item<float>() == Approx(1.0));
}

TEST_CASE("boxes are scaled to the attribution's resolution and bad boxes are rejected", "[guidance]") {
  // A 64x64 input box at columns 8..23, rows 40..63 covers cells 1..2 x 5..7 of an 8x8 map.
  auto a = salient::box_annotations({{{8, 40, 24, 64}}}, 64, 64, 8, 8);
  CHECK(a.masks[0].sum().item<float>() == 2 * 3);
  CHECK(a.masks[0][5][1].item<float>() == 1);
  CHECK(a.masks[0][4][1].item<float>() == 0);
  // A one-pixel box still marks its cell.
  CHECK(salient::box_annotations({{{63, 63, 64, 64}}}, 64, 64, 8, 8).masks[0][7][7].item<float>() == 1);
  require_error_mentioning([] { salient::box_annotations({{{0, 0, 70, 10}}}, 64, 64, 8, 8); }, "outside the 64x64 image");
  require_error_mentioning([] { salient::box_annotations({{{5, 5, 5, 9}}}, 64, 64, 8, 8); }, "empty or inverted");
  require_error_mentioning([] { salient::box_annotations({{{9, 5, 4, 9}}}, 64, 64, 8, 8); }, "empty or inverted");
  require_error_mentioning([] { salient::box_annotations({{{-1, 0, 4, 9}}}, 64, 64, 8, 8); }, "outside");
  Fixture f;
  require_error_mentioning([&] { salient::guidance_loss(salient::GuidanceLoss::energy, f.a.slice(1, 0, 1), f.annotations); },
                           "do not match attributions");
  require_error_mentioning([] { salient::parse_guidance_loss("l2"); }, "'l2'");
}

TEST_CASE("a batch without annotations gives a zero loss, not NaN, and zero gradients", "[guidance]") {
  salient::TorchModel model(toy_net());
  auto x = torch::rand({3, 1, 8, 8});
  auto forward = salient::guided_forward(model, x, std::vector<int64_t>{0, 1, 0});
  auto none = salient::box_annotations({{}, {}, {}}, 8, 8, 8, 8);
  for (auto kind : {salient::GuidanceLoss::energy, salient::GuidanceLoss::l1, salient::GuidanceLoss::rrr,
                    salient::GuidanceLoss::ppce}) {
    auto loss = salient::guidance_loss(kind, forward.attributions, none);
    CHECK(loss.item<float>() == 0.0f);
    auto grads = torch::autograd::grad({loss}, parameters_of(model), {}, true, false, true);
    for (const auto& g : grads)
      if (g.defined()) CHECK(g.abs().max().item<float>() == 0.0f);
  }
}

TEST_CASE("every guided attribution backpropagates into the parameters (double backprop)", "[guidance]") {
  struct Case {
    std::string name;
    salient::GuidedAttributionOptions options;
  };
  std::vector<Case> cases = {
      {"ixg input", {.method = salient::GuidedMethod::input_x_gradient}},
      {"gradient input", {.method = salient::GuidedMethod::gradient}},
      {"ig input", {.method = salient::GuidedMethod::integrated_gradients, .steps = 3}},
      {"ixg middle layer", {.method = salient::GuidedMethod::input_x_gradient, .layer = "1"}},
      {"gradcam last conv", {.method = salient::GuidedMethod::grad_cam}},
  };
  salient::TorchModel model(toy_net());
  auto x = torch::rand({4, 1, 8, 8}, torch::Generator(at::detail::createCPUGenerator(5)));
  auto boxes = salient::box_annotations({{{0, 0, 4, 8}}, {{4, 0, 8, 8}}, {{0, 0, 8, 4}}, {}}, 8, 8, 8, 8);
  for (const auto& c : cases) {
    INFO(c.name);
    auto forward = salient::guided_forward(model, x, std::vector<int64_t>{0, 1, 1, 0}, c.options);
    REQUIRE(forward.logits.sizes() == torch::IntArrayRef({4, 2}));
    REQUIRE(forward.attributions.sizes() == torch::IntArrayRef({4, 8, 8}));
    REQUIRE(forward.attributions.requires_grad());
    for (auto kind : {salient::GuidanceLoss::energy, salient::GuidanceLoss::l1, salient::GuidanceLoss::rrr,
                      salient::GuidanceLoss::ppce}) {
      auto loss = salient::guidance_loss(kind, forward.attributions, boxes);
      auto grads = torch::autograd::grad({loss}, parameters_of(model), {}, true, false, true);
      double total = 0;
      for (const auto& g : grads) {
        if (!g.defined()) continue;
        CHECK(torch::isfinite(g).all().item<bool>());
        total += g.abs().sum().item<double>();
      }
      CHECK(total > 0);
    }
  }
  // The input x gradient map equals the ordinary (first-order) attribution.
  auto forward = salient::guided_forward(model, x, std::vector<int64_t>{0, 1, 1, 0});
  auto reference = salient::input_x_gradient(model, x, std::vector<int64_t>{0, 1, 1, 0}).sum(1);
  CHECK(torch::allclose(forward.attributions.detach(), reference, 1e-5, 1e-6));
  // Any Target: top-1 is each input's argmax; a custom score (here the margin of class 1 over 0).
  auto top = torch::argmax(model.forward(x), 1);
  std::vector<int64_t> top_classes(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + top.numel());
  CHECK(torch::allclose(salient::guided_forward(model, x, salient::top1).attributions.detach(),
                        salient::guided_forward(model, x, top_classes).attributions.detach()));
  salient::Target margin([](const torch::Tensor& logits) { return logits.select(1, 1) - logits.select(1, 0); });
  CHECK(torch::allclose(salient::guided_forward(model, x, margin).attributions.detach(),
                        salient::input_x_gradient(model, x, margin).sum(1), 1e-5, 1e-6));
  require_error_mentioning([&] { salient::guided_forward(model, x, std::vector<int64_t>{0, 1}); }, "2 class indices for a batch of 4");
  require_error_mentioning([&] { salient::guided_forward(model, x, std::vector<int64_t>{0, 1, 2, 0}); }, "target class 2 out of range");
  require_error_mentioning([&] { salient::guided_forward(model, x, std::vector<int64_t>{0, 1, 1, 0}, {.method = salient::GuidedMethod::integrated_gradients, .layer = "1"}); },
                           "input only");
}

TEST_CASE("guided attributions train a TorchScript module", "[guidance]") {
  auto model = salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt");
  auto x = torch::rand({2, 3, 64, 64}, torch::Generator(at::detail::createCPUGenerator(6)));
  for (const auto& layer : {std::string(), std::string("layer3")}) {
    auto forward = salient::guided_forward(model, x, std::vector<int64_t>{1, 2}, {.layer = layer});
    auto boxes = salient::box_annotations({{{0, 0, 32, 64}}, {{32, 0, 64, 64}}}, 64, 64, forward.attributions.size(1),
                                          forward.attributions.size(2));
    auto loss = salient::guidance_loss(salient::GuidanceLoss::energy, forward.attributions, boxes);
    auto parameters = parameters_of(model);
    auto grads = torch::autograd::grad({loss}, parameters, {}, true, false, true);
    double total = 0;
    for (const auto& g : grads)
      if (g.defined()) total += g.abs().sum().item<double>();
    INFO("layer '" << layer << "'");
    CHECK(std::isfinite(total));
    CHECK(total > 0);
  }
}

TEST_CASE("a few Energy-loss steps move attribution into the boxes", "[guidance]") {
  // Class 0: a bright blob in the left half (inside the box) and a distracting stripe on the
  // right edge that predicts the class just as well.
  auto net = toy_net();
  salient::TorchModel model(net);
  auto generator = at::detail::createCPUGenerator(9);
  auto x = torch::rand({32, 1, 8, 8}, torch::Generator(generator)) * 0.1;
  std::vector<int64_t> y;
  std::vector<std::vector<salient::Box>> boxes;
  for (int64_t i = 0; i < 32; ++i) {
    const int64_t cls = i % 2;
    y.push_back(cls);
    if (cls == 0) {
      x[i][0].slice(0, 2, 6).slice(1, 0, 4) += 1;
      x[i][0].slice(1, 7, 8) += 1;
    }
    boxes.push_back({{0, 0, 4, 8}});
  }
  auto annotations = salient::box_annotations(boxes, 8, 8, 8, 8);
  auto energy_inside = [&] {
    auto a = salient::guided_forward(model, x, y, {.create_graph = false}).attributions.detach();
    return 1 - salient::guidance_loss(salient::GuidanceLoss::energy, a, annotations).item<double>();
  };
  const double before = energy_inside();
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 30; ++step) {
    auto forward = salient::guided_forward(model, x, y);
    auto loss = torch::nn::functional::cross_entropy(forward.logits, torch::tensor(y)) +
                salient::guidance_loss(salient::GuidanceLoss::energy, forward.attributions, annotations);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  const double after = energy_inside();
  INFO("energy inside the boxes: " << before << " -> " << after);
  CHECK(after > before + 0.1);
}

TEST_CASE("log-probability guidance sees evidence against the other classes", "[guidance]") {
  // f = [x0 - x1, 2 x1]: for class 0, x1 only lowers class 1. The logit's gradient ignores it;
  // the log-probability's counts it as evidence for class 0.
  salient::TorchModel model([](const torch::Tensor& x) {
    auto flat = x.reshape({x.size(0), -1});
    return torch::stack({flat.select(1, 0) - 0 * flat.select(1, 1), -2 * flat.select(1, 1)}, 1);
  });
  auto x = torch::tensor({1.f, 1.f}).view({1, 1, 1, 2});
  auto logit = salient::guided_forward(model, x, std::vector<int64_t>{0}, {.method = salient::GuidedMethod::gradient});
  auto logprob = salient::guided_forward(model, x, std::vector<int64_t>{0}, {.method = salient::GuidedMethod::gradient,
                                                         .score = salient::GuidedScore::log_probability});
  CHECK(logit.attributions[0][0][1].item<float>() == 0.0f);
  // d log p0 / d x1 = 2 p1 (class 1's logit falls with x1).
  const double p1 = torch::softmax(torch::tensor({1.f, -2.f}), 0)[1].item<double>();
  CHECK(logprob.attributions[0][0][1].item<double>() == Approx(2 * p1));
  CHECK(logprob.attributions[0][0][0].item<double>() == Approx(1 - torch::softmax(torch::tensor({1.f, -2.f}), 0)[0].item<double>()));
}
