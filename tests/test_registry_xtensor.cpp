// The method registry on the xtensor backend (no LibTorch): each model type gets exactly the
// methods its capabilities allow, entries run the same code as the direct calls, settings
// named by string (masker, segments, baseline) resolve through the backend-neutral
// customisation points, and every map has the shape and sign its entry states.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "salient/attribution/registry.hpp"
#include "salient/core/analytic_cnn.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "xtensor_helpers.hpp"

namespace {
using Tensor = xt::xarray<double>;
using salient::XtensorBackend;
using salient::test::random_tensor;

constexpr std::size_t kSide = 8;

salient::AnalyticCnn cnn() { return salient::AnalyticCnn::random(3, 4, kSide, kSide, 3, 11); }
salient::LinearModel linear() { return {random_tensor({3, 3 * kSide * kSide}, 12), random_tensor({3}, 13)}; }

template <class M>
std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& m : salient::methods<M>()) out.push_back(m.name);
  return out;
}

// The method_facts() names whose capability M has, in the table's order.
template <class M>
std::vector<std::string> expected_names() {
  std::vector<std::string> out;
  for (const auto& f : salient::method_facts())
    if (salient::has_capability<M>(f.needs)) out.push_back(f.name);
  return out;
}

using salient::test::max_difference;
}  // namespace

TEST_CASE("xtensor registry: each model type gets the methods its capabilities allow", "[xtensor][registry]") {
  auto lin = linear();
  auto function = salient::forward_model<XtensorBackend>([&lin](const Tensor& x) { return lin.forward(x); });
  using FunctionModel = decltype(function);

  CHECK(names<salient::LinearModel>() == expected_names<salient::LinearModel>());
  CHECK(names<salient::AnalyticCnn>() == expected_names<salient::AnalyticCnn>());
  CHECK(names<FunctionModel>() == expected_names<FunctionModel>());
  // 10 gradient methods + 7 forward-only; the CNN adds the 6 CAMs; a function only the 7.
  CHECK(salient::methods<salient::LinearModel>().size() == 17);
  CHECK(salient::methods<salient::AnalyticCnn>().size() == 23);
  CHECK(names<FunctionModel>() == std::vector<std::string>{"occlusion", "ablation", "rise", "sobol", "lime", "kernelshap", "pami"});
  CHECK(salient::method_facts().size() == 30);

  CHECK(salient::find_method<salient::AnalyticCnn>("grad_cam").name == "gradcam");
  CHECK_THROWS_WITH(salient::find_method<FunctionModel>("ig"),
                    Catch::Contains("method 'integrated_gradients' needs a model with the 'gradient' capability") &&
                        Catch::Contains("it can run: occlusion, ablation"));
  CHECK_THROWS_WITH(salient::find_method<salient::AnalyticCnn>("guided_backprop"), Catch::Contains("the 'rules' capability"));
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("gradcan"), Catch::Contains("unknown method 'gradcan'"));
  CHECK(salient::method_list<FunctionModel>().find("kernelshap (kernel_shap)") != std::string::npos);
}

TEST_CASE("xtensor registry: an entry runs the direct call with the settings applied", "[xtensor][registry]") {
  auto model = cnn();
  Tensor x = random_tensor({2, 3, kSide, kSide}, 14);
  const std::vector<int64_t> classes{0, 2};

  auto occlusion = salient::find_method<salient::AnalyticCnn>("occlusion").bind({.options = {{"window", "3,2"}, {"strides", "2,2"}}});
  CHECK(max_difference(occlusion(model, x, classes),
                       salient::occlusion(model, x, classes, salient::OcclusionOptions<salient::AnalyticCnn>{.window = {3, 2}, .strides = {2, 2}})) == 0);
  // The masker by name: layer masking, which this model has.
  auto layer = salient::find_method<salient::AnalyticCnn>("occlusion").run(model, x, classes,
                                                                          {.options = {{"window", "3"}, {"strides", "2"}}, .masker = "layer"});
  salient::OcclusionOptions<salient::AnalyticCnn> layer_options{.window = {3, 3}, .strides = {2, 2}};
  layer_options.evaluation.masker = salient::LayerMasker{};
  CHECK(max_difference(layer, salient::occlusion(model, x, classes, layer_options)) == 0);
  CHECK(salient::find_method<salient::AnalyticCnn>("occlusion").parameters({.masker = "layer"})["masker"] == "layer");

  std::string used;
  auto cam = salient::find_method<salient::AnalyticCnn>("gradcam").run(model, x, classes,
                                                                      {.on_layer = [&](const std::string& l) { used = l; }});
  CHECK(used == "avgpool");
  CHECK(max_difference(cam, salient::grad_cam(model, x, classes)) == 0);

  // Integrated gradients from a black baseline (no normalisation: black is 0.0, a constant
  // image), with its convergence delta.
  const salient::MethodSettings black{.options = {{"steps", "64"}}, .baseline = "black", .normalization = salient::Normalization::none()};
  const auto& ig = salient::find_method<salient::AnalyticCnn>("ig");
  auto via_registry = ig.run(model, x, classes, black);
  auto direct = salient::integrated_gradients(model, x, classes, {.steps = 64, .baseline = Tensor(xt::zeros<double>(x.shape()))});
  CHECK(max_difference(via_registry, direct) < 1e-12);
  // The delta is sum(map) - (F(x) - F(black)) with the black baseline the settings name.
  const auto delta = ig.delta(model, x, classes, via_registry, black);
  const Tensor at_x = model.forward(x), at_black = model.forward(Tensor(xt::zeros<double>(x.shape())));
  for (std::size_t i = 0; i < 2; ++i) {
    const double sum = xt::sum(xt::view(via_registry, i))();
    const auto k = static_cast<std::size_t>(classes[i]);
    CHECK(delta[i] == Approx(sum - (at_x(i, k) - at_black(i, k))).margin(1e-12));
    CHECK(std::abs(delta[i]) < 0.05 * std::abs(at_x(i, k) - at_black(i, k)));  // and small: 64 steps
  }
  const salient::MethodSettings grey{.baseline = "grey", .normalization = salient::Normalization::none()};
  auto from_grey = ig.run(model, x, classes, grey);
  auto grey_direct = salient::integrated_gradients(model, x, classes, {.baseline = Tensor(xt::zeros<double>(x.shape()) + 0.5)});
  CHECK(max_difference(from_grey, grey_direct) < 1e-12);

  // A region method gets its segments by spec from each input's photo.
  int64_t count = 0;
  auto ablation = salient::find_method<salient::AnalyticCnn>("ablation").run(
      model, x, classes, {.segments = "grid:4", .normalization = salient::Normalization::none(), .on_segments = [&](int64_t c) { count = c; }});
  CHECK(count == 4);
  Tensor grid = xt::zeros<double>({kSide, kSide});
  for (std::size_t y = 0; y < kSide; ++y)
    for (std::size_t c = 0; c < kSide; ++c) grid(y, c) = static_cast<double>((y / 4) * 2 + c / 4);
  auto direct_ablation = salient::feature_ablation(model, x, classes, salient::AblationOptions<salient::AnalyticCnn>{.segments = grid});
  CHECK(max_difference(ablation, direct_ablation) == 0);
}

TEST_CASE("xtensor registry: names a backend lacks fail clearly", "[xtensor][registry]") {
  auto lin = linear();
  Tensor x = random_tensor({1, 3, kSide, kSide}, 15);
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("occlusion").run(lin, x, 0, {.masker = "layer"}),
                    Catch::Contains("unknown masker 'layer'") && Catch::Contains("layer masking needs"));
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("occlusion").run(lin, x, 0, {.masker = "blur"}),
                    Catch::Contains("unknown masker 'blur'"));
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("ig").run(lin, x, 0, {.baseline = "noise"}),
                    Catch::Contains("unknown baseline 'noise'"));
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("lime").run(lin, x, 0, {.segments = "model:seg.pt"}),
                    Catch::Contains("only LibTorch models load"));
  CHECK_THROWS_WITH(salient::find_method<salient::LinearModel>("lime").run(lin, x, 0, {.segments = "slic:0"}),
                    Catch::Contains("slic"));
}

TEST_CASE("xtensor registry: every method's map has the stated shape and sign; input-multiplied maps vanish with the input",
          "[xtensor][registry]") {
  auto model = cnn();
  Tensor x = random_tensor({1, 3, kSide, kSide}, 16);
  xt::view(x, xt::all(), xt::all(), xt::all(), xt::range(0, 2)) = 0.0;  // a band of exact zeros
  const salient::MethodSettings fast{
      .options = {{"samples", "16"}, {"masks", "16"}, {"designs", "4"}, {"grid", "3"}, {"steps", "8"}, {"window", "3"}, {"strides", "2"}},
      .segments = "grid:2", .normalization = salient::Normalization::none()};
  for (const auto& method : salient::methods<salient::AnalyticCnn>()) {
    INFO(method.name);
    Tensor map = method.run(model, x, 1, fast);
    if (method.shape == salient::MapShape::input) CHECK(map.shape() == x.shape());
    else CHECK(map.shape() == std::vector<std::size_t>{1, 1, kSide, kSide});
    CHECK(xt::all(xt::isfinite(map)));
    if (!method.is_signed) CHECK(xt::amin(map)() >= -1e-9 * xt::amax(xt::abs(map))());
    if (method.multiplies_input) CHECK(xt::amax(xt::abs(xt::view(map, xt::all(), xt::all(), xt::all(), xt::range(0, 2))))() == 0);
    CHECK(method.has_delta == static_cast<bool>(method.delta));
  }
}
