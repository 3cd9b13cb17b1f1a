#pragma once
// A top-k certificate's JSON form (analysis/certificate.hpp describes it), for any tensor
// backend and without files: io/certificate.hpp reads and writes it with its PNG masks for
// TorchModel; the fuzz target reads it with xtensor masks.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "salient/analysis/certificate.hpp"
#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"

namespace salient {

inline constexpr std::string_view certificate_format = "salient-topk-certificate/2";

// JSON with the masks given by file name (mask name -> file).
template <class Tensor>
nlohmann::json to_json(const BasicTopkCertificate<Tensor>& c, const std::map<std::string, std::string>& mask_files) {
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

// The JSON document in a certificate file's bytes; malformed JSON is an I/O error naming `what`.
inline nlohmann::json certificate_document(const unsigned char* bytes, std::size_t size, const std::string& what) {
  try {
    return nlohmann::json::parse(bytes, bytes + size);
  } catch (const nlohmann::json::exception& e) {  // parse errors, and numbers out of range (1e999)
    detail::fail_io("cannot read ", what, ": malformed JSON (", e.what(), ")");
  }
}

// The certificate of a JSON document; `load_mask(file)` returns the [H,W] mask of a file named
// in it. Every field is read strictly (integers must be integers, no field may be missing or
// unknown), and the result must pass detail::check_certificate; errors name the field.
template <TensorBackend B>
BasicTopkCertificate<typename B::Tensor> certificate_from_json(
    const nlohmann::json& j, const std::function<typename B::Tensor(const std::string&)>& load_mask) {
  using nlohmann::json;
  auto object = [](const json& value, const std::string& what, std::initializer_list<const char*> known) {
    if (!value.is_object()) detail::fail("certificate: ", what, " must be a JSON object");
    for (const auto& item : value.items())
      if (const auto& key = item.key(); std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; }))
        detail::fail("certificate: unknown field '", key, "' in ", what);
    for (const char* k : known)
      if (!value.contains(k)) detail::fail("certificate: missing field '", k, "' in ", what);
  };
  // A wrong value as the error shows it: scalars as written (cut at 40 characters), arrays and
  // objects by kind (dumping them recurses as deep as the document nests).
  auto shown = [](const json& value) -> std::string {
    if (value.is_array()) return "an array";
    if (value.is_object()) return "an object";
    const auto text = value.dump();
    return text.size() <= 40 ? text : text.substr(0, 40) + "...";
  };
  auto integer = [&](const json& value, const std::string& what) {
    if (!value.is_number_integer() ||
        (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
      detail::fail("certificate: '", what, "' must be an integer, got ", shown(value));
    return value.get<int64_t>();
  };
  auto text = [&](const json& value, const std::string& what) {
    if (!value.is_string()) detail::fail("certificate: '", what, "' must be a string, got ", shown(value));
    return value.get<std::string>();
  };
  auto classes = [&](const json& value, const std::string& what) {
    if (!value.is_array()) detail::fail("certificate: '", what, "' must be an array of classes, got ", shown(value));
    std::vector<int64_t> list;
    for (const auto& c : value) list.push_back(integer(c, what + " element"));
    return list;
  };
  object(j, "the document",
         {"format", "relation", "class_a", "class_b", "k", "masker", "height", "width", "masks", "claims", "subject"});
  if (text(j["format"], "format") != certificate_format)
    detail::fail("certificate: unknown format '", j["format"].get<std::string>(), "' (expected ", certificate_format, ")");
  BasicTopkCertificate<typename B::Tensor> c;
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
  for (const auto& [name, file] : j["masks"].items()) c.masks[name] = typename B::Tensor();
  detail::check_certificate_form(c, /*classes=*/0);
  for (const auto& [name, file] : j["masks"].items()) c.masks[name] = load_mask(text(file, "masks." + name));
  detail::check_certificate<B>(c, /*classes=*/0);
  return c;
}

}  // namespace salient
