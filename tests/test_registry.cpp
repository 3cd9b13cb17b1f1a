// The method registry: names and aliases, parameters read back from the options structs, the
// settings applied alike to every method, and the facts each entry states (shape, sign,
// multiplication by the input) checked against the maps the methods return.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>

#include "error_matchers.hpp"
#include "salient/attribution/torch_registry.hpp"

namespace {
namespace fs = std::filesystem;
salient::TorchModel resnet18() { return salient::TorchModel::load(fs::path(SALIENT_MODELS_DIR) / "resnet18.pt"); }
}  // namespace

TEST_CASE("registry: unique names, aliases, and a clear error for unknown ones", "[registry]") {
  std::set<std::string> names;
  for (const auto& m : salient::methods()) {
    CHECK(names.insert(m.name).second);
    for (const auto& a : m.aliases) CHECK(names.insert(a).second);
    CHECK(!m.summary.empty());
    CHECK(m.has_delta == static_cast<bool>(m.delta));
    CHECK(&salient::find_method(m.name) == &m);
  }
  CHECK(salient::methods().size() == 30);
  // TorchModel has every capability: its registry is the whole facts table, in its order.
  REQUIRE(salient::methods().size() == salient::method_facts().size());
  for (std::size_t i = 0; i < salient::methods().size(); ++i) CHECK(salient::methods()[i].name == salient::method_facts()[i].name);
  CHECK(salient::find_method("ig").name == "integrated_gradients");
  CHECK(salient::find_method("gradcam++").name == "gradcampp");
  salient::test::require_error_of_kind([] { salient::find_method("gradcan"); }, salient::error_kind::bad_input,
                                       "unknown method 'gradcan' (expected one of: saliency, saliency_abs");
  CHECK(salient::method_list().find("integrated_gradients (ig)") != std::string::npos);
}

TEST_CASE("registry: parameters come from the options structs, with settings and named options applied", "[registry]") {
  const auto& ig = salient::find_method("integrated_gradients");
  auto defaults = ig.parameters({});
  const salient::IntegratedGradientsOptions<torch::Tensor> options;
  CHECK(defaults["steps"] == options.steps);
  CHECK(defaults["method"] == "gausslegendre");
  CHECK(defaults["batch_size"] == options.batch_size);
  CHECK(defaults["baseline"] == "zero");
  CHECK(!defaults.contains("progress"));
  auto changed = ig.parameters({.options = {{"steps", "8"}, {"method", "riemann_left"}, {"samples", "3"}}, .batch_size = 4});
  CHECK(changed["steps"] == 8);
  CHECK(changed["method"] == "riemann_left");
  CHECK(changed["batch_size"] == 4);
  CHECK(!changed.contains("samples"));  // not an option of IG: skipped
  CHECK(ig.option_names == std::vector<std::string>{"steps", "method", "multiply_by_inputs", "batch_size"});
  CHECK_THROWS_WITH(ig.parameters({.options = {{"steps", "many"}}}), Catch::Contains("steps expects an integer, got 'many'"));
  CHECK_THROWS_WITH(ig.parameters({.options = {{"steps", "100000000"}}}), Catch::Contains("steps must be at most 10000000"));
  CHECK_THROWS_WITH(ig.parameters({.options = {{"method", "simpson"}}}), Catch::Contains("unknown integration method 'simpson'"));
  // Perturbation methods name their masker; the seed reaches every seeded method.
  CHECK(salient::find_method("occlusion").parameters({})["masker"] == "zero");
  CHECK(salient::find_method("occlusion").parameters({.masker = "layer"})["masker"] == "layer");
  CHECK(salient::find_method("pami").parameters({})["masker"] == "black");
  CHECK(salient::find_method("lime").parameters({.seed = 7})["seed"] == 7);
  CHECK(salient::find_method("lime").parameters({})["segments"] == "slic:50");
  CHECK(salient::find_method("rise").parameters({.options = {{"masks", "64"}}})["masks"] == 64);
}

TEST_CASE("registry: a bound method equals the direct call", "[registry]") {
  auto model = resnet18();
  torch::manual_seed(3);
  auto x = torch::randn({2, 3, 64, 64});
  const std::vector<int64_t> classes{5, 9};
  auto via_registry = salient::find_method("saliency").bind({.batch_size = 1})(model, x, classes);
  CHECK(torch::equal(via_registry, salient::saliency(model, x, classes, {.abs = false, .batch_size = 1})));
  std::string layer;
  auto cam = salient::find_method("gradcam").bind({.options = {{"layer", "layer3"}}, .on_layer = [&](const std::string& l) { layer = l; }})(
      model, x, classes);
  CHECK(layer == "layer3");
  CHECK(torch::equal(cam, salient::grad_cam(model, x, classes, {.layer = "layer3"})));
  int64_t count = 0;
  auto lime = salient::find_method("lime").bind({.options = {{"samples", "30"}}, .segments = "grid:16",
                                                 .on_segments = [&](int64_t c) { count = c; }})(model, x.slice(0, 0, 1), 5);
  CHECK(count == 16);
  auto segments = salient::segment_input("grid:16", x.slice(0, 0, 1));
  CHECK(torch::equal(lime, salient::lime(model, x.slice(0, 0, 1), 5, {.segments = segments, .samples = 30})));
}

TEST_CASE("registry: every method's map has the stated shape and sign; input-multiplied maps vanish with the input",
          "[registry]") {
  auto model = resnet18();
  torch::manual_seed(5);
  auto x = torch::randn({1, 3, 48, 48});
  x.slice(3, 0, 8).zero_();  // a band of exact zeros
  const salient::MethodSettings fast{.options = {{"samples", "8"}, {"masks", "16"}, {"steps", "4"}, {"window", "16"}, {"strides", "16"}},
                                     .segments = "grid:16"};
  for (const auto& method : salient::methods()) {
    INFO(method.name);
    if (method.name == "pami") continue;  // five segmentations x two shifts at every scale: checked in [pami]
    auto map = method.run(model, x, 7, fast);
    if (method.shape == salient::MapShape::input) CHECK(map.sizes() == x.sizes());
    else CHECK(map.sizes() == torch::IntArrayRef{1, 1, 48, 48});
    // (vargrad = E[a^2] - E[a]^2 may round a hair below 0)
    if (!method.is_signed) CHECK(map.min().item<double>() >= -1e-6 * map.abs().max().item<double>());
    if (method.multiplies_input) CHECK(map.slice(3, 0, 8).abs().max().item<double>() == 0);
  }
}
