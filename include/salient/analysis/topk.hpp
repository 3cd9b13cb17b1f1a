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
//
// Written for any ForwardModel and masker (LibTorch-free; the search runs on the host, the
// model and the masker in their backend); TorchModel's overload, which makes the masker
// TopkOptions names, is in analysis/torch_topk.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "salient/analysis/certificate.hpp"
#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/masking/masker.hpp"

namespace salient {

struct TopkOptions {
  int64_t k = 5;
  std::string masker = "layer";  // TorchModel: the make_masker() name (the generic search takes the masker itself)
  double max_entity_area = 0.9;  // a one-entity certificate's E leaves at least 10% of the image
  double min_split_relevance = 0.1;  // an entity is split by attribution when both classes have this share in it
  MaskerOptions masker_options = {.batch_size = 16};
};

template <class Tensor>
struct BasicPairVerdict {
  int64_t class_a = 0, class_b = 0;  // a ranked above b
  EntityRelation relation = EntityRelation::undecided;
  std::optional<BasicTopkCertificate<Tensor>> certificate;  // absent when undecided
  Verification verification;                                 // of the certificate (all claims hold)
  std::string reason;                                        // why undecided
  // two_entities only: A and B are parts of one entity of the segmentation, split by
  // attribution (weaker evidence of two objects than two entities of the segmentation).
  bool split_entity = false;
};

template <class Tensor>
struct BasicTopkDisambiguation {
  std::vector<int64_t> classes;        // the top-k, best first
  std::vector<double> probabilities;   // softmax of the outputs
  Tensor entities;                     // [H,W], 0 = background, 1..m
  int64_t entity_count = 0;
  Tensor relevance;                    // [k, m]: share of each class's positive attribution in each entity
  std::vector<BasicPairVerdict<Tensor>> pairs;  // (0,1), (0,2), ..., (k-2,k-1)
  // The model's top-k with each entity kept alone / removed (entity e at e - 1).
  std::vector<std::vector<int64_t>> top_k_kept_alone, top_k_removed;
  int64_t masked_inputs = 0;           // masked inputs the search ran through the model
};

// The k highest classes of the model on `input` [1,C,H,W] and their softmax probabilities.
template <ForwardModel M>
std::pair<std::vector<int64_t>, std::vector<double>> top_k_classes(M& model, const TensorOf<M>& input, int64_t k) {
  using B = BackendOf<M>;
  const auto shape = B::shape(input);
  if (shape.size() != 4 || shape[0] != 1)
    detail::fail("top-k disambiguation takes one input [1,C,H,W], got shape ", detail::shape_text(shape));
  const TensorOf<M> logits = model.forward(input);
  const auto output_shape = B::shape(logits);
  if (output_shape.size() != 2)
    detail::fail("top-k disambiguation needs a classifier's outputs [1, classes], got shape ", detail::shape_text(output_shape));
  B::check_finite(logits, "model output");
  const auto row = B::to_vector(logits);
  auto classes = top_k_of(row, k);
  const double top = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (double v : row) sum += std::exp(v - top);
  std::vector<double> probabilities;
  for (auto c : classes) probabilities.push_back(std::exp(row[static_cast<std::size_t>(c)] - top) / sum);
  return {classes, probabilities};
}

namespace detail {
// Attribution maps [n,H,W] or [n,C,H,W] as n host planes of H*W (channels summed).
template <TensorBackend B>
std::vector<std::vector<double>> host_class_maps(const typename B::Tensor& attributions, int64_t h, int64_t w) {
  const auto shape = B::shape(attributions);
  if ((shape.size() != 3 && shape.size() != 4) || shape[shape.size() - 2] != h || shape.back() != w)
    fail("attributions must be [n,H,W] or [n,C,H,W] for ", h, "x", w, " inputs, got shape ", shape_text(shape));
  B::check_finite(attributions, "attributions");
  const auto values = B::to_vector(attributions);
  const int64_t n = shape[0], channels = shape.size() == 4 ? shape[1] : 1, plane = h * w;
  std::vector<std::vector<double>> maps(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(plane), 0.0));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < plane; ++p) maps[i][p] += values[static_cast<std::size_t>((i * channels + c) * plane + p)];
  return maps;
}
}  // namespace detail

// Decides every pair of the top-k of `input` [1,C,H,W]. `entities` [H,W] (0 = background),
// `attributions` one map per top-k class in rank order ([k,H,W] or [k,C,H,W]); `masker`
// removes pixels (its name is recorded in the certificates).
template <ForwardModel M>
BasicTopkDisambiguation<TensorOf<M>> disambiguate_topk(M& model, const TensorOf<M>& input, const TensorOf<M>& entities,
                                                       const TensorOf<M>& attributions, const TopkOptions& options,
                                                       const std::type_identity_t<BasicAnyMasker<M>>& masker) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  using Mask = std::vector<double>;  // [H,W], 1 = keep
  BasicTopkDisambiguation<Tensor> result;
  std::tie(result.classes, result.probabilities) = top_k_classes(model, input, options.k);
  const auto input_shape = B::shape(input);
  const int64_t k = options.k, h = input_shape[2], w = input_shape[3], pixels = h * w;
  if (k < 2) detail::fail("top-k disambiguation needs k >= 2 (pairs of classes), got ", k);
  if (!(options.max_entity_area > 0 && options.max_entity_area <= 1))
    detail::fail("max_entity_area must be in (0, 1], got ", options.max_entity_area);
  const auto entity_shape = B::shape(entities);
  if (entity_shape != std::vector<int64_t>{h, w})
    detail::fail("entities must be a label map [", h, ",", w, "] for this input, got shape ", detail::shape_text(entity_shape));
  const auto maps = detail::host_class_maps<B>(attributions, h, w);
  if (static_cast<int64_t>(maps.size()) != k)
    detail::fail("expected one attribution map per top-k class (", k, "), got ", maps.size());
  B::check_finite(entities, "entities");
  std::vector<int64_t> labels;
  labels.reserve(static_cast<std::size_t>(pixels));
  for (double v : B::to_vector(entities)) labels.push_back(static_cast<int64_t>(v));  // as a cast to integers: toward 0
  if (*std::min_element(labels.begin(), labels.end()) < 0) detail::fail("entity labels must be >= 0 (0 = background)");
  const int64_t m = *std::max_element(labels.begin(), labels.end());
  if (m > 63) detail::fail("top-k disambiguation handles at most 63 entities, got ", m, " (merge small ones into the background)");
  result.entity_count = m;
  result.entities = B::from_values(std::vector<double>(labels.begin(), labels.end()), {h, w}, input);
  // Relevance [k][1+m]: share of each class's positive attribution in the background (0) and
  // in each entity.
  std::vector<std::vector<double>> positive(static_cast<std::size_t>(k)), relevance(static_cast<std::size_t>(k));
  std::vector<double> totals(static_cast<std::size_t>(k), 0.0), kept_relevance;
  for (int64_t i = 0; i < k; ++i) {
    positive[i].resize(static_cast<std::size_t>(pixels));
    relevance[i].assign(static_cast<std::size_t>(m + 1), 0.0);
    for (int64_t p = 0; p < pixels; ++p) {
      positive[i][p] = std::max(maps[i][p], 0.0);
      relevance[i][labels[p]] += positive[i][p];
      totals[i] += positive[i][p];
    }
    for (auto& r : relevance[i]) r /= std::max(totals[i], 1e-300);
    kept_relevance.insert(kept_relevance.end(), relevance[i].begin() + 1, relevance[i].end());
  }
  result.relevance = B::from_values(kept_relevance, {k, m}, input);
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
    Mask mask(static_cast<std::size_t>(pixels));
    for (int64_t p = 0; p < pixels; ++p) mask[p] = (r >> labels[p] & 1) ? 1.0 : 0.0;
    return mask;
  };
  std::vector<int64_t> area(static_cast<std::size_t>(m + 1), 0);  // pixels of the background and of each entity
  for (auto label : labels) ++area[static_cast<std::size_t>(label)];
  auto region_area = [&](Region r) {
    int64_t sum = 0;
    for (int64_t p = 0; p <= m; ++p)
      if (r >> p & 1) sum += area[p];
    return sum;
  };
  auto as_tensor = [&](const Mask& mask) { return B::from_values(mask, {h, w}, input); };
  std::map<Region, std::vector<int64_t>> top;  // the model's top-k with only the region kept
  // The model's top-k for each keep mask, in batches through the masker.
  auto tops_of = [&](const std::vector<Mask>& masks) {
    Mask stacked;
    stacked.reserve(masks.size() * static_cast<std::size_t>(pixels));
    for (const auto& mask : masks) stacked.insert(stacked.end(), mask.begin(), mask.end());
    const auto count = static_cast<int64_t>(masks.size());
    const Tensor outputs = masker.outputs(model, input, B::from_values(stacked, {count, 1, h, w}, input), options.masker_options);
    result.masked_inputs += count;
    const auto values = B::to_vector(outputs);
    const auto classes = static_cast<int64_t>(values.size()) / count;
    std::vector<std::vector<int64_t>> tops;
    for (int64_t r = 0; r < count; ++r)
      tops.push_back(top_k_of(std::vector<double>(values.begin() + r * classes, values.begin() + (r + 1) * classes), k));
    return tops;
  };
  auto evaluate = [&](const std::vector<Region>& wanted) {
    std::vector<Region> todo;
    for (auto r : wanted)
      if (!top.count(r) && std::find(todo.begin(), todo.end(), r) == todo.end()) todo.push_back(r);
    if (todo.empty()) return;
    std::vector<Mask> masks;
    for (auto r : todo) masks.push_back(region_mask(r));
    auto tops = tops_of(masks);
    for (size_t i = 0; i < todo.size(); ++i) top[todo[i]] = std::move(tops[i]);
  };
  auto in = [](const std::vector<int64_t>& t, int64_t c) { return detail::contains(t, c); };
  auto rel = [&](int64_t i, Region r) {
    double s = 0;
    for (int64_t p = 0; p <= m; ++p)
      if (r >> p & 1) s += relevance[i][p];
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
    auto diff = [&](int64_t e) { return relevance[ia][e] - relevance[ib][e]; };
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
          if ((ra & rb) == 0 && region_area(ra) > 0 && region_area(rb) > 0 && rel(i, ra) + rel(j, rb) > best)
            best = rel(i, ra) + rel(j, rb), separating = std::pair{ra, rb};
      std::optional<std::pair<Mask, Mask>> separating_masks;
      if (separating) separating_masks = std::pair{region_mask(separating->first), region_mask(separating->second)};
      // Failing that, an entity may hold two things the segmentation did not tell apart (two
      // touching objects of one class): split each entity that both classes attribute to by
      // which class's attribution is denser per pixel, and test the parts (alone, and each with
      // the rest of the image outside the other part).
      if (!separating_masks) {
        std::vector<Mask> masks;
        for (int64_t e = 1; e <= m; ++e) {
          if (relevance[i][e] < options.min_split_relevance || relevance[j][e] < options.min_split_relevance) continue;
          Mask part_a(static_cast<std::size_t>(pixels), 0.0), part_b(static_cast<std::size_t>(pixels), 0.0);
          bool any_a = false, any_b = false;
          for (int64_t p = 0; p < pixels; ++p) {
            if (labels[p] != e) continue;
            const bool dominant = positive[i][p] / std::max(totals[i], 1e-300) > positive[j][p] / std::max(totals[j], 1e-300);
            (dominant ? part_a : part_b)[p] = 1, (dominant ? any_a : any_b) = true;
          }
          if (!any_a || !any_b) continue;
          Mask but_a(part_a), but_b(part_b);
          for (auto& v : but_a) v = 1 - v;
          for (auto& v : but_b) v = 1 - v;
          for (auto* mask : {&part_a, &but_b, &part_b, &but_a}) masks.push_back(std::move(*mask));
        }
        auto disjoint = [&](const Mask& x, const Mask& y) {
          for (int64_t p = 0; p < pixels; ++p)
            if (x[p] * y[p] != 0) return false;
          return true;
        };
        if (!masks.empty()) {
          auto tops = tops_of(masks);
          for (size_t g = 0; g < masks.size() && !separating_masks; g += 4)
            for (size_t x = g; x < g + 2 && !separating_masks; ++x)        // A: part_a or everything but part_b
              for (size_t y = g + 2; y < g + 4 && !separating_masks; ++y)  // B: part_b or everything but part_a
                if (in(tops[x], a) && !in(tops[x], b) && in(tops[y], b) && !in(tops[y], a) && disjoint(masks[x], masks[y]))
                  separating_masks = std::pair{masks[x], masks[y]}, verdict.split_entity = true;
        }
      }
      std::vector<BasicTopkCertificate<Tensor>> tries;
      if (separating_masks) {
        BasicTopkCertificate<Tensor> c{EntityRelation::two_entities, a, b, k, masker.name(), h, w, {}, {}, {}};
        c.masks["A"] = as_tensor(separating_masks->first);
        c.masks["B"] = as_tensor(separating_masks->second);
        c.claims = required_claims(c.relation, a, b);
        tries.push_back(std::move(c));
      }
      // One entity: an entity E that suffices for both (kept alone) and that both need (removed).
      std::optional<Region> shared;
      best = -1;
      for (int64_t e = 1; e <= m; ++e) {
        const auto &kept = top.at(entity(e)), &removed = top.at(whole ^ entity(e));
        if (in(kept, a) && in(kept, b) && !in(removed, a) && !in(removed, b) && region_area(whole ^ entity(e)) > 0 &&
            static_cast<double>(area[e]) / static_cast<double>(pixels) <= options.max_entity_area &&
            rel(i, entity(e)) + rel(j, entity(e)) > best)
          best = rel(i, entity(e)) + rel(j, entity(e)), shared = entity(e);
      }
      if (shared) {
        BasicTopkCertificate<Tensor> c{EntityRelation::one_entity, a, b, k, masker.name(), h, w, {}, {}, {}};
        c.masks["E"] = as_tensor(region_mask(*shared));
        c.masks["without_E"] = as_tensor(region_mask(whole ^ *shared));
        c.claims = required_claims(c.relation, a, b);
        tries.push_back(std::move(c));
      }
      // Emitted only once verified (independently of the search's own batch).
      for (auto& c : tries) {
        auto v = verify(model, input, c, masker, options.masker_options);
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
