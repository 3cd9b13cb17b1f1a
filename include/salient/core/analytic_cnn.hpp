#pragma once
// A small CNN on the xtensor backend with its forward and backward passes written out, so
// that the layer methods (the Grad-CAM family, Score-CAM, Eigen-CAM, layer gradient x
// activation) are tested against closed forms without LibTorch:
//
//   conv     3x3 convolution, padding 1, stride 1, bias     [N, C, H, W]
//   relu                                                     [N, C, H, W]
//   maxpool  2x2, stride 2 (floor; ties: the first maximum)  [N, C, H/2, W/2]
//   avgpool  2x2, stride 1                                   [N, C, H/2 - 1, W/2 - 1]
//   fc       linear head on the flattened avgpool output     [N, K]
//
// It is a LayerModel (core/layers.hpp): the five layer names above, and the input of each
// layer (LayerRef::input) is the output of the one before it (conv's is the image); and a
// ParameterModel (core/parameters.hpp) for the randomisation tests, and a LayerMaskingModel
// (run_layer_masked below).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "salient/core/layers.hpp"
#include "salient/core/parameters.hpp"
#include "salient/core/random.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "salient/masking/layer_masking.hpp"

namespace salient {

struct AnalyticCnn {
  using backend = XtensorBackend;
  using Tensor = xt::xarray<double>;

  Tensor conv_weight;  // [C, Cin, 3, 3]
  Tensor conv_bias;    // [C]
  Tensor fc_weight;    // [K, C * (H/2 - 1) * (W/2 - 1)]
  Tensor fc_bias;      // [K]

  // Weights uniform in [-scale, scale) from `seed` (salient's own generator).
  static AnalyticCnn random(int64_t in_channels, int64_t channels, int64_t height, int64_t width, int64_t classes,
                            uint64_t seed, double scale = 0.5) {
    if (height < 4 || width < 4) detail::fail("AnalyticCnn needs inputs of at least 4x4, got ", height, "x", width);
    detail::Random random(seed);
    auto draw = [&](std::vector<std::size_t> shape) {
      Tensor t = xt::zeros<double>(shape);
      for (auto& v : t) v = (2 * random.uniform() - 1) * scale;
      return t;
    };
    const auto c = static_cast<std::size_t>(channels), k = static_cast<std::size_t>(classes);
    const auto features = c * static_cast<std::size_t>((height / 2 - 1) * (width / 2 - 1));
    return {draw({c, static_cast<std::size_t>(in_channels), 3, 3}), draw({c}), draw({k, features}), draw({k})};
  }

  static constexpr std::array<const char*, 5> layer_names{"conv", "relu", "maxpool", "avgpool", "fc"};

  // Every layer's output for a batch (index k = layer_names[k]), and maxpool's choices.
  struct Trace {
    std::array<Tensor, 5> outputs;
    std::vector<std::size_t> max_positions;  // per maxpool output: the flat index into relu
  };

  void check_input(const Tensor& x) const {
    const std::size_t c = conv_weight.shape()[0], cin = conv_weight.shape()[1];
    if (x.dimension() != 4 || x.shape()[1] != cin)
      detail::fail("AnalyticCnn expects inputs [N,", cin, ",H,W], got ", detail::shape_text(XtensorBackend::shape(x)));
    const std::size_t h2 = x.shape()[2] / 2, w2 = x.shape()[3] / 2;
    if (h2 < 2 || w2 < 2 || c * (h2 - 1) * (w2 - 1) != fc_weight.shape()[1])
      detail::fail("AnalyticCnn: an input of ", x.shape()[2], "x", x.shape()[3], " does not fit its linear head (",
                   fc_weight.shape()[1], " features)");
  }

  // conv: the 3x3 convolution with zero padding.
  Tensor convolve(const Tensor& x) const {
    const std::size_t n = x.shape()[0], h = x.shape()[2], w = x.shape()[3];
    const std::size_t c = conv_weight.shape()[0], cin = conv_weight.shape()[1];
    Tensor conv = xt::zeros<double>({n, c, h, w});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o)
        for (std::size_t y = 0; y < h; ++y)
          for (std::size_t xx = 0; xx < w; ++xx) {
            double sum = conv_bias(o);
            for (std::size_t ci = 0; ci < cin; ++ci)
              for (std::size_t dy = 0; dy < 3; ++dy)
                for (std::size_t dx = 0; dx < 3; ++dx) {
                  const auto sy = static_cast<int64_t>(y + dy) - 1, sx = static_cast<int64_t>(xx + dx) - 1;
                  if (sy < 0 || sx < 0 || sy >= static_cast<int64_t>(h) || sx >= static_cast<int64_t>(w)) continue;
                  sum += conv_weight(o, ci, dy, dx) * x(i, ci, static_cast<std::size_t>(sy), static_cast<std::size_t>(sx));
                }
            conv(i, o, y, xx) = sum;
          }
    return conv;
  }

  Trace trace(const Tensor& x) const {
    check_input(x);
    const std::size_t c = conv_weight.shape()[0];
    const std::size_t n = x.shape()[0], h = x.shape()[2], w = x.shape()[3], h2 = h / 2, w2 = w / 2;
    Trace t;
    Tensor conv = convolve(x);
    Tensor relu = xt::maximum(conv, 0.0);
    Tensor maxpool = xt::zeros<double>({n, c, h2, w2});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o)
        for (std::size_t y = 0; y < h2; ++y)
          for (std::size_t xx = 0; xx < w2; ++xx) {
            std::size_t best = ((i * c + o) * h + 2 * y) * w + 2 * xx;
            for (std::size_t dy = 0; dy < 2; ++dy)
              for (std::size_t dx = 0; dx < 2; ++dx) {
                const std::size_t at = ((i * c + o) * h + 2 * y + dy) * w + 2 * xx + dx;
                if (relu.data()[at] > relu.data()[best]) best = at;
              }
            maxpool(i, o, y, xx) = relu.data()[best];
            t.max_positions.push_back(best);
          }
    Tensor avgpool = xt::zeros<double>({n, c, h2 - 1, w2 - 1});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o)
        for (std::size_t y = 0; y + 1 < h2; ++y)
          for (std::size_t xx = 0; xx + 1 < w2; ++xx)
            avgpool(i, o, y, xx) = (maxpool(i, o, y, xx) + maxpool(i, o, y, xx + 1) + maxpool(i, o, y + 1, xx) +
                                    maxpool(i, o, y + 1, xx + 1)) / 4;  // row order, as the masked pool
    Tensor logits = detail::rows_times_transpose(avgpool, fc_weight) + fc_bias;
    t.outputs = {conv, relu, maxpool, avgpool, logits};
    return t;
  }

  Tensor forward(const Tensor& x) { return trace(x).outputs[4]; }

  // Gradients of each item's target score at every layer output (index as in Trace), and at
  // the input (index 5).
  std::array<Tensor, 6> backward(const Tensor& x, const Trace& t, const std::vector<int64_t>& classes) const {
    const std::size_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
    const std::size_t c = conv_weight.shape()[0], h2 = h / 2, w2 = w / 2;
    std::array<Tensor, 6> g;
    g[4] = xt::zeros<double>(t.outputs[4].shape());
    for (std::size_t i = 0; i < n; ++i) g[4](i, static_cast<std::size_t>(classes[i])) = 1;
    g[3] = xt::zeros<double>(t.outputs[3].shape());
    const std::size_t features = fc_weight.shape()[1];
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t f = 0; f < features; ++f) g[3].data()[i * features + f] = fc_weight(static_cast<std::size_t>(classes[i]), f);
    g[2] = xt::zeros<double>(t.outputs[2].shape());
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o)
        for (std::size_t y = 0; y + 1 < h2; ++y)
          for (std::size_t xx = 0; xx + 1 < w2; ++xx) {
            const double share = g[3](i, o, y, xx) / 4;
            g[2](i, o, y, xx) += share, g[2](i, o, y + 1, xx) += share;
            g[2](i, o, y, xx + 1) += share, g[2](i, o, y + 1, xx + 1) += share;
          }
    g[1] = xt::zeros<double>(t.outputs[1].shape());
    for (std::size_t k = 0; k < t.max_positions.size(); ++k) g[1].data()[t.max_positions[k]] += g[2].data()[k];
    g[0] = g[1] * xt::cast<double>(t.outputs[0] > 0.0);
    g[5] = xt::zeros<double>(x.shape());
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o)
        for (std::size_t y = 0; y < h; ++y)
          for (std::size_t xx = 0; xx < w; ++xx) {
            const double d = g[0](i, o, y, xx);
            if (d == 0) continue;
            for (std::size_t ci = 0; ci < cin; ++ci)
              for (std::size_t dy = 0; dy < 3; ++dy)
                for (std::size_t dx = 0; dx < 3; ++dx) {
                  const auto sy = static_cast<int64_t>(y + dy) - 1, sx = static_cast<int64_t>(xx + dx) - 1;
                  if (sy < 0 || sx < 0 || sy >= static_cast<int64_t>(h) || sx >= static_cast<int64_t>(w)) continue;
                  g[5](i, ci, static_cast<std::size_t>(sy), static_cast<std::size_t>(sx)) += d * conv_weight(o, ci, dy, dx);
                }
          }
    return g;
  }

  ScoredGradient<Tensor> gradient(const Tensor& x, const ResolvedTarget<Tensor>& target) {
    const auto classes = checked_classes(target);
    const auto t = trace(x);
    Tensor scores = XtensorBackend::select(t.outputs[4], target);  // checks the classes first
    return {scores, backward(x, t, classes)[5]};
  }

  // Layer masking (the LayerMaskingModel capability, masking/masker.hpp), driving the
  // arithmetic of masking/layer_masking.hpp op by op: removed input pixels are zeroed and
  // filled from kept neighbours before conv (its output mask: the input's pooled with the
  // 3x3 window); relu as itself; maxpool and avgpool over kept positions only; removed
  // positions enter fc as 0.
  friend Tensor run_layer_masked(AnalyticCnn& model, const Tensor& inputs, const Tensor& masks) {
    model.check_input(inputs);
    const std::size_t n = std::max(inputs.shape()[0], masks.shape()[0]), cin = inputs.shape()[1];
    const auto h = static_cast<int64_t>(inputs.shape()[2]), w = static_cast<int64_t>(inputs.shape()[3]);
    const int64_t h2 = h / 2, w2 = w / 2, plane = h * w, plane2 = h2 * w2, plane3 = (h2 - 1) * (w2 - 1);
    const std::size_t c = model.conv_weight.shape()[0];
    const masking::Window conv_window{{3, 3}, {1, 1}, {1, 1}, {1, 1}}, max_window{{2, 2}, {2, 2}}, avg_window{{2, 2}};
    Tensor x = xt::zeros<double>({n, cin, inputs.shape()[2], inputs.shape()[3]});
    std::vector<double> input_mask(n * plane), conv_mask(n * plane), max_mask(n * plane2);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t row = inputs.shape()[0] == 1 ? 0 : i, mask_row = masks.shape()[0] == 1 ? 0 : i;
      double* m = input_mask.data() + i * plane;
      for (int64_t p = 0; p < plane; ++p) m[p] = masks.data()[mask_row * plane + p] >= 0.5 ? 1.0 : 0.0;
      const auto fill = masking::plan_neighbour_fill(m, h, w, masking::fill_rounds(conv_window));
      std::copy_n(inputs.data() + row * cin * plane, cin * plane, x.data() + i * cin * plane);
      for (std::size_t ci = 0; ci < cin; ++ci) masking::neighbour_fill(x.data() + (i * cin + ci) * plane, fill, true);
      masking::pool_mask(m, h, w, conv_window, conv_mask.data() + i * plane);
      masking::pool_mask(conv_mask.data() + i * plane, h, w, max_window, max_mask.data() + i * plane2);
    }
    Tensor relu = xt::maximum(model.convolve(x), 0.0);
    Tensor maxpool = xt::zeros<double>({n, c, std::size_t(h2), std::size_t(w2)});
    Tensor avgpool = xt::zeros<double>({n, c, std::size_t(h2 - 1), std::size_t(w2 - 1)});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t o = 0; o < c; ++o) {
        masking::masked_max_pool(relu.data() + (i * c + o) * plane, conv_mask.data() + i * plane, h, w, max_window,
                                 maxpool.data() + (i * c + o) * plane2);
        masking::masked_average_pool(maxpool.data() + (i * c + o) * plane2, max_mask.data() + i * plane2, h2, w2,
                                     avg_window, true, avgpool.data() + (i * c + o) * plane3);
      }
    return detail::rows_times_transpose(avgpool, model.fc_weight) + model.fc_bias;
  }

  // The parameter capability (core/parameters.hpp): conv.weight, conv.bias, fc.weight, fc.bias.
  friend std::vector<ParameterInfo> parameter_list(const AnalyticCnn& model) {
    std::vector<ParameterInfo> list;
    for (const auto& [name, tensor] : model.named_arrays()) list.push_back({name, XtensorBackend::shape(*tensor)});
    return list;
  }
  friend std::array<Tensor, 4> snapshot_parameters(const AnalyticCnn& model) {
    return {model.conv_weight, model.conv_bias, model.fc_weight, model.fc_bias};
  }
  friend void restore_parameters(AnalyticCnn& model, const std::array<Tensor, 4>& saved) {
    model.conv_weight = saved[0], model.conv_bias = saved[1], model.fc_weight = saved[2], model.fc_bias = saved[3];
  }
  friend void set_parameter(AnalyticCnn& model, const std::string& name, const std::vector<double>& values) {
    for (const auto& [n, tensor] : model.named_arrays()) {
      if (n != name) continue;
      if (values.size() != tensor->size())
        detail::fail("parameter '", name, "' has ", tensor->size(), " values, got ", values.size());
      std::copy(values.begin(), values.end(), tensor->begin());
      return;
    }
    detail::fail("the model has no parameter '", name, "'");
  }

  friend std::vector<LayerInfo> list_layers(AnalyticCnn& model, const Tensor& example) {
    const auto t = model.trace(example);
    std::vector<LayerInfo> layers;
    for (std::size_t k = 0; k < layer_names.size(); ++k) layers.push_back({layer_names[k], XtensorBackend::shape(t.outputs[k])});
    return layers;
  }

  friend LayerRun<Tensor> run_layers(AnalyticCnn& model, const Tensor& inputs, const std::vector<LayerRef>& layers) {
    const auto t = model.trace(inputs);
    LayerRun<Tensor> run{t.outputs[4], {}};
    for (const auto& layer : layers) {
      const int k = index_of(layer);
      run.activations.push_back(k < 0 ? inputs : t.outputs[static_cast<std::size_t>(k)]);
    }
    return run;
  }

  friend LayerGradients<Tensor> layer_gradients(AnalyticCnn& model, const Tensor& inputs,
                                                const ResolvedTarget<Tensor>& target, const std::vector<LayerRef>& layers) {
    const auto classes = checked_classes(target);
    const auto t = model.trace(inputs);
    LayerGradients<Tensor> result;
    result.scores = XtensorBackend::select(t.outputs[4], target);  // checks the classes first
    const auto g = model.backward(inputs, t, classes);
    for (const auto& layer : layers) {
      const int k = index_of(layer);
      result.activations.push_back(k < 0 ? inputs : t.outputs[static_cast<std::size_t>(k)]);
      result.gradients.push_back(g[k < 0 ? 5 : static_cast<std::size_t>(k)]);
    }
    return result;
  }

 private:
  std::array<std::pair<std::string, Tensor*>, 4> named_arrays() {
    return {{{"conv.weight", &conv_weight}, {"conv.bias", &conv_bias}, {"fc.weight", &fc_weight}, {"fc.bias", &fc_bias}}};
  }
  std::array<std::pair<std::string, const Tensor*>, 4> named_arrays() const {
    return {{{"conv.weight", &conv_weight}, {"conv.bias", &conv_bias}, {"fc.weight", &fc_weight}, {"fc.bias", &fc_bias}}};
  }
  // The Trace index of a layer's output; -1 for the image (conv's input).
  static int index_of(const LayerRef& layer) {
    for (std::size_t k = 0; k < layer_names.size(); ++k)
      if (layer.name == layer_names[k]) return static_cast<int>(k) - (layer.input ? 1 : 0);
    detail::fail("unknown layer '", layer.name, "' (AnalyticCnn has conv, relu, maxpool, avgpool, fc)");
  }
  static std::vector<int64_t> checked_classes(const ResolvedTarget<Tensor>& target) {
    if (target.is_custom()) detail::fail("custom targets need a LibTorch model (autograd); analytic models take class targets");
    return target.classes;
  }
};
static_assert(LayerModel<AnalyticCnn> && ParameterModel<AnalyticCnn>);

}  // namespace salient
