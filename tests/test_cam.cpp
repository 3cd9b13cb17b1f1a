// The Grad-CAM family, guided backprop / deconvnet / guided Grad-CAM and layer attribution:
// Captum's numbers (reference arrays written by scripts/reference_attributions.py from the
// same resnet18 weights), hand computations, and localisation on a real photo.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "salient/salient.hpp"
#include "shared_data.hpp"

namespace {
namespace fs = std::filesystem;

torch::Tensor reference(const std::string& name) {
  auto array = salient::load_npy(fs::path(SALIENT_REFERENCE_DIR) / (name + ".npy"));
  return torch::tensor(array.data).reshape(array.shape);
}

// Agreement up to float32 rounding of a different evaluation order.
void check_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance = 1e-4) {
  REQUIRE(actual.sizes() == expected.sizes());
  const double scale = expected.abs().max().item<double>();
  const double difference = (actual - expected).abs().max().item<double>();
  INFO("max |difference| " << difference << " of max |expected| " << scale);
  CHECK(difference <= tolerance * scale);
}

salient::TorchModel resnet18() { return salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt"); }

struct Reference {
  torch::Tensor input = reference("input");
  salient::Target target = std::vector<int64_t>{3, 7};
};
}  // namespace

TEST_CASE("CAMs and guided methods agree with Captum's definitions on resnet18", "[cam]") {
  auto model = resnet18();
  Reference ref;
  check_close(model.forward(ref.input), reference("logits"), 1e-5);

  SECTION("LayerGradCam") {
    check_close(salient::grad_cam(model, ref.input, ref.target, {.layer = "layer4", .relu = false, .upsample = false}),
                reference("gradcam_layer4"));
    check_close(salient::grad_cam(model, ref.input, ref.target, {.layer = "layer3", .relu = true, .upsample = false}),
                reference("gradcam_layer3_relu"));
  }
  SECTION("GuidedBackprop, Deconvolution, GuidedGradCam") {
    check_close(salient::guided_backprop(model, ref.input, ref.target), reference("guided_backprop"));
    check_close(salient::deconvolution(model, ref.input, ref.target), reference("deconvolution"));
    check_close(salient::guided_grad_cam(model, ref.input, ref.target, {.layer = "layer4"}),
                reference("guided_gradcam_layer4"));
  }
  SECTION("LayerGradientXActivation") {
    check_close(salient::layer_gradient_x_activation(model, ref.input, ref.target, {.layer = "layer3"}),
                reference("layer_gxa_layer3"));
    // Without a layer: the CAM default, reported like the CAMs report theirs.
    std::string used;
    auto by_default = salient::layer_gradient_x_activation(model, ref.input, ref.target,
                                                           {.on_layer = [&](const std::string& l) { used = l; }});
    CHECK(used == salient::default_cam_layer(model, ref.input));
    CHECK(torch::equal(by_default, salient::layer_gradient_x_activation(model, ref.input, ref.target, {.layer = used})));
  }
  SECTION("pytorch-grad-cam's Grad-CAM++, XGrad-CAM, Layer-CAM") {
    salient::CamOptions raw{.layer = "layer4", .relu = false, .upsample = false};
    check_close(salient::grad_cam_plus_plus(model, ref.input, ref.target, raw), reference("gradcampp_layer4"));
    check_close(salient::xgrad_cam(model, ref.input, ref.target, raw), reference("xgradcam_layer4"));
    check_close(salient::layer_cam(model, ref.input, ref.target, raw), reference("layercam_layer4"));
    raw.layer = "layer3";
    check_close(salient::grad_cam_plus_plus(model, ref.input, ref.target, raw), reference("gradcampp_layer3"));
    check_close(salient::xgrad_cam(model, ref.input, ref.target, raw), reference("xgradcam_layer3"));
    check_close(salient::layer_cam(model, ref.input, ref.target, raw), reference("layercam_layer3"));
    // At layer3 XGrad-CAM and Grad-CAM differ (so the comparison above can tell them apart).
    auto grad_cam3 = salient::grad_cam(model, ref.input, ref.target, raw);
    auto difference = (reference("xgradcam_layer3") - grad_cam3).abs().max().item<double>();
    CHECK(difference > 1e-3 * reference("xgradcam_layer3").abs().max().item<double>());
  }
}

TEST_CASE("Grad-CAM equals the hand computation from the captured activation and gradient", "[cam]") {
  auto model = resnet18();
  torch::manual_seed(2);
  auto x = torch::randn({3, 3, 96, 96});
  std::vector<int64_t> classes{1, 20, 300};
  auto captured = salient::layer_gradients(model, x, classes, {{"layer3"}});
  auto a = captured.activations[0].to(torch::kDouble);
  auto g = captured.gradients[0].to(torch::kDouble);
  const int64_t channels = a.size(1);
  auto expected = torch::zeros({3, 1, a.size(2), a.size(3)}, torch::kDouble);
  for (int64_t c = 0; c < channels; ++c) {
    auto weight = g.select(1, c).mean({1, 2}).view({3, 1, 1});  // per item
    expected.select(1, 0) += weight * a.select(1, c);
  }
  auto map = salient::grad_cam(model, x, classes, {.layer = "layer3", .relu = false, .upsample = false, .batch_size = 2});
  check_close(map, expected.to(torch::kFloat), 1e-5);
  // Post-processing: ReLU then bilinear upsampling to the input size.
  auto full = salient::grad_cam(model, x, classes, {.layer = "layer3"});
  CHECK(full.sizes() == torch::IntArrayRef{3, 1, 96, 96});
  auto upsampled = torch::nn::functional::interpolate(
      map.clamp_min(0), torch::nn::functional::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{96, 96})
                            .mode(torch::kBilinear)
                            .align_corners(false));
  check_close(full, upsampled, 1e-6);
  // The gradient is that of each item's own score: the batch does not mix items.
  auto single = salient::grad_cam(model, x.slice(0, 1, 2), 20, {.layer = "layer3", .relu = false, .upsample = false});
  check_close(single, map.slice(0, 1, 2), 1e-5);
}

TEST_CASE("CAM methods choose the last spatial layer and report it", "[cam]") {
  auto model = resnet18();
  auto x = torch::randn({2, 3, 64, 64});
  std::string used;
  auto map = salient::grad_cam(model, x, salient::top1, {.on_layer = [&](const std::string& l) { used = l; }});
  CHECK(used == "layer4");
  CHECK(map.sizes() == torch::IntArrayRef{2, 1, 64, 64});
  CHECK(map.min().item<float>() >= 0);
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 0, {.layer = "fc"}), Catch::Contains("CAM methods need a 4-D"));
  CHECK_THROWS_WITH(salient::grad_cam(model, x.flatten(1), 0), Catch::Contains("image batches [N,C,H,W]"));
  CHECK_THROWS_WITH(salient::grad_cam(model, x, 1000), Catch::Contains("target class 1000 out of range"));
}

TEST_CASE("Score-CAM and Eigen-CAM", "[cam]") {
  auto model = resnet18();
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 64, 64});
  SECTION("Score-CAM is a softmax-weighted sum of channels, independent of batch size") {
    salient::CamOptions options{.layer = "layer4", .relu = false, .upsample = false, .batch_size = 512};
    auto a = salient::score_cam(model, x, 5, options);
    options.batch_size = 37;
    auto b = salient::score_cam(model, x, 5, options);
    check_close(b, a, 1e-5);
    // Weights are positive and sum to 1: the map lies between the min and max channel.
    auto act = salient::run_layers(model, x, {{"layer4"}}).activations[0].detach();
    CHECK((a.squeeze(1) <= std::get<0>(act.max(1)) + 1e-5).all().item<bool>());
    CHECK((a.squeeze(1) >= std::get<0>(act.min(1)) - 1e-5).all().item<bool>());
  }
  SECTION("Eigen-CAM is the first principal component of the activations") {
    auto map = salient::eigen_cam(model, x, salient::top1, {.layer = "layer3", .relu = false, .upsample = false});
    auto act = salient::run_layers(model, x, {{"layer3"}}).activations[0].detach().to(torch::kDouble);
    for (int64_t i = 0; i < 2; ++i) {
      auto positions = act[i].reshape({act.size(1), -1}).t();
      auto centred = positions - positions.mean(0, true);
      auto top_singular_value = torch::linalg::svdvals(centred, c10::nullopt)[0].item<double>();
      CHECK(map[i].norm().item<double>() == Approx(top_singular_value).epsilon(1e-4));
      CHECK(map[i].flatten().to(torch::kDouble).dot(positions.mean(1)).item<double>() > 0);
    }
  }
}

TEST_CASE("Grad-CAM on MobileNetV2 puts its mass on the object", "[cam][shared]") {
  auto shared = salient::test::shared_dir();
  if (!shared) return;
  auto model = salient::TorchModel::load(*shared / "models/mobilenet_v2_imagenet.pt");
  // Energy per unit area inside the mask over energy per unit area outside it (1 = no preference).
  auto density_ratio = [](const torch::Tensor& cam, const torch::Tensor& mask) {
    const double inside = (cam * mask).sum().item<double>() / cam.sum().item<double>();
    const double area = mask.mean().item<double>();
    INFO("mask area " << area << ", Grad-CAM energy inside " << inside);
    return (inside / area) / ((1 - inside) / (1 - area));
  };
  SECTION("dog_segmentation.png with its ground-truth mask") {
    auto x = salient::load_input(*shared / "images/dog_segmentation.png");
    auto mask_image = salient::prepare_image(salient::load_image(*shared / "images/dog_segmentation_mask.png"), {});
    auto mask = (salient::to_tensor(mask_image).select(1, 0) > 0.5).to(torch::kFloat).unsqueeze(1);
    auto cam = salient::grad_cam(model, x, 258, {.layer = "features.18"});  // Samoyed
    CHECK(density_ratio(cam, mask) > 1.8);  // measured 2.26 (area 0.47, energy inside 0.67)
  }
  SECTION("cat.png with the cat segmented by the shared DeepLab model") {
    auto x = salient::load_input(*shared / "images/cat.png");
    auto deeplab = salient::TorchModel::load(*shared / "models/deeplabv3_mnv2_pascal.pt");
    namespace F = torch::nn::functional;
    auto resized = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{513, 513}).mode(torch::kBilinear).align_corners(false));
    auto classes = deeplab.forward(resized).argmax(1, true);
    auto mask = F::interpolate((classes == 8).to(torch::kFloat),
                               F::InterpolateFuncOptions().size(std::vector<int64_t>{224, 224}).mode(torch::kNearest));
    REQUIRE(mask.mean().item<double>() > 0.05);
    std::string used;
    auto cam = salient::grad_cam(model, x, 285, {.on_layer = [&](const std::string& l) { used = l; }});
    CHECK((used == "features" || used == "features.18"));
    CHECK(density_ratio(cam, mask) > 1.3);  // measured 1.48 (area 0.53, energy inside 0.62)
  }
}
