#pragma once
// Top-k certificates on disk: a JSON file and one PNG per mask (white = keep) beside it, named
// "<json stem>_<mask>.png". The JSON refers to the PNGs by file name, relative to itself. The
// JSON form (to_json, certificate_from_json) is here too; analysis/certificate.hpp holds what a
// certificate claims and how verify() checks it.
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
#include "salient/io/detail/files.hpp"
#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"

namespace salient {

inline constexpr std::string_view certificate_format = "salient-topk-certificate/2";

// JSON with the masks given by file name (mask name -> file).
inline nlohmann::json to_json(const TopkCertificate& c, const std::map<std::string, std::string>& mask_files) {
  nlohmann::json claims = nlohmann::json::array();
  for (const auto& claim : c.claims)
    claims.push_back({{"mask", claim.mask}, {"in_top_k", claim.in_top_k}, {"not_in_top_k", claim.not_in_top_k}});
  nlohmann::json masks = nlohmann::json::object();
  for (const auto& [name, _] : c.masks) masks[name] = mask_files.at(name);
  nlohmann::json subject = nlohmann::json::object();
  for (const auto& [role, digest] : c.subject) subject[role] = {{"sha256", digest}};
  return {{"format", std::string(certificate_format)},
          {"relation", std::string(to_string(c.relation))},
          {"class_a", c.class_a},
          {"class_b", c.class_b},
          {"k", c.k},
          {"masker", c.masker},
          {"height", c.height},
          {"width", c.width},
          {"masks", masks},
          {"claims", claims},
          {"subject", subject}};
}

// The certificate of a JSON document; `load_mask(file)` returns the [H,W] mask of a file named
// in it. Every field is read strictly (integers must be integers, no field may be missing or
// unknown), and the result must pass detail::check_certificate; errors name the field.
inline TopkCertificate certificate_from_json(const nlohmann::json& j,
                                            const std::function<torch::Tensor(const std::string&)>& load_mask) {
  using nlohmann::json;
  auto object = [](const json& value, const std::string& what, std::initializer_list<const char*> known) {
    if (!value.is_object()) detail::fail("certificate: ", what, " must be a JSON object");
    for (const auto& [key, _] : value.items())
      if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; }))
        detail::fail("certificate: unknown field '", key, "' in ", what);
    for (const char* k : known)
      if (!value.contains(k)) detail::fail("certificate: missing field '", k, "' in ", what);
  };
  auto integer = [](const json& value, const std::string& what) {
    if (!value.is_number_integer()) detail::fail("certificate: '", what, "' must be an integer, got ", value.dump());
    return value.get<int64_t>();
  };
  auto text = [](const json& value, const std::string& what) {
    if (!value.is_string()) detail::fail("certificate: '", what, "' must be a string, got ", value.dump());
    return value.get<std::string>();
  };
  auto classes = [&](const json& value, const std::string& what) {
    if (!value.is_array()) detail::fail("certificate: '", what, "' must be an array of classes, got ", value.dump());
    std::vector<int64_t> list;
    for (const auto& c : value) list.push_back(integer(c, what + " element"));
    return list;
  };
  object(j, "the document",
         {"format", "relation", "class_a", "class_b", "k", "masker", "height", "width", "masks", "claims", "subject"});
  if (text(j["format"], "format") != certificate_format)
    detail::fail("certificate: unknown format '", j["format"].get<std::string>(), "' (expected ", certificate_format, ")");
  TopkCertificate c;
  c.relation = parse_entity_relation(text(j["relation"], "relation"));
  c.class_a = integer(j["class_a"], "class_a");
  c.class_b = integer(j["class_b"], "class_b");
  c.k = integer(j["k"], "k");
  c.masker = text(j["masker"], "masker");
  c.height = integer(j["height"], "height");
  c.width = integer(j["width"], "width");
  if (!j["claims"].is_array()) detail::fail("certificate: 'claims' must be an array");
  for (const auto& claim : j["claims"]) {
    object(claim, "a claim", {"mask", "in_top_k", "not_in_top_k"});
    c.claims.push_back({text(claim["mask"], "mask"), classes(claim["in_top_k"], "in_top_k"),
                        classes(claim["not_in_top_k"], "not_in_top_k")});
  }
  if (!j["subject"].is_object()) detail::fail("certificate: 'subject' must be an object of role -> {\"sha256\": ...}");
  for (const auto& [role, entry] : j["subject"].items()) {
    object(entry, "subject '" + role + "'", {"sha256"});
    const auto digest = text(entry["sha256"], "sha256");
    if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos)
      detail::fail("certificate: the sha256 of '", role, "' is not 64 lower-case hex digits");
    c.subject[role] = digest;
  }
  if (!j["masks"].is_object()) detail::fail("certificate: 'masks' must be an object of mask name -> file");
  // The form is checked before any mask file is read (sizes are bounded, names are the relation's).
  for (const auto& [name, file] : j["masks"].items()) c.masks[name] = torch::Tensor();
  detail::check_certificate_form(c, /*classes=*/0);
  for (const auto& [name, file] : j["masks"].items()) c.masks[name] = load_mask(text(file, "masks." + name));
  detail::check_certificate<TorchBackend>(c, /*classes=*/0);
  return c;
}

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
