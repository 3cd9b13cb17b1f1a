#pragma once
// The method flags the tools share (salient-explain, salient-sanity, salient-topk): each
// fills one salient::MethodSettings, which the library's registry applies to whichever
// methods run (attribution/registry.hpp). Methods and their defaults come from the registry.
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "salient/attribution/torch_registry.hpp"
#include "salient/graph/relevance.hpp"
#include "salient/segmentation/superpixels.hpp"

#include "common/cli.hpp"

namespace salient::cli {

// The tools' settings before any flag: SmoothGrad noise at 15% of each input's value range
// (the SmoothGrad paper's level; the library's own default is Captum's absolute stdev 1).
inline MethodSettings tool_method_settings() {
  MethodSettings settings;
  settings.options["relative_stdev"] = "0.15";
  return settings;
}

// Help lines of the shared flags, with the defaults read from the options structs.
inline std::string method_flags_help() {
  const auto n = [](auto v) { return std::to_string(v); };
  const IntegratedGradientsOptions<torch::Tensor> ig;
  const OcclusionOptions<TorchModel> occlusion;
  return R"(  --layer NAME          layer for CAM methods (default: the last layer with a spatial 4-D output)
  --steps N             integrated gradients steps (default )" + n(ig.steps) + R"(, at most 10000)
  --ig-method M         gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid
  --baseline B[,B...]   zero|black|grey|blur|noise (default zero: the all-zero model input); a
                        comma-separated set for deepliftshap and gradientshap (e.g. zero,black,grey)
  --lrp-composite C     LRP's rules per layer: epsilon_plus_flat (default), epsilon_gamma_box,
                        epsilon_alpha2_beta1_flat, epsilon_plus, epsilon_alpha2_beta1, or epsilon
                        (Captum's LRP)
  --deeplift-max-pool R DeepLIFT's max-pool rule: gradient (default; Captum 0.8's numbers on VGG and
                        ResNet) or rescale (Captum's cross-max rule: sums to F(x) - F(baseline))
  --samples N           noise tunnel, LIME and KernelSHAP samples, RISE masks, Sobol designs (default:
                        each method's own: )" + n(NoiseTunnelOptions{}.samples) + ", " + n(LimeOptions<TorchModel>{}.samples) + ", " +
         n(KernelShapOptions<TorchModel>{}.samples) + ", " + n(RiseOptions<TorchModel>{}.masks) + ", " +
         n(SobolOptions<TorchModel>{}.designs) + R"(); at most 100000
  --grid N              Sobol attribution's cells per side (default )" + n(SobolOptions<TorchModel>{}.grid) + R"(, at most 64)
  --stdev S             noise tunnel stdev in model-input units (default 15% of each input's range)
  --masker M            how perturbation methods remove pixels: zero (default: a zero model input, as
                        Captum; PAMI: black), mean, black, grey, blur, noise, imputation (ROAD's noisy
                        linear imputation) or layer (layer masking)
  --segments S          regions for ablation/lime/kernelshap: slic:N[:compactness],
                        felzenszwalb:SCALE[:SIGMA:MIN_SIZE], grid:CELL, or model:SEG.pt (a segmentation
                        model's argmax classes split into connected regions) (default )" + MethodSettings{}.segments + R"()
  --window H[,W]        occlusion window (default )" + n(occlusion.window[0]) + R"(, at most 2048)
  --strides H[,W]       occlusion strides (default )" + n(occlusion.strides[0]) + R"(, at most 2048)
  --batch-size N        model inputs per call (default: each method's own, )" + n(SaliencyOptions{}.batch_size) + " or " +
         n(PerturbationOptions<TorchModel>{}.batch_size) + R"(; at most 1024)
  --seed N              seed for noise, masks and samples (default 0)
)";
}

// Reads one shared method flag into `settings`; false when `flag` is not one of them. Values
// are checked here, before any work.
inline bool method_flag(const std::string& flag, const std::string& value, MethodSettings& settings) {
  auto& options = settings.options;
  if (flag == "--steps") {
    options["steps"] = std::to_string(parse_int(flag, value, 1, 10000));
  } else if (flag == "--ig-method") {
    parse_integration_method(value);
    options["method"] = value;
  } else if (flag == "--baseline") {
    const auto names = split_commas(value);
    if (names.empty() || names.size() > 16) fail("--baseline takes 1 to 16 comma-separated baselines, got '", value, "'");
    for (const auto& name : names) parse_baseline(name);
    settings.baseline = value;
  } else if (flag == "--lrp-composite") {
    graph::check_composite_name(value);
    options["composite"] = value;
  } else if (flag == "--deeplift-max-pool") {
    DeepLiftMaxPool rule;
    from_string(value, rule);
    options["max_pool"] = value;
  } else if (flag == "--samples") {
    options["samples"] = options["masks"] = options["designs"] = std::to_string(parse_int(flag, value, 1, 100000));
  } else if (flag == "--grid") {
    options["grid"] = std::to_string(parse_int(flag, value, 1, 64));
  } else if (flag == "--stdev") {
    if (parse_double(flag, value) < 0) fail("--stdev must be >= 0, got ", value);
    options["stdev"] = value;
    options["relative_stdev"] = "0";
  } else if (flag == "--masker") {
    make_masker(value);
    settings.masker = value;
  } else if (flag == "--segments") {
    if (value.rfind("model:", 0) != 0) segment(value, Image(3, 16, 16, 0.5f));  // validates the spec
    else if (!std::filesystem::exists(value.substr(6))) fail("segmentation model '", value.substr(6), "' not found");
    settings.segments = value;
  } else if (flag == "--window" || flag == "--strides") {
    auto parts = split_commas(value);
    if (parts.empty() || parts.size() > 2) fail(flag, " takes H or H,W, got '", value, "'");
    const auto h = parse_int(flag, parts[0], 1, max_input_size), w = parse_int(flag, parts.back(), 1, max_input_size);
    options[flag.substr(2)] = std::to_string(h) + "," + std::to_string(w);
  } else if (flag == "--layer") {
    options["layer"] = value;
  } else if (flag == "--batch-size") {
    settings.batch_size = parse_int(flag, value, 1, 1024);
  } else if (flag == "--seed") {
    settings.seed = static_cast<uint64_t>(parse_int(flag, value, 0, max_seed));
  } else {
    return false;
  }
  return true;
}

// A --method list: "m1,m2:flag=value:flag=value,...". A method with flags of its own runs with
// them over the shared ones: "lime:masker=layer:samples=500" is LIME with --masker layer
// --samples 500, whatever the other methods use. A value may hold ':' (segments=slic:50:10),
// not ','. Names are canonical; a method named twice is an error (its files would collide).
struct MethodList {
  std::vector<std::string> names;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> own_flags;  // name -> (--flag, value)

  MethodSettings settings(const std::string& name, MethodSettings shared) const {
    if (auto it = own_flags.find(name); it != own_flags.end())
      for (const auto& [flag, value] : it->second) method_flag(flag, value, shared);
    return shared;
  }
};

inline MethodList parse_method_list(const std::string& flag, const std::string& value) {
  MethodList list;
  for (const auto& entry : split_commas(value)) {
    std::vector<std::string> pieces;
    for (std::size_t start = 0;;) {
      const auto colon = entry.find(':', start);
      pieces.push_back(entry.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    const auto name = find_method(pieces[0]).name;
    for (const auto& known : list.names)
      if (known == name) fail(flag, " names '", name, "' twice (give one entry per method)");
    list.names.push_back(name);
    auto& flags = list.own_flags[name];
    for (std::size_t i = 1; i < pieces.size(); ++i) {
      const auto equals = pieces[i].find('=');
      if (equals == std::string::npos) {  // the rest of the previous value (slic:50)
        if (flags.empty()) fail(flag, ": '", entry, "' needs setting=value after the method's name");
        flags.back().second += ":" + pieces[i];
        continue;
      }
      flags.emplace_back("--" + pieces[i].substr(0, equals), pieces[i].substr(equals + 1));
    }
    MethodSettings check;  // each flag and value checked now, before any work
    for (const auto& [own, own_value] : flags)
      if (own == "--" || !method_flag(own, own_value, check))
        fail(flag, ": '", own.substr(2), "' in '", entry, "' is not a method setting (one of: steps, ig-method, baseline, ",
             "lrp-composite, deeplift-max-pool, samples, grid, stdev, masker, segments, window, strides, layer, batch-size, seed)");
    if (flags.empty()) list.own_flags.erase(name);
  }
  if (list.names.empty()) fail(flag, " needs at least one method name");
  return list;
}

// The layer named by --layer, or "" for each method's default.
inline std::string requested_layer(const MethodSettings& settings) {
  auto it = settings.options.find("layer");
  return it == settings.options.end() ? std::string() : it->second;
}

}  // namespace salient::cli
