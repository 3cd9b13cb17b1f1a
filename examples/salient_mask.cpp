// salient-mask: what does the model predict without these pixels?
// Prints (and with --json writes) the top classes of an image with the pixels outside a
// keep-mask removed by each chosen masker, next to the unmasked prediction.
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/output.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;

namespace {

const char* usage = R"(usage: salient-mask --model m.pt --image f --mask keep.png [options]
  --model m.pt          TorchScript classifier
  --image f             photo (PNG/JPEG/BMP)
  --mask keep.png       same size as the photo; white (>= 0.5) = keep, black = remove
  --masker m1,m2,...    layer (layer masking), mean, black, grey, blur, noise (default: layer)
  --size S              shorter side resized to S, then a centre SxS crop (default 224, at most 2048)
  --normalize imagenet|none          input normalisation (default imagenet)
  --top K               classes to show (default 5, at most 1000)
  --labels file         class names, one per line (default: imagenet_classes.txt beside the model)
  --seed N              seed of the noise masker (default 0)
  --threads N           LibTorch threads (default: all cores, at most twice the cores)
  --json out.json       also write the result as JSON
)";

struct Options {
  std::string model, image, mask, labels, json;
  std::vector<std::string> maskers{"layer"};
  int64_t size = 224, top = 5;
  uint64_t seed = 0;
  salient::Normalization normalization = salient::Normalization::imagenet();
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

Options parse(int argc, char** argv) {
  Options o;
  salient::cli::parse_options(argc, argv, usage, {}, [&](const std::string& flag, const std::string& value) {
    if (flag == "--model") o.model = value;
    else if (flag == "--image") o.image = value;
    else if (flag == "--mask") o.mask = value;
    else if (flag == "--masker") o.maskers = salient::cli::split_commas(value);
    else if (flag == "--size") o.size = salient::cli::parse_int(flag, value, 1, salient::cli::max_input_size);
    else if (flag == "--normalize") o.normalization = salient::parse_normalization(value);
    else if (flag == "--top") o.top = salient::cli::parse_int(flag, value, 1, 1000);
    else if (flag == "--labels") o.labels = value;
    else if (flag == "--seed") o.seed = static_cast<uint64_t>(salient::cli::parse_int(flag, value, 0, salient::cli::max_seed));
    else if (flag == "--threads") o.threads = salient::cli::parse_threads(flag, value);
    else if (flag == "--json") o.json = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (o.model.empty() || o.image.empty() || o.mask.empty()) fail("--model, --image and --mask are required (see --help)");
  if (o.maskers.empty()) fail("--masker needs at least one masker name");
  return o;
}

int run(int argc, char** argv) {
  auto options = parse(argc, argv);
  if (!options.json.empty()) salient::cli::check_output_file(options.json, "salient-mask");  // before any work
  salient::cli::configure_process(options.threads);
  std::vector<salient::AnyMasker> maskers;
  const salient::BaselineOptions baseline{.normalization = options.normalization, .seed = options.seed};
  for (const auto& name : options.maskers) maskers.push_back(salient::make_masker(name, baseline));

  const salient::Preprocessing preprocessing{options.size, options.normalization};
  auto photo = salient::load_image(options.image);
  auto mask_photo = salient::load_image(options.mask);
  if (mask_photo.height != photo.height || mask_photo.width != photo.width)
    fail("mask '", options.mask, "' is ", mask_photo.width, "x", mask_photo.height, " but the image is ", photo.width,
         "x", photo.height, " (they must have the same size)");
  auto input = salient::to_tensor(salient::normalize(salient::prepare_image(photo, preprocessing), options.normalization));
  auto keep = (salient::to_tensor(salient::prepare_image(mask_photo, preprocessing)).mean(1, true) >= 0.5)
                  .to(torch::kFloat32);  // [1,1,S,S]
  const double kept = keep.mean().item<double>();

  auto model = salient::TorchModel::load(options.model);
  std::vector<std::string> labels;
  const fs::path label_file =
      options.labels.empty() ? fs::path(options.model).parent_path() / "imagenet_classes.txt" : fs::path(options.labels);
  if (!options.labels.empty() || fs::exists(label_file)) labels = salient::cli::read_labels(label_file);

  auto top_classes = [&](const torch::Tensor& logits) {
    salient::cli::checked_scores(logits);
    if (!labels.empty() && static_cast<int64_t>(labels.size()) != logits.size(1))
      fail("labels file has ", labels.size(), " names but the model has ", logits.size(1), " classes");
    auto probabilities = torch::softmax(logits, 1)[0];
    auto best = probabilities.topk(std::min<int64_t>(options.top, logits.size(1)));
    json list = json::array();
    for (int64_t k = 0; k < std::get<0>(best).size(0); ++k) {
      const int64_t c = std::get<1>(best)[k].item<int64_t>();
      list.push_back({{"index", c}, {"label", labels.empty() ? std::to_string(c) : labels[c]},
                      {"probability", std::get<0>(best)[k].item<double>()}});
    }
    return list;
  };
  auto print = [](const std::string& title, const json& list) {
    std::cout << title << "\n";
    for (const auto& entry : list)
      std::cout << "  " << std::fixed << std::setprecision(1) << std::setw(5) << entry["probability"].get<double>() * 100
                << "%  " << entry["label"].get<std::string>() << " (" << entry["index"].get<int64_t>() << ")\n";
  };

  json result{{"written_by", "salient-mask"}, {"model", options.model}, {"image", options.image}, {"mask", options.mask}, {"kept_fraction", kept},
              {"unmasked", top_classes(model.forward(input))}};
  std::cout << "image " << options.image << ", mask " << options.mask << " keeps " << std::setprecision(3) << kept * 100
            << "% of the pixels\n";
  print("unmasked:", result["unmasked"]);
  result["maskers"] = json::array();
  for (const auto& masker : maskers) {
    auto top = top_classes(masker.outputs(model, input, keep));
    print("masker " + masker.name() + ":", top);
    result["maskers"].push_back({{"masker", masker.name()}, {"top", top}});
  }
  if (!options.json.empty()) {
    std::ofstream out(options.json);
    if (!out) fail("cannot write '", options.json, "'");
    out << result.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return salient::cli::main_guard("salient-mask", [&] { return run(argc, argv); }); }
