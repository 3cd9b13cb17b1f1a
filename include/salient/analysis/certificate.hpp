#pragma once
// Counterfactual certificates for top-k disambiguation (paper 2 of PAPERS.md): a set of masks
// (1 = keep), the name of the masker that applies them, and claims about which classes are and
// are not among the model's k highest outputs on each masked input. `verify` checks every
// claim by running only the model on the masked inputs: no attribution, no segmentation, so
// anyone with the model and the image can check a verdict without trusting the method.
//
// JSON form (io/certificate.hpp writes it with one PNG per mask):
//   {"format": "salient-topk-certificate/1", "relation": "two_entities", "class_a": 171,
//    "class_b": 195, "k": 5, "masker": "layer", "height": 224, "width": 224,
//    "masks": {"A": "A.png", ...}, "claims": [{"mask": "A", "in_top_k": [171],
//    "not_in_top_k": [195]}, ...]}
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"

namespace salient {

// How two top-k predictions relate: each driven by its own entity, or both by one entity
// (two guesses about the same thing), or no certificate either way was found.
enum class EntityRelation { two_entities, one_entity, undecided };

inline std::string_view to_string(EntityRelation relation) {
  switch (relation) {
    case EntityRelation::two_entities: return "two_entities";
    case EntityRelation::one_entity: return "one_entity";
    case EntityRelation::undecided: return "undecided";
  }
  return "undecided";
}

inline EntityRelation parse_entity_relation(std::string_view name) {
  for (auto r : {EntityRelation::two_entities, EntityRelation::one_entity, EntityRelation::undecided})
    if (name == to_string(r)) return r;
  detail::fail("unknown relation '", name, "' (expected two_entities, one_entity or undecided)");
}

// A claim about the model's top-k on the input with one of the certificate's masks applied.
struct TopkClaim {
  std::string mask;                   // the mask's name in the certificate
  std::vector<int64_t> in_top_k;      // classes that must be among the k highest outputs
  std::vector<int64_t> not_in_top_k;  // classes that must not be
};

struct TopkCertificate {
  EntityRelation relation = EntityRelation::undecided;
  int64_t class_a = 0, class_b = 0, k = 5;
  std::string masker = "layer";                 // make_masker() name: how masked pixels are removed
  int64_t height = 0, width = 0;                // the model input's size the masks belong to
  std::map<std::string, torch::Tensor> masks;  // name -> [H,W] float, 1 = keep
  std::vector<TopkClaim> claims;
};

struct ClaimCheck {
  TopkClaim claim;
  bool holds = false;
  std::vector<int64_t> top_k;  // the model's k highest classes on the masked input, best first
};

struct Verification {
  std::vector<ClaimCheck> checks;
  bool holds() const {
    return !checks.empty() && std::all_of(checks.begin(), checks.end(), [](const ClaimCheck& c) { return c.holds; });
  }
};

// The k highest classes of one output row [classes], best first (ties: the lower index first).
inline std::vector<int64_t> top_k_of(const torch::Tensor& row, int64_t k) {
  if (row.dim() != 1) detail::fail("top-k of an output needs one row of class scores, got shape ", shape_string(row));
  if (k < 1 || k > row.size(0)) detail::fail("k = ", k, " is out of range for a model with ", row.size(0), " classes (expected 1..", row.size(0), ")");
  auto indices = std::get<1>(torch::topk(row.to(torch::kDouble), k, 0, /*largest=*/true, /*sorted=*/true));
  indices = indices.contiguous().to(torch::kLong);
  return {indices.data_ptr<int64_t>(), indices.data_ptr<int64_t>() + k};
}

namespace detail {
inline bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

inline bool claim_holds(const TopkClaim& claim, const std::vector<int64_t>& top) {
  return std::all_of(claim.in_top_k.begin(), claim.in_top_k.end(), [&](int64_t c) { return contains(top, c); }) &&
         std::none_of(claim.not_in_top_k.begin(), claim.not_in_top_k.end(), [&](int64_t c) { return contains(top, c); });
}

// Checks what can be checked without a model: masks present, of the right size and binary;
// classes in range; every claim names a mask.
inline void check_certificate(const TopkCertificate& c, int64_t classes) {
  if (c.k < 1 || (classes > 0 && c.k > classes))
    fail("certificate: k = ", c.k, " is out of range for a model with ", classes, " classes");
  if (c.height < 1 || c.width < 1) fail("certificate: image size ", c.height, "x", c.width, " is not valid");
  if (c.claims.empty()) fail("certificate: no claims");
  for (const auto& [name, mask] : c.masks) {
    if (mask.dim() != 2 || mask.size(0) != c.height || mask.size(1) != c.width)
      fail("certificate: mask '", name, "' has shape ", shape_string(mask), " but the certificate is for ", c.height, "x",
           c.width, " inputs");
    if (!mask.eq(0).logical_or(mask.eq(1)).all().item<bool>()) fail("certificate: mask '", name, "' is not binary (0 or 1)");
  }
  for (const auto& claim : c.claims) {
    if (!c.masks.count(claim.mask)) fail("certificate: a claim refers to mask '", claim.mask, "', which the certificate does not have");
    if (claim.in_top_k.empty() && claim.not_in_top_k.empty()) fail("certificate: the claim on mask '", claim.mask, "' claims nothing");
    for (const auto* list : {&claim.in_top_k, &claim.not_in_top_k})
      for (int64_t cls : *list)
        if (cls < 0 || (classes > 0 && cls >= classes))
          fail("certificate: class ", cls, " out of range [0, ", classes, ")");
  }
}
}  // namespace detail

// Checks every claim of `certificate` on `input` [1,C,H,W] by running the model on the masked
// inputs (one batch through the certificate's masker; forward passes only).
inline Verification verify(TorchModel& model, const torch::Tensor& input, const TopkCertificate& certificate,
                           const MaskerOptions& options = {}) {
  if (input.dim() != 4 || input.size(0) != 1) detail::fail("verify takes one input [1,C,H,W], got shape ", shape_string(input));
  if (input.size(2) != certificate.height || input.size(3) != certificate.width)
    detail::fail("the certificate is for ", certificate.height, "x", certificate.width, " inputs, but the input is ",
                 input.size(2), "x", input.size(3));
  detail::check_certificate(certificate, /*classes=*/0);
  std::vector<std::string> names;
  std::vector<torch::Tensor> masks;
  for (const auto& claim : certificate.claims)
    if (std::find(names.begin(), names.end(), claim.mask) == names.end()) {
      names.push_back(claim.mask);
      masks.push_back(certificate.masks.at(claim.mask).to(input.options()));
    }
  auto outputs = make_masker(certificate.masker).outputs(model, input, torch::stack(masks).unsqueeze(1), options);
  if (outputs.dim() != 2) detail::fail("verify needs a classifier's outputs [N, classes], got shape ", shape_string(outputs));
  detail::check_certificate(certificate, outputs.size(1));
  Verification result;
  for (const auto& claim : certificate.claims) {
    const auto row = std::find(names.begin(), names.end(), claim.mask) - names.begin();
    auto top = top_k_of(outputs[row], certificate.k);
    result.checks.push_back({claim, detail::claim_holds(claim, top), std::move(top)});
  }
  return result;
}

// JSON with the masks given by file name (mask name -> file).
inline nlohmann::json to_json(const TopkCertificate& c, const std::map<std::string, std::string>& mask_files) {
  nlohmann::json claims = nlohmann::json::array();
  for (const auto& claim : c.claims)
    claims.push_back({{"mask", claim.mask}, {"in_top_k", claim.in_top_k}, {"not_in_top_k", claim.not_in_top_k}});
  nlohmann::json masks = nlohmann::json::object();
  for (const auto& [name, _] : c.masks) masks[name] = mask_files.at(name);
  return {{"format", "salient-topk-certificate/1"},
          {"relation", std::string(to_string(c.relation))},
          {"class_a", c.class_a},
          {"class_b", c.class_b},
          {"k", c.k},
          {"masker", c.masker},
          {"height", c.height},
          {"width", c.width},
          {"masks", masks},
          {"claims", claims}};
}

// The certificate of a JSON document; `load_mask(file)` returns the [H,W] mask of a file named
// in it. Malformed documents give errors that name the field.
inline TopkCertificate certificate_from_json(const nlohmann::json& j,
                                            const std::function<torch::Tensor(const std::string&)>& load_mask) {
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(name)) detail::fail("certificate: missing field '", name, "'");
    return j.at(name);
  };
  try {
    if (field("format").get<std::string>() != "salient-topk-certificate/1")
      detail::fail("certificate: unknown format '", field("format").get<std::string>(), "' (expected salient-topk-certificate/1)");
    TopkCertificate c;
    c.relation = parse_entity_relation(field("relation").get<std::string>());
    c.class_a = field("class_a").get<int64_t>();
    c.class_b = field("class_b").get<int64_t>();
    c.k = field("k").get<int64_t>();
    c.masker = field("masker").get<std::string>();
    c.height = field("height").get<int64_t>();
    c.width = field("width").get<int64_t>();
    if (!field("masks").is_object()) detail::fail("certificate: 'masks' must be an object of mask name -> file");
    for (const auto& [name, file] : field("masks").items()) c.masks[name] = load_mask(file.get<std::string>());
    if (!field("claims").is_array()) detail::fail("certificate: 'claims' must be an array");
    for (const auto& claim : field("claims")) {
      if (!claim.is_object() || !claim.contains("mask")) detail::fail("certificate: a claim without 'mask'");
      c.claims.push_back({claim.at("mask").get<std::string>(), claim.value("in_top_k", std::vector<int64_t>{}),
                          claim.value("not_in_top_k", std::vector<int64_t>{})});
    }
    detail::check_certificate(c, /*classes=*/0);
    return c;
  } catch (const nlohmann::json::exception& e) {
    detail::fail("certificate: a field has the wrong type (", e.what(), ")");
  }
}

}  // namespace salient
