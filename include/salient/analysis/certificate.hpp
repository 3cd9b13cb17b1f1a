#pragma once
// Counterfactual certificates for top-k disambiguation ("Two guesses or one? Disambiguating
// top-k predictions"): a set of masks (1 = keep), the name of the masker that applies them, and
// claims about which classes are and are not among the model's k highest outputs on each
// masked input. `verify` checks every claim by running only the model on the masked inputs: no
// attribution, no segmentation, so anyone with the model and the image can check a verdict
// without trusting the method. Written for any ForwardModel (LibTorch-free); TorchModel's
// `TopkCertificate` and the verify that makes the named masker itself are in
// analysis/torch_certificate.hpp.
//
// JSON form (io/certificate.hpp writes it with one PNG per mask):
//   {"format": "salient-topk-certificate/2", "relation": "two_entities", "class_a": 171,
//    "class_b": 195, "k": 5, "masker": "layer", "height": 224, "width": 224,
//    "masks": {"A": "A.png", "B": "B.png"}, "claims": [{"mask": "A", "in_top_k": [171],
//    "not_in_top_k": [195]}, {"mask": "B", "in_top_k": [195], "not_in_top_k": [171]}],
//    "subject": {"model": {"sha256": "..."}, "image": {"sha256": "..."}}}
//
// A certificate proves its verdict only as a whole: verify derives the claims the relation
// needs from the relation and the two classes (required_claims) and rejects a certificate whose
// claims, masks or fields differ in any way, before it runs the model.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/masking/masker.hpp"

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

template <class Tensor>
struct BasicTopkCertificate {
  EntityRelation relation = EntityRelation::undecided;
  int64_t class_a = 0, class_b = 0, k = 5;
  std::string masker = "layer";          // the masker's name: how masked pixels are removed
  int64_t height = 0, width = 0;         // the model input's size the masks belong to
  std::map<std::string, Tensor> masks;  // name -> [H,W], 1 = keep
  std::vector<TopkClaim> claims;
  // What the verdict is about: role ("model", "image", "composite") -> SHA-256 of that file.
  // verify() sees tensors, not files; salient-topk verify checks these against its files.
  std::map<std::string, std::string> subject;
};

// Sides of a certificate's input beyond this are refused before any mask is read.
inline constexpr int64_t max_certificate_side = 4096;

struct ClaimCheck {
  TopkClaim claim;
  bool holds = false;
  std::vector<int64_t> top_k;  // the model's k highest classes on the masked input, best first
};

struct Verification {
  std::vector<int64_t> image_top_k;  // the model's top-k on the unmasked input: must hold both classes
  bool classes_in_top_k = false;
  std::vector<ClaimCheck> checks;
  bool holds() const {
    return classes_in_top_k && !checks.empty() &&
           std::all_of(checks.begin(), checks.end(), [](const ClaimCheck& c) { return c.holds; });
  }
};

// The k highest classes of one output row of class scores, best first (ties: the lower index
// first).
inline std::vector<int64_t> top_k_of(const std::vector<double>& row, int64_t k) {
  const auto classes = static_cast<int64_t>(row.size());
  if (k < 1 || k > classes) detail::fail("k = ", k, " is out of range for a model with ", classes, " classes (expected 1..", classes, ")");
  std::vector<int64_t> order(row.size());
  for (int64_t c = 0; c < classes; ++c) order[static_cast<std::size_t>(c)] = c;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return row[x] > row[y]; });
  order.resize(static_cast<std::size_t>(k));
  return order;
}

// The claims that prove `relation` for classes a and b, derived from nothing else: a
// certificate proves its verdict only when its claims are exactly these.
//   two_entities: keeping only A, a is in the top-k and b is not; keeping only B, b is and a is
//                 not (A and B disjoint).
//   one_entity:   keeping only E, both are in the top-k; keeping all but E, neither is.
inline std::vector<TopkClaim> required_claims(EntityRelation relation, int64_t a, int64_t b) {
  switch (relation) {
    case EntityRelation::two_entities: return {{"A", {a}, {b}}, {"B", {b}, {a}}};
    case EntityRelation::one_entity: return {{"E", {a, b}, {}}, {"without_E", {}, {a, b}}};
    case EntityRelation::undecided: break;
  }
  detail::fail("certificate: relation 'undecided' has no certificate (expected two_entities or one_entity)");
}

namespace detail {
inline bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

inline bool claim_holds(const TopkClaim& claim, const std::vector<int64_t>& top) {
  return std::all_of(claim.in_top_k.begin(), claim.in_top_k.end(), [&](int64_t c) { return contains(top, c); }) &&
         std::none_of(claim.not_in_top_k.begin(), claim.not_in_top_k.end(), [&](int64_t c) { return contains(top, c); });
}

inline std::string describe_claim(const TopkClaim& claim) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  return "mask '" + claim.mask + "': in_top_k " + list(claim.in_top_k) + ", not_in_top_k " + list(claim.not_in_top_k);
}

inline bool same_claim(const TopkClaim& x, const TopkClaim& y) {
  auto sorted = [](std::vector<int64_t> v) { return std::sort(v.begin(), v.end()), v; };
  return x.mask == y.mask && sorted(x.in_top_k) == sorted(y.in_top_k) && sorted(x.not_in_top_k) == sorted(y.not_in_top_k);
}

// The form of a certificate, without its masks' contents: the claims are exactly those the
// relation requires for the two classes named, the masks are exactly the ones they use; k,
// classes and size in range (`classes` 0: not known yet).
template <class Tensor>
void check_certificate_form(const BasicTopkCertificate<Tensor>& c, int64_t classes) {
  if (c.k < 1 || (classes > 0 && c.k > classes))
    fail("certificate: k = ", c.k, " is out of range for a model with ", classes, " classes");
  if (c.height < 1 || c.width < 1 || c.height > max_certificate_side || c.width > max_certificate_side)
    fail("certificate: input size ", c.height, "x", c.width, " is not valid (each side 1..", max_certificate_side, ")");
  for (int64_t cls : {c.class_a, c.class_b})
    if (cls < 0 || (classes > 0 && cls >= classes)) fail("certificate: class ", cls, " out of range [0, ", classes, ")");
  if (c.class_a == c.class_b) fail("certificate: class_a and class_b are both ", c.class_a, " (a pair needs two classes)");
  const auto required = required_claims(c.relation, c.class_a, c.class_b);
  for (const auto& claim : c.claims)
    for (const auto* list : {&claim.in_top_k, &claim.not_in_top_k})
      for (int64_t cls : *list)
        if (cls < 0 || (classes > 0 && cls >= classes)) fail("certificate: class ", cls, " out of range [0, ", classes, ")");
  for (const auto& claim : c.claims)
    if (std::none_of(required.begin(), required.end(), [&](const TopkClaim& r) { return same_claim(r, claim); }))
      fail("certificate: the claim on ", describe_claim(claim), " is not one that proves ", to_string(c.relation), " for classes ",
           c.class_a, " and ", c.class_b);
  for (const auto& r : required) {
    const auto n = std::count_if(c.claims.begin(), c.claims.end(), [&](const TopkClaim& claim) { return same_claim(r, claim); });
    if (n != 1)
      fail("certificate: ", to_string(c.relation), " for classes ", c.class_a, " and ", c.class_b, " needs the claim on ",
           describe_claim(r), " exactly once, found ", n);
  }
  if (c.masks.size() != required.size())
    fail("certificate: ", to_string(c.relation), " uses ", required.size(), " masks, the certificate has ", c.masks.size());
  for (const auto& r : required)
    if (!c.masks.count(r.mask)) fail("certificate: mask '", r.mask, "' is missing");
}

// Everything that does not need the model: the form, then the masks binary, of the
// certificate's size, non-empty and in the relation's geometry (A and B disjoint; without_E the
// complement of E).
template <TensorBackend B>
void check_certificate(const BasicTopkCertificate<typename B::Tensor>& c, int64_t classes) {
  check_certificate_form(c, classes);
  std::map<std::string, std::vector<double>> values;
  for (const auto& [name, mask] : c.masks) {
    const auto shape = B::shape(mask);
    if (shape != std::vector<int64_t>{c.height, c.width})
      fail("certificate: mask '", name, "' has shape ", shape_text(shape), " but the certificate is for ", c.height, "x",
           c.width, " inputs");
    auto& v = values[name] = B::to_vector(mask);
    if (!std::all_of(v.begin(), v.end(), [](double x) { return x == 0 || x == 1; }))
      fail("certificate: mask '", name, "' is not binary (0 or 1)");
    if (std::none_of(v.begin(), v.end(), [](double x) { return x == 1; })) fail("certificate: mask '", name, "' keeps nothing");
  }
  const auto pixels = values.begin()->second.size();
  if (c.relation == EntityRelation::two_entities)
    for (std::size_t p = 0; p < pixels; ++p)
      if (values.at("A")[p] == 1 && values.at("B")[p] == 1)
        fail("certificate: masks 'A' and 'B' overlap (two entities need disjoint regions)");
  if (c.relation == EntityRelation::one_entity)
    for (std::size_t p = 0; p < pixels; ++p)
      if (values.at("without_E")[p] != 1 - values.at("E")[p])
        fail("certificate: mask 'without_E' is not the complement of mask 'E'");
}
}  // namespace detail

// Checks `certificate` on `input` [1,C,H,W]: its form (detail::check_certificate: anything that
// does not prove its relation for its two classes is an error), then, by running the model on
// the unmasked and the masked inputs (one batch through `masker`, which must be the masker the
// certificate names; forward passes only), that both classes are in the image's top-k and that
// every claim holds.
template <ForwardModel M>
Verification verify(M& model, const TensorOf<M>& input, const BasicTopkCertificate<TensorOf<M>>& certificate,
                    const std::type_identity_t<BasicAnyMasker<M>>& masker, const MaskerOptions& options = {}) {
  using B = BackendOf<M>;
  const auto shape = B::shape(input);
  if (shape.size() != 4 || shape[0] != 1) detail::fail("verify takes one input [1,C,H,W], got shape ", detail::shape_text(shape));
  detail::check_certificate<B>(certificate, /*classes=*/0);
  if (masker.name() != certificate.masker)
    detail::fail("the certificate's masks are applied by the masker '", certificate.masker, "', but verify was given '",
                 masker.name(), "'");
  if (shape[2] != certificate.height || shape[3] != certificate.width)
    detail::fail("the certificate is for ", certificate.height, "x", certificate.width, " inputs, but the input is ", shape[2],
                 "x", shape[3]);
  // The unmasked input first, then one masked input per claim.
  const auto pixels = static_cast<std::size_t>(certificate.height * certificate.width);
  std::vector<double> masks(pixels, 1.0);
  for (const auto& claim : certificate.claims) {
    const auto values = B::to_vector(certificate.masks.at(claim.mask));
    masks.insert(masks.end(), values.begin(), values.end());
  }
  const auto count = static_cast<int64_t>(certificate.claims.size()) + 1;
  const auto outputs = masker.outputs(model, input, B::from_values(masks, {count, 1, shape[2], shape[3]}, input), options);
  const auto output_shape = B::shape(outputs);
  if (output_shape.size() != 2)
    detail::fail("verify needs a classifier's outputs [N, classes], got shape ", detail::shape_text(output_shape));
  B::check_finite(outputs, "model output");
  detail::check_certificate_form(certificate, output_shape[1]);
  const auto row = [&](int64_t r) { return B::to_vector(B::slice_rows(outputs, r, r + 1)); };
  Verification result;
  result.image_top_k = top_k_of(row(0), certificate.k);
  result.classes_in_top_k =
      detail::contains(result.image_top_k, certificate.class_a) && detail::contains(result.image_top_k, certificate.class_b);
  for (size_t i = 0; i < certificate.claims.size(); ++i) {
    const auto& claim = certificate.claims[i];
    auto top = top_k_of(row(static_cast<int64_t>(i) + 1), certificate.k);
    result.checks.push_back({claim, detail::claim_holds(claim, top), std::move(top)});
  }
  return result;
}

}  // namespace salient
