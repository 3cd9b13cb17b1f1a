#pragma once
// What the evaluation programs share: the sample photos as model inputs, Markdown rows.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/salient.hpp"

namespace salient::cli {

struct Photo {
  std::string name;
  torch::Tensor input;  // [1,3,224,224]
};

// The photos of a folder (PNG/JPEG, not *_mask files), sorted by name, as 224x224 inputs.
inline std::vector<Photo> load_photos(const std::filesystem::path& dir, const Preprocessing& preprocessing = {}) {
  std::vector<Photo> photos;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto ext = entry.path().extension().string();
    const auto stem = entry.path().stem().string();
    if ((ext == ".png" || ext == ".jpg") && stem.find("_mask") == std::string::npos) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) raise(error_kind::io, "no photos in '", dir.string(), "'");
  for (const auto& file : files) photos.push_back({file.filename().string(), salient::load_input(file, preprocessing)});
  return photos;
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
