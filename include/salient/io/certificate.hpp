#pragma once
// Top-k certificates on disk: a JSON file and one PNG per mask (white = keep) beside it, named
// "<json stem>_<mask>.png". The JSON refers to the PNGs by file name, relative to itself.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/analysis/certificate.hpp"
#include "salient/core/error.hpp"
#include "salient/io/detail/files.hpp"
#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"

namespace salient {

// The file name of mask `mask` of the certificate written to `json_path`.
inline std::string certificate_mask_file(const std::filesystem::path& json_path, const std::string& mask) {
  return json_path.stem().string() + "_" + mask + ".png";
}

// Writes the certificate to `json_path` and its masks beside it. Only what verify checks is
// written: a reader's extras (file names, class names) belong in a file of their own.
inline void save_certificate(const TopkCertificate& certificate, const std::filesystem::path& json_path) {
  std::map<std::string, std::string> files;
  for (const auto& [name, mask] : certificate.masks) {
    const std::string file = certificate_mask_file(json_path, name);
    save_png(to_image(mask.to(torch::kFloat).unsqueeze(0)), json_path.parent_path() / file);
    files[name] = file;
  }
  const auto j = to_json(certificate, files);
  const std::string text = j.dump(1) + "\n";
  detail::write_file_bytes(json_path, reinterpret_cast<const unsigned char*>(text.data()), text.size(), "certificate");
}

// Reads a certificate written by save_certificate (or by hand): malformed JSON, missing or
// unreadable mask files and masks of the wrong size give errors naming the file.
inline TopkCertificate load_certificate(const std::filesystem::path& json_path) {
  const auto bytes = detail::read_file_bytes(json_path, "certificate");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::parse_error& e) {
    detail::fail_io("cannot read certificate '", json_path.string(), "': malformed JSON (", e.what(), ")");
  }
  try {
    return certificate_from_json(j, [&](const std::string& file) {
      if (file.empty() || std::filesystem::path(file).filename() != file || file == "." || file == "..")
        detail::fail_io("mask file '", file, "' must be a file name in the certificate's folder");
      auto image = load_image(json_path.parent_path() / file);
      // White = keep; the PNG is grey (three equal channels after loading).
      return (to_tensor(image)[0][0] >= 0.5f).to(torch::kFloat);
    });
  } catch (const error& e) {
    detail::fail_io("cannot read certificate '", json_path.string(), "': ", e.what());
  }
}

}  // namespace salient
