// salient-mask: what does the model predict without these pixels?
// Prints (and with --json writes) the top classes of an image with the pixels outside a
// keep-mask removed by each chosen masker, next to the unmasked prediction. The keep-mask is a
// picture (--mask), or the most important pixels by each attribution method of the registry
// (--method, --keep): does the model still see its class in what the method points at?
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/input_settings.hpp"
#include "common/method_settings.hpp"
#include "common/output.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;

namespace mask_tool {

std::string usage() {
  const salient::cli::InputSettings defaults;
  return R"(usage: salient-mask --model m.pt --image f --mask keep.png [options]
       salient-mask --model m.pt --image f --method m1,m2,... [--keep P] [options]
  --model m.pt          TorchScript classifier (default: data/'s MobileNetV2)
  --image f             photo (PNG/JPEG/BMP)
  --mask keep.png       same size as the photo; white (>= 0.5) = keep, black = remove
  --method m1,m2,...    instead of --mask: keep the pixels each method finds most important for
                        the target (the largest channel-summed attribution values), from:
)" + salient::method_list("                          ") +
         R"(  --keep P              share of the pixels a --method mask keeps, in (0, 1] (default 0.2)
  --target top1|<index> the class --method explains (default top1)
  --masker m1,m2,...    how removed pixels are removed: layer (layer masking), zero, mean, black,
                        grey, blur, noise (default: layer)
  --top K               classes to show (default 5, at most 1000)
  --json out.json       also write the result as JSON
)" + salient::cli::input_flags_help(defaults) +
         " the method flags of salient-explain, for --method (perturbation methods keep their own masker;\n"
         " --seed also seeds the noise masker):\n" + salient::cli::method_flags_help();
}

struct Options {
  std::string model, image, mask, json;
  std::optional<int64_t> target;  // --target K; none: top-1
  std::vector<std::string> maskers{"layer"}, methods;
  double keep = 0.2;
  int64_t top = 5;
  salient::cli::InputSettings input;
  salient::MethodSettings settings = salient::cli::tool_method_settings();
};

Options parse(int argc, char** argv) {
  Options o;
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {}, [&](const std::string& flag, const std::string& value) {
    if (flag == "--masker") {  // the maskers compared here, not a perturbation method's
      o.maskers = salient::cli::split_commas(value);
      return;
    }
    if (salient::cli::input_flag(flag, value, o.input) || salient::cli::method_flag(flag, value, o.settings)) return;
    if (flag == "--model") o.model = value;
    else if (flag == "--image") o.image = value;
    else if (flag == "--mask") o.mask = value;
    else if (flag == "--method") o.methods = salient::cli::split_commas(value);
    else if (flag == "--keep") {
      o.keep = salient::cli::parse_double(flag, value);
      if (!(o.keep > 0 && o.keep <= 1)) fail("--keep must be in (0, 1], got ", value);
    } else if (flag == "--target") {
      o.target = value == "top1" ? std::optional<int64_t>() : salient::cli::parse_int(flag, value, 0, std::numeric_limits<int64_t>::max());
    }
    else if (flag == "--top") o.top = salient::cli::parse_int(flag, value, 1, 1000);
    else if (flag == "--json") o.json = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (o.image.empty() || o.mask.empty() == o.methods.empty())
    fail("--image and one of --mask or --method are required (see --help)");
  if (o.maskers.empty()) fail("--masker needs at least one masker name");
  for (auto& m : o.methods) m = salient::find_method(m).name;  // validates, canonical names
  o.settings.normalization = o.input.normalization;
  if (o.model.empty()) o.model = salient::cli::shipped_model("salient-mask");
  return o;
}

// The keep-mask [1,1,S,S] of the `share` of pixels with the largest channel-summed values.
torch::Tensor most_important(const torch::Tensor& attribution, double share) {
  auto values = attribution[0].sum(0).flatten();
  const auto count = std::max<int64_t>(1, static_cast<int64_t>(std::llround(share * static_cast<double>(values.numel()))));
  auto keep = torch::zeros_like(values, torch::kFloat32);
  keep.index_fill_(0, std::get<1>(values.topk(count)), 1.0);
  return keep.view({1, 1, attribution.size(2), attribution.size(3)});
}

int run(int argc, char** argv) {
  auto options = parse(argc, argv);
  if (!options.json.empty()) salient::cli::check_output_file(options.json, "salient-mask");  // before any work
  salient::cli::configure_process(options.input.threads);
  std::vector<salient::AnyMasker> maskers;
  const salient::BaselineOptions baseline{.normalization = options.input.normalization, .seed = options.settings.seed};
  for (const auto& name : options.maskers) maskers.push_back(salient::make_masker(name, baseline));

  const auto preprocessing = options.input.preprocessing();
  auto photo = salient::load_image(options.image);
  auto input = salient::to_tensor(salient::normalize(salient::prepare_image(photo, preprocessing), options.input.normalization));
  torch::Tensor keep;  // --mask's [1,1,S,S], checked before the model loads
  if (!options.mask.empty()) {
    auto mask_photo = salient::load_image(options.mask);
    if (mask_photo.height != photo.height || mask_photo.width != photo.width)
      fail("mask '", options.mask, "' is ", mask_photo.width, "x", mask_photo.height, " but the image is ", photo.width,
           "x", photo.height, " (they must have the same size)");
    keep = (salient::to_tensor(salient::prepare_image(mask_photo, preprocessing)).mean(1, true) >= 0.5).to(torch::kFloat32);
  }
  auto model = salient::cli::load_model(options.model);
  const auto labels = salient::cli::class_labels(options.model, options.input);

  auto print = [](const std::string& title, const json& list) {
    std::cout << title << "\n";
    for (const auto& entry : list)
      std::cout << "  " << std::fixed << std::setprecision(1) << std::setw(5) << entry["probability"].get<double>() * 100
                << "%  " << entry["label"].get<std::string>() << " (" << entry["index"].get<int64_t>() << ")\n";
  };
  // Every masker's top classes with `keep`, printed under `title`.
  auto masked_predictions = [&](const torch::Tensor& keep, const std::string& title) {
    json list = json::array();
    for (const auto& masker : maskers) {
      auto top = salient::cli::top_classes(masker.outputs(model, input, keep), labels, options.top);
      print(title + "masker " + masker.name() + ":", top);
      list.push_back({{"masker", masker.name()}, {"top", top}});
    }
    return list;
  };

  const auto scores = model.forward(input);
  const auto unmasked = salient::cli::top_classes(scores, labels, options.top);
  json result{{"written_by", "salient-mask"}, {"model", options.model}, {"image", options.image}, {"unmasked", unmasked}};
  print("unmasked:", unmasked);
  if (keep.defined()) {
    const double kept = keep.mean().item<double>();
    std::cout << "mask " << options.mask << " keeps " << std::setprecision(3) << kept * 100 << "% of the pixels\n";
    result["mask"] = options.mask;
    result["kept_fraction"] = kept;
    result["maskers"] = masked_predictions(keep, "");
  } else {
    const int64_t target = options.target.value_or(unmasked[0]["index"].get<int64_t>());
    if (target >= scores.size(1)) fail("target class ", target, " is out of range for the model's classes");
    result["target"] = {{"index", target}, {"label", salient::cli::class_label(labels, target)}};
    result["keep"] = options.keep;
    result["methods"] = json::array();
    for (const auto& name : options.methods) {
      const auto& method = salient::find_method(name);
      auto important = most_important(method.run(model, input, salient::Target(target), options.settings), options.keep);
      const double kept = important.mean().item<double>();
      std::cout << method.name << ": keeping the " << std::setprecision(3) << kept * 100 << "% most important pixels for "
                << salient::cli::class_label(labels, target) << "\n";
      result["methods"].push_back({{"method", method.name}, {"parameters", method.parameters(options.settings)},
                                   {"kept_fraction", kept}, {"maskers", masked_predictions(important, "  ")}});
    }
  }
  if (!options.json.empty()) {
    std::ofstream out(options.json);
    if (!out) fail("cannot write '", options.json, "'");
    out << result.dump(2) << "\n";
  }
  return 0;
}

}  // namespace mask_tool

int salient_tool_mask(int argc, char** argv) {
  return salient::cli::main_guard("salient-mask", [&] { return mask_tool::run(argc, argv); });
}
