#pragma once
// Top-k certificates on disk: a JSON file and one PNG per mask (white = keep) beside it, named
// "<json stem>_<mask>.png". The JSON refers to the PNGs by file name, relative to itself. The
// JSON form (to_json, certificate_from_json) is io/certificate_json.hpp; analysis/certificate.hpp
// holds what a certificate claims and how verify() checks it.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/analysis/certificate.hpp"
#include "salient/analysis/torch_certificate.hpp"
#include "salient/core/error.hpp"
#include "salient/io/certificate_json.hpp"
#include "salient/io/detail/files.hpp"
#include "salient/io/detail/sha256.hpp"
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
  const auto j = certificate_document(bytes.data(), bytes.size(), "certificate '" + json_path.string() + "'");
  try {
    return certificate_from_json<TorchBackend>(j, [&](const std::string& file) {
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

// A file a certificate is about, and its SHA-256 (read once, before any check).
struct SubjectFile {
  std::filesystem::path path;
  std::string sha256;
};

inline SubjectFile subject_file(const std::filesystem::path& path, std::string_view kind) {
  return {path, detail::file_sha256(path, kind)};
}

// Checks that `certificate` is about exactly the files given (role -> file: "model", "image",
// "composite"): every role it names must be given with the SHA-256 it holds, and every given
// role must be named. A certificate about other files proves nothing about these.
inline void check_certificate_subject(const TopkCertificate& certificate, const std::map<std::string, SubjectFile>& files) {
  for (const auto& [role, file] : files) {
    if (!certificate.subject.count(role))
      detail::fail("the certificate does not name the ", role, " it is about (no sha256 of it)");
    if (certificate.subject.at(role) != file.sha256)
      detail::fail("the certificate is about another ", role, " file (sha256 ", certificate.subject.at(role).substr(0, 12),
                   "..., ", file.path.string(), " has ", file.sha256.substr(0, 12), "...)");
  }
  for (const auto& [role, _] : certificate.subject)
    if (!files.count(role)) detail::fail("the certificate is about a ", role, " file that was not given");
}

}  // namespace salient
