// salient-topk: are two top-k predictions one entity or two? With certificates anyone can check.
//
//   salient-topk --model m.pt --image f --k 5 --out dir
//     decides every pair of the top-k classes (analysis/topk.hpp) and writes verdicts.md (the
//     table), summary.json, entities.png, one overlay PNG per decided pair and its certificate
//     (certificates/pair_A_B.json with one PNG per mask).
//   salient-topk verify --model m.pt --image f --certificate c.json
//     checks that the certificate is about these files (SHA-256), that its claims are exactly
//     those its verdict needs, and every claim, by running only the model on the masked inputs;
//     exit code 0 when it proves its verdict, 1 when it does not (with the reason).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/input_settings.hpp"
#include "common/evaluation.hpp"
#include "common/method_settings.hpp"
#include "common/output.hpp"
#include "common/report.hpp"
#include "salient/analysis/torch_topk.hpp"
#include "salient/io/certificate.hpp"
#include "salient/io/detail/sha256.hpp"
#include "salient/io/plot.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;
using salient::cli::parse_double;
using salient::cli::parse_int;

namespace topk_tool {

std::string usage() {
  return R"(usage: salient-topk --model m.pt --image FILE [options]
       salient-topk verify --model m.pt --image FILE --certificate c.json
  --model m.pt          TorchScript ImageNet classifier (ImageNet-normalised input; default: data/'s MobileNetV2)
  --image FILE          the photo (PNG/JPEG)
  --k K                 top-k classes to disambiguate (default 5, at most 20)
  --method M            attribution method for entity relevance (default gradcam), from:
)" + salient::method_list("                          ") + R"(  --entities E          model:FILE.pt (a segmentation model such as deeplabv3_mnv2_pascal.pt, background
                        = class 0) or attribution (superpixels merged by attribution); default: the
                        DeepLab model beside --model if it is there, else attribution
  --composite FILE2     explain FILE and FILE2 side by side (each prepared as --image, then joined)
  --segments SPEC       superpixels for --entities attribution (default slic:100)
  --coverage X          share of each class's positive attribution its superpixels hold (default 0.5)
  --min-area X          entities smaller than this share of the image join the background (default 0.01)
  --segmenter-size S    input size for the segmentation model (default 513, at most 2048)
  --masker NAME         layer (default), mean, black, grey, blur: how the search (and a
                        perturbation --method) removes pixels
  --out dir             output folder (default salient-topk)
)" + salient::cli::input_flags_help() + R"( verify:
  --certificate c.json  a certificate written by salient-topk (its mask PNGs beside it)
  --composite FILE2     as for the analysis
  --size S              default: the certificate's input size
 the method flags of salient-explain, for --method (--masker and --segments as above; --batch-size
 also sets the search's batch):
)" + salient::cli::method_flags_help();
}

struct Options {
  std::string model, image, composite, certificate;
  salient::TopkOptions topk;
  salient::EntityOptions entities{.segmenter_size = 513};
  std::string entity_source, method = "gradcam";
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  salient::cli::InputSettings input;
  fs::path out = "salient-topk";
};

// A class's name up to its first comma ("tabby" of "tabby, tabby cat").
std::string short_name(const std::vector<std::string>& labels, int64_t c) {
  const auto name = salient::cli::class_label(labels, c);
  return name.substr(0, name.find(','));
}

// The photo with the kept region of `mask` tinted and the rest dimmed.
salient::Image highlight(const salient::Image& photo, const torch::Tensor& mask, std::array<float, 3> colour) {
  auto m = mask.contiguous();
  const float* keep = m.data_ptr<float>();
  salient::Image out = photo;
  const int64_t plane = photo.height * photo.width;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      float& v = out.data[static_cast<size_t>(c * plane + i)];
      v = keep[i] > 0.5f ? 0.65f * v + 0.35f * colour[c] : 0.25f * v;
    }
  return out;
}

salient::Image entity_picture(const salient::Image& photo, const torch::Tensor& entities) {
  static const std::array<std::array<float, 3>, 8> palette{{{0.9f, 0.1f, 0.1f}, {0.1f, 0.4f, 0.95f}, {0.1f, 0.8f, 0.2f},
                                                           {0.95f, 0.8f, 0.1f}, {0.8f, 0.2f, 0.9f}, {0.1f, 0.85f, 0.85f},
                                                           {1.f, 0.5f, 0.1f}, {0.6f, 0.6f, 0.6f}}};
  auto e = entities.contiguous();
  const int64_t* label = e.data_ptr<int64_t>();
  salient::Image out = photo;
  const int64_t plane = photo.height * photo.width;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      float& v = out.data[static_cast<size_t>(c * plane + i)];
      v = label[i] == 0 ? 0.3f * v : 0.5f * v + 0.5f * palette[static_cast<size_t>(label[i] - 1) % palette.size()][c];
    }
  return out;
}

std::string list_names(const std::vector<int64_t>& classes, const std::vector<std::string>& labels) {
  std::string s;
  for (auto c : classes) s += (s.empty() ? "" : ", ") + short_name(labels, c);
  return s;
}

// The photo (after resize and crop) and the model input: one photo, or two side by side.
std::pair<salient::Image, torch::Tensor> load_photo(const Options& o, int64_t size) {
  const salient::Preprocessing preprocessing{size, o.input.normalization};
  auto photo = salient::prepare_image(salient::load_image(o.image), preprocessing);
  if (!o.composite.empty()) {
    auto right = salient::prepare_image(salient::load_image(o.composite), preprocessing);
    salient::Image both(3, size, 2 * size);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) both.at(c, y, x) = photo.at(c, y, x), both.at(c, y, size + x) = right.at(c, y, x);
    photo = both;
  }
  return {photo, salient::to_tensor(salient::normalize(photo, preprocessing.normalization))};
}

// The files a verdict is about, by role, with their SHA-256: the model, the image and the
// composite's second image.
std::map<std::string, salient::SubjectFile> subject_files(const Options& o) {
  std::map<std::string, salient::SubjectFile> files{{"model", salient::subject_file(o.model, "model")},
                                                    {"image", salient::subject_file(o.image, "image")}};
  if (!o.composite.empty()) files["composite"] = salient::subject_file(o.composite, "image");
  return files;
}

std::map<std::string, std::string> subject_of(const Options& o) {
  std::map<std::string, std::string> subject;
  for (const auto& [role, file] : subject_files(o)) subject[role] = file.sha256;
  return subject;
}

// Exit 0: the certificate proves its verdict about these files; 1: it does not (the reason is
// printed); 2: the model, image or options themselves are bad.
int run_verify(const Options& o) {
  if (o.image.empty() || o.certificate.empty()) fail("verify needs --image and --certificate (see --help)");
  auto model = salient::TorchModel::load(o.model);
  const auto labels = salient::cli::class_labels(o.model, o.input);
  const auto files = subject_files(o);
  salient::TopkCertificate certificate;
  salient::Verification verification;
  try {
    certificate = salient::load_certificate(o.certificate);
    salient::check_certificate_subject(certificate, files);
  } catch (const salient::error& e) {
    std::cout << "certificate " << o.certificate << " is rejected: " << e.what() << "\n";
    return 1;
  }
  const int64_t size = o.input.size_given ? o.input.size : certificate.height;
  auto [photo, input] = load_photo(o, size);
  try {
    verification = salient::verify(model, input, certificate);
  } catch (const salient::error& e) {
    std::cout << "certificate " << o.certificate << " is rejected: " << e.what() << "\n";
    return 1;
  }
  std::cout << "certificate " << o.certificate << ": " << salient::to_string(certificate.relation) << " ("
            << short_name(labels, certificate.class_a) << " / " << short_name(labels, certificate.class_b) << "), masker "
            << certificate.masker << ", k = " << certificate.k << "\n";
  std::cout << (verification.classes_in_top_k ? "  holds:  " : "  FAILS:  ") << "the whole image, "
            << list_names({certificate.class_a, certificate.class_b}, labels) << " in the top-" << certificate.k
            << "  (model's top-" << certificate.k << ": " << list_names(verification.image_top_k, labels) << ")\n";
  for (const auto& check : verification.checks) {
    std::cout << (check.holds ? "  holds:  " : "  FAILS:  ") << "keeping mask " << check.claim.mask;
    if (!check.claim.in_top_k.empty()) std::cout << ", in the top-" << certificate.k << ": " << list_names(check.claim.in_top_k, labels);
    if (!check.claim.not_in_top_k.empty())
      std::cout << ", not in the top-" << certificate.k << ": " << list_names(check.claim.not_in_top_k, labels);
    std::cout << "  (model's top-" << certificate.k << ": " << list_names(check.top_k, labels) << ")\n";
  }
  std::cout << (verification.holds() ? "all claims hold\n" : "the certificate does not hold\n");
  return verification.holds() ? 0 : 1;
}

int run_analysis(const Options& o) {
  if (o.image.empty()) fail("--image is required (see --help)");
  const auto start = std::chrono::steady_clock::now();
  salient::cli::OutputFolder output(o.out, "salient-topk");  // before any work: a folder we may write
  auto model = salient::TorchModel::load(o.model);
  const auto subject = subject_of(o);
  const auto [photo, input] = load_photo(o, o.input.size);
  const auto labels = salient::cli::class_labels(o.model, o.input);
  const auto& method = salient::find_method(o.method);
  const auto top = salient::cli::top_classes(model.forward(input), labels, o.topk.k);  // the search's top-k too
  std::vector<int64_t> classes;
  for (const auto& entry : top) classes.push_back(entry["index"].get<int64_t>());

  std::vector<torch::Tensor> maps;
  for (auto c : classes) maps.push_back(method.run(model, input, salient::Target(c), o.settings)[0].sum(0));
  auto attributions = torch::stack(maps);
  std::string entity_source = o.entity_source;
  if (entity_source.empty()) {
    const auto deeplab = fs::path(o.model).parent_path() / "deeplabv3_mnv2_pascal.pt";
    entity_source = fs::exists(deeplab) ? "model:" + deeplab.string() : "attribution";
  }
  torch::Tensor entities;
  if (entity_source == "attribution") {
    entities = salient::attribution_entities(salient::segment_input(o.settings.segments, input, o.settings.normalization),
                                             attributions, o.entities);
  } else if (entity_source.rfind("model:", 0) == 0) {
    auto segmenter = salient::TorchModel::load(entity_source.substr(6));
    entities = salient::segmentation_entities(segmenter, input, o.entities);
  } else {
    fail("--entities expects attribution or model:FILE.pt, got '", entity_source, "'");
  }
  auto result = salient::disambiguate_topk(model, input, entities, attributions, o.topk);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  salient::save_png(salient::grid({photo, entity_picture(photo, result.entities)}, 2), output.file("entities.png"));
  json summary{{"image", o.image}, {"model", o.model}, {"k", o.topk.k}, {"method", method.name},
               {"method_parameters", method.parameters(o.settings)},
               {"composite", o.composite}, {"entities", entity_source}, {"segments", o.settings.segments}, {"masker", o.topk.masker},
               {"entity_count", result.entity_count}, {"masked_inputs", result.masked_inputs}, {"seconds", seconds}};
  summary["top_k"] = top;
  std::vector<std::vector<float>> relevance;
  for (int64_t i = 0; i < result.relevance.size(0); ++i) {
    auto row = result.relevance[i].contiguous();
    relevance.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
  }
  summary["relevance"] = relevance;
  json per_entity = json::array();
  for (int64_t e = 0; e < result.entity_count; ++e)
    per_entity.push_back({{"entity", e + 1},
                          {"kept_alone_top_k", list_names(result.top_k_kept_alone[static_cast<size_t>(e)], labels)},
                          {"removed_top_k", list_names(result.top_k_removed[static_cast<size_t>(e)], labels)}});
  summary["entity_top_k"] = per_entity;

  std::ostringstream table, rows_html;  // verdicts.md's table, index.html's
  table << "| class a | class b | verdict | certificate |\n| --- | --- | --- | --- |\n";
  json pairs = json::array();
  for (const auto& pair : result.pairs) {
    const std::string stem = "pair_" + std::to_string(pair.class_a) + "_" + std::to_string(pair.class_b);
    json entry{{"class_a", pair.class_a}, {"class_b", pair.class_b}, {"name_a", short_name(labels, pair.class_a)},
               {"name_b", short_name(labels, pair.class_b)}, {"relation", std::string(salient::to_string(pair.relation))},
               {"split_entity", pair.split_entity}};
    std::string certificate_text = pair.reason;
    if (pair.certificate) {
      auto c = *pair.certificate;
      c.subject = subject;
      const auto certificate_file = output.file("certificates/" + stem + ".json");
      for (const auto& [name, _] : c.masks) output.file("certificates/" + salient::certificate_mask_file(certificate_file, name));
      salient::save_certificate(c, certificate_file);
      entry["certificate"] = "certificates/" + stem + ".json";
      const bool two = c.relation == salient::EntityRelation::two_entities;
      const auto& first = c.masks.at(two ? "A" : "E");
      const auto& second = c.masks.at(two ? "B" : "without_E");
      const int64_t w = photo.width;
      const std::string na = short_name(labels, c.class_a), nb = short_name(labels, c.class_b), top = "top-" + std::to_string(c.k);
      // Each panel: two caption lines above the highlighted photo.
      auto panel = [&](const std::string& line1, const std::string& line2, const torch::Tensor& mask, std::array<float, 3> colour) {
        const auto a = salient::text_tile(line1, 14, w, 1), b = salient::text_tile(line2, 14, w, 1), image = highlight(photo, mask, colour);
        salient::Image out(3, 28 + image.height, w, 1.f);
        for (int64_t ch = 0; ch < 3; ++ch)
          for (int64_t x = 0; x < w; ++x) {
            for (int64_t y = 0; y < 14; ++y) out.at(ch, y, x) = a.at(ch, y, x), out.at(ch, 14 + y, x) = b.at(ch, y, x);
            for (int64_t y = 0; y < image.height; ++y) out.at(ch, 28 + y, x) = image.at(ch, y, x);
          }
        return out;
      };
      std::vector<salient::Image> tiles =
          two ? std::vector<salient::Image>{panel("keep A: " + na + " in " + top, nb + " not", first, {1.f, 0.15f, 0.15f}),
                                            panel("keep B: " + nb + " in " + top, na + " not", second, {0.15f, 0.35f, 1.f})}
              : std::vector<salient::Image>{panel("keep E: in " + top, na + " and " + nb, first, {0.1f, 0.9f, 0.2f}),
                                            panel("remove E: not in " + top, na + " nor " + nb, second, {0.9f, 0.9f, 0.9f})};
      salient::save_png(salient::grid(tiles, 2), output.file(stem + ".png"));
      entry["overlay"] = stem + ".png";
      certificate_text = "[" + stem + ".json](certificates/" + stem + ".json): ";
      for (const auto& check : pair.verification.checks) {
        certificate_text += "keep " + check.claim.mask + ": ";
        if (!check.claim.in_top_k.empty()) certificate_text += list_names(check.claim.in_top_k, labels) + " in";
        if (!check.claim.in_top_k.empty() && !check.claim.not_in_top_k.empty()) certificate_text += ", ";
        if (!check.claim.not_in_top_k.empty()) certificate_text += list_names(check.claim.not_in_top_k, labels) + " out";
        certificate_text += "; ";
      }
    } else {
      entry["reason"] = pair.reason;
    }
    using salient::cli::html_escape;
    rows_html << "<tr><td>" << html_escape(short_name(labels, pair.class_a)) << "</td><td>" << html_escape(short_name(labels, pair.class_b))
              << "</td><td>" << salient::to_string(pair.relation) << (pair.split_entity ? " (split entity)" : "") << "</td><td>";
    if (entry.contains("certificate"))
      rows_html << "<img src=\"" << html_escape(entry["overlay"].get<std::string>()) << "\" alt=\"the certificate's masks\" style=\"max-width:480px\"><br><a href=\""
                << html_escape(entry["certificate"].get<std::string>()) << "\">certificate</a> (check it: <code>salient-topk verify</code>)";
    else
      rows_html << html_escape(pair.reason);
    rows_html << "</td></tr>\n";
    pairs.push_back(entry);
    table << "| " << short_name(labels, pair.class_a) << " | " << short_name(labels, pair.class_b) << " | "
          << salient::to_string(pair.relation) << (pair.split_entity ? " (split entity)" : "") << " | " << certificate_text << " |\n";
  }
  summary["pairs"] = pairs;
  std::ofstream(output.file("summary.json")) << summary.dump(1) << "\n";
  std::ofstream(output.file("verdicts.md")) << table.str();
  {
    std::ofstream html(output.file("index.html"));
    using salient::cli::html_escape;
    salient::cli::page_start(html, "salient-topk: one entity or two?",
                             "<p>Photo <code>" + html_escape(o.image) + "</code>, model <code>" + html_escape(o.model) + "</code>; entities: " +
                                 html_escape(entity_source) + ", relevance by " + html_escape(method.name) + "; " +
                                 std::to_string(result.masked_inputs) + " masked inputs, " + salient::cli::three_digits(seconds) +
                                 " s.</p>\n");
    html << "<div class=\"photo\"><img src=\"entities.png\" alt=\"the photo and its entities\" style=\"width:auto;max-width:640px\">"
         << salient::cli::top_classes_html(top, "Top-" + std::to_string(o.topk.k)) << "</div>\n<h2>Every pair of the top-"
         << o.topk.k << "</h2>\n<table><tr><th>class a</th><th>class b</th><th>verdict</th><th>certificate or reason</th></tr>\n"
         << rows_html.str() << "</table>\n<p>The same as Markdown: <a href=\"verdicts.md\">verdicts.md</a>; every number: "
         << "<a href=\"summary.json\">summary.json</a>.</p>\n";
    salient::cli::page_end(html);
  }
  output.finish();
  std::cout << "top-" << o.topk.k << ":";
  for (size_t i = 0; i < classes.size(); ++i)
    std::cout << (i ? "," : "") << " " << short_name(labels, classes[i]) << " (" << salient::cli::number(top[i]["probability"].get<double>()) << ")";
  std::cout << "\n" << result.entity_count << " entities, " << result.masked_inputs << " masked inputs, "
            << salient::cli::number(seconds, 3) << " s\n\n" << table.str();
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  o.settings.segments = "slic:100";
  const bool verify = argc > 1 && std::string(argv[1]) == "verify";
  if (verify) --argc, ++argv;
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, o.input)) return;
    if (salient::cli::method_flag(flag, value, o.settings)) {
      if (flag == "--masker") o.topk.masker = value;  // the search's masker too
      if (flag == "--batch-size") o.topk.masker_options.batch_size = o.settings.batch_size;
      return;
    }
    if (flag == "--model") o.model = value;
    else if (flag == "--image") o.image = value;
    else if (flag == "--certificate") o.certificate = value;
    else if (flag == "--composite") o.composite = value;
    else if (flag == "--k") o.topk.k = parse_int(flag, value, 2, 20);
    else if (flag == "--method") o.method = value;
    else if (flag == "--entities") o.entity_source = value;
    else if (flag == "--coverage") o.entities.coverage = parse_double(flag, value);
    else if (flag == "--min-area") o.entities.min_area = parse_double(flag, value);
    else if (flag == "--segmenter-size") o.entities.segmenter_size = parse_int(flag, value, 0, salient::cli::max_input_size);
    else if (flag == "--out") o.out = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  salient::make_masker(o.topk.masker);  // an unknown name fails before any work
  o.settings.normalization = o.input.normalization;
  if (o.model.empty() && !o.image.empty()) o.model = salient::cli::shipped_model("salient-topk");
  salient::cli::configure_process(o.input.threads);
  return verify ? run_verify(o) : run_analysis(o);
}

}  // namespace topk_tool

int salient_tool_topk(int argc, char** argv) {
  return salient::cli::main_guard("salient-topk", [&] { return topk_tool::run(argc, argv); });
}
