#pragma once
// What the evaluation programs share: the sample photos as model inputs, Markdown rows.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/salient.hpp"

namespace salient::cli {

struct Photo {
  std::string name;
  torch::Tensor input;  // [1,3,224,224]
};

// The photos below a folder (not *_mask files; io/dataset.hpp's order), as model inputs.
inline std::vector<Photo> load_photos(const std::filesystem::path& dir, const Preprocessing& preprocessing = {}) {
  std::vector<Photo> photos;
  for (const auto& item : salient::image_folder(dir, {.skip_masks = true}).items)
    photos.push_back({item.key, salient::load_input(item.path, preprocessing)});
  return photos;
}

// A photo of a run over many: listed when the run starts, decoded when it is used, so memory
// does not grow with the list.
struct PhotoFile {
  std::filesystem::path file;
  std::string name;   // its key: the path below its --images folder, or the file's name
  int64_t index = 0;  // its place in the whole list (all shards)
};

// The photos of the --images sources (a folder: every image below it but *_mask files, in
// ImageFolder order; else a file), the first `limit` of them (0: all), then those of `shard`;
// `total`: how many there are in all shards.
inline std::vector<PhotoFile> list_photos(const std::vector<std::string>& sources, int64_t limit, const Shard& shard,
                                          int64_t& total) {
  std::vector<DatasetItem> files;
  for (const auto& source : sources) {
    if (std::filesystem::is_directory(source)) {
      const auto found = image_folder(source, {.skip_masks = true}).items;
      files.insert(files.end(), found.begin(), found.end());
    } else {
      if (!std::filesystem::is_regular_file(source)) raise(error_kind::bad_input, "--images '", source, "' is neither a folder nor a file");
      files.push_back({source, std::filesystem::path(source).filename().string()});
    }
  }
  if (limit > 0 && static_cast<int64_t>(files.size()) > limit) files.resize(static_cast<std::size_t>(limit));
  total = static_cast<int64_t>(files.size());
  std::vector<PhotoFile> photos;
  for (std::size_t index = 0; index < files.size(); ++index)
    if (!shard_items({files[index]}, shard).empty()) photos.push_back({files[index].path, files[index].key, static_cast<int64_t>(index)});
  return photos;
}

// A photo of a dataset run as a model input; with `skip_bad`, nothing when it cannot be read:
// the tool says which and why, and `skipped` becomes its entry (name, index, source, reason).
inline std::optional<torch::Tensor> read_photo(const char* tool, const PhotoFile& photo, const Preprocessing& preprocessing,
                                               bool skip_bad, nlohmann::json& skipped) {
  try {
    return load_input(photo.file, preprocessing);
  } catch (const salient::error& e) {
    if (!skip_bad) throw;
    std::cerr << tool << ": skipping " << photo.file.string() << ": " << e.what() << "\n";
    skipped = {{"name", photo.name}, {"index", photo.index}, {"source", photo.file.string()}, {"reason", e.what()}};
    return std::nullopt;
  }
}

inline void print_row(const std::vector<std::string>& cells) {
  std::cout << "|";
  for (const auto& c : cells) std::cout << " " << c << " |";
  std::cout << "\n";
}
inline std::string number(double v, int digits = 3) {
  std::ostringstream out;
  out << std::setprecision(digits) << v;
  return out.str();
}

}  // namespace salient::cli
