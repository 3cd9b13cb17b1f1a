#pragma once
// Top-k disambiguation ("Two guesses or one? Disambiguating top-k predictions"): for each
// pair (a, b) of a classifier's k highest classes, are the two predictions driven by two distinct entities in the image (a cat *and* a
// dog) or by one entity (two guesses about the same thing: "tabby" or "tiger cat")? Every
// verdict comes with a counterfactual certificate (analysis/certificate.hpp) that `verify`
// checks by running only the model on masked inputs.
//
// 1. Entities (analysis/entities.hpp): a label map [H,W] with 0 = background and 1..m = entities, from a segmentation
//    model (segmentation_entities: connected regions of the non-background classes) or from
//    superpixels merged by attribution (attribution_entities: the superpixels holding most of
//    any top-k class's positive attribution, joined into connected regions).
// 2. Relevance: the share of each top-k class's positive attribution inside each entity (any
//    attribution method; one map per class).
// 3. Counterfactual search with the masker (layer masking by default, so a removed region
//    injects no fill colour): each entity kept alone and each entity removed, then for a pair
//      two entities:  keeping only region A, a is in the top-k and b is not; keeping only
//                     region B (disjoint from A), b is and a is not. A and B are entities,
//                     unions of the entities ordered by relevance(a) - relevance(b) taken from
//                     either end, or their complements (the rest of the image); failing
//                     that, the two parts of one entity split by which class's attribution
//                     is denser (two touching objects the segmentation merged);
//      one entity:    keeping only entity E, both a and b are in the top-k; removing E (the
//                     rest of the image kept), neither is.
//    A pair gets the first relation whose certificate verifies; `undecided` when neither does.
//    Every certificate is checked with verify() before it is returned, so a verdict's claims
//    hold by construction.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/analysis/certificate.hpp"
#include "salient/analysis/torch_certificate.hpp"
#include "salient/analysis/entities.hpp"
#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"
#include "salient/segmentation/segments.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace salient {

struct TopkOptions {
  int64_t k = 5;
  std::string masker = "layer";  // make_masker() name, recorded in the certificates
  double max_entity_area = 0.9;  // a one-entity certificate's E leaves at least 10% of the image
  double min_split_relevance = 0.1;  // an entity is split by attribution when both classes have this share in it
  MaskerOptions masker_options = {.batch_size = 16};
};

struct PairVerdict {
  int64_t class_a = 0, class_b = 0;  // a ranked above b
  EntityRelation relation = EntityRelation::undecided;
  std::optional<TopkCertificate> certificate;  // absent when undecided
  Verification verification;                   // of the certificate (all claims hold)
  std::string reason;                          // why undecided
  // two_entities only: A and B are parts of one entity of the segmentation, split by
  // attribution (weaker evidence of two objects than two entities of the segmentation).
  bool split_entity = false;
};

struct TopkDisambiguation {
  std::vector<int64_t> classes;        // the top-k, best first
  std::vector<double> probabilities;   // softmax of the outputs
  torch::Tensor entities;              // [H,W], 0 = background, 1..m
  int64_t entity_count = 0;
  torch::Tensor relevance;             // [k, m]: share of each class's positive attribution in each entity
  std::vector<PairVerdict> pairs;      // (0,1), (0,2), ..., (k-2,k-1)
  // The model's top-k with each entity kept alone / removed (entity e at e - 1).
  std::vector<std::vector<int64_t>> top_k_kept_alone, top_k_removed;
  int64_t masked_inputs = 0;           // masked inputs the search ran through the model
};

// The k highest classes of the model on `input` [1,C,H,W] and their softmax probabilities.
inline std::pair<std::vector<int64_t>, std::vector<double>> top_k_classes(TorchModel& model, const torch::Tensor& input, int64_t k) {
  if (input.dim() != 4 || input.size(0) != 1) detail::fail("top-k disambiguation takes one input [1,C,H,W], got shape ", shape_string(input));
  auto logits = model.forward(input);
  if (logits.dim() != 2) detail::fail("top-k disambiguation needs a classifier's outputs [1, classes], got shape ", shape_string(logits));
  TorchBackend::check_finite(logits, "model output");
  auto classes = top_k_of(logits[0], k);
  auto p = torch::softmax(logits[0].to(torch::kDouble), 0);
  std::vector<double> probabilities;
  for (auto c : classes) probabilities.push_back(p[c].item<double>());
  return {classes, probabilities};
}

// Decides every pair of the top-k of `input` [1,C,H,W]. `entities` [H,W] (0 = background),
// `attributions` one map per top-k class in rank order ([k,H,W] or [k,C,H,W]).
inline TopkDisambiguation disambiguate_topk(TorchModel& model, const torch::Tensor& input, const torch::Tensor& entities,
                                            const torch::Tensor& attributions, const TopkOptions& options = {}) {
  TopkDisambiguation result;
  std::tie(result.classes, result.probabilities) = top_k_classes(model, input, options.k);
  const int64_t k = options.k, h = input.size(2), w = input.size(3);
  if (k < 2) detail::fail("top-k disambiguation needs k >= 2 (pairs of classes), got ", k);
  if (!(options.max_entity_area > 0 && options.max_entity_area <= 1))
    detail::fail("max_entity_area must be in (0, 1], got ", options.max_entity_area);
  if (entities.dim() != 2 || entities.size(0) != h || entities.size(1) != w)
    detail::fail("entities must be a label map [", h, ",", w, "] for this input, got shape ", shape_string(entities));
  auto maps = detail::class_maps(attributions, h, w);
  if (maps.size(0) != k) detail::fail("expected one attribution map per top-k class (", k, "), got ", maps.size(0));
  result.entities = entities.to(torch::kLong).contiguous();
  if (result.entities.min().item<int64_t>() < 0) detail::fail("entity labels must be >= 0 (0 = background)");
  const int64_t m = result.entities.max().item<int64_t>();
  if (m > 63) detail::fail("top-k disambiguation handles at most 63 entities, got ", m, " (merge small ones into the background)");
  result.entity_count = m;
  const auto flat = result.entities.view({-1});
  // Relevance [k, 1+m]: share of each class's positive attribution in the background (0) and
  // in each entity.
  auto positive = maps.clamp_min(0).view({k, -1}).to(torch::kDouble);
  auto relevance = torch::zeros({k, m + 1}, torch::kDouble).index_add_(1, flat, positive);
  relevance = relevance / positive.sum(1, true).clamp_min(1e-300);
  result.relevance = relevance.slice(1, 1).to(torch::kFloat);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i + 1; j < k; ++j) result.pairs.push_back({result.classes[i], result.classes[j]});
  if (m == 0) {
    for (auto& p : result.pairs) p.reason = "no entities (the segmentation found only background)";
    return result;
  }

  // A region is a set of parts (bit 0: the background, bit e: entity e); its mask keeps them.
  using Region = uint64_t;
  const Region whole = (Region{1} << (m + 1)) - 1;
  auto entity = [](int64_t e) { return Region{1} << e; };
  auto region_mask = [&](Region r) {
    auto keep = torch::zeros({m + 1}, torch::kFloat);
    for (int64_t p = 0; p <= m; ++p)
      if (r >> p & 1) keep[p] = 1;
    return keep.index({result.entities});
  };
  const auto area = torch::bincount(flat, {}, m + 1).contiguous();  // pixels of the background and of each entity
  auto nonempty = [&](Region r) {
    for (int64_t p = 0; p <= m; ++p)
      if ((r >> p & 1) && area[p].item<int64_t>() > 0) return true;
    return false;
  };
  auto masker = make_masker(options.masker);
  std::map<Region, std::vector<int64_t>> top;  // the model's top-k with only the region kept
  // The model's top-k for each keep mask [H,W], in batches through the masker.
  auto tops_of = [&](const std::vector<torch::Tensor>& masks) {
    auto outputs = masker.outputs(model, input, torch::stack(masks).unsqueeze(1).to(input.options()), options.masker_options);
    result.masked_inputs += static_cast<int64_t>(masks.size());
    std::vector<std::vector<int64_t>> tops;
    for (int64_t i = 0; i < outputs.size(0); ++i) tops.push_back(top_k_of(outputs[i], k));
    return tops;
  };
  auto evaluate = [&](const std::vector<Region>& wanted) {
    std::vector<Region> todo;
    for (auto r : wanted)
      if (!top.count(r) && std::find(todo.begin(), todo.end(), r) == todo.end()) todo.push_back(r);
    if (todo.empty()) return;
    std::vector<torch::Tensor> masks;
    for (auto r : todo) masks.push_back(region_mask(r));
    auto tops = tops_of(masks);
    for (size_t i = 0; i < todo.size(); ++i) top[todo[i]] = std::move(tops[i]);
  };
  auto in = [](const std::vector<int64_t>& t, int64_t c) { return detail::contains(t, c); };
  auto rel = [&](int64_t i, Region r) {
    double s = 0;
    for (int64_t p = 0; p <= m; ++p)
      if (r >> p & 1) s += relevance[i][p].item<double>();
    return s;
  };

  // Every entity kept alone and removed (the rest kept).
  std::vector<Region> singles;
  for (int64_t e = 1; e <= m; ++e) singles.push_back(entity(e)), singles.push_back(whole ^ entity(e));
  evaluate(singles);
  for (int64_t e = 1; e <= m; ++e) {
    result.top_k_kept_alone.push_back(top.at(entity(e)));
    result.top_k_removed.push_back(top.at(whole ^ entity(e)));
  }
  // Unions of entities from the front of the order by relevance(a) - relevance(b), and their
  // complements (the rest of the image, background included).
  auto ordered_unions = [&](int64_t ia, int64_t ib) {
    std::vector<int64_t> order(static_cast<size_t>(m));
    std::iota(order.begin(), order.end(), 1);
    auto diff = [&](int64_t e) { return relevance[ia][e].item<double>() - relevance[ib][e].item<double>(); };
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return diff(x) > diff(y); });
    std::vector<Region> unions;
    Region front = 0, back = 0;
    for (size_t n = 0; n + 1 < order.size(); ++n) {
      front |= entity(order[n]);
      back |= entity(order[order.size() - 1 - n]);
      for (auto r : {front, back}) unions.push_back(r), unions.push_back(whole ^ r);
    }
    return unions;
  };
  {
    std::vector<Region> wanted;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = i + 1; j < k; ++j)
        for (auto r : ordered_unions(i, j)) wanted.push_back(r);
    evaluate(wanted);
  }

  size_t pair_index = 0;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i + 1; j < k; ++j) {
      auto& verdict = result.pairs[pair_index++];
      const int64_t a = result.classes[i], b = result.classes[j];
      // Two entities: disjoint A and B, A keeps a without b and B keeps b without a.
      std::vector<Region> candidates = singles, unions = ordered_unions(i, j);
      candidates.insert(candidates.end(), unions.begin(), unions.end());
      std::vector<Region> only_a, only_b;
      for (auto r : candidates) {
        const auto& t = top.at(r);
        if (in(t, a) && !in(t, b)) only_a.push_back(r);
        if (in(t, b) && !in(t, a)) only_b.push_back(r);
      }
      std::optional<std::pair<Region, Region>> separating;
      double best = -1;
      for (auto ra : only_a)
        for (auto rb : only_b)
          if ((ra & rb) == 0 && nonempty(ra) && nonempty(rb) && rel(i, ra) + rel(j, rb) > best) best = rel(i, ra) + rel(j, rb), separating = std::pair{ra, rb};
      std::optional<std::pair<torch::Tensor, torch::Tensor>> separating_masks;
      if (separating) separating_masks = std::pair{region_mask(separating->first), region_mask(separating->second)};
      // Failing that, an entity may hold two things the segmentation did not tell apart (two
      // touching objects of one class): split each entity that both classes attribute to by
      // which class's attribution is denser per pixel, and test the parts (alone, and each with
      // the rest of the image outside the other part).
      if (!separating_masks) {
        auto dominant = (positive[i] / positive[i].sum().clamp_min(1e-300) > positive[j] / positive[j].sum().clamp_min(1e-300))
                            .view({h, w});
        std::vector<torch::Tensor> masks;
        for (int64_t e = 1; e <= m; ++e) {
          if (relevance[i][e].item<double>() < options.min_split_relevance || relevance[j][e].item<double>() < options.min_split_relevance)
            continue;
          auto inside = result.entities.eq(e);
          auto part_a = inside.logical_and(dominant).to(torch::kFloat), part_b = inside.logical_and(dominant.logical_not()).to(torch::kFloat);
          if (part_a.sum().item<double>() == 0 || part_b.sum().item<double>() == 0) continue;
          for (const auto& mask : {part_a, 1 - part_b, part_b, 1 - part_a}) masks.push_back(mask);
        }
        if (!masks.empty()) {
          auto tops = tops_of(masks);
          for (size_t g = 0; g < masks.size() && !separating_masks; g += 4)
            for (size_t x = g; x < g + 2 && !separating_masks; ++x)        // A: part_a or everything but part_b
              for (size_t y = g + 2; y < g + 4 && !separating_masks; ++y)  // B: part_b or everything but part_a
                if (in(tops[x], a) && !in(tops[x], b) && in(tops[y], b) && !in(tops[y], a) &&
                    (masks[x] * masks[y]).sum().item<double>() == 0)
                  separating_masks = std::pair{masks[x], masks[y]}, verdict.split_entity = true;
        }
      }
      std::vector<TopkCertificate> tries;
      if (separating_masks) {
        TopkCertificate c{EntityRelation::two_entities, a, b, k, options.masker, h, w, {}, {}, {}};
        c.masks["A"] = separating_masks->first;
        c.masks["B"] = separating_masks->second;
        c.claims = required_claims(c.relation, a, b);
        tries.push_back(std::move(c));
      }
      // One entity: an entity E that suffices for both (kept alone) and that both need (removed).
      std::optional<Region> shared;
      best = -1;
      for (int64_t e = 1; e <= m; ++e) {
        const auto &kept = top.at(entity(e)), &removed = top.at(whole ^ entity(e));
        if (in(kept, a) && in(kept, b) && !in(removed, a) && !in(removed, b) && nonempty(whole ^ entity(e)) &&
            region_mask(entity(e)).mean().item<double>() <= options.max_entity_area &&
            rel(i, entity(e)) + rel(j, entity(e)) > best)
          best = rel(i, entity(e)) + rel(j, entity(e)), shared = entity(e);
      }
      if (shared) {
        TopkCertificate c{EntityRelation::one_entity, a, b, k, options.masker, h, w, {}, {}, {}};
        c.masks["E"] = region_mask(*shared);
        c.masks["without_E"] = region_mask(whole ^ *shared);
        c.claims = required_claims(c.relation, a, b);
        tries.push_back(std::move(c));
      }
      // Emitted only once verified (independently of the search's own batch).
      for (auto& c : tries) {
        auto v = verify(model, input, c, options.masker_options);
        result.masked_inputs += static_cast<int64_t>(c.masks.size());
        if (v.holds()) {
          verdict.relation = c.relation;
          verdict.certificate = std::move(c);
          verdict.verification = std::move(v);
          break;
        }
      }
      if (verdict.relation != EntityRelation::two_entities) verdict.split_entity = false;
      if (verdict.relation == EntityRelation::undecided)
        verdict.reason = !tries.empty() ? "the certificates found did not verify"
                         : only_a.empty() || only_b.empty()
                             ? "no region keeps one class in the top-k without the other, and no entity is needed by both"
                             : "no disjoint regions separate the classes, and no entity is needed by both";
    }
  return result;
}

}  // namespace salient
