// salient-sanity: the sanity checks of Adebayo et al. 2018 for attribution methods.
//
//   salient-sanity --model m.pt --images DIR|FILE ... [--methods gradient,ig,...] [--out dir]
//     model parameter randomisation (cascading from the logits down, or independent): for
//     each step the methods' maps and their similarity to the original maps.
//   salient-sanity --data-randomisation [--train-images N] [--out dir]
//     trains a small CNN on Fashion-MNIST with true and with permuted labels (until it has
//     memorised them) and compares the two models' maps on test images.
//
// Writes to --out: randomisation.png (mean Spearman rank correlation of absolute maps vs
// randomised layer, one line per method), ssim.png / hog.png / spearman_signed.png, maps.png
// (the maps of the first image at every step), results.csv (every number) and results.json.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/input_settings.hpp"
#include "common/evaluation.hpp"
#include "common/fashion_mnist.hpp"
#include "common/method_settings.hpp"
#include "common/output.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/sanity.hpp"
#include "salient/evaluation/training.hpp"
#include "salient/io/plot.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;
using salient::cli::parse_int;

namespace sanity_tool {

std::string usage() {
  return std::string(R"(usage: salient-sanity --model m.pt --images DIR|FILE [options]
       salient-sanity --data-randomisation [options]
  --model m.pt          TorchScript classifier
  --images DIR|FILE     photos (a folder: every PNG/JPEG in it, sorted); repeatable
  --limit N             use the first N photos (default: all, at most 100000)
  --methods m1,m2,...   gradient (saliency), ig, smoothgrad, gradcam, guided_backprop, guided_gradcam
                        (the default), or any of these; the Sobel edge detector is always added as "edges":
)") + salient::method_list("                          ") +
         R"(  --mode cascading|independent       randomise from the logits down, or one layer group at a time
  --init default|normal|uniform      re-initialisation (default: the layer type's default init)
  --group-depth D       module path components per layer group (default 2: "features.3", "layer2.1"; at most 16)
)" + salient::cli::method_flags_help() +
         R"(  (salient-sanity's own defaults: --steps 32, --samples 16; --seed also seeds the re-initialisation)
  --data-randomisation  the data randomisation test on Fashion-MNIST instead
  --train-images N      training images for it (default 2000; the permuted model must memorise them; at most 60000)
  --out dir             output folder (default salient-sanity)
)" + salient::cli::input_flags_help();
}

struct Options {
  std::string model;
  std::vector<std::string> images;
  int64_t limit = 0;
  std::vector<std::string> methods = {"gradient", "ig", "smoothgrad", "gradcam", "guided_backprop", "guided_gradcam"};
  salient::RandomisationOptions randomisation;
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  salient::cli::InputSettings input;
  bool data_randomisation = false;
  int64_t train_images = 2000;
  fs::path out = "salient-sanity";
};

std::vector<salient::SanityMethod> make_methods(const Options& options) {
  std::vector<salient::SanityMethod> methods;
  for (const auto& name : options.methods) {
    methods.push_back({name, salient::find_method(name == "gradient" ? "saliency" : name).bind(options.settings)});
  }
  methods.push_back({"edges", [](salient::TorchModel&, const torch::Tensor& x, const salient::Target&) {
                       return salient::sobel_edges(x);
                     }});
  return methods;
}

json similarity_json(const salient::MapSimilarity& s) {
  return {{"spearman_abs", s.spearman_abs}, {"spearman", s.spearman}, {"ssim", s.ssim}, {"hog", s.hog}};
}

// One tile per map: |attribution| summed over channels, 99th-percentile scaled, inferno.
salient::Image tile_of(const torch::Tensor& attribution, int64_t size) {
  auto map = salient::normalised_absolute_map(attribution).contiguous();
  salient::Map2D m{map.size(0), map.size(1), std::vector<float>(map.data_ptr<float>(), map.data_ptr<float>() + map.numel())};
  if (m.height != size || m.width != size) m = salient::resize(m, size, size);
  return salient::colorize(m, salient::Colormap::inferno);
}

// Charts of the mean similarity per step, one line per method.
void write_charts(salient::cli::OutputFolder& out, const salient::RandomisationTestResult& result, const std::string& mode) {
  std::vector<std::string> ticks;
  for (const auto& step : result.steps) ticks.push_back(step.group);
  struct Measure {
    std::string file, title;
    double salient::MapSimilarity::*field;
  };
  for (const auto& [file, title, field] : std::vector<Measure>{
           {"randomisation.png", "Spearman rank correlation (absolute maps)", &salient::MapSimilarity::spearman_abs},
           {"spearman_signed.png", "Spearman rank correlation (signed maps)", &salient::MapSimilarity::spearman},
           {"ssim.png", "SSIM (absolute maps)", &salient::MapSimilarity::ssim},
           {"hog.png", "HOG similarity (absolute maps)", &salient::MapSimilarity::hog}}) {
    std::vector<salient::Series> series;
    double lowest = 0;
    for (size_t m = 0; m < result.methods.size(); ++m) {
      salient::Series s{result.methods[m], {}};
      for (size_t step = 0; step < result.steps.size(); ++step) {
        s.y.push_back(result.mean(step, m).*field);
        lowest = std::min(lowest, s.y.back());
      }
      series.push_back(std::move(s));
    }
    salient::save_png(salient::line_chart(series, {.title = title + ", " + mode + " randomisation",
                                                   .x_label = mode == "cascading" ? "randomised down to layer group"
                                                                                  : "randomised layer group",
                                                   .y_label = "similarity to the original map",
                                                   .x_ticks = ticks,
                                                   .y_min = std::floor(lowest * 10 - 0.5) / 10,
                                                   .y_max = 1.0,
                                                   .width = 1100,
                                                   .height = 600}),
                      out.file(file));
  }
}

int run_parameter_randomisation(const Options& options, salient::cli::OutputFolder& output) {
  if (options.model.empty() || options.images.empty()) fail("--model and --images are required (see --help)");
  auto model = salient::TorchModel::load(options.model);
  const auto preprocessing = options.input.preprocessing();
  std::vector<salient::cli::Photo> photos;
  for (const auto& source : options.images) {
    if (fs::is_directory(source)) {
      for (auto& p : salient::cli::load_photos(source, preprocessing)) photos.push_back(std::move(p));
    } else {
      photos.push_back({fs::path(source).filename().string(), salient::load_input(source, preprocessing)});
    }
  }
  if (options.limit > 0 && static_cast<int64_t>(photos.size()) > options.limit) photos.resize(options.limit);
  std::vector<torch::Tensor> inputs;
  for (const auto& p : photos) inputs.push_back(p.input);
  auto batch = torch::cat(inputs);
  auto methods = make_methods(options);
  const std::string mode = options.randomisation.mode == salient::RandomisationMode::cascading ? "cascading" : "independent";
  const auto groups = salient::parameter_groups(model, options.randomisation.group_depth);
  // A model that rejects the photos, or a labels file that does not fit it, fails before any progress line.
  const auto labels = salient::cli::class_labels(options.model, options.input);
  salient::cli::check_label_count(labels, salient::cli::checked_scores(model.forward(batch)).size(1));
  std::cerr << "salient-sanity: " << photos.size() << " photos, " << methods.size() << " methods, " << groups.size()
            << " layer groups (" << mode << ")\n";
  const auto start = std::chrono::steady_clock::now();
  auto result = salient::parameter_randomisation_test(
      model, batch, salient::top1, methods,
      {.randomisation = options.randomisation, .keep_maps = true, .on_step = [&](const salient::RandomisationStep& s) {
         const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
         std::cerr << "  step " << s.index << "/" << groups.size() << " (" << s.group << ") done at " << seconds << " s\n";
       }});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  write_charts(output, result, mode);
  // Maps of the first photo: one row per method, one column per step, with headers.
  constexpr int64_t tile = 96;
  std::vector<salient::Image> tiles{salient::text_tile("", 16, tile)};
  for (const auto& step : result.steps) tiles.push_back(salient::text_tile(step.group, 16, tile));
  for (size_t m = 0; m < methods.size(); ++m) {
    tiles.push_back(salient::text_tile(result.methods[m], tile, tile));
    for (size_t step = 0; step < result.steps.size(); ++step) tiles.push_back(tile_of(result.maps[step][m][0], tile));
  }
  salient::save_png(salient::grid(tiles, static_cast<int64_t>(result.steps.size()) + 1, 2), output.file("maps.png"));

  std::ofstream csv(output.file("results.csv"));
  csv << "step,group,method,image,spearman_abs,spearman,ssim,hog\n";
  json steps = json::array();
  for (size_t step = 0; step < result.steps.size(); ++step) {
    json per_method = json::object();
    for (size_t m = 0; m < methods.size(); ++m) {
      per_method[result.methods[m]] = similarity_json(result.mean(step, m));
      for (size_t i = 0; i < photos.size(); ++i) {
        const auto& s = result.similarity[step][m][i];
        csv << step << "," << result.steps[step].group << "," << result.methods[m] << "," << photos[i].name << ","
            << s.spearman_abs << "," << s.spearman << "," << s.ssim << "," << s.hog << "\n";
      }
    }
    steps.push_back({{"step", step}, {"group", result.steps[step].group}, {"mean", per_method}});
  }
  json images = json::array();
  for (size_t i = 0; i < photos.size(); ++i) images.push_back({{"name", photos[i].name}, {"target", result.targets[i]},
                                                                {"label", salient::cli::class_label(labels, result.targets[i])}});
  json summary{{"model", options.model}, {"mode", mode}, {"group_depth", options.randomisation.group_depth},
               {"init", std::string(options.randomisation.init.scheme == salient::Reinitialisation::layer_default ? "default"
                                    : options.randomisation.init.scheme == salient::Reinitialisation::normal ? "normal" : "uniform")},
               {"seed", options.randomisation.init.seed}, {"methods", result.methods}, {"images", images},
               {"ig_steps", salient::find_method("ig").parameters(options.settings)["steps"]},
               {"smoothgrad_samples", salient::find_method("smoothgrad").parameters(options.settings)["samples"]},
               {"input_size", options.input.size},
               {"threads", options.input.threads}, {"seconds", seconds}, {"steps", steps}};
  std::ofstream(output.file("results.json")) << summary.dump(1) << "\n";

  // The table: mean Spearman (absolute maps) at the original model, halfway, fully randomised.
  const size_t last = result.steps.size() - 1, half = last / 2;
  salient::cli::print_row({"method", "original", "after " + result.steps[half].group, "after " + result.steps[last].group});
  salient::cli::print_row({"---", "---", "---", "---"});
  for (size_t m = 0; m < methods.size(); ++m)
    salient::cli::print_row({result.methods[m], salient::cli::number(result.mean(0, m).spearman_abs),
                             salient::cli::number(result.mean(half, m).spearman_abs),
                             salient::cli::number(result.mean(last, m).spearman_abs)});
  output.finish(/*keep_earlier=*/true);  // a data randomisation's files stay beside these
  std::cerr << "salient-sanity: wrote " << (options.out / "results.json").string() << " (" << seconds << " s)\n";
  return 0;
}

int run_data_randomisation(const Options& options, salient::cli::OutputFolder& output) {
  auto train = salient::demo::load_fashion_mnist("train"), test = salient::demo::load_fashion_mnist("t10k");
  const int64_t n = std::min<int64_t>(options.train_images, train.images.size(0));
  auto images = train.images.slice(0, 0, n), labels = train.labels.slice(0, 0, n);
  auto log = [](const std::string& which) {
    return [which](const salient::EpochReport& r) {
      if (r.epoch % 10 == 0 || r.accuracy > 0.99)
        std::cerr << "  " << which << " epoch " << r.epoch << ": loss " << r.loss << ", train accuracy " << r.accuracy << "\n";
    };
  };
  const auto start = std::chrono::steady_clock::now();
  torch::manual_seed(options.randomisation.init.seed);
  salient::demo::SmallCnn true_net;
  auto true_report = salient::train_classifier(true_net, images, labels, {.epochs = 20, .stop_accuracy = 0.99, .on_epoch = log("true labels")});
  torch::manual_seed(options.randomisation.init.seed);
  salient::demo::SmallCnn random_net;
  auto permuted = salient::permuted_labels(labels, options.randomisation.init.seed);
  auto random_report = salient::train_classifier(random_net, images, permuted,
                                                 {.epochs = 500, .learning_rate = 2e-3, .stop_accuracy = 0.99,
                                                  .on_epoch = log("permuted labels")});
  salient::TorchModel trained(true_net), memorised(random_net);
  auto test_images = test.images.slice(0, 0, 2000), test_labels = test.labels.slice(0, 0, 2000);
  json accuracy{{"true_labels", {{"epochs", true_report.epoch},
                                 {"train", salient::classification_accuracy(trained, images, labels)},
                                 {"test", salient::classification_accuracy(trained, test_images, test_labels)}}},
                {"permuted_labels", {{"epochs", random_report.epoch},
                                     {"train", salient::classification_accuracy(memorised, images, permuted)},
                                     {"test", salient::classification_accuracy(memorised, test_images, test_labels)}}}};
  std::cerr << "salient-sanity: " << accuracy.dump() << "\n";

  // Maps of 16 test images for their true labels.
  auto x = test.images.slice(0, 0, 16);
  std::vector<int64_t> y(test.labels.data_ptr<int64_t>(), test.labels.data_ptr<int64_t>() + 16);
  auto settings_options = options;
  settings_options.settings.normalization = salient::Normalization::none();
  settings_options.settings.options.erase("layer");
  auto methods = make_methods(settings_options);
  auto result = salient::data_randomisation_test(trained, memorised, x, y, methods);
  // Rows: methods; columns: 4 test images under the true-label model, then the same 4 under
  // the permuted-label model.
  constexpr int64_t tile = 84;
  std::vector<salient::Image> tiles{salient::text_tile("", 16, tile)};
  for (int64_t i = 0; i < 8; ++i) tiles.push_back(salient::text_tile(i < 4 ? "true labels" : "permuted", 16, tile));
  tiles.push_back(salient::text_tile("input", tile, tile));
  for (int64_t i = 0; i < 8; ++i) tiles.push_back(tile_of(x[i % 4], tile));
  for (size_t m = 0; m < methods.size(); ++m) {
    tiles.push_back(salient::text_tile(result.methods[m], tile, tile));
    for (int64_t i = 0; i < 4; ++i) tiles.push_back(tile_of(result.trained_maps[m][i], tile));
    for (int64_t i = 0; i < 4; ++i) tiles.push_back(tile_of(result.permuted_maps[m][i], tile));
  }
  salient::save_png(salient::grid(tiles, 9, 2), output.file("data_randomisation_maps.png"));
  json per_method = json::object();
  salient::cli::print_row({"method", "Spearman (abs)", "Spearman (signed)", "SSIM", "HOG"});
  salient::cli::print_row({"---", "---", "---", "---", "---"});
  for (size_t m = 0; m < methods.size(); ++m) {
    const auto mean = salient::mean_similarity(result.similarity[m]);
    per_method[result.methods[m]] = similarity_json(mean);
    salient::cli::print_row({result.methods[m], salient::cli::number(mean.spearman_abs), salient::cli::number(mean.spearman),
                             salient::cli::number(mean.ssim), salient::cli::number(mean.hog)});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  json summary{{"test", "data randomisation"}, {"train_images", n}, {"accuracy", accuracy}, {"similarity", per_method},
               {"threads", options.input.threads}, {"seconds", seconds}};
  std::ofstream(output.file("data_randomisation.json")) << summary.dump(1) << "\n";
  output.finish(/*keep_earlier=*/true);  // the parameter randomisation's files stay beside these
  return 0;
}

int run(int argc, char** argv) {
  Options options;
  options.settings.options["steps"] = "32";
  options.settings.options["samples"] = "16";
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {"--data-randomisation"}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, options.input) || salient::cli::method_flag(flag, value, options.settings)) return;
    if (flag == "--model") options.model = value;
    else if (flag == "--images") options.images.push_back(value);
    else if (flag == "--limit") options.limit = parse_int(flag, value, 1, 100000);
    else if (flag == "--methods") options.methods = salient::cli::split_commas(value);
    else if (flag == "--mode") {
      if (value == "cascading") options.randomisation.mode = salient::RandomisationMode::cascading;
      else if (value == "independent") options.randomisation.mode = salient::RandomisationMode::independent;
      else fail("--mode expects cascading or independent, got '", value, "'");
    } else if (flag == "--init") {
      if (value == "default") options.randomisation.init.scheme = salient::Reinitialisation::layer_default;
      else if (value == "normal") options.randomisation.init.scheme = salient::Reinitialisation::normal;
      else if (value == "uniform") options.randomisation.init.scheme = salient::Reinitialisation::uniform;
      else fail("--init expects default, normal or uniform, got '", value, "'");
    } else if (flag == "--group-depth") options.randomisation.group_depth = static_cast<int>(parse_int(flag, value, 0, 16));
    else if (flag == "--data-randomisation") options.data_randomisation = true;
    else if (flag == "--train-images") options.train_images = parse_int(flag, value, 10, 60000);
    else if (flag == "--out") options.out = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  options.randomisation.init.seed = options.settings.seed;
  options.settings.normalization = options.input.normalization;
  for (const auto& name : options.methods) salient::find_method(name == "gradient" ? "saliency" : name);  // early error
  salient::cli::configure_process(options.input.threads);
  salient::cli::OutputFolder output(options.out, "salient-sanity");  // before any work: a folder we may write
  return options.data_randomisation ? run_data_randomisation(options, output) : run_parameter_randomisation(options, output);
}

}  // namespace sanity_tool

int salient_tool_sanity(int argc, char** argv) {
  return salient::cli::main_guard("salient-sanity", [&] { return sanity_tool::run(argc, argv); });
}
