// salient-explain: explain a TorchScript image classifier's predictions on photos.
// Writes a heatmap PNG and the raw attribution (.npy) per image and method, summary.json
// and index.html. Without --model it explains Fashion-MNIST test images with a small CNN
// trained in C++ (once, cached). Bad input: one line on stderr, exit code 2, no output.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/input_settings.hpp"
#include "common/fashion_mnist.hpp"
#include "common/method_settings.hpp"
#include "common/output.hpp"
#include "common/report.hpp"
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;
using salient::cli::parse_double;
using salient::cli::parse_int;
using salient::cli::split_commas;

namespace explain_tool {

// --help: the method list and the shared method flags come from the library's registry.
std::string usage() {
  return std::string(R"(usage: salient-explain [options]
  --model m.pt          TorchScript classifier (default: the embedded Fashion-MNIST demo CNN)
  --image f             image to explain (PNG/JPEG/BMP, or a .npy model input); repeatable
  --target top1|<index>              class to explain (default top1)
  --method m1,m2,...    methods (default: ig), from:
)") + salient::method_list("                          ") +
         R"(  --list-layers         print the model's layers (name, output shape for --size, aliases) and exit
)" + salient::cli::method_flags_help() +
         salient::cli::input_flags_help() + R"(  --out dir             output folder (default salient-report)
)";
}

struct Options {
  std::string model;
  std::vector<std::string> images;
  salient::cli::InputSettings input;
  std::string target = "top1";
  std::vector<std::string> methods = {"integrated_gradients"};
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  std::string out = "salient-report";
  bool list_layers = false;
};

Options parse(int argc, char** argv) {
  Options o;
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {"--list-layers"}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, o.input) || salient::cli::method_flag(flag, value, o.settings)) return;
    if (flag == "--list-layers") o.list_layers = true;
    else if (flag == "--model") o.model = value;
    else if (flag == "--image") o.images.push_back(value);
    else if (flag == "--target") o.target = value;
    else if (flag == "--method") o.methods = split_commas(value);
    else if (flag == "--out") o.out = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (o.methods.empty()) fail("--method needs at least one method name");
  o.settings.normalization = o.input.normalization;
  for (auto& m : o.methods) m = salient::find_method(m).name;  // validates, canonical names
  return o;
}

// One thing to explain: a model input and the photo its heatmaps are drawn on.
struct Item {
  std::string source, stem;
  torch::Tensor input;  // [1, C, H, W]
  salient::Image photo; // [C, H, W] in [0, 1]
};

Item load_item(const std::string& file, const salient::Preprocessing& preprocessing) {
  fs::path path(file);
  Item item{file, path.stem().string(), {}, {}};
  if (path.extension() == ".npy") {
    auto array = salient::load_npy(path);
    auto t = torch::from_blob(array.data.data(), array.shape, torch::kFloat32).clone();
    if (t.dim() == 3) t = t.unsqueeze(0);
    if (t.dim() != 4 || t.size(0) != 1) fail("'", file, "' holds shape ", salient::shape_string(t), "; expected [1,C,H,W] or [C,H,W]");
    salient::TorchBackend::check_finite(t, "input '" + file + "'");
    item.input = t;
    auto shown = salient::to_image(t);
    if (shown.channels == 3) shown = salient::denormalize(shown, preprocessing.normalization);
    for (auto& v : shown.data) v = std::clamp(v, 0.f, 1.f);
    item.photo = shown;
    return item;
  }
  item.photo = salient::prepare_image(salient::load_image(path), preprocessing);
  item.input = salient::to_tensor(salient::normalize(item.photo, preprocessing.normalization));
  return item;
}

// Progress bar on stderr, only when it is a terminal.
class ProgressBar {
 public:
  ProgressBar() : enabled_(isatty(STDERR_FILENO)) {}
  salient::Progress for_task(std::string label) {
    if (!enabled_) return {};
    return [this, label](int64_t done, int64_t total) {
      const int width = 30;
      int filled = total > 0 ? static_cast<int>(width * done / total) : width;
      std::fprintf(stderr, "\r%-40.40s [%s%s] %3d%%", label.c_str(), std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), total > 0 ? static_cast<int>(100 * done / total) : 100);
      if (done >= total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    };
  }

 private:
  bool enabled_;
};

std::string unique_stem(std::string stem, std::set<std::string>& used) {
  std::string candidate = stem;
  for (int k = 2; used.count(candidate); ++k) candidate = stem + "_" + std::to_string(k);
  used.insert(candidate);
  return candidate;
}

int run(int argc, char** argv) {
  Options options = parse(argc, argv);
  salient::cli::configure_process(options.input.threads);
  salient::cli::OutputFolder output(options.out, "salient-explain");  // before any work: a folder we may write
  const bool demo = options.model.empty();
  if (options.list_layers) {
    if (demo) fail("--list-layers needs --model");
    auto model = salient::TorchModel::load(options.model);
    const int64_t size = options.input.size;
    auto layers = salient::list_layers(model, torch::zeros({1, 3, size, size}));
    std::cout << "layers of " << options.model << " for a [1,3," << size << "," << size << "] input "
              << "(default CAM layer: " << salient::default_cam_layer(model, torch::zeros({1, 3, size, size})) << ")\n";
    for (const auto& layer : layers) {
      std::string shape = "[";
      for (size_t d = 0; d < layer.shape.size(); ++d) shape += (d ? "," : "") + std::to_string(layer.shape[d]);
      shape += "]";
      std::cout << layer.name << "  " << shape;
      if (layer.calls > 1) std::cout << "  (called " << layer.calls << " times)";
      if (!layer.aliases.empty()) {
        std::cout << "  same tensor as:";
        for (const auto& alias : layer.aliases) std::cout << " " << alias;
      }
      std::cout << "\n";
    }
    return 0;
  }
  std::vector<Item> items;
  std::vector<std::string> labels;
  std::optional<salient::TorchModel> model;
  json summary{{"tool", "salient-explain"}, {"threads", options.input.threads}};

  if (demo) {
    if (!options.images.empty()) fail("--image needs --model (the embedded demo explains Fashion-MNIST test images)");
    const fs::path cache = fs::canonical("/proc/self/exe").parent_path().parent_path() / "cache";
    std::cerr << "salient-explain: no --model given: using the embedded Fashion-MNIST CNN (cache: " << cache.string() << ")\n";
    auto trained = salient::demo::fashion_cnn(cache, [](const std::string& line) { std::cerr << "  training: " << line << "\n"; });
    std::cerr << "  test accuracy " << trained.test_accuracy << (trained.from_cache ? " (cached model)" : "") << "\n";
    std::cout << "embedded model: Fashion-MNIST CNN, test accuracy " << trained.test_accuracy << "\n";
    summary["model"] = "embedded Fashion-MNIST CNN";
    summary["test_accuracy"] = trained.test_accuracy;
    model.emplace(trained.model);
    labels = salient::demo::fashion_mnist_labels;
    options.settings.normalization = salient::Normalization::none();
    options.input.normalize = "none";
    if (options.methods == std::vector<std::string>{"integrated_gradients"}) {
      options.methods.clear();
      for (const auto& m : salient::methods()) options.methods.push_back(m.name);
    }
    auto test = salient::demo::load_fashion_mnist("t10k");
    for (int64_t i = 0; i < 4; ++i) {
      auto input = test.images.slice(0, i, i + 1);
      items.push_back({"fashion-mnist t10k #" + std::to_string(i), "fashion_t10k_" + std::to_string(i), input,
                       salient::to_image(input)});
    }
  } else {
    if (options.images.empty()) fail("no --image given (see --help)");
    const auto preprocessing = options.input.preprocessing();
    for (const auto& file : options.images) items.push_back(load_item(file, preprocessing));
    model.emplace(salient::TorchModel::load(options.model));
    const auto layer = salient::cli::requested_layer(options.settings);
    if (!layer.empty()) salient::program_of(*model).layer(layer);  // fail early
    summary["model"] = options.model;
    labels = salient::cli::class_labels(options.model, options.input);
  }
  summary["normalize"] = options.input.normalize;
  summary["input_size"] = demo ? 28 : options.input.size;

  ProgressBar progress;
  std::set<std::string> stems;
  json image_reports = json::array();
  salient::cli::Report report;
  for (size_t index = 0; index < items.size(); ++index) {
    auto& item = items[index];
    item.stem = unique_stem(item.stem, stems);
    auto logits = model->forward(item.input);
    const auto top5 = salient::cli::top_classes(logits, labels, 5);
    const int64_t classes = logits.size(1);
    int64_t target_class = options.target == "top1" ? top5[0]["index"].get<int64_t>()
                                                    : parse_int("--target", options.target, 0, std::numeric_limits<int64_t>::max());
    if (target_class >= classes) fail("target class ", target_class, " out of range [0, ", classes, ")");

    const std::string input_png = item.stem + ".input.png";
    salient::save_png(salient::cli::display_size(item.photo), output.file(input_png));
    json method_reports = json::array();
    std::vector<salient::cli::ReportCell> cells;
    for (const auto& name : options.methods) {
      const auto& method = salient::find_method(name);
      auto settings = options.settings;
      std::string layer_used;
      settings.on_layer = [&](const std::string& layer) { layer_used = layer; };
      int64_t segment_count = 0;
      settings.on_segments = [&](int64_t count) { segment_count = count; };
      settings.progress = progress.for_task("[" + std::to_string(index + 1) + "/" + std::to_string(items.size()) + "] " +
                                            item.stem + " " + method.name);
      const salient::Target target(target_class);
      auto start = std::chrono::steady_clock::now();
      auto attribution = method.run(*model, item.input, target, settings);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      json entry{{"method", method.name}, {"parameters", method.parameters(settings)}, {"seconds", seconds}};
      if (segment_count > 0) entry["parameters"]["segment_count"] = segment_count;
      if (!layer_used.empty()) {
        entry["parameters"]["layer"] = layer_used;
        if (index == 0)  // the same layer for every image of one model
          std::cerr << "  " << method.name << ": layer " << layer_used
                    << (salient::cli::requested_layer(options.settings).empty() ? " (automatic)" : "") << "\n";
      }
      if (method.delta) {
        const double delta = method.delta(*model, item.input, target, attribution, settings)[0];
        entry["convergence_delta"] = delta;
        // delta = sum(attribution) - (f(x) - f(b)), so f(x) - f(b) needs no second forward pass.
        entry["output_difference"] = salient::TorchBackend::row_sums(attribution)[0] - delta;
      }
      auto files = salient::cli::write_attribution(output, item.stem, method.name, attribution, item.photo,
                                                   method.is_signed);
      entry["heatmap"] = files.heatmap;
      entry["attribution"] = files.attribution;
      method_reports.push_back(entry);
      cells.push_back({method.name, files.heatmap, seconds});
    }
    image_reports.push_back({{"source", item.source}, {"stem", item.stem}, {"input", input_png},
                             {"input_shape", item.input.sizes().vec()}, {"top5", top5},
                             {"target", {{"index", target_class}, {"label", salient::cli::class_label(labels, target_class)}}},
                             {"methods", method_reports}});
    report.rows.push_back({item.source, input_png, top5, std::move(cells)});
  }
  summary["images"] = image_reports;
  std::ofstream(output.file("summary.json")) << summary.dump(2) << "\n";
  report.write(output.file("index.html"), summary);
  output.finish();
  std::cout << "wrote " << fs::path(options.out) / "index.html" << " (" << items.size() << " images, "
            << options.methods.size() << " methods)\n";
  return 0;
}

}  // namespace explain_tool

int salient_tool_explain(int argc, char** argv) {
  return salient::cli::main_guard("salient-explain", [&] { return explain_tool::run(argc, argv); });
}
