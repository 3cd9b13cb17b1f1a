// salient-explain: explain a TorchScript image classifier's predictions on photos.
// Writes a heatmap PNG and the raw attribution (.npy) per image and method, summary.json
// and index.html. Without --model it uses the MobileNetV2 shipped in data/, and without images
// too it explains data/'s photos with the main methods (the demo); --fashion-mnist explains
// Fashion-MNIST test images with a small CNN trained in C++ (once, cached). Bad input: one line
// on stderr, exit code 2, no output.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
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
#include "common/parts.hpp"
#include "common/processes.hpp"
#include "common/report.hpp"
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "salient/salient.hpp"
#ifdef SALIENT_HAVE_HDF5
#include "salient/io/detail/sha256.hpp"
#include "salient/io/hdf5.hpp"
#endif

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
  --model m.pt          TorchScript classifier (default: data/'s MobileNetV2, ImageNet; SALIENT_DATA=DIR
                          names another data folder)
                        With neither --model nor images: the demo, data/'s photos with the main methods
  --fashion-mnist       the embedded demo CNN, trained here on Fashion-MNIST (once, cached), on 4 test images
                          with every method
  --image f             image to explain (PNG/JPEG/BMP, or a .npy model input); repeatable
  --images DIR          every image below DIR, recursively (an ImageFolder tree's class folders give the labels)
  --list FILE           the images named in FILE, one `path[,label]` per line (paths relative to FILE's folder)
  --dataset fashion-mnist            the Fashion-MNIST test set (Debian's dataset-fashion-mnist; 28x28 models)
  --sample N            a random N of the dataset's images (seeded by --seed), in the dataset's order
  --limit N             the first N images (after --sample)
  --shard I/N           the images of shard I of N (0 <= I < N): each image lands in one shard, decided by its path
  --skip-bad            report an unreadable image (path and reason) and go on; without it the run stops there
  --format files|hdf5   files: a .npy and a heatmap PNG per image and method (default); hdf5: every map and
                          the per-image index in OUT/attributions.h5 (float32; float16 with --half)
  --png                 with --format hdf5: the heatmap PNGs too
  --compression L       with --format hdf5: the maps' deflate level, 0 (none, the fastest) to 9 (default 1)
  --part-size N         items per part (default 100, at most 100000). Parts are written whole or not at all; a
                          rerun into the same --out reuses the finished ones (resume after a crash), either format
  --items-per-call N    items explained by one call of each method (default 1, at most 256): faster for cheap
                          methods, but the maps then equal the default's only to rounding (another batch shape),
                          noise methods draw other noise, and a --shard run forms other calls than the whole run
  --mpi                 under mpirun -np K: the K processes take parts from a shared counter, rank 0 merges
                          them and writes the summary (only in builds with MPI)
  --target top1|<index>              class to explain (default top1)
  --device cpu|cuda[:I] where the model runs (default cpu). cuda needs a CUDA build of LibTorch (untested:
                          Debian's LibTorch is CPU-only); maps come back to the CPU to be written
  --method m1,m2,...    methods (default: ig); a method's own settings follow its name, e.g.
                          lime:masker=layer:samples=500 (the flags below without --). From:
)") + salient::method_list("                          ") +
         R"(  --list-layers         print the model's layers (name, output shape for --size, aliases) and exit
)" + salient::cli::method_flags_help() +
         salient::cli::input_flags_help() + R"(  --out dir             output folder (default salient-report)
)";
}

struct Options {
  std::string model;
  std::vector<std::string> images;
  std::string images_dir, list_file, dataset;  // --images, --list, --dataset
  int64_t sample = 0, limit = 0;                // 0: all
  salient::Shard shard;
  bool skip_bad = false;
  std::string format = "files";  // files | hdf5
  bool half = false, png = false, mpi = false;
  int64_t compression = -1;  // --format hdf5: the maps' deflate level; -1: 1
  int64_t part_size = 0;  // items per part (what a crash can cost); 0: 100
  int64_t items_per_call = 1;  // items explained by one call of each method
  salient::cli::InputSettings input;
  std::string target = "top1";
  torch::Device device = torch::kCPU;
  salient::cli::MethodList methods;  // empty: the default (ig; the demo's list; every method for --fashion-mnist)
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  std::string out = "salient-report";
  bool list_layers = false, fashion_mnist = false;

  salient::MethodSettings settings_for(const std::string& method) const { return methods.settings(method, settings); }
};

// The demo's methods (salient-explain with no --model and no images): under 3 minutes for data/'s
// eight photos on 2 cores, with enough samples to look like the method.
const char* demo_methods =
    "saliency,integrated_gradients,smoothgrad:samples=25,gradcam,guided_gradcam,occlusion,"
    "lime:masker=layer:samples=500,rise:samples=1000";

Options parse(int argc, char** argv) {
  Options o;
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {"--list-layers", "--skip-bad", "--half", "--png", "--mpi", "--fashion-mnist"}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, o.input) || salient::cli::method_flag(flag, value, o.settings)) return;
    if (flag == "--list-layers") o.list_layers = true;
    else if (flag == "--skip-bad") o.skip_bad = true;
    else if (flag == "--half") o.half = true;
    else if (flag == "--png") o.png = true;
    else if (flag == "--mpi") o.mpi = true;
    else if (flag == "--fashion-mnist") o.fashion_mnist = true;
    else if (flag == "--format") {
      if (value != "files" && value != "hdf5") fail("--format is files or hdf5, not '", value, "'");
      o.format = value;
    }
    else if (flag == "--part-size") o.part_size = parse_int(flag, value, 1, 100'000);
    else if (flag == "--items-per-call") o.items_per_call = parse_int(flag, value, 1, 256);
    else if (flag == "--compression") o.compression = parse_int(flag, value, 0, 9);
    else if (flag == "--model") o.model = value;
    else if (flag == "--image") o.images.push_back(value);
    else if (flag == "--images") o.images_dir = value;
    else if (flag == "--list") o.list_file = value;
    else if (flag == "--dataset") {
      if (value != "fashion-mnist") fail("--dataset knows fashion-mnist, not '", value, "'");
      o.dataset = value;
    } else if (flag == "--sample") o.sample = parse_int(flag, value, 1, salient::max_option_count);
    else if (flag == "--limit") o.limit = parse_int(flag, value, 1, salient::max_option_count);
    else if (flag == "--shard") o.shard = salient::parse_shard(value);
    else if (flag == "--target") o.target = value;
    else if (flag == "--device") o.device = salient::cli::parse_device(flag, value);
    else if (flag == "--method") o.methods = salient::cli::parse_method_list(flag, value);
    else if (flag == "--out") o.out = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
#ifndef SALIENT_HAVE_HDF5
  if (o.format == "hdf5") fail("--format hdf5: this salient-explain was built without HDF5 (install libhdf5-dev and rebuild)");
#endif
  if ((o.half || o.png || o.compression >= 0) && o.format != "hdf5") fail("--half, --png and --compression go with --format hdf5");
  if (o.part_size == 0) o.part_size = 100;
  if (o.compression < 0) o.compression = 1;
  salient::cli::Processes::check_launch("salient-explain", o.mpi, "");
  const int sources = !o.images.empty() + !o.images_dir.empty() + !o.list_file.empty() + !o.dataset.empty();
  if (sources > 1) fail("give the images one way: --image files, --images DIR, --list FILE or --dataset");
  if (!o.images.empty() && (o.sample || o.limit || o.shard.count > 1))
    fail("--sample, --limit and --shard select from a dataset (--images DIR, --list FILE or --dataset), not from --image files");
  if (o.fashion_mnist && (!o.model.empty() || sources > 0))
    fail("--fashion-mnist explains the embedded CNN on its own test images: no --model, --image, --images, --list or --dataset");
  o.settings.normalization = o.input.normalization;
  return o;
}

// One thing to explain: a model input and the photo its heatmaps are drawn on.
struct Item {
  std::string source, stem;
  torch::Tensor input;  // [1, C, H, W]
  salient::Image photo; // [C, H, W] in [0, 1]
  double decode_seconds = 0;
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

// One image of the run, not yet loaded: a file, or an item of the Fashion-MNIST test set.
struct Source {
  std::string source;   // as the user knows it: the path, or "fashion-mnist t10k #i"
  std::string stem;     // output file names start with it (made unique later)
  std::string key;      // the dataset key ("" for --image files)
  int64_t label = -1;   // the dataset's label; -1: none
  int64_t fashion = -1; // the Fashion-MNIST test index; -1: a file
  int64_t item = -1;    // its position in the whole dataset (before --sample, --limit, --shard)
};

// A dataset item's stem: its key's folders and file stem joined by "__" (cats/1.png: cats__1),
// without the parts that would climb out of the output folder.
std::string dataset_stem(const std::string& key) {
  const fs::path path(key);
  std::string stem;
  for (const auto& part : path.parent_path()) {
    const auto text = part.string();
    if (text.empty() || text == "/" || text == "." || text == "..") continue;
    stem += text + "__";
  }
  return stem + path.stem().string();
}

// The images the options name, selected by --sample, --limit and --shard (in that order).
std::vector<Source> sources(const Options& options, const salient::MethodSettings& settings, int64_t fashion_count) {
  std::vector<Source> all;
  if (!options.images.empty()) {
    for (const auto& file : options.images)
      all.push_back({file, fs::path(file).stem().string(), "", -1, -1, static_cast<int64_t>(all.size())});
    return all;
  }
  std::vector<salient::DatasetItem> items;
  if (!options.dataset.empty()) {
    for (int64_t i = 0; i < fashion_count; ++i) items.push_back({"", "t10k/" + std::to_string(i), -1});
  } else {
    const auto dataset = options.list_file.empty() ? salient::image_folder(options.images_dir) : salient::image_list(options.list_file);
    items = dataset.items;
  }
  std::map<std::string, int64_t> position;  // the key's place in the whole dataset
  for (std::size_t i = 0; i < items.size(); ++i) position.emplace(items[i].key, static_cast<int64_t>(i));
  if (options.sample > 0) items = salient::sample_items(items, options.sample, settings.seed);
  if (options.limit > 0 && static_cast<int64_t>(items.size()) > options.limit) items.resize(static_cast<std::size_t>(options.limit));
  items = salient::shard_items(items, options.shard);
  if (items.empty()) fail("shard ", options.shard.index, "/", options.shard.count, " of the dataset holds no images");
  for (const auto& item : items) {
    if (!options.dataset.empty()) {
      const int64_t i = std::stoll(item.key.substr(5));
      all.push_back({"fashion-mnist t10k #" + std::to_string(i), "fashion_t10k_" + std::to_string(i), item.key, -1, i,
                     position.at(item.key)});
    } else {
      all.push_back({item.path.string(), dataset_stem(item.key), item.key, item.label, -1, position.at(item.key)});
    }
  }
  return all;
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

int run(Options options, salient::cli::Processes& processes) {
  const auto process_start = std::chrono::steady_clock::now();
  salient::cli::configure_process(options.input.threads);
  // Before any work: a folder we may write (rank 0 keeps it; the other ranks write only parts).
  std::optional<salient::cli::OutputFolder> output;
  if (processes.root()) output.emplace(options.out, "salient-explain");
  // The embedded Fashion-MNIST CNN: --fashion-mnist, or --dataset fashion-mnist without --model.
  const bool embedded = options.model.empty() && (options.fashion_mnist || !options.dataset.empty());
  if (options.model.empty() && !embedded) {
    options.model = salient::cli::shipped_model("salient-explain");
    if (options.images.empty() && options.images_dir.empty() && options.list_file.empty()) {  // the demo
      options.images = salient::cli::shipped_photos();
      if (options.methods.names.empty()) options.methods = salient::cli::parse_method_list("--method", demo_methods);
      std::cerr << "salient-explain: the demo: " << options.images.size() << " photos of "
                << fs::path(options.images[0]).parent_path().string() << ", " << options.methods.names.size() << " methods\n";
    }
  }
  if (options.methods.names.empty()) {
    std::string every;
    for (const auto& m : salient::methods()) every += (every.empty() ? "" : ",") + m.name;
    options.methods = salient::cli::parse_method_list("--method", embedded ? every : "integrated_gradients");
  }
  if (options.list_layers) {
    if (embedded) fail("--list-layers lists a TorchScript model's layers: give --model (or none for data/'s MobileNetV2)");
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
  std::vector<std::string> labels;
  std::optional<salient::TorchModel> model;
  json summary{{"tool", "salient-explain"}, {"threads", options.input.threads}};
  std::optional<salient::demo::Dataset> fashion;  // the Fashion-MNIST test set, when it is explained

  if (embedded) {
    const fs::path cache = fs::canonical("/proc/self/exe").parent_path().parent_path() / "cache";
    std::cerr << "salient-explain: the embedded Fashion-MNIST CNN (cache: " << cache.string() << ")\n";
    auto trained = salient::demo::fashion_cnn(cache, [](const std::string& line) { std::cerr << "  training: " << line << "\n"; });
    std::cerr << "  test accuracy " << trained.test_accuracy << (trained.from_cache ? " (cached model)" : "") << "\n";
    std::cout << "embedded model: Fashion-MNIST CNN, test accuracy " << trained.test_accuracy << "\n";
    summary["model"] = "embedded Fashion-MNIST CNN";
    summary["test_accuracy"] = trained.test_accuracy;
    model.emplace(trained.model);
    labels = salient::demo::fashion_mnist_labels;
    options.settings.normalization = salient::Normalization::none();
    options.input.normalize = "none";
    if (options.dataset.empty()) {  // the demo's four test images
      options.dataset = "fashion-mnist";
      if (options.limit == 0 && options.sample == 0) options.limit = 4;
    }
  } else {
    if (options.images.empty() && options.images_dir.empty() && options.list_file.empty() && options.dataset.empty())
      fail("no --image, --images, --list or --dataset given (see --help)");
    model.emplace(salient::cli::load_model(options.model));
    for (const auto& name : options.methods.names)  // fail early
      if (const auto layer = salient::cli::requested_layer(options.settings_for(name)); !layer.empty())
        salient::program_of(*model).layer(layer);
    summary["model"] = options.model;
    labels = options.dataset.empty() ? salient::cli::class_labels(options.model, options.input) : salient::demo::fashion_mnist_labels;
  }
  if (options.device != torch::Device(torch::kCPU)) model->to(options.device);
  summary["device"] = options.device.str();
  if (!options.dataset.empty()) {  // 28x28 inputs in [0, 1], as the embedded CNN takes them
    fashion = salient::demo::load_fashion_mnist("t10k");
    options.settings.normalization = salient::Normalization::none();
    options.input.normalize = "none";
  }
  const auto todo = sources(options, options.settings, fashion ? fashion->images.size(0) : 0);
  summary["normalize"] = options.input.normalize;
  summary["input_size"] = fashion ? 28 : options.input.size;
  const auto preprocessing = options.input.preprocessing();
  // One image at a time: memory stays that of one image, whatever the dataset's size.
  const auto load = [&](const Source& source) {
    if (source.fashion < 0) {
      Item item = load_item(source.source, preprocessing);
      item.stem = source.stem;
      return item;
    }
    auto input = fashion->images.slice(0, source.fashion, source.fashion + 1);
    return Item{source.source, source.stem, input, salient::to_image(input)};
  };
  // Where a run's time goes (summary.json "timing"): decoding runs beside explaining, so only
  // the time spent waiting for it, and writing, hold the run up.
  // Writing runs beside explaining too: `write` is the writing thread's time, `write_wait` the
  // time the run waited for it.
  // The first call of a process pays its warm-up (fresh memory, the inference-optimised copy,
  // the graph programs): `first_call` is its explain time (the mean over processes), `warm_up`
  // what it took beyond the later calls' mean (null without later calls).
  struct Timing {
    double explain = 0, decode = 0, decode_wait = 0, write = 0, write_wait = 0;
    double first_calls = 0, first_calls_explain = 0, calls = 0;  // summed over processes
    json to_json() const {
      json out{{"explain", explain}, {"decode", decode}, {"decode_wait", decode_wait}, {"write", write},
               {"write_wait", write_wait}, {"first_call", nullptr}, {"warm_up", nullptr}};
      if (first_calls > 0) out["first_call"] = first_calls_explain / first_calls;
      if (calls > first_calls)
        out["warm_up"] = first_calls_explain / first_calls - (explain - first_calls_explain) / (calls - first_calls);
      return out;
    }
    std::vector<double*> sums() {
      return {&explain, &decode, &decode_wait, &write, &write_wait, &first_calls, &first_calls_explain, &calls};
    }
  };
  const auto seconds_since = [](std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const auto run_start = std::chrono::steady_clock::now();
  Timing timing;
  const auto timed_load = [&](const Source& source) {
    const auto start = std::chrono::steady_clock::now();
    auto item = load(source);
    item.decode_seconds = seconds_since(start);
    return item;
  };

  ProgressBar progress;
  std::vector<std::string> stems;  // every item's output file stem, unique, fixed before any work
  {
    std::set<std::string> used;
    for (const auto& source : todo) stems.push_back(unique_stem(source.stem, used));
  }
  salient::cli::Report report;
  const bool hdf5 = options.format == "hdf5", pictures = !hdf5 || options.png;

  // Explains item `index` with every method; the maps stay in `result` (hdf5) or go to .npy files.
  struct Explained {
    salient::AttributionIndexEntry entry;
    std::vector<std::vector<float>> maps;
    std::vector<std::vector<int64_t>> shapes;
    json report;  // the files format's summary entry (its file names filled in by write_files)
    std::vector<torch::Tensor> attributions;  // the files format's maps, on the CPU
    salient::Image photo;                     // the files format's photo, for the heatmaps
  };
  int64_t explained_so_far = 0;
  // Explains items `indices` (decoded as `items`) in one call per method: --items-per-call
  // of them (1 by default). A method's time per item is its call's time over the items.
  const auto explain = [&](const std::vector<std::size_t>& indices, const std::vector<Item>& items) {
    const auto count = static_cast<int64_t>(items.size());
    std::vector<torch::Tensor> inputs;
    for (const auto& item : items) {
      if (item.input.sizes() != items[0].input.sizes())
        fail("'", item.source, "' has input shape ", salient::shape_string(item.input), ", '", items[0].source, "' ",
             salient::shape_string(items[0].input), ": the items of one call need one shape (use --items-per-call 1)");
      inputs.push_back(item.input);
    }
    const auto input = (count == 1 ? inputs[0] : torch::cat(inputs)).to(options.device);
    const auto logits = model->forward(input).to(torch::kCPU);
    std::vector<Explained> results(items.size());
    std::vector<json> top5s;
    std::vector<int64_t> target_classes;
    for (int64_t b = 0; b < count; ++b) {
      const auto index = indices[b];
      top5s.push_back(salient::cli::top_classes(logits.slice(0, b, b + 1), labels, 5));
      const int64_t classes = logits.size(1);
      const int64_t target_class = options.target == "top1" ? top5s[b][0]["index"].get<int64_t>()
                                                            : parse_int("--target", options.target, 0, std::numeric_limits<int64_t>::max());
      if (target_class >= classes) fail("target class ", target_class, " out of range [0, ", classes, ")");
      target_classes.push_back(target_class);
      const int64_t dataset_label =
          todo[index].fashion >= 0 ? fashion->labels[todo[index].fashion].item<int64_t>() : todo[index].label;
      results[b].entry = {todo[index].item, todo[index].key, items[b].source, dataset_label, {}, {}, {}, {}};
      for (const auto& c : top5s[b]) {
        results[b].entry.top_classes.push_back(c["index"].get<int64_t>());
        results[b].entry.top_probabilities.push_back(c["probability"].get<double>());
      }
    }
    ++explained_so_far;
    const std::string position = "[" + std::to_string(indices.front() + 1) +
                                 (count > 1 ? "-" + std::to_string(indices.back() + 1) : std::string()) + "/" +
                                 std::to_string(todo.size()) + "] " + stems[indices.front()];
    std::vector<json> method_reports(items.size(), json::array());
    for (const auto& name : options.methods.names) {
      const auto& method = salient::find_method(name);
      auto settings = options.settings_for(name);
      std::string layer_used;
      settings.on_layer = [&](const std::string& layer) { layer_used = layer; };
      int64_t segment_count = 0;
      settings.on_segments = [&](int64_t segments) { segment_count = segments; };
      settings.progress = progress.for_task(position + " " + method.name);
      const salient::Target target = count == 1 ? salient::Target(target_classes[0]) : salient::Target(target_classes);
      auto start = std::chrono::steady_clock::now();
      auto attribution = method.run(*model, input, target, settings);
      if (options.device.is_cuda()) torch::cuda::synchronize(options.device.index());  // CUDA work is asynchronous
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / count;
      json entry{{"method", method.name}, {"parameters", method.parameters(settings)}, {"seconds", seconds}};
      if (segment_count > 0) entry["parameters"]["segment_count"] = segment_count;
      if (!layer_used.empty()) {
        entry["parameters"]["layer"] = layer_used;
        if (explained_so_far == 1)  // the same layer for every image of one model
          std::cerr << "  " << method.name << ": layer " << layer_used
                    << (salient::cli::requested_layer(options.settings_for(name)).empty() ? " (automatic)" : "") << "\n";
      }
      std::vector<double> deltas(items.size(), std::numeric_limits<double>::quiet_NaN()), sums;
      if (method.delta) {
        deltas = method.delta(*model, input, target, attribution, settings);
        // delta = sum(attribution) - (f(x) - f(b)), so f(x) - f(b) needs no second forward pass.
        sums = salient::TorchBackend::row_sums(attribution);
      }
      attribution = attribution.detach().to(torch::kCPU, torch::kFloat32);
      for (int64_t b = 0; b < count; ++b) {
        auto& result = results[b];
        json item_entry = entry;
        if (method.delta) {
          item_entry["convergence_delta"] = deltas[b];
          item_entry["output_difference"] = sums[b] - deltas[b];
        }
        result.entry.seconds.push_back(seconds);
        result.entry.convergence_delta.push_back(deltas[b]);
        const auto map = attribution.slice(0, b, b + 1).contiguous();
        if (hdf5) {
          result.maps.emplace_back(map.data_ptr<float>(), map.data_ptr<float>() + map.numel());
          result.shapes.push_back(map.sizes().slice(1).vec());  // one item: drop the batch dimension
        } else {
          result.attributions.push_back(map);
        }
        method_reports[b].push_back(std::move(item_entry));
      }
    }
    if (!hdf5)
      for (int64_t b = 0; b < count; ++b) {
        const auto index = indices[b];
        const int64_t target_class = target_classes[b], dataset_label = results[b].entry.label;
        auto& report = results[b].report;
        report = {{"source", items[b].source}, {"stem", stems[index]}, {"input", stems[index] + ".input.png"},
                  {"input_shape", items[b].input.sizes().vec()}, {"top5", top5s[b]},
                  {"target", {{"index", target_class}, {"label", salient::cli::class_label(labels, target_class)}}},
                  {"methods", std::move(method_reports[b])}};
        if (!todo[index].key.empty()) report["key"] = todo[index].key;
        if (dataset_label >= 0)
          report["label"] = {{"index", dataset_label}, {"label", salient::cli::class_label(labels, dataset_label)}};
        results[b].photo = items[b].photo;
      }
    return results;
  };
  // The files format's files of one explained item: its photo, and per method a .npy and a
  // heatmap. Under MPI rank 0 records every name before any work, the other ranks write there.
  const salient::cli::FilePlace place = [&](const std::string& relative) {
    return output ? output->file(relative) : fs::path(options.out) / relative;
  };
  const auto write_files = [&](Explained& result) {
    auto& report = result.report;
    salient::save_png(salient::cli::display_size(result.photo), place(report.at("input").get<std::string>()));
    for (std::size_t m = 0; m < result.attributions.size(); ++m) {
      auto& entry = report.at("methods").at(m);
      const auto& method = salient::find_method(entry.at("method").get<std::string>());
      const auto files = salient::cli::write_attribution(place, report.at("stem").get<std::string>(), method.name,
                                                         result.attributions[m], result.photo, method.is_signed);
      entry["heatmap"] = files.heatmap;
      entry["attribution"] = files.attribution;
      entry["colour_scale"] = files.scale;
    }
    result.attributions.clear();
  };

  // Items [first, end) in calls of --items-per-call: the next call's items are decoded on one
  // thread and the previous call's written (`keep`) on another meanwhile (three calls' items in
  // memory at most); an unreadable one is reported in `skipped` with --skip-bad, else ends the
  // run. A call's items are fixed by their positions, so a rerun or another process forms the
  // same calls.
  const auto explain_range = [&](std::size_t first, std::size_t end, json& skipped, const std::function<void(std::size_t, Explained&&)>& keep) {
    const auto per_call = static_cast<std::size_t>(options.items_per_call);
    struct Decoded {
      std::vector<std::size_t> indices;
      std::vector<Item> items;
      std::vector<std::pair<std::size_t, std::exception_ptr>> failed;
    };
    const auto decode = [&](std::size_t from) {
      Decoded call;
      for (std::size_t index = from; index < std::min(end, from + per_call); ++index) try {
          call.items.push_back(timed_load(todo[index]));
          call.indices.push_back(index);
        } catch (const salient::error&) {
          call.failed.emplace_back(index, std::current_exception());
        }
      return call;
    };
    salient::cli::BackgroundTask writing;  // declared first: waited for last, after any error
    std::future<Decoded> next = std::async(std::launch::async, decode, first);
    for (std::size_t from = first; from < end; from += per_call) {
      auto start = std::chrono::steady_clock::now();
      Decoded call = next.get();
      if (from + per_call < end) next = std::async(std::launch::async, decode, from + per_call);
      timing.decode_wait += seconds_since(start);
      for (const auto& item : call.items) timing.decode += item.decode_seconds;
      for (const auto& [index, failure] : call.failed) try {
          std::rethrow_exception(failure);
        } catch (const salient::error& e) {
          if (!options.skip_bad) throw;
          std::cerr << "salient-explain: skipping " << todo[index].source << ": " << e.what() << "\n";
          skipped.push_back({{"index", index}, {"source", todo[index].source}, {"reason", e.what()}});
        }
      if (call.items.empty()) continue;
      start = std::chrono::steady_clock::now();
      auto results = explain(call.indices, call.items);
      const double call_seconds = seconds_since(start);
      if (timing.calls++ == 0) timing.first_calls = 1, timing.first_calls_explain = call_seconds;
      timing.explain += call_seconds;
      start = std::chrono::steady_clock::now();
      writing.wait();  // the previous call's files (and any error writing them)
      timing.write_wait += seconds_since(start);
      writing.start([&, indices = std::move(call.indices), results = std::move(results)]() mutable {
        const auto write_start = std::chrono::steady_clock::now();
        for (std::size_t k = 0; k < indices.size(); ++k) keep(indices[k], std::move(results[k]));
        timing.write += seconds_since(write_start);
      });
    }
    const auto start = std::chrono::steady_clock::now();
    writing.wait();
    timing.write_wait += seconds_since(start);
  };

  // What makes two runs' maps the same: a part or final file written with other settings is
  // never reused, nor replaced.
  json identity{{"tool", "salient-explain"}, {"format", options.format}, {"model", summary["model"]}, {"target", options.target},
                {"normalize", options.input.normalize}, {"input_size", summary["input_size"]}, {"half", options.half},
                {"part_size", options.part_size}, {"compression", options.compression}, {"items", todo.size()},
                {"items_per_call", options.items_per_call},
                {"methods", json::array()}};
  identity["model_sha256"] = embedded ? "embedded" : salient::detail::file_sha256(options.model, "model");
  for (const auto& name : options.methods.names)
    identity["methods"].push_back({{"method", name}, {"parameters", salient::find_method(name).parameters(options.settings_for(name))}});
  identity["selection"] = {{"image", options.images}, {"images", options.images_dir}, {"list", options.list_file},
                           {"dataset", options.dataset}, {"sample", options.sample}, {"limit", options.limit},
                           {"shard", {options.shard.index, options.shard.count}}};
  if (options.sample > 0) identity["selection"]["seed"] = options.settings.seed;
  json skipped = json::array();
  int64_t explained = 0;
  if (!hdf5) {
    // Items in parts of --part-size (common/parts.hpp): a part's summary entries are written
    // whole once its files are, so a rerun after a crash or a signal reuses the finished parts
    // and redoes the rest; a finished run's summary.json of the same settings is reused whole.
    json rows = json::array();
    const auto previous = processes.root() ? salient::cli::finished_run(fs::path(options.out) / "summary.json", identity) : std::nullopt;
    if (previous) {
      std::cerr << "salient-explain: " << (fs::path(options.out) / "summary.json").string() << " already holds this run; reusing it\n";
      for (const auto& image : previous->value("images", json::array())) rows.push_back({{"image", image}});
      for (const auto& item : previous->value("skipped", json::array())) rows.push_back({{"skipped", item}});
    }
    if (!processes.broadcast(previous.has_value())) {
      if (output && processes.size() > 1)  // every file any process may write, recorded before it is written
        for (std::size_t index = 0; index < todo.size(); ++index) {
          output->file(stems[index] + ".input.png");
          for (const auto& method : options.methods.names) {
            const auto files = salient::cli::attribution_files(stems[index], method);
            output->file(files.attribution), output->file(files.heatmap);
          }
        }
      salient::cli::JsonParts parts(output ? &*output : nullptr, options.out, todo.size(), static_cast<std::size_t>(options.part_size), identity);
      parts.run(processes, [&](std::size_t first, std::size_t end) {
        std::vector<json> part(end - first);  // per item: {"image": its summary entry} or {"skipped": why}
        json skipped_here = json::array();
        explain_range(first, end, skipped_here, [&](std::size_t index, Explained&& result) {
          write_files(result);
          part[index - first] = {{"image", std::move(result.report)}};
        });
        for (auto& item : skipped_here) {
          const auto index = item.at("index").get<std::size_t>();  // read before `item` is moved (the right side goes first)
          part[index - first] = {{"skipped", std::move(item)}};
        }
        return json(std::move(part));
      });
      for (double* t : timing.sums()) *t = processes.sum(*t);
      if (processes.root()) {
        rows = parts.rows();
        parts.remove(*output);  // summary.json holds every row now
      }
    }
    if (!processes.root()) return 0;  // rank 0 writes the rest
    json image_reports = json::array();
    for (auto& row : rows) {
      if (row.contains("skipped")) {
        skipped.push_back(std::move(row["skipped"]));
        continue;
      }
      auto& image = row.at("image");
      // Files of a reused part are this run's too: recorded again, so that finishing keeps them.
      output->file(image.at("input").get<std::string>());
      std::vector<salient::cli::ReportCell> cells;
      for (const auto& m : image.at("methods")) {
        output->file(m.at("attribution").get<std::string>());
        output->file(m.at("heatmap").get<std::string>());
        cells.push_back({m.at("method"), m.at("heatmap"), m.at("attribution"), m.at("seconds"),
                         m.value("colour_scale", std::numeric_limits<double>::quiet_NaN()), m.value("parameters", json::object())});
      }
      report.rows.push_back({image.at("source"), image.at("input"), image.at("top5"), std::move(cells)});
      image_reports.push_back(std::move(image));
    }
    explained = static_cast<int64_t>(image_reports.size());
    summary["images"] = std::move(image_reports);
    summary["identity"] = identity;
    if (processes.size() > 1) summary["processes"] = processes.size();
  }
#ifdef SALIENT_HAVE_HDF5
  if (hdf5) {

    // --png: an item's heatmaps, drawn from its maps as the final file holds them.
    const auto draw = [&](std::size_t index, const salient::AttributionReader& file, int64_t row) {
      const Item item = load(todo[index]);
      const auto entry = file.entry(row);
      const std::string input_png = stems[index] + ".input.png";
      salient::save_png(salient::cli::display_size(item.photo), output->file(input_png));
      std::vector<salient::cli::ReportCell> cells;
      for (std::size_t m = 0; m < options.methods.names.size(); ++m) {
        const auto& method = salient::find_method(options.methods.names[m]);
        auto [values, shape] = file.map(method.name, row);
        shape.insert(shape.begin(), 1);
        const auto attribution = torch::from_blob(values.data(), shape, torch::kFloat32);
        const auto files = salient::cli::write_attribution(place, stems[index], method.name, attribution, item.photo,
                                                           method.is_signed, false);
        cells.push_back({method.name, files.heatmap, "", entry.seconds[m], files.scale,
                         method.parameters(options.settings_for(method.name))});
      }
      json top5 = json::array();
      for (std::size_t k = 0; k < entry.top_classes.size(); ++k)
        top5.push_back(salient::cli::top_class(labels, entry.top_classes[k], entry.top_probabilities[k]));
      report.rows.push_back({item.source, input_png, top5, std::move(cells)});
    };
    // The items [first, end) a file's rows hold, in order: those not in its `skipped` list.
    const auto rows_of = [](const json& skipped, std::size_t first, std::size_t end) {
      std::set<std::size_t> gone;
      for (const auto& s : skipped) gone.insert(s.value("index", std::size_t{0}));
      std::vector<std::size_t> rows;
      for (std::size_t index = first; index < end; ++index)
        if (!gone.count(index)) rows.push_back(index);
      return rows;
    };
    // A file that claims to hold items [first, end): written with these settings, and its rows
    // and skipped items are exactly those items, in order. Returns its skipped items.
    const auto check_file = [&](const fs::path& path, std::size_t first, std::size_t end) -> json {
      try {
        const salient::AttributionReader file(path);
        if (json::parse(file.parameters(), nullptr, false) != identity)
          salient::detail::fail_io("it was written with other settings (model, methods, options or selection)");
        const auto part = json::parse(file.attribute("part"), nullptr, false);
        if (!part.is_object() || part.value("first", int64_t{-1}) != static_cast<int64_t>(first) ||
            part.value("end", int64_t{-1}) != static_cast<int64_t>(end) || !part["skipped"].is_array())
          salient::detail::fail_io("it does not say it holds items ", first, " to ", end);
        const auto rows = rows_of(part["skipped"], first, end);
        for (std::size_t row = 0; row < rows.size(); ++row)
          if (static_cast<int64_t>(row) >= file.size() || file.entry(static_cast<int64_t>(row)).source != todo[rows[row]].source)
            salient::detail::fail_io("its item ", row, " is not ", todo[rows[row]].source);
        if (static_cast<int64_t>(rows.size()) != file.size())
          salient::detail::fail_io("it holds ", file.size(), " items, not ", rows.size());
        return part["skipped"];
      } catch (const salient::error& e) {
        salient::detail::fail_io("'", path.string(), "', written by an earlier run into this folder, cannot be reused: ", e.what(),
                                 ". It is left as it is: remove it (or choose another --out) to explain its items again");
      }
    };
    // Renaming is atomic: a file under its final name is always complete.
    const auto publish = [](const fs::path& partial, const fs::path& path) { fs::rename(partial, path); };

    // Parts of --part-size items, each written under a .partial name and renamed when complete:
    // a rerun after a crash or a signal reuses the complete ones and redoes the rest. The
    // processes of an MPI run take parts from one shared counter; rank 0 merges them.
    const fs::path folder(options.out);
    const std::string final_name = "attributions.h5";
    const auto part_size = static_cast<std::size_t>(options.part_size);
    const std::size_t part_count = (todo.size() + part_size - 1) / part_size;
    if (part_count > 100'000) fail("--part-size ", part_size, " makes ", part_count, " parts; at most 100000: choose a larger --part-size");
    std::vector<fs::path> parts, partials;
    for (std::size_t k = 0; k < part_count; ++k) {
      char name[48];
      std::snprintf(name, sizeof name, "parts/part-%07zu.h5", k);
      parts.push_back(folder / name);
      partials.push_back(folder / (std::string(name) + ".partial"));
    }
    // Rank 0 records the final file's names first: a file of the user's there stops the run before any work.
    if (output) output->file(final_name), output->file(final_name + ".partial");
    std::error_code error;
    // A finished run (its final file is there) computes nothing again.
    const bool finished = processes.broadcast(processes.root() && fs::exists(fs::symlink_status(folder / final_name, error)));
    if (!finished) {
      if (output) {  // every file any process writes is recorded before it is written
        for (std::size_t k = 0; k < part_count; ++k) {
          output->file(fs::relative(parts[k], folder).string());
          output->file(fs::relative(partials[k], folder).string());
        }
        output->keep_on_failure();
      }
      processes.barrier();
      for (auto k = static_cast<std::size_t>(processes.next_task()); k < part_count; k = static_cast<std::size_t>(processes.next_task())) {
        const std::size_t first = k * part_size, end = std::min(todo.size(), first + part_size);
        if (fs::exists(fs::symlink_status(parts[k], error))) {
          check_file(parts[k], first, end);
          continue;
        }
        fs::remove(partials[k], error);  // an unfinished part of an earlier run (this tool's own file)
        salient::AttributionWriter writer(partials[k], options.methods.names, options.half, identity.dump(),
                                          static_cast<int>(options.compression));
        json skipped_here = json::array();
        explain_range(first, end, skipped_here, [&](std::size_t, Explained&& result) {
          writer.append(result.entry, result.maps, result.shapes);
        });
        const auto write_start = std::chrono::steady_clock::now();
        writer.set_attribute("part", json{{"first", first}, {"end", end}, {"skipped", skipped_here}}.dump());
        writer.close();
        publish(partials[k], parts[k]);
        timing.write += seconds_since(write_start);
        timing.write_wait += seconds_since(write_start);
      }
      processes.barrier();
    }
    // This run's time over all processes (each call a collective: every rank makes it).
    for (double* t : timing.sums()) *t = processes.sum(*t);
    if (!processes.root()) return 0;  // rank 0 writes the rest
    const auto merge_start = std::chrono::steady_clock::now();
    const auto final_path = output->file(final_name), final_partial = output->file(final_name + ".partial");
    if (finished) {
      skipped = check_file(final_path, 0, todo.size());
      std::cerr << "salient-explain: " << final_path.string() << " already holds this run; reusing it\n";
    } else {
      for (std::size_t k = 0; k < part_count; ++k)
        for (auto& item : check_file(parts[k], k * part_size, std::min(todo.size(), (k + 1) * part_size))) skipped.push_back(item);
      fs::remove(final_partial, error);
      salient::merge_attribution_files(parts, final_partial, identity.dump(),
                                       {{"part", json{{"first", 0}, {"end", todo.size()}, {"skipped", skipped}}.dump()}});
      publish(final_partial, final_path);
      for (std::size_t k = 0; k < part_count; ++k) {
        output->remove(fs::relative(parts[k], folder).string());
        output->remove(fs::relative(partials[k], folder).string());
      }
    }
    output->remove(final_name + ".partial");
    summary["timing"] = timing.to_json();
    summary["timing"]["merge"] = seconds_since(merge_start);
    if (options.png) {
      const salient::AttributionReader file(final_path);
      const auto rows = rows_of(skipped, 0, todo.size());
      for (std::size_t row = 0; row < rows.size(); ++row) draw(rows[row], file, static_cast<int64_t>(row));
    }
    explained = static_cast<int64_t>(todo.size() - skipped.size());
    summary["attributions"] = final_name;
    summary["items"] = explained;
    if (processes.size() > 1) summary["processes"] = processes.size();
  }
#endif
  if (!hdf5) summary["timing"] = timing.to_json();
  summary["timing"]["wall"] = seconds_since(run_start);  // rank 0's, from the first item's decoding
  summary["timing"]["startup"] = std::chrono::duration<double>(run_start - process_start).count();  // model, labels, folder
  if (explained == 0) fail("no image of the ", todo.size(), " given could be read (see the reasons above)");
  if (options.shard.count > 1) summary["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};
  if (!skipped.empty()) summary["skipped"] = skipped;
  // What incremental inference (occlusion, small segments) saved in this process, and where
  // its rectangles ended or why the model cannot use it: said once per run, here.
  if (const auto stats = salient::incremental_stats(*model); stats.runs > 0 || !stats.refused.empty() || !stats.declined.empty())
    summary["incremental"] = {{"runs", stats.runs},          {"items", stats.items},
                              {"multiply_adds", stats.macs}, {"full_multiply_adds", stats.full_macs},
                              {"ended", stats.ended},        {"declined", stats.declined},
                              {"refused", stats.refused}};
  std::ofstream(output->file("summary.json")) << summary.dump(2) << "\n";
  if (pictures) report.write(output->file("index.html"), output->file("compare.html"), summary);
  output->finish();
  std::cout << "wrote " << fs::path(options.out) / (hdf5 ? "attributions.h5" : "index.html") << " (" << explained
            << " images, " << options.methods.names.size() << " methods)\n";
  return 0;
}

int run(int argc, char** argv) {
  Options options = parse(argc, argv);
  salient::cli::Processes processes(options.mpi);  // --mpi: this process is one rank of the job
  return salient::cli::ranks_guard("salient-explain", processes, [&] { return run(std::move(options), processes); });
}

}  // namespace explain_tool

int salient_tool_explain(int argc, char** argv) {
  return salient::cli::main_guard("salient-explain", [&] { return explain_tool::run(argc, argv); });
}
