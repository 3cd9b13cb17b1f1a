// salient-lime-eval: the layer-masking paper's LIME experiment on the sample photos.
//
//   salient-lime-eval --model m.pt --images DIR [--samples N] [--segments SPEC] [--json out.json]
//
// LIME explains each photo's top-1 three times, removing segments with a grey fill, a black
// fill, or layer masking. Each explanation is then judged by the same deletion curve: its
// segments are removed from the most to the least important (a tenth of them at a time) and
// the photo's top-1 probability is measured with layer masking, so that the metric itself
// adds no missingness bias. A lower area under the curve is a more faithful explanation.
// The explanations' top-5 segments are also compared across maskers (mean overlap).
// Prints Markdown tables (docs/lime.md holds a run) and writes JSON with --json.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/input_settings.hpp"
#include "common/cli.hpp"
#include "common/evaluation.hpp"
#include "common/output.hpp"
#include "salient/salient.hpp"

using nlohmann::json;
using salient::cli::fail;

namespace lime_eval_tool {

const char* usage = R"(usage: salient-lime-eval --model m.pt --images DIR [options]
  --model m.pt      ImageNet classifier (TorchScript, ImageNet-normalised 224x224 input; default: data/'s MobileNetV2)
  --images DIR      folder of photos (../shared/images)
  --samples N       LIME samples per explanation (default 1000, at most 100000)
  --segments SPEC   superpixels (default slic:50)
  --seed S          LIME's seed (default 0)
  --threads N       LibTorch threads (default: all cores, at most twice the cores)
  --json out.json   write every number
)";

const std::vector<std::string> kMaskers = {"grey", "black", "layer"};
constexpr int64_t kTop = 5;
constexpr int64_t kSteps = 10;

// Segment indices by decreasing coefficient.
std::vector<int64_t> ranking(const std::vector<double>& coefficients) {
  std::vector<int64_t> order(coefficients.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(k);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return coefficients[a] > coefficients[b]; });
  return order;
}

// The top-1 probability with the first 0, 1/kSteps, ..., all of `order`'s segments removed
// (layer masking); the curve's mean is its area.
std::vector<double> deletion_curve(salient::TorchModel& model, const torch::Tensor& input, int64_t cls,
                                   const torch::Tensor& labels, const std::vector<int64_t>& order) {
  const int64_t count = static_cast<int64_t>(order.size());
  auto z = torch::ones({kSteps + 1, count});
  for (int64_t step = 1; step <= kSteps; ++step) {
    const int64_t removed = (count * step + kSteps - 1) / kSteps;
    for (int64_t k = 0; k < removed; ++k) z[step][order[k]] = 0;
  }
  auto masks = z.index_select(1, labels.reshape({-1})).view({kSteps + 1, 1, input.size(2), input.size(3)});
  auto probabilities = torch::softmax(salient::LayerMasker{}.outputs(model, input, masks, {.batch_size = 32}), 1);
  std::vector<double> curve;
  for (int64_t step = 0; step <= kSteps; ++step) curve.push_back(probabilities[step][cls].item<double>());
  return curve;
}

double overlap(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  int64_t shared = 0;
  for (int64_t k = 0; k < kTop; ++k)
    shared += std::count(b.begin(), b.begin() + kTop, a[k]);
  return static_cast<double>(shared) / kTop;
}

int run(int argc, char** argv) {
  std::string model_path, images, json_path, segments_spec = "slic:50";
  int64_t samples = 1000;
  uint64_t seed = 0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  salient::cli::parse_options(argc, argv, usage, {}, [&](const std::string& flag, const std::string& value) {
    if (flag == "--model") model_path = value;
    else if (flag == "--images") images = value;
    else if (flag == "--samples") samples = salient::cli::parse_int(flag, value, 2, 100000);
    else if (flag == "--segments") segments_spec = value;
    else if (flag == "--seed") seed = static_cast<uint64_t>(salient::cli::parse_int(flag, value, 0, salient::cli::max_seed));
    else if (flag == "--threads") threads = salient::cli::parse_threads(flag, value);
    else if (flag == "--json") json_path = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (images.empty()) fail("--images is required (see --help)");
  if (model_path.empty()) model_path = salient::cli::shipped_model("salient-lime-eval");
  if (!json_path.empty()) salient::cli::check_output_file(json_path, "salient-lime-eval");  // before any work
  salient::cli::configure_process(threads);
  auto model = salient::TorchModel::load(model_path);
  auto photos = salient::cli::load_photos(images);

  json result{{"written_by", "salient-lime-eval"}, {"model", model_path}, {"photos", photos.size()}, {"samples", samples}, {"segments", segments_spec},
              {"seed", seed}, {"steps", kSteps}, {"top", kTop}};
  std::map<std::string, double> area_sum, r2_sum;
  std::map<std::string, std::vector<double>> curve_sum;
  std::map<std::string, double> overlap_sum;
  json per_photo = json::array();
  for (const auto& photo : photos) {
    auto labels = salient::segment_input(segments_spec, photo.input);
    const int64_t cls = model.forward(photo.input).argmax(1).item<int64_t>();
    std::map<std::string, std::vector<int64_t>> orders;
    json entry{{"photo", photo.name}, {"class", cls}, {"segments", labels.max().item<int64_t>() + 1}};
    for (const auto& name : kMaskers) {
      auto explanation = salient::lime_explanation(
          model, photo.input, cls,
          {.segments = labels, .samples = samples, .seed = seed, .evaluation = {.masker = salient::make_masker(name), .batch_size = 32}});
      orders[name] = ranking(explanation.fit.coefficients);
      auto curve = deletion_curve(model, photo.input, cls, labels, orders[name]);
      double area = 0;
      for (double p : curve) area += p / static_cast<double>(curve.size());
      area_sum[name] += area;
      r2_sum[name] += explanation.fit.r2;
      auto& total = curve_sum[name];
      total.resize(curve.size());
      for (size_t k = 0; k < curve.size(); ++k) total[k] += curve[k];
      entry[name] = {{"deletion_area", area}, {"r2", explanation.fit.r2}, {"curve", curve},
                     {"top", std::vector<int64_t>(orders[name].begin(), orders[name].begin() + kTop)}};
      std::cerr << photo.name << " " << name << ": deletion area " << area << ", R^2 " << explanation.fit.r2 << "\n";
    }
    for (size_t a = 0; a < kMaskers.size(); ++a)
      for (size_t b = a + 1; b < kMaskers.size(); ++b)
        overlap_sum[kMaskers[a] + " / " + kMaskers[b]] += overlap(orders[kMaskers[a]], orders[kMaskers[b]]);
    per_photo.push_back(entry);
  }
  const double n = static_cast<double>(photos.size());
  using salient::cli::number;
  using salient::cli::print_row;
  std::cout << "### Deletion curves (" << photos.size() << " photos, LIME with " << samples << " samples on "
            << segments_spec << " superpixels; probability of the top-1 under layer masking)\n\n";
  std::vector<std::string> header{"LIME's masker", "area under the deletion curve (lower is better)", "mean R^2"};
  for (int64_t step = 0; step <= kSteps; step += 2) header.push_back(std::to_string(step * 100 / kSteps) + "% removed");
  print_row(header);
  print_row(std::vector<std::string>(header.size(), "---"));
  for (const auto& name : kMaskers) {
    std::vector<std::string> row{name, number(area_sum[name] / n), number(r2_sum[name] / n)};
    for (int64_t step = 0; step <= kSteps; step += 2) row.push_back(number(curve_sum[name][step] / n));
    print_row(row);
    result["deletion_area"][name] = area_sum[name] / n;
    result["r2"][name] = r2_sum[name] / n;
  }
  std::cout << "\n### Agreement of the top-" << kTop << " segments\n\n";
  print_row({"maskers", "mean fraction of shared top-" + std::to_string(kTop) + " segments"});
  print_row({"---", "---"});
  for (const auto& [pair, total] : overlap_sum) {
    print_row({pair, number(total / n)});
    result["top_overlap"][pair] = total / n;
  }
  result["per_photo"] = per_photo;
  if (!json_path.empty()) std::ofstream(json_path) << result.dump(2) << "\n";
  return 0;
}

}  // namespace lime_eval_tool

int salient_tool_lime_eval(int argc, char** argv) {
  return salient::cli::main_guard("salient-lime-eval", [&] { return lime_eval_tool::run(argc, argv); });
}
