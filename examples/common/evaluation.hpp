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

// The photos below a folder (not *_mask files; io/dataset.hpp's order), as model inputs.
inline std::vector<Photo> load_photos(const std::filesystem::path& dir, const Preprocessing& preprocessing = {}) {
  std::vector<Photo> photos;
  for (const auto& item : salient::image_folder(dir, {.skip_masks = true}).items)
    photos.push_back({item.key, salient::load_input(item.path, preprocessing)});
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
