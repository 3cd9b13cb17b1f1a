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
// Over many photos: they are decoded a part (--part-size) at a time, and each part runs the
// whole cascade on its photos (the re-initialisations are seeded per layer group, so every
// part sees the same randomised models); each photo is explained in its own method call, so its
// maps do not depend on the photos beside it. Parts are written as they finish: a killed run
// rerun into the same --out redoes only its unfinished part; `--mpi` shares the parts among
// MPI processes; `--shard I/N` runs one shard of the photos and `--merge DIR ...` joins shards.
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
#include "common/parts.hpp"
#include "common/processes.hpp"
#include "common/report.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/sanity.hpp"
#include "salient/evaluation/training.hpp"
#include "salient/io/detail/sha256.hpp"
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
  --model m.pt          TorchScript classifier (default: data/'s MobileNetV2)
  --images DIR|FILE     photos (a folder: every image below it but *_mask files, in ImageFolder order); repeatable
  --limit N             use the first N photos (default: all, at most 100000)
  --part-size N         photos per part (default 8, at most 1000): decoded together, the cascade run once for them,
                          written when done; a killed run rerun into the same --out redoes only its unfinished part
  --shard I/N           the photos of shard I of N (each photo lands in one shard, decided by its path)
  --merge DIR           (repeatable, without --model and --images) join the outputs of the N shards of one run
  --mpi                 under mpirun -np K: the K processes take parts from a shared counter; rank 0 writes the results
  --skip-bad            report an unreadable photo (path and reason) and go on; without it the run stops there
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
  int64_t part_size = 8;
  salient::Shard shard;
  std::vector<fs::path> merge;
  bool mpi = false, skip_bad = false;
  std::vector<std::string> methods = {"gradient", "ig", "smoothgrad", "gradcam", "guided_backprop", "guided_gradcam"};
  salient::RandomisationOptions randomisation;
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  salient::cli::InputSettings input;
  bool data_randomisation = false;
  int64_t train_images = 2000;
  fs::path out = "salient-sanity";
};

// The methods, each called on one photo at a time: a photo's maps do not depend on the photos
// that share its part or call (SmoothGrad draws its noise per item of a call).
std::vector<salient::SanityMethod> make_methods(const Options& options) {
  std::vector<salient::SanityMethod> methods;
  for (const auto& name : options.methods) {
    auto method = salient::find_method(name == "gradient" ? "saliency" : name).bind(options.settings);
    methods.push_back({name, [method](salient::TorchModel& model, const torch::Tensor& x, const salient::Target& target) {
                         if (target.is_custom()) return method(model, x, target);
                         const auto classes = target.classes(x.size(0), [&] { return salient::resolve_target(model, x, target).classes; });
                         std::vector<torch::Tensor> maps;
                         for (int64_t i = 0; i < x.size(0); ++i) maps.push_back(method(model, x.slice(0, i, i + 1), salient::Target(classes.at(i))));
                         return torch::cat(maps);
                       }});
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

// What the report is made from: one run's per-photo rows, or the rows of one run's shards joined.
struct SanityRun {
  json header;                                // results.json's settings: model, mode, methods, steps, ...
  std::vector<std::string> methods, steps;    // steps[0] is "original"
  json images = json::array();                // per photo: name, index, target, label, similarity [step][method][4]
  json skipped = json::array();               // unreadable photos (--skip-bad): name, index, source, reason
  double seconds = 0;
};

// A photo's row: its similarities as [step][method] -> [spearman_abs, spearman, ssim, hog].
json photo_row(const salient::cli::PhotoFile& photo, int64_t target, const std::vector<std::string>& labels,
               const salient::RandomisationTestResult& result, std::size_t item) {
  json similarity = json::array();
  for (const auto& per_method : result.similarity) {
    json step = json::array();
    for (const auto& per_photo : per_method) {
      const auto& s = per_photo.at(item);
      step.push_back({s.spearman_abs, s.spearman, s.ssim, s.hog});
    }
    similarity.push_back(std::move(step));
  }
  return {{"name", photo.name}, {"index", photo.index}, {"target", target}, {"label", salient::cli::class_label(labels, target)},
          {"similarity", std::move(similarity)}};
}

// A row's four numbers (JSON writes an undefined similarity, e.g. of a constant map, as null).
salient::MapSimilarity similarity_of(const json& values) {
  const auto number = [&](int k) { return values.at(k).is_null() ? std::nan("") : values.at(k).get<double>(); };
  return {number(0), number(1), number(2), number(3)};
}

// Mean similarity per step and method over the photos.
std::vector<std::vector<salient::MapSimilarity>> means(const SanityRun& run) {
  std::vector<std::vector<salient::MapSimilarity>> table(run.steps.size(), std::vector<salient::MapSimilarity>(run.methods.size()));
  for (std::size_t step = 0; step < run.steps.size(); ++step)
    for (std::size_t m = 0; m < run.methods.size(); ++m) {
      std::vector<salient::MapSimilarity> items;
      for (const auto& image : run.images) items.push_back(similarity_of(image.at("similarity").at(step).at(m)));
      table[step][m] = salient::mean_similarity(items);
    }
  return table;
}

// Charts of the mean similarity per step, one line per method.
void write_charts(salient::cli::OutputFolder& out, const SanityRun& run, const std::vector<std::vector<salient::MapSimilarity>>& mean,
                  const std::string& mode) {
  const auto& ticks = run.steps;
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
    for (size_t m = 0; m < run.methods.size(); ++m) {
      salient::Series s{run.methods[m], {}};
      for (size_t step = 0; step < run.steps.size(); ++step) {
        s.y.push_back(mean[step][m].*field);
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

// maps.png: the maps of one photo, one row per method, one column per step, with headers.
void write_maps(const fs::path& path, const std::vector<std::string>& methods, const std::vector<std::string>& steps,
                const std::vector<std::vector<torch::Tensor>>& maps) {
  constexpr int64_t tile = 96;
  std::vector<salient::Image> tiles{salient::text_tile("", 16, tile)};
  for (const auto& step : steps) tiles.push_back(salient::text_tile(step, 16, tile));
  for (size_t m = 0; m < methods.size(); ++m) {
    tiles.push_back(salient::text_tile(methods[m], tile, tile));
    for (size_t step = 0; step < steps.size(); ++step) tiles.push_back(tile_of(maps[step][m], tile));
  }
  salient::save_png(salient::grid(tiles, static_cast<int64_t>(steps.size()) + 1, 2), path);
}

// results.csv, results.json, the charts and the table on stdout (maps.png is written by the
// part that holds the first photo).
void write_report(salient::cli::OutputFolder& output, const SanityRun& run) {
  const auto mean = means(run);
  const std::string mode = run.header.at("mode");
  write_charts(output, run, mean, mode);
  std::ofstream csv(output.file("results.csv"));
  csv << "step,group,method,image,spearman_abs,spearman,ssim,hog\n";
  json steps = json::array();
  for (size_t step = 0; step < run.steps.size(); ++step) {
    json per_method = json::object();
    for (size_t m = 0; m < run.methods.size(); ++m) {
      per_method[run.methods[m]] = similarity_json(mean[step][m]);
      for (const auto& image : run.images) {
        const auto s = similarity_of(image.at("similarity").at(step).at(m));
        csv << step << "," << run.steps[step] << "," << run.methods[m] << "," << image.at("name").get<std::string>() << ","
            << s.spearman_abs << "," << s.spearman << "," << s.ssim << "," << s.hog << "\n";
      }
    }
    steps.push_back({{"step", step}, {"group", run.steps[step]}, {"mean", per_method}});
  }
  json summary = run.header;
  summary["images"] = run.images;
  summary["skipped"] = run.skipped;
  summary["steps"] = steps;
  summary["seconds"] = run.seconds;
  std::ofstream(output.file("results.json")) << summary.dump(1) << "\n";

  // The table: mean Spearman (absolute maps) at the original model, halfway, fully randomised.
  const size_t last = run.steps.size() - 1, half = last / 2;
  const std::vector<std::string> header{"method", "original", "after " + run.steps[half], "after " + run.steps[last]};
  std::vector<std::vector<std::string>> rows;
  for (size_t m = 0; m < run.methods.size(); ++m)
    rows.push_back({run.methods[m], salient::cli::number(mean[0][m].spearman_abs), salient::cli::number(mean[half][m].spearman_abs),
                    salient::cli::number(mean[last][m].spearman_abs)});
  salient::cli::print_row(header);
  salient::cli::print_row({"---", "---", "---", "---"});
  for (const auto& row : rows) salient::cli::print_row(row);

  // index.html: the same table, the charts and the maps, in the reports' common frame.
  std::ofstream html(output.file("index.html"));
  salient::cli::page_start(html, "salient-sanity: " + mode + " model-parameter randomisation",
                           "<p>Model <code>" + salient::cli::html_escape(run.header.value("model", "")) + "</code>, " +
                               std::to_string(run.images.size()) + " photos, " + std::to_string(run.methods.size()) + " methods, " +
                               salient::cli::three_digits(run.seconds) + " s. A method that passes the test (Adebayo et al. 2018) "
                               "gives maps less and less like the original as more of the model is randomised.</p>\n");
  html << "<h2>Mean Spearman rank correlation with the original map (absolute maps)</h2>\n"
       << salient::cli::html_table(header, rows);
  for (const char* chart : {"randomisation.png", "spearman_signed.png", "ssim.png", "hog.png"})
    html << "<img src=\"" << chart << "\" alt=\"" << chart << "\">\n";
  if (fs::exists(output.file("maps.png")))
    html << "<h2>The first photo's maps, step by step</h2><img src=\"maps.png\" alt=\"maps per step\">\n";
  html << "<p>Every value: <a href=\"results.csv\">results.csv</a>, <a href=\"results.json\">results.json</a>.</p>\n";
  salient::cli::page_end(html);
}

// A results.json of salient-sanity (a run or a shard), as the report's input.
SanityRun read_results(const fs::path& dir) {
  std::ifstream in(dir / "results.json");
  if (!in) fail("--merge ", dir.string(), ": no results.json there (not a salient-sanity output folder)");
  try {
    json r = json::parse(in);
    SanityRun run;
    run.methods = r.at("methods").get<std::vector<std::string>>();
    for (const auto& step : r.at("steps")) run.steps.push_back(step.at("group"));
    run.images = r.at("images");
    run.skipped = r.value("skipped", json::array());
    run.seconds = r.at("seconds");
    for (const char* key : {"images", "skipped", "steps", "seconds"}) r.erase(key);
    run.header = std::move(r);
    const auto& shard = run.header.at("shard");
    if (shard.at("count").get<int64_t>() < 1 || shard.at("count").get<int64_t>() > 65536 || shard.at("index").get<int64_t>() < 0 ||
        shard.at("index").get<int64_t>() >= shard.at("count").get<int64_t>())
      fail("--merge ", dir.string(), ": results.json names shard ", shard.dump(), ", which is not a shard");
    const int64_t total = run.header.at("photos_total");
    if (total < 0 || total > 100'000'000) fail("--merge ", dir.string(), ": results.json's photos_total ", total, " is out of range");
    for (const auto& item : run.skipped)
      if (item.at("index").get<int64_t>() < 0 || item.at("index").get<int64_t>() >= total)
        fail("--merge ", dir.string(), ": photo ", item.at("name").dump(), " is out of place");
    for (const auto& image : run.images) {
      const int64_t index = image.at("index");
      if (index < 0 || index >= total) fail("--merge ", dir.string(), ": photo ", image.at("name").dump(), " is out of place");
      if (image.at("similarity").size() != run.steps.size()) fail("--merge ", dir.string(), ": a photo's rows do not match its steps");
      for (const auto& step : image.at("similarity"))
        if (step.size() != run.methods.size()) fail("--merge ", dir.string(), ": a photo's rows do not match its methods");
      for (const auto& step : image.at("similarity"))
        for (const auto& values : step) similarity_of(values);  // four numbers each
    }
    return run;
  } catch (const json::exception& error) {
    fail("--merge ", dir.string(), ": results.json is not salient-sanity's results (", error.what(), ")");
  }
}

// The shards of one run joined: every shard once, every photo once, in the whole list's order.
SanityRun merge_shards(const std::vector<fs::path>& dirs, salient::cli::OutputFolder& output) {
  std::vector<SanityRun> shards;
  for (const auto& dir : dirs) shards.push_back(read_results(dir));
  // Two shards of one run differ only in which photos they hold.
  const auto settings = [](const SanityRun& run) {
    json h = run.header;
    for (const char* key : {"shard", "threads", "identity"}) h.erase(key);
    return h;
  };
  SanityRun merged = shards.front();
  const int64_t count = merged.header.at("shard").at("count"), total = merged.header.at("photos_total");
  std::vector<int> seen_shard(static_cast<size_t>(count), 0), seen_photo(static_cast<size_t>(total), 0);
  merged.images = json::array();
  merged.skipped = json::array();
  merged.seconds = 0;
  std::optional<std::pair<int64_t, fs::path>> first_maps;  // the maps.png of the lowest photo index
  for (size_t s = 0; s < shards.size(); ++s) {
    if (settings(shards[s]) != settings(shards.front()) || shards[s].steps != merged.steps ||
        shards[s].header.at("shard").at("count") != count)
      fail("--merge ", dirs[s].string(), " is not a shard of the same run as ", dirs[0].string(),
           " (model, methods, options, seed or photo list differ)");
    const int64_t index = shards[s].header.at("shard").at("index");
    if (seen_shard[index]++) fail("--merge: shard ", index, "/", count, " is given twice");
    for (auto& image : shards[s].images) {
      const int64_t photo = image.at("index");
      if (seen_photo[photo]++) fail("--merge ", dirs[s].string(), ": photo ", image.at("name").dump(), " is in two shards");
      if (fs::exists(dirs[s] / "maps.png") && (!first_maps || photo < first_maps->first))
        first_maps = {photo, dirs[s] / "maps.png"};
      merged.images.push_back(std::move(image));
    }
    for (auto& item : shards[s].skipped) {
      if (seen_photo[item.at("index").get<int64_t>()]++) fail("--merge ", dirs[s].string(), ": photo ", item.at("name").dump(), " is in two shards");
      merged.skipped.push_back(std::move(item));
    }
    merged.seconds += shards[s].seconds;
  }
  for (size_t i = 0; i < seen_shard.size(); ++i)
    if (!seen_shard[i]) fail("--merge: shard ", i, "/", count, " is missing");
  const auto by_index = [](const json& a, const json& b) { return a.at("index").get<int64_t>() < b.at("index").get<int64_t>(); };
  std::sort(merged.images.begin(), merged.images.end(), by_index);
  std::sort(merged.skipped.begin(), merged.skipped.end(), by_index);
  merged.header["shard"] = {{"index", 0}, {"count", 1}};
  if (merged.header.contains("identity") && merged.header["identity"].contains("selection"))
    merged.header["identity"]["selection"]["shard"] = {0, 1};
  if (first_maps) fs::copy_file(first_maps->second, output.file("maps.png"), fs::copy_options::overwrite_existing);
  return merged;
}

int run_parameter_randomisation(const Options& options, salient::cli::Processes& processes) {
  if (options.images.empty()) fail("--images is required (see --help)");
  std::optional<salient::cli::OutputFolder> output;  // rank 0's, claimed before any work
  if (processes.root()) output.emplace(options.out, "salient-sanity");
  auto model = salient::cli::load_model(options.model);
  const auto preprocessing = options.input.preprocessing();
  int64_t photos_total = 0;
  const auto photos = salient::cli::list_photos(options.images, options.limit, options.shard, photos_total);
  if (photos.empty() && options.shard.count == 1) fail("no photos in --images");
  auto methods = make_methods(options);
  const std::string mode = options.randomisation.mode == salient::RandomisationMode::cascading ? "cascading" : "independent";
  const auto groups = salient::parameter_groups(model, options.randomisation.group_depth);
  SanityRun run;
  for (const auto& m : methods) run.methods.push_back(m.name);
  run.steps.push_back("original");  // then the groups from the logits down (for_each_randomisation's order)
  for (auto it = groups.rbegin(); it != groups.rend(); ++it) run.steps.push_back(it->name);
  const auto labels = salient::cli::class_labels(options.model, options.input);
  if (processes.root())
    std::cerr << "salient-sanity: " << photos.size() << " photos, " << methods.size() << " methods, " << groups.size()
              << " layer groups (" << mode << ")" << (processes.size() > 1 ? ", " + std::to_string(processes.size()) + " processes" : "")
              << "\n";

  json method_parameters = json::object();
  for (const auto& name : options.methods)
    method_parameters[name] = salient::find_method(name == "gradient" ? "saliency" : name).parameters(options.settings);
  json selection{{"images", options.images}, {"limit", options.limit}, {"photos", photos.size()}};
  selection["shard"] = {options.shard.index, options.shard.count};
  const json identity{{"tool", "salient-sanity"}, {"model", options.model},
                      {"model_sha256", salient::detail::file_sha256(options.model, "model")}, {"mode", mode},
                      {"group_depth", options.randomisation.group_depth}, {"init", static_cast<int>(options.randomisation.init.scheme)},
                      {"seed", options.randomisation.init.seed}, {"methods", method_parameters}, {"input_size", options.input.size},
                      {"normalize", options.input.normalize}, {"selection", selection}};
  run.header = {{"model", options.model}, {"mode", mode}, {"group_depth", options.randomisation.group_depth},
                {"init", std::string(options.randomisation.init.scheme == salient::Reinitialisation::layer_default ? "default"
                                     : options.randomisation.init.scheme == salient::Reinitialisation::normal ? "normal" : "uniform")},
                {"seed", options.randomisation.init.seed}, {"methods", run.methods},
                {"ig_steps", salient::find_method("ig").parameters(options.settings)["steps"]},
                {"smoothgrad_samples", salient::find_method("smoothgrad").parameters(options.settings)["samples"]},
                {"input_size", options.input.size}, {"threads", options.input.threads},
                {"shard", {{"index", options.shard.index}, {"count", options.shard.count}}}, {"photos_total", photos_total},
                {"identity", identity}};

  // A finished run into this folder with the same identity computes nothing again.
  const fs::path folder(options.out);
  if (processes.broadcast(processes.root() && salient::cli::finished_run(folder / "results.json", identity).has_value())) {
    if (!processes.root()) return 0;
    std::cerr << "salient-sanity: " << (folder / "results.json").string() << " already holds this run; reusing it\n";
    output->file("maps.png");  // still this run's
    write_report(*output, read_results(folder));
    output->finish(/*keep_earlier=*/true);
    return 0;
  }

  if (output) output->file("maps.png");  // recorded by rank 0; written by the process that takes the first part
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const std::string who = processes.size() > 1 ? "rank " + std::to_string(processes.rank()) + ": " : "";
  salient::cli::JsonParts parts(output ? &*output : nullptr, folder, photos.size(), static_cast<std::size_t>(options.part_size), identity);
  parts.run(processes, [&](std::size_t first, std::size_t end) {
    std::vector<json> rows(end - first);  // per photo: its row, or {"skipped": why} (--skip-bad)
    std::vector<torch::Tensor> inputs;
    std::vector<std::size_t> read;  // the photos of `inputs`
    for (std::size_t i = first; i < end; ++i) {
      json skipped;
      if (auto input = salient::cli::read_photo("salient-sanity", photos[i], preprocessing, options.skip_bad, skipped)) {
        inputs.push_back(std::move(*input));
        read.push_back(i);
      } else {
        rows[i - first] = {{"skipped", std::move(skipped)}};
      }
    }
    if (inputs.empty()) {
      std::error_code error;
      if (first == 0) fs::remove(folder / "maps.png", error);  // an earlier run's: there is no first photo to draw
      return json(std::move(rows));
    }
    const auto batch = torch::cat(inputs);
    // A model that rejects the photos, or a labels file that does not fit it, fails before the part's progress line.
    const auto scores = salient::cli::checked_scores(model.forward(batch));
    salient::cli::check_label_count(labels, scores.size(1));
    const auto top1 = scores.argmax(1).contiguous();  // the classes explained: one forward serves the check and the targets
    std::vector<std::vector<torch::Tensor>> first_maps;  // [step][method]: the first photo's (first part only)
    salient::RandomisationTestOptions test{.randomisation = options.randomisation};
    if (parts.count() == 1)
      test.on_step = [&](const salient::RandomisationStep& s) {
        std::cerr << "  step " << s.index << "/" << groups.size() << " (" << s.group << ") done at " << elapsed() << " s\n";
      };
    if (first == 0)
      test.on_maps = [&](const salient::RandomisationStep&, const std::vector<torch::Tensor>& maps) {
        first_maps.emplace_back();
        for (const auto& map : maps) first_maps.back().push_back(map[0].clone());
      };
    const auto result = salient::parameter_randomisation_test(
        model, batch, salient::Target(std::vector<int64_t>(top1.data_ptr<int64_t>(), top1.data_ptr<int64_t>() + top1.numel())),
        methods, test);
    std::vector<std::string> steps;
    for (const auto& step : result.steps) steps.push_back(step.group);
    if (steps != run.steps) fail("internal: the randomisation steps are not the model's layer groups");
    if (first == 0) write_maps(folder / "maps.png", run.methods, run.steps, first_maps);
    for (std::size_t k = 0; k < read.size(); ++k)
      rows[read[k] - first] = photo_row(photos[read[k]], result.targets[k], labels, result, k);
    if (parts.count() > 1)
      std::cerr << "  " << who << "photos " << first + 1 << "-" << end << "/" << photos.size() << " done at " << elapsed() << " s\n";
    return json(std::move(rows));
  });
  run.seconds = processes.sum(elapsed());  // this run's time over all processes
  if (!processes.root()) return 0;  // rank 0 writes the results
  for (auto& row : parts.rows()) {
    if (row.contains("skipped")) run.skipped.push_back(std::move(row["skipped"]));
    else run.images.push_back(std::move(row));
  }
  if (run.images.empty() && options.shard.count == 1) fail("no photo of the ", photos.size(), " given could be read (see the reasons above)");
  if (!fs::exists(folder / "maps.png")) output->remove("maps.png");  // no readable photo in the first part (or an empty shard)
  write_report(*output, run);
  parts.remove(*output);  // results.json holds every row now
  output->finish(/*keep_earlier=*/true);  // a data randomisation's files stay beside these
  std::cerr << "salient-sanity: wrote " << (folder / "results.json").string() << " (" << run.seconds << " s)\n";
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
  const std::vector<std::string> header{"method", "Spearman (abs)", "Spearman (signed)", "SSIM", "HOG"};
  std::vector<std::vector<std::string>> rows;
  salient::cli::print_row(header);
  salient::cli::print_row({"---", "---", "---", "---", "---"});
  for (size_t m = 0; m < methods.size(); ++m) {
    const auto mean = salient::mean_similarity(result.similarity[m]);
    per_method[result.methods[m]] = similarity_json(mean);
    rows.push_back({result.methods[m], salient::cli::number(mean.spearman_abs), salient::cli::number(mean.spearman),
                    salient::cli::number(mean.ssim), salient::cli::number(mean.hog)});
    salient::cli::print_row(rows.back());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  json summary{{"test", "data randomisation"}, {"train_images", n}, {"accuracy", accuracy}, {"similarity", per_method},
               {"threads", options.input.threads}, {"seconds", seconds}};
  std::ofstream(output.file("data_randomisation.json")) << summary.dump(1) << "\n";
  // Its page beside the parameter randomisation's index.html, in the common frame.
  std::ofstream html(output.file("data_randomisation.html"));
  salient::cli::page_start(html, "salient-sanity: data randomisation",
                           "<p>Two copies of a small CNN trained on " + std::to_string(n) + " Fashion-MNIST images, one with the "
                           "true labels (test accuracy " + salient::cli::three_digits(accuracy["true_labels"]["test"].get<double>()) +
                           "), one with permuted labels it memorised (train accuracy " +
                           salient::cli::three_digits(accuracy["permuted_labels"]["train"].get<double>()) + "); " +
                           salient::cli::three_digits(seconds) + " s. A method that passes the test (Adebayo et al. 2018) gives "
                           "maps unlike each other for the two models.</p>\n");
  html << "<h2>Mean similarity of the two models' maps (16 test images)</h2>\n" << salient::cli::html_table(header, rows)
       << "<img src=\"data_randomisation_maps.png\" alt=\"maps under both models\">\n"
       << "<p>Every number: <a href=\"data_randomisation.json\">data_randomisation.json</a>.</p>\n";
  salient::cli::page_end(html);
  output.finish(/*keep_earlier=*/true);  // the parameter randomisation's files stay beside these
  return 0;
}

int run(int argc, char** argv) {
  Options options;
  options.settings.options["steps"] = "32";
  options.settings.options["samples"] = "16";
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {"--data-randomisation", "--mpi", "--skip-bad"}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, options.input) || salient::cli::method_flag(flag, value, options.settings)) return;
    if (flag == "--model") options.model = value;
    else if (flag == "--images") options.images.push_back(value);
    else if (flag == "--limit") options.limit = parse_int(flag, value, 1, 100000);
    else if (flag == "--part-size") options.part_size = parse_int(flag, value, 1, 1000);
    else if (flag == "--shard") options.shard = salient::parse_shard(value);
    else if (flag == "--merge") options.merge.push_back(value);
    else if (flag == "--mpi") options.mpi = true;
    else if (flag == "--skip-bad") options.skip_bad = true;
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
  if (!options.merge.empty()) {
    if (!options.model.empty() || !options.images.empty() || options.data_randomisation)
      fail("--merge joins finished shards: it takes no --model, --images or --data-randomisation");
    salient::cli::OutputFolder output(options.out, "salient-sanity");
    write_report(output, merge_shards(options.merge, output));
    output.finish(/*keep_earlier=*/true);
    return 0;
  }
  salient::cli::Processes::check_launch("salient-sanity", options.mpi);
  if (options.model.empty() && !options.data_randomisation && !options.images.empty())
    options.model = salient::cli::shipped_model("salient-sanity");
  if (options.mpi && options.data_randomisation) fail("--mpi goes with the parameter randomisation test (not --data-randomisation)");
  salient::cli::configure_process(options.input.threads);
  if (options.data_randomisation) {
    salient::cli::OutputFolder output(options.out, "salient-sanity");  // before any work: a folder we may write
    return run_data_randomisation(options, output);
  }
  salient::cli::Processes processes(options.mpi);  // --mpi: this process is one rank of the job
  return salient::cli::ranks_guard("salient-sanity", processes, [&] { return run_parameter_randomisation(options, processes); });
}

}  // namespace sanity_tool

int salient_tool_sanity(int argc, char** argv) {
  return salient::cli::main_guard("salient-sanity", [&] { return sanity_tool::run(argc, argv); });
}
