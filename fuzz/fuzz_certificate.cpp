// libFuzzer target: a top-k certificate's JSON and the consistency checks that run before the
// model (io/certificate_json.hpp, analysis/certificate.hpp). The input is the JSON text, then
// optionally a 0 byte and mask bytes: every mask file the JSON names reads as the same bit
// pattern (from those bytes), complemented for "B" and "without_E" so that well-formed
// certificates can be reached, with one pixel flipped where the last byte says so.
//
// A certificate that is accepted must prove its verdict: checked here again, independently of
// the library's checks: two classes, the claims exactly the relation's (two_entities: A keeps a
// and drops b, B the reverse, A and B disjoint; one_entity: E keeps both, without_E = not E
// drops both), binary non-empty masks of the certificate's size, and the JSON written back
// reads as the same certificate. SALIENT_FUZZ_VERBOSE=1 prints each input's verdict.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "salient/core/xtensor_backend.hpp"
#include "salient/io/certificate_json.hpp"

#ifndef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY LLVMFuzzerTestOneInput  // tests/fuzz_replay.cpp renames it
#endif

namespace salient::fuzz {

using Certificate = BasicTopkCertificate<XtensorBackend::Tensor>;

inline void require(bool condition) {
  if (!condition) __builtin_trap();
}

inline std::set<int64_t> as_set(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

// The claims a relation needs, written out here rather than taken from required_claims.
inline void check_proves_verdict(const Certificate& c) {
  require(c.class_a != c.class_b && c.class_a >= 0 && c.class_b >= 0 && c.k >= 1);
  require(c.height >= 1 && c.width >= 1 && c.height <= max_certificate_side && c.width <= max_certificate_side);
  require(c.claims.size() == 2 && c.masks.size() == 2);
  const bool two = c.relation == EntityRelation::two_entities;
  require(two || c.relation == EntityRelation::one_entity);
  const std::string first = two ? "A" : "E", second = two ? "B" : "without_E";
  require(c.masks.count(first) == 1 && c.masks.count(second) == 1);
  bool saw_first = false, saw_second = false;
  for (const auto& claim : c.claims) {
    const auto in = as_set(claim.in_top_k), out = as_set(claim.not_in_top_k);
    require(in.size() == claim.in_top_k.size() && out.size() == claim.not_in_top_k.size());
    if (claim.mask == first && !saw_first) {
      saw_first = true;
      require(two ? (in == std::set<int64_t>{c.class_a} && out == std::set<int64_t>{c.class_b})
                  : (in == std::set<int64_t>{c.class_a, c.class_b} && out.empty()));
    } else {
      require(claim.mask == second && !saw_second);
      saw_second = true;
      require(two ? (in == std::set<int64_t>{c.class_b} && out == std::set<int64_t>{c.class_a})
                  : (in.empty() && out == std::set<int64_t>{c.class_a, c.class_b}));
    }
  }
  const auto& m1 = c.masks.at(first);
  const auto& m2 = c.masks.at(second);
  for (const auto* m : {&m1, &m2}) {
    require(m->dimension() == 2 && static_cast<int64_t>(m->shape()[0]) == c.height &&
            static_cast<int64_t>(m->shape()[1]) == c.width);
    require(std::all_of(m->begin(), m->end(), [](double x) { return x == 0 || x == 1; }));
    require(std::any_of(m->begin(), m->end(), [](double x) { return x == 1; }));
  }
  for (std::size_t p = 0; p < m1.size(); ++p)
    require(two ? !(m1.flat(p) == 1 && m2.flat(p) == 1) : m2.flat(p) == 1 - m1.flat(p));
}

}  // namespace salient::fuzz

extern "C" int SALIENT_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace salient;
  const auto* zero = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t text_size = zero ? static_cast<size_t>(zero - data) : size;
  const uint8_t* bits = zero ? zero + 1 : data + size;
  const size_t bit_bytes = static_cast<size_t>(data + size - bits);
  // Masks of up to 64x64 pixels are made as the JSON's size says; larger sizes get a 1x1 mask
  // (which the size check must then refuse).
  int64_t height = 1, width = 1;
  if (const auto j = nlohmann::json::parse(data, data + text_size, nullptr, false);
      j.is_object() && j.contains("height") && j.contains("width") && j["height"].is_number_integer() &&
      j["width"].is_number_integer()) {
    const auto h = j["height"].get<int64_t>(), w = j["width"].get<int64_t>();
    if (h >= 1 && w >= 1 && h <= 64 && w <= 64) height = h, width = w;
  }
  auto load_mask = [&](const std::string& file) {
    XtensorBackend::Tensor mask = xt::zeros<double>({static_cast<std::size_t>(height), static_cast<std::size_t>(width)});
    const bool complement = file.find("B") != std::string::npos || file.find("without") != std::string::npos;
    for (std::size_t p = 0; p < mask.size(); ++p) {
      const bool bit = bit_bytes > 1 ? (bits[p / 8 % (bit_bytes - 1)] >> (p % 8)) & 1 : p % 2 == 0;
      mask.flat(p) = bit != complement ? 1.0 : 0.0;
    }
    if (bit_bytes > 0 && bits[bit_bytes - 1] % 4 == 0 && complement) {  // one pixel edited
      const auto p = static_cast<std::size_t>(bits[bit_bytes - 1] / 4) % mask.size();
      mask.flat(p) = 1 - mask.flat(p);
    }
    return mask;
  };
  try {
    const auto document = certificate_document(data, text_size, "certificate");
    const auto certificate = certificate_from_json<XtensorBackend>(document, load_mask);
    fuzz::check_proves_verdict(certificate);
    // Written back (mask files named as read) and read again: the same certificate.
    std::map<std::string, std::string> files;
    for (const auto& [name, file] : document["masks"].items()) files[name] = file.get<std::string>();
    const auto again = certificate_from_json<XtensorBackend>(to_json(certificate, files), load_mask);
    fuzz::require(again.relation == certificate.relation && again.class_a == certificate.class_a &&
                  again.class_b == certificate.class_b && again.k == certificate.k && again.masker == certificate.masker &&
                  again.subject == certificate.subject && again.claims.size() == certificate.claims.size());
    if (std::getenv("SALIENT_FUZZ_VERBOSE")) std::fprintf(stderr, "accepted\n");
  } catch (const salient::error& e) {
    if (std::getenv("SALIENT_FUZZ_VERBOSE")) std::fprintf(stderr, "refused: %s\n", e.what());
  }
  return 0;
}
