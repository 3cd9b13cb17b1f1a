#pragma once
// The input flags every tool shares (salient-explain, -mask, -sanity, -topk): --size,
// --normalize, --labels and --threads are read and checked in one place (--batch-size and
// --seed come with the method flags, common/method_settings.hpp), and so are the class-name
// lookup and the top-k JSON built on them.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"

#include "common/cli.hpp"

namespace salient::cli {

struct InputSettings {
  int64_t size = 224;                 // shorter side resized to this, then a centre square crop
  bool size_given = false;            // --size was given (some tools then change their own default)
  std::string normalize = "imagenet";  // the spelling, for summaries
  Normalization normalization = Normalization::imagenet();
  std::string labels;                 // --labels; "": imagenet_classes.txt beside the model, if there
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  Preprocessing preprocessing() const { return {size, normalization}; }
};

// Help lines of the shared input flags, with `settings`' defaults.
inline std::string input_flags_help(const InputSettings& settings = {}) {
  return "  --size S              shorter side resized to S, then a centre SxS crop (default " + std::to_string(settings.size) +
         ", at most " + std::to_string(max_input_size) + R"()
  --normalize imagenet|none          input normalisation (default )" + settings.normalize + R"()
  --labels FILE         class names, one per line (default: imagenet_classes.txt beside the model)
  --threads N           LibTorch threads (default: all cores, at most twice the cores)
)";
}

// Reads one shared input flag into `settings`; false when `flag` is not one of them.
inline bool input_flag(const std::string& flag, const std::string& value, InputSettings& settings) {
  if (flag == "--size") {
    settings.size = parse_int(flag, value, 1, max_input_size);
    settings.size_given = true;
  } else if (flag == "--normalize") {
    settings.normalization = parse_normalization(value);
    settings.normalize = value;
  } else if (flag == "--labels") {
    settings.labels = value;
  } else if (flag == "--threads") {
    settings.threads = parse_threads(flag, value);
  } else {
    return false;
  }
  return true;
}

// The repository's data/ folder (MobileNetV2, its class names, eight photos): SALIENT_DATA, else
// the source tree the tools were built from.
inline std::filesystem::path shipped_data() {
  if (const char* env = std::getenv("SALIENT_DATA"); env && *env) return env;
  return SALIENT_DATA_DIR;
}

// --model's default: data/'s MobileNetV2 (said on stderr, once), or why it cannot be.
inline std::string shipped_model(const std::string& tool) {
  const auto model = shipped_data() / "models" / "mobilenet_v2_imagenet.pt";
  if (!std::filesystem::is_regular_file(model))
    fail("no --model given and the shipped MobileNetV2 is not at '", model.string(),
         "' (give --model, or set SALIENT_DATA to the repository's data folder)");
  std::cerr << tool << ": no --model given: MobileNetV2 (ImageNet) from " << model.string() << "\n";
  return model.string();
}

// The shipped photos (data/images/*.png, *.jpg), sorted by name.
inline std::vector<std::string> shipped_photos() {
  const auto folder = shipped_data() / "images";
  std::vector<std::string> photos;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const auto extension = entry.path().extension();
    if (entry.is_regular_file() && (extension == ".png" || extension == ".jpg")) photos.push_back(entry.path().string());
  }
  if (photos.empty()) fail("no photos in '", folder.string(), "' (set SALIENT_DATA to the repository's data folder)");
  std::sort(photos.begin(), photos.end());
  return photos;
}

// The class names for `model`: --labels, else imagenet_classes.txt beside the model; none when
// neither is given or there.
inline std::vector<std::string> class_labels(const std::filesystem::path& model, const InputSettings& settings) {
  if (!settings.labels.empty()) return read_labels(settings.labels);
  const auto beside = model.parent_path() / "imagenet_classes.txt";
  return std::filesystem::exists(beside) ? read_labels(beside) : std::vector<std::string>{};
}

// A class's name, or its index when there are no names.
inline std::string class_label(const std::vector<std::string>& labels, int64_t c) {
  return c >= 0 && c < static_cast<int64_t>(labels.size()) ? labels[static_cast<std::size_t>(c)] : std::to_string(c);
}

// Fails unless `labels` is empty or names every class of the model.
inline void check_label_count(const std::vector<std::string>& labels, int64_t classes) {
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != classes)
    fail("labels file has ", labels.size(), " names but the model has ", classes, " classes");
}

// The `k` most probable classes of one item's scores [1,K] as [{index, label, probability}].
// One entry of a top-k list, as every tool writes it.
inline nlohmann::json top_class(const std::vector<std::string>& labels, int64_t index, double probability) {
  return {{"index", index}, {"label", class_label(labels, index)}, {"probability", probability}};
}

inline nlohmann::json top_classes(const torch::Tensor& scores, const std::vector<std::string>& labels, int64_t k) {
  checked_scores(scores);
  check_label_count(labels, scores.size(1));
  const auto probabilities = torch::softmax(scores.to(torch::kDouble), 1)[0];
  const auto [values, indices] = probabilities.topk(std::min<int64_t>(k, scores.size(1)));
  auto list = nlohmann::json::array();
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int64_t c = indices[i].item<int64_t>();
    list.push_back(top_class(labels, c, values[i].item<double>()));
  }
  return list;
}

}  // namespace salient::cli
