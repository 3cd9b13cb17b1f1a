// Top-k disambiguation and its certificates (analysis/topk.hpp, analysis/certificate.hpp,
// io/certificate.hpp) on ../shared's MobileNetV2 and DeepLab.
#include <filesystem>
#include <fstream>
#include <optional>

#include <catch2/catch.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "error_matchers.hpp"
#include "salient/salient.hpp"
#include "shared_data.hpp"

namespace fs = std::filesystem;
using salient::EntityRelation;
using salient::test::require_error_mentioning;

namespace {

struct Shared {
  fs::path dir;
  salient::TorchModel classifier, segmenter;
};

std::optional<Shared>& shared_models() {
  static std::optional<Shared> models = [] () -> std::optional<Shared> {
    auto dir = salient::test::shared_dir();
    if (!dir) return std::nullopt;
    return Shared{*dir, salient::TorchModel::load(*dir / "models" / "mobilenet_v2_imagenet.pt"),
                  salient::TorchModel::load(*dir / "models" / "deeplabv3_mnv2_pascal.pt")};
  }();
  return models;
}

torch::Tensor photo(const Shared& s, const std::string& name) { return salient::load_input(s.dir / "images" / name, {224}); }

// Grad-CAM of each top-k class, in rank order: [k,1,H,W].
torch::Tensor cam_maps(salient::TorchModel& model, const torch::Tensor& input, int64_t k) {
  auto classes = salient::top_k_classes(model, input, k).first;
  std::vector<torch::Tensor> maps;
  for (auto c : classes) maps.push_back(salient::grad_cam(model, input, salient::Target(c)));
  return torch::cat(maps, 0);
}

salient::TopkDisambiguation analyse(Shared& s, const torch::Tensor& input, const torch::Tensor& entities, int64_t k = 5) {
  return salient::disambiguate_topk(s.classifier, input, entities, cam_maps(s.classifier, input, k), {.k = k});
}

const salient::PairVerdict& pair_of(const salient::TopkDisambiguation& r, int64_t a, int64_t b) {
  for (const auto& p : r.pairs)
    if ((p.class_a == a && p.class_b == b) || (p.class_a == b && p.class_b == a)) return p;
  FAIL("no pair (" << a << ", " << b << ") in the top-k");
  return r.pairs.front();
}

// The pets.jpg certificate for (Italian greyhound, Boston bull), computed once.
const salient::TopkCertificate& pets_certificate(Shared& s) {
  static std::optional<salient::TopkCertificate> certificate;
  if (!certificate) {
    auto input = photo(s, "pets.jpg");
    auto entities = salient::segmentation_entities(s.segmenter, input, {.segmenter_size = 513});
    certificate = pair_of(analyse(s, input, entities), 171, 195).certificate;
    REQUIRE(certificate);
  }
  return *certificate;
}

}  // namespace

TEST_CASE("top-k: pets.jpg's Italian greyhound and Boston bull are two entities, with a verifying certificate", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "pets.jpg");
  auto entities = salient::segmentation_entities(s->segmenter, input, {.segmenter_size = 513});
  CHECK(entities.max().item<int64_t>() >= 2);  // the two dogs
  auto result = analyse(*s, input, entities);
  REQUIRE(result.classes.size() == 5);
  CHECK(result.classes[0] == 171);
  CHECK(result.classes[1] == 195);
  const auto& pair = pair_of(result, 171, 195);
  REQUIRE(pair.relation == EntityRelation::two_entities);
  REQUIRE(pair.certificate);
  const auto& c = *pair.certificate;
  CHECK(c.masker == "layer");
  CHECK((c.masks.at("A") * c.masks.at("B")).sum().item<double>() == 0);  // disjoint regions
  auto v = salient::verify(s->classifier, input, c);
  CHECK(v.holds());
  REQUIRE(v.checks.size() == 2);
  for (const auto& check : v.checks) CHECK(check.top_k.size() == 5);
}

TEST_CASE("top-k: cat.png's Egyptian cat, tabby and tiger cat are one entity guessed three ways", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "cat.png");
  auto entities = salient::segmentation_entities(s->segmenter, input, {.segmenter_size = 513});
  auto result = analyse(*s, input, entities);
  REQUIRE(result.classes.size() == 5);
  CHECK(result.classes[0] == 285);
  for (auto [a, b] : {std::pair{285, 281}, {285, 282}, {281, 282}}) {
    INFO("pair " << a << ", " << b);
    const auto& pair = pair_of(result, a, b);
    REQUIRE(pair.relation == EntityRelation::one_entity);
    CHECK(salient::verify(s->classifier, input, *pair.certificate).holds());
    // E and the rest of the image are complementary.
    CHECK(torch::equal(pair.certificate->masks.at("E") + pair.certificate->masks.at("without_E"), torch::ones({224, 224})));
  }
  // No pair is ever called "two entities" on this photo of one cat.
  for (const auto& p : result.pairs) CHECK(p.relation != EntityRelation::two_entities);
}

TEST_CASE("top-k: two photos side by side are two entities (entities: the two halves)", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto left = photo(*s, "hot_dog.jpg"), right = photo(*s, "parrot.jpg");
  const int64_t left_class = salient::top_k_classes(s->classifier, left, 1).first[0];
  const int64_t right_class = salient::top_k_classes(s->classifier, right, 1).first[0];
  CHECK(left_class == 934);   // hotdog
  CHECK(right_class == 88);   // macaw
  auto composite = torch::cat({left, right}, 3);
  auto halves = torch::ones({224, 448}, torch::kLong);
  halves.slice(1, 224) = 2;
  auto result = analyse(*s, composite, halves);
  const auto& pair = pair_of(result, left_class, right_class);
  REQUIRE(pair.relation == EntityRelation::two_entities);
  CHECK(salient::verify(s->classifier, composite, *pair.certificate).holds());
  // The certificate keeps the hot dog's half for hotdog and the parrot's half for macaw.
  const auto& c = *pair.certificate;
  const auto& hotdog_mask = c.class_a == left_class ? c.masks.at("A") : c.masks.at("B");
  CHECK(hotdog_mask.slice(1, 0, 224).mean().item<double>() == 1);
  CHECK(hotdog_mask.slice(1, 224).sum().item<double>() == 0);
}

TEST_CASE("top-k: a certificate edited to make a false claim fails verify", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "pets.jpg");
  auto c = pets_certificate(*s);
  auto v = salient::verify(s->classifier, input, c);
  REQUIRE(v.holds());
  CHECK(v.classes_in_top_k);
  // Swapping the masks makes both claims false.
  auto swapped = pets_certificate(*s);
  std::swap(swapped.masks.at("A"), swapped.masks.at("B"));
  auto w = salient::verify(s->classifier, input, swapped);
  CHECK_FALSE(w.checks[0].holds);
  CHECK_FALSE(w.checks[1].holds);
}

TEST_CASE("top-k: every edit of a certificate that changes what it proves is rejected", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "pets.jpg");
  const auto& good = pets_certificate(*s);
  REQUIRE(good.relation == EntityRelation::two_entities);
  const auto dir = fs::temp_directory_path() / "salient_topk_forged";
  fs::remove_all(dir);
  fs::create_directories(dir);
  salient::save_certificate(good, dir / "good.json");
  REQUIRE(salient::verify(s->classifier, input, salient::load_certificate(dir / "good.json")).holds());
  const auto text = [&] {
    std::ifstream in(dir / "good.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  // Each edit of the JSON (the forger's view of a certificate) and what the rejection says.
  auto forged = [&](const std::string& edited, const std::string& why) {
    INFO(why);
    std::ofstream(dir / "forged.json") << edited;
    require_error_mentioning([&] { salient::verify(s->classifier, input, salient::load_certificate(dir / "forged.json")); }, why);
  };
  auto replace = [&](std::string t, const std::string& from, const std::string& to) {
    const auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    return t.replace(at, from.size(), to);
  };
  forged(replace(replace(text, "\"class_a\": 171", "\"class_a\": 1"), "\"class_b\": 195", "\"class_b\": 2"),
         "is not one that proves two_entities for classes 1 and 2");
  forged(replace(text, "\"class_a\": 171", "\"class_a\": 1"), "is not one that proves two_entities for classes 1 and 195");
  forged(replace(text, "\"class_b\": 195", "\"class_b\": 171"), "class_a and class_b are both 171");
  forged(replace(text, "\"relation\": \"two_entities\"", "\"relation\": \"one_entity\""), "is not one that proves one_entity");
  forged(replace(text, "\"relation\": \"two_entities\"", "\"relation\": \"undecided\""), "relation 'undecided' has no certificate");
  forged(replace(text, "\"k\": 5", "\"k\": 5.5"), "'k' must be an integer, got 5.5");
  forged(replace(text, "\"class_a\": 171", "\"class_a\": 171.7"), "'class_a' must be an integer, got 171.7");
  forged(replace(text, "\"height\": 224", "\"height\": 0"), "input size 0x224 is not valid");
  forged(replace(text, "\"height\": 224", "\"height\": 100000"), "input size 100000x224 is not valid");
  forged(replace(text, "\"format\"", "\"input_size\": 100000, \"format\""), "unknown field 'input_size'");
  forged(replace(text, "\"good_A.png\"", "\"../good_A.png\""), "must be a file name in the certificate's folder");
  forged(replace(text, "\"good_A.png\"", "\"good_B.png\""), "masks 'A' and 'B' overlap");
  {  // Claim B deleted: the claims array keeps only its first element.
    auto j = nlohmann::json::parse(text);
    j["claims"].erase(1);
    forged(j.dump(), "needs the claim on mask 'B': in_top_k [195], not_in_top_k [171] exactly once, found 0");
    j = nlohmann::json::parse(text);
    j["claims"].push_back(j["claims"][0]);
    forged(j.dump(), "needs the claim on mask 'A': in_top_k [171], not_in_top_k [195] exactly once, found 2");
    j = nlohmann::json::parse(text);
    j["claims"][0]["in_top_k"].push_back(3);
    forged(j.dump(), "is not one that proves two_entities");
    j = nlohmann::json::parse(text);
    j["claims"][1]["not_in_top_k"] = nlohmann::json::array();
    forged(j.dump(), "is not one that proves two_entities");
    j = nlohmann::json::parse(text);
    j["masks"]["C"] = "good_A.png";
    forged(j.dump(), "two_entities uses 2 masks, the certificate has 3");
    j = nlohmann::json::parse(text);
    j["subject"]["image"] = {{"sha256", "not-hex"}};
    forged(j.dump(), "is not 64 lower-case hex digits");
  }
  // Edits of the in-memory certificate.
  auto one = good;
  one.relation = EntityRelation::one_entity;
  one.claims = salient::required_claims(one.relation, one.class_a, one.class_b);
  one.masks = {{"E", good.masks.at("A")}, {"without_E", good.masks.at("B")}};
  one.masks["without_E"] = torch::ones_like(one.masks["E"]);
  require_error_mentioning([&] { salient::verify(s->classifier, input, one); }, "'without_E' is not the complement of mask 'E'");
  one.masks["E"] = torch::ones_like(one.masks["E"]);
  one.masks["without_E"] = torch::zeros_like(one.masks["E"]);
  require_error_mentioning([&] { salient::verify(s->classifier, input, one); }, "mask 'without_E' keeps nothing");
  // Classes that are not in the image's top-k: a true certificate needs them there.
  auto unranked = good;
  unranked.k = 1;  // the greyhound alone is the top-1; the claims are checked at k = 1 too
  auto v = salient::verify(s->classifier, input, unranked);
  CHECK_FALSE(v.classes_in_top_k);
  CHECK_FALSE(v.holds());
  fs::remove_all(dir);
}

TEST_CASE("top-k: verify runs only forward passes, one batch for all masks, no autograd", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "pets.jpg");
  auto module = torch::jit::load((s->dir / "models" / "mobilenet_v2_imagenet.pt").string());
  module.eval();
  int calls = 0, inputs = 0;
  bool autograd = false;
  salient::TorchModel counted([&](const torch::Tensor& x) {
    ++calls;
    inputs += static_cast<int>(x.size(0));
    autograd = autograd || torch::GradMode::is_enabled() || x.requires_grad();
    return module.forward({x}).toTensor();
  });
  auto c = pets_certificate(*s);
  c.masker = "mean";  // a fill masker: a plain callable model has no graph to layer-mask
  auto v = salient::verify(counted, input, c);
  CHECK(calls == 1);
  CHECK(inputs == 3);  // the unmasked input and the two masked inputs, nothing else
  CHECK_FALSE(autograd);
  CHECK(v.checks.size() == 2);
}

TEST_CASE("top-k: certificates round-trip through JSON and mask PNGs", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  const auto& c = pets_certificate(*s);
  const auto dir = fs::temp_directory_path() / "salient_topk_certificate";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto with_subject = c;
  with_subject.subject = {{"image", std::string(64, 'a')}, {"model", std::string(64, 'b')}};
  salient::save_certificate(with_subject, dir / "pair.json");
  CHECK(fs::exists(dir / "pair_A.png"));
  CHECK(fs::exists(dir / "pair_B.png"));
  auto loaded = salient::load_certificate(dir / "pair.json");
  CHECK(loaded.relation == c.relation);
  CHECK(loaded.class_a == c.class_a);
  CHECK(loaded.class_b == c.class_b);
  CHECK(loaded.k == c.k);
  CHECK(loaded.masker == c.masker);
  CHECK(loaded.subject == with_subject.subject);
  REQUIRE(loaded.masks.size() == 2);
  for (const auto& [name, mask] : c.masks) CHECK(torch::equal(loaded.masks.at(name), mask));
  REQUIRE(loaded.claims.size() == c.claims.size());
  CHECK(loaded.claims[0].in_top_k == c.claims[0].in_top_k);
  CHECK(salient::verify(s->classifier, photo(*s, "pets.jpg"), loaded).holds());
  fs::remove_all(dir);
}

TEST_CASE("top-k: bad inputs give clear errors", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  auto input = photo(*s, "pets.jpg");
  require_error_mentioning([&] { salient::top_k_classes(s->classifier, input, 1001); }, "k = 1001 is out of range for a model with 1000 classes");
  require_error_mentioning(
      [&] { salient::disambiguate_topk(s->classifier, input, torch::zeros({224, 224}), torch::zeros({1001, 224, 224}), {.k = 1001}); },
      "k = 1001");
  require_error_mentioning(
      [&] { salient::disambiguate_topk(s->classifier, input, torch::zeros({100, 100}), torch::zeros({5, 224, 224})); },
      "entities must be a label map [224,224]");
  require_error_mentioning(
      [&] { salient::disambiguate_topk(s->classifier, input, torch::zeros({224, 224}), torch::zeros({3, 224, 224})); },
      "one attribution map per top-k class (5), got 3");
  // A certificate for another image size.
  auto small = salient::load_input(s->dir / "images" / "pets.jpg", {192});
  require_error_mentioning([&] { salient::verify(s->classifier, small, pets_certificate(*s)); },
                           "the certificate is for 224x224 inputs, but the input is 192x192");
  auto wrong_mask = pets_certificate(*s);
  wrong_mask.masks["A"] = torch::ones({10, 10});
  require_error_mentioning([&] { salient::verify(s->classifier, input, wrong_mask); }, "mask 'A' has shape [10,10]");
  auto class_out_of_range = pets_certificate(*s);
  class_out_of_range.class_a = 5000;
  class_out_of_range.claims = salient::required_claims(class_out_of_range.relation, 5000, class_out_of_range.class_b);
  require_error_mentioning([&] { salient::verify(s->classifier, input, class_out_of_range); }, "class 5000 out of range [0, 1000)");

  const auto dir = fs::temp_directory_path() / "salient_topk_bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "broken.json") << "{\"format\": \"salient-topk-certificate/2\", \"claims\": [";
  require_error_mentioning([&] { salient::load_certificate(dir / "broken.json"); }, "malformed JSON");
  salient::save_certificate(pets_certificate(*s), dir / "good.json");
  auto text = [&] {
    std::ifstream in(dir / "good.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto rewrite = [&](const std::string& from, const std::string& to) {
    auto t = text;
    t.replace(t.find(from), from.size(), to);
    std::ofstream(dir / "edited.json") << t;
  };
  rewrite("\"claims\"", "\"claimz\"");
  require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "unknown field 'claimz'");
  rewrite("\"good_A.png\"", "\"missing.png\"");
  require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "missing.png");
  rewrite("\"height\": 224", "\"height\": 192");
  require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "certificate is for 192x224 inputs");
  rewrite("\"relation\": \"two_entities\"", "\"relation\": \"three_entities\"");
  require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "unknown relation 'three_entities'");
  rewrite("\"k\": 5", "\"k\": \"five\"");
  require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "'k' must be an integer, got \"five\"");
  {
    std::ofstream(dir / "edited.json") << "[1, 2]";
    require_error_mentioning([&] { salient::load_certificate(dir / "edited.json"); }, "the document must be a JSON object");
  }
  fs::remove_all(dir);
}

TEST_CASE("top-k: superpixels merged by attribution give one entity per attributed object", "[topk]") {
  // 32x32 in 4x4 superpixels of 8x8; class 0's attribution on the top-left cell, class 1's on
  // the bottom-right one, a little noise elsewhere.
  auto regions = torch::arange(4, torch::kLong).repeat_interleave(8).view({4, 8}).unsqueeze(0).expand({32, 4, 8}).reshape({32, 32});
  regions = regions + 4 * torch::arange(4, torch::kLong).repeat_interleave(8).view({32, 1});
  auto maps = torch::full({2, 32, 32}, 0.001f);
  maps[0].slice(0, 0, 8).slice(1, 0, 8) = 1;
  maps[1].slice(0, 24, 32).slice(1, 24, 32) = 2;
  maps[1].slice(0, 0, 8).slice(1, 8, 16) = -5;  // negative attribution does not count
  auto entities = salient::attribution_entities(regions, maps, {.coverage = 0.5, .min_area = 0});
  CHECK(entities.max().item<int64_t>() == 2);
  CHECK(entities[0][0].item<int64_t>() != 0);
  CHECK(entities[31][31].item<int64_t>() != 0);
  CHECK(entities[0][0].item<int64_t>() != entities[31][31].item<int64_t>());
  CHECK(entities.ne(0).sum().item<int64_t>() == 128);  // the two cells, nothing else
  // Adjacent salient superpixels form one entity.
  maps[1].slice(0, 0, 8).slice(1, 8, 16) = 2;
  maps[1].slice(0, 24, 32).slice(1, 24, 32) = 0;
  entities = salient::attribution_entities(regions, maps, {.coverage = 0.5, .min_area = 0});
  CHECK(entities.max().item<int64_t>() == 1);
  // Entities smaller than min_area join the background.
  entities = salient::attribution_entities(regions, maps, {.coverage = 0.5, .min_area = 0.2});
  CHECK(entities.max().item<int64_t>() == 0);
  require_error_mentioning([&] { salient::attribution_entities(regions, maps, {.coverage = 0}); }, "coverage must be in (0, 1]");
  require_error_mentioning([&] { salient::attribution_entities(regions, torch::zeros({2, 16, 16})); }, "for 32x32 inputs");
}

TEST_CASE("top-k: two touching objects that the segmentation merged are split by attribution", "[topk]") {
  auto& s = shared_models();
  if (!s) return;
  // A Samoyed and a chickadee side by side: DeepLab labels them as one connected region.
  auto composite = torch::cat({photo(*s, "dog_segmentation.png"), photo(*s, "bird.png")}, 3);
  auto entities = salient::segmentation_entities(s->segmenter, composite, {.segmenter_size = 513});
  REQUIRE(entities.max().item<int64_t>() == 1);
  auto result = analyse(*s, composite, entities);
  const auto& pair = pair_of(result, 19, 258);  // chickadee, Samoyed
  REQUIRE(pair.relation == EntityRelation::two_entities);
  CHECK(pair.split_entity);
  CHECK(salient::verify(s->classifier, composite, *pair.certificate).holds());
  // The chickadee's region lies mostly in the right half, the Samoyed's in the left.
  const auto& c = *pair.certificate;
  const auto& bird = c.class_a == 19 ? c.masks.at("A") : c.masks.at("B");
  const auto& dog = c.class_a == 19 ? c.masks.at("B") : c.masks.at("A");
  CHECK(bird.slice(1, 224).sum().item<double>() > 0.6 * bird.sum().item<double>());
  CHECK(dog.slice(1, 0, 224).sum().item<double>() > 0.8 * dog.sum().item<double>());
  // pets.jpg's two dogs are separate entities: no split needed.
  CHECK_FALSE(pair_of(analyse(*s, photo(*s, "pets.jpg"),
                              salient::segmentation_entities(s->segmenter, photo(*s, "pets.jpg"), {.segmenter_size = 513})),
                      171, 195)
                  .split_entity);
}
