// salient-evaluate: scores attribution methods against each other with Quantus' metrics.
//
//   salient-evaluate --model m.pt --images DIR|FILE ... --methods ig,gradcam,... --metrics
//     faithfulness_correlation,road,sparseness,... [--masks DIR] [--out eval/]
//
// Each photo is explained for its top-1 class by every method; every metric scores every
// map. Writes to --out: a methods x metrics table (mean and 95% interval over the photos) as
// summary.csv, results.json and results.md, every single value in values.csv, one bar chart
// per metric (charts/METRIC.png), a ranking figure (ranking.png) and index.html, with the
// time per photo of every method and metric. Localisation metrics need --masks (a mask per
// photo, same stem or STEM_mask, white = object); photos without one are left out of them.
// Photos are decoded one at a time and their rows written in parts (parts/, see common/parts.hpp):
// a run killed at any moment and rerun into the same --out redoes only the unfinished part, and
// under `mpirun -np K ... --mpi` the K processes take parts from a shared counter.
// Over many processes or machines: `--shard I/N` evaluates the photos of one shard (decided by
// each photo's path, as salient-explain's shards), and `--merge DIR ...` joins the N shards'
// folders into the report of the whole run, refusing shards of another run, a missing or
// repeated shard, and a photo in two shards; the values are the one-process run's, bit for bit.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "common/evaluation.hpp"
#include "common/input_settings.hpp"
#include "common/method_settings.hpp"
#include "common/output.hpp"
#include "common/parts.hpp"
#include "common/processes.hpp"
#include "common/report.hpp"
#include "salient/evaluation/metric_registry.hpp"
#include "salient/io/detail/sha256.hpp"
#include "salient/io/plot.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;
using salient::cli::parse_int;

namespace evaluate_tool {

using Model = salient::TorchModel;

// A metric of the registry (evaluation/metric_registry.hpp) with its --metric-option values.
struct Metric {
  const salient::MetricEntry* entry;
  salient::MetricOptions options;
};

std::string usage() {
  return std::string(R"(usage: salient-evaluate --model m.pt --images DIR|FILE ... --methods m1,m2,... --metrics x,y,... [options]
  --model m.pt          TorchScript classifier (default: data/'s MobileNetV2)
  --images DIR|FILE     photos (a folder: every image below it but *_mask files, in ImageFolder order); repeatable
  --limit N             use the first N photos (default: all, at most 100000)
  --methods m1,m2,...   methods to compare (default gradient,ig,gradcam); any of
)") + salient::method_list("                          ") +
         "  --metrics x,y,...     metrics (default faithfulness_correlation,pixel_flipping,road,sparseness,complexity); any of\n"
         "                          " + salient::metric_names() + R"(
  --metric-option NAME.OPTION=VALUE  a metric's option (e.g. road.noise=0.02); repeatable; results.json lists them all
  --method-option NAME.OPTION=VALUE  one method's option over the method flags (e.g. rise.samples=1000); repeatable
  --masks DIR           object masks (STEM.png or STEM_mask.png, white = object) for the localisation metrics
  --shard I/N           the photos of shard I of N (each photo lands in one shard, decided by its path)
  --merge DIR           (repeatable, without --model and --images) join the outputs of the N shards of one run
                          into the report of the whole run: the same table as one run over every photo
  --part-size N         photos per part file (default 1, at most 100000): a run killed at any moment and rerun
                          into the same --out redoes only its unfinished part
  --mpi                 under mpirun -np K: the K processes take parts from a shared counter; rank 0 writes the report
  --skip-bad            report an unreadable photo (path and reason) and go on; without it the run stops there
)" + salient::cli::method_flags_help() +
         R"(  --out dir             output folder (default salient-evaluate)
)" + salient::cli::input_flags_help();
}

// NAME.OPTION=VALUE of --metric-option and --method-option.
struct NamedOption {
  std::string name, option, value;
};
NamedOption named_option(const std::string& flag, const std::string& text) {
  const auto dot = text.find('.'), equals = text.find('=');
  if (dot == std::string::npos || equals == std::string::npos || equals < dot)
    fail(flag, " expects NAME.OPTION=VALUE, got '", text, "'");
  return {text.substr(0, dot), text.substr(dot + 1, equals - dot - 1), text.substr(equals + 1)};
}

struct Options {
  std::string model;
  std::vector<std::string> images;
  int64_t limit = 0;
  std::vector<std::string> methods = {"gradient", "ig", "gradcam"};
  std::vector<std::string> metrics = {"faithfulness_correlation", "pixel_flipping", "road", "sparseness", "complexity"};
  std::vector<std::string> metric_options, method_options;
  std::string masks;
  salient::MethodSettings settings = salient::cli::tool_method_settings();
  salient::cli::InputSettings input;
  salient::Shard shard;             // --shard I/N: the photos of one shard
  std::vector<fs::path> merge;      // --merge DIR ...: join these shards' results instead
  int64_t part_size = 1;            // photos per part file (the unit a rerun resumes from)
  bool mpi = false;                 // one of the processes of an MPI job
  bool skip_bad = false;            // an unreadable photo is reported and skipped
  fs::path out = "salient-evaluate";
};

// A photo of the run and its object mask in --masks.
struct Photo : salient::cli::PhotoFile {
  std::optional<fs::path> mask;
};

// The mask of `photo` in `dir`: STEM_mask.png or STEM.png (not the photo itself).
std::optional<fs::path> find_mask(const fs::path& dir, const fs::path& photo) {
  for (const auto& name : {photo.stem().string() + "_mask.png", photo.stem().string() + ".png"}) {
    const auto path = dir / name;
    if (fs::is_regular_file(path) && !fs::equivalent(path, photo)) return path;
  }
  return std::nullopt;
}

// A mask file as [H,W] (1 = object), resized and cropped as the photo.
torch::Tensor load_mask(const fs::path& path, const salient::Preprocessing& preprocessing, const torch::Tensor& input) {
  const auto image = salient::prepare_image(salient::load_image(path), preprocessing);
  if (image.height != input.size(2) || image.width != input.size(3))
    fail("mask '", path.string(), "' is ", image.width, "x", image.height, " after resizing, the photo ", input.size(3), "x", input.size(2));
  auto mask = torch::zeros({image.height, image.width});
  auto* out = mask.data_ptr<float>();
  for (int64_t p = 0; p < image.height * image.width; ++p) out[p] = image.data[p] >= 0.5f ? 1.f : 0.f;  // channel 0
  return mask;
}

// The photos of --images (after --limit) in this run's --shard, and how many there are in all.
std::vector<Photo> list_photos(const Options& options, int64_t& total) {
  std::vector<Photo> photos;
  for (auto& file : salient::cli::list_photos(options.images, options.limit, options.shard, total)) {
    Photo photo{std::move(file), std::nullopt};
    // A photo in a sub-folder finds its mask in the same sub-folder of --masks.
    if (!options.masks.empty()) photo.mask = find_mask(fs::path(options.masks) / fs::path(photo.name).parent_path(), photo.file);
    photos.push_back(std::move(photo));
  }
  return photos;
}

// Mean and the 95% interval of the mean (Student's t) of the finite values.
struct Summary {
  int64_t n = 0;
  double mean = NAN, low = NAN, high = NAN;
};
Summary summarise(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  Summary s;
  s.n = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n < 2) return s;
  double squares = 0;
  for (double x : v) squares += (x - s.mean) * (x - s.mean);
  const double sd = std::sqrt(squares / static_cast<double>(s.n - 1));
  // t_{0.975, df} for df = 1..30, then the normal's 1.96.
  static constexpr double t[] = {12.706, 4.303, 2.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  const int64_t df = s.n - 1;
  const double half = (df <= 30 ? t[df - 1] : 1.96) * sd / std::sqrt(static_cast<double>(s.n));
  s.low = s.mean - half, s.high = s.mean + half;
  return s;
}

std::string cell(const Summary& s) {
  if (s.n == 0) return "n/a";
  if (s.n < 2) return salient::cli::number(s.mean);
  return salient::cli::number(s.mean) + " [" + salient::cli::number(s.low) + ", " + salient::cli::number(s.high) + "]";
}

using salient::cli::html_escape;

// What a report is made from: one run's rows, or the rows of one run's shards joined.
struct MetricInfo {
  std::string name, category, definition;
  bool higher_is_better = true, needs_mask = false;
  json options;
};
struct PhotoRow {
  std::string name;
  int64_t index = 0;  // the photo's place in the whole (unsharded) list
  int64_t target = 0;
  std::string label;
  bool mask = false;
  std::vector<double> explain_seconds;               // [method]
  std::vector<std::vector<double>> values, seconds;  // [method][metric]; NaN: not scored (no mask)
};
struct Evaluation {
  std::string model;
  std::vector<std::string> method_names;
  json method_parameters = json::object();  // method name -> its parameters
  std::vector<MetricInfo> metrics;
  std::vector<PhotoRow> photos;
  json skipped = json::array();  // unreadable photos (--skip-bad): name, index, source, reason
  int64_t photos_total = 0;  // in all shards together
  salient::Shard shard;      // {0, 1}: the whole list (a merge's result too)
  int64_t seed = 0, input_size = 0, threads = 0;
  double seconds = 0;
  json identity;  // what makes two runs' rows the same (a rerun reuses rows of an equal identity)
};

json metric_json(const MetricInfo& m) {
  return {{"name", m.name}, {"category", m.category}, {"higher_is_better", m.higher_is_better},
          {"needs_mask", m.needs_mask}, {"definition", m.definition}, {"options", m.options}};
}

// results.json's "photos" entry: what the photo's rows hold, to the last bit (JSON numbers
// round-trip doubles; NaN, a metric not scored, is null).
json photo_json(const Evaluation& e, const PhotoRow& p) {
  json explain = json::object(), values = json::object(), seconds = json::object();
  for (size_t k = 0; k < e.method_names.size(); ++k) {
    const auto& method = e.method_names[k];
    explain[method] = p.explain_seconds[k];
    for (size_t j = 0; j < e.metrics.size(); ++j) {
      values[method][e.metrics[j].name] = std::isnan(p.values[k][j]) ? json(nullptr) : json(p.values[k][j]);
      seconds[method][e.metrics[j].name] = std::isnan(p.seconds[k][j]) ? json(nullptr) : json(p.seconds[k][j]);
    }
  }
  return {{"name", p.name}, {"index", p.index}, {"target", p.target}, {"label", p.label}, {"mask", p.mask},
          {"explain_seconds", explain}, {"values", values}, {"seconds", seconds}};
}

// The row `photo_json` wrote (throws json's exceptions on anything else).
PhotoRow photo_row(const Evaluation& e, const json& p) {
  const auto number = [](const json& v) { return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>(); };
  PhotoRow row{.name = p.at("name"), .index = p.at("index"), .target = p.at("target"), .label = p.at("label"), .mask = p.at("mask")};
  for (const auto& method : e.method_names) {
    row.explain_seconds.push_back(number(p.at("explain_seconds").at(method)));
    row.values.emplace_back(), row.seconds.emplace_back();
    for (const auto& m : e.metrics) {
      row.values.back().push_back(number(p.at("values").at(method).at(m.name)));
      row.seconds.back().push_back(number(p.at("seconds").at(method).at(m.name)));
    }
  }
  return row;
}

// One shard's results.json, checked as far as it can be on its own.
Evaluation read_shard(const fs::path& dir) {
  const auto file = dir / "results.json";
  std::ifstream in(file);
  if (!in) fail("--merge ", dir.string(), ": no results.json there (not a salient-evaluate output folder)");
  try {
    const json r = json::parse(in);
    Evaluation e{.model = r.at("model"), .method_parameters = r.at("methods"), .photos_total = r.at("photos_total"),
                 .shard = {r.at("shard").at("index"), r.at("shard").at("count")}, .seed = r.at("seed"),
                 .input_size = r.at("input_size"), .threads = r.at("threads"), .seconds = r.at("seconds")};
    e.method_names = r.at("method_order").get<std::vector<std::string>>();  // "methods" is an object: sorted by name
    // An edited file must not index past what the merge allocates.
    if (e.shard.count < 1 || e.shard.count > 65536 || e.shard.index < 0 || e.shard.index >= e.shard.count)
      fail("--merge ", dir.string(), ": results.json names shard ", e.shard.index, "/", e.shard.count, ", which is not a shard");
    if (e.photos_total < 0 || e.photos_total > 100'000'000)
      fail("--merge ", dir.string(), ": results.json's photos_total ", e.photos_total, " is out of range [0, 100000000]");
    for (const auto& m : r.at("metrics"))
      e.metrics.push_back({m.at("name"), m.at("category"), m.at("definition"), m.at("higher_is_better"), m.at("needs_mask"), m.at("options")});
    e.identity = r.value("identity", json());
    e.skipped = r.value("skipped", json::array());
    for (const auto& p : r.at("photos")) e.photos.push_back(photo_row(e, p));
    return e;
  } catch (const json::exception& error) {
    fail("--merge ", dir.string(), ": results.json is not a shard's results (", error.what(),
         "); shards are made by salient-evaluate --shard I/N");
  }
}

// The shards of one run, joined: every shard of the same run exactly once, every photo once,
// in the order of the whole list; anything else is refused with the reason.
Evaluation merge_shards(const std::vector<fs::path>& dirs) {
  std::vector<Evaluation> shards;
  for (const auto& dir : dirs) shards.push_back(read_shard(dir));
  Evaluation merged = shards.front();
  merged.shard = {};
  merged.photos.clear();
  merged.skipped = json::array();
  merged.seconds = 0;
  const auto same_run = [&](const Evaluation& a, const Evaluation& b) {
    if (a.model != b.model) return std::string("model ") + a.model + " vs " + b.model;
    if (a.method_parameters != b.method_parameters || a.method_names != b.method_names)
      return std::string("methods, their order or their parameters differ");
    if (a.metrics.size() != b.metrics.size()) return std::string("metrics differ");
    for (size_t j = 0; j < a.metrics.size(); ++j)
      if (metric_json(a.metrics[j]) != metric_json(b.metrics[j])) return "metric " + a.metrics[j].name + " or its options differ";
    if (a.seed != b.seed || a.input_size != b.input_size) return std::string("--seed or --size differ");
    if (a.shard.count != b.shard.count || a.photos_total != b.photos_total) return std::string("they split different photo lists");
    return std::string();
  };
  std::vector<int> seen_shard(static_cast<size_t>(merged.shard.count = shards.front().shard.count), 0);
  std::vector<int> seen_photo(static_cast<size_t>(merged.photos_total), 0);
  for (size_t s = 0; s < shards.size(); ++s) {
    const auto reason = same_run(shards.front(), shards[s]);
    if (!reason.empty()) fail("--merge ", dirs[s].string(), " is not a shard of the same run as ", dirs[0].string(), ": ", reason);
    if (seen_shard[shards[s].shard.index]++) fail("--merge: shard ", shards[s].shard.index, "/", shards[s].shard.count, " is given twice");
    const auto place = [&](int64_t index, const std::string& name) {
      if (index < 0 || index >= merged.photos_total || seen_photo[index]++)
        fail("--merge ", dirs[s].string(), ": photo ", name, " is out of place or in two shards");
    };
    for (auto& row : shards[s].photos) {
      place(row.index, row.name);
      merged.photos.push_back(std::move(row));
    }
    for (auto& item : shards[s].skipped) {
      place(item.at("index").get<int64_t>(), item.at("name").get<std::string>());
      merged.skipped.push_back(std::move(item));
    }
    merged.seconds += shards[s].seconds;
  }
  for (size_t i = 0; i < seen_shard.size(); ++i)
    if (!seen_shard[i]) fail("--merge: shard ", i, "/", seen_shard.size(), " is missing");
  std::sort(merged.photos.begin(), merged.photos.end(), [](const PhotoRow& a, const PhotoRow& b) { return a.index < b.index; });
  std::sort(merged.skipped.begin(), merged.skipped.end(),
            [](const json& a, const json& b) { return a.at("index").get<int64_t>() < b.at("index").get<int64_t>(); });
  merged.shard = {0, 1};
  if (merged.identity.is_object() && merged.identity.contains("selection")) merged.identity["selection"]["shard"] = {0, 1};
  return merged;
}

// The report of an evaluation: summary.csv, values.csv, results.json and .md, the charts and
// index.html (see the top of the file).
void write_report(salient::cli::OutputFolder& output, const Evaluation& e, const fs::path& out) {
  const auto& method_names = e.method_names;
  const auto& metrics = e.metrics;
  const size_t methods = method_names.size(), photos = e.photos.size();
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  // values[method][metric][photo], seconds the same way; method_seconds[method][photo].
  std::vector<std::vector<std::vector<double>>> values(methods, std::vector<std::vector<double>>(metrics.size(), std::vector<double>(photos, nan)));
  auto seconds = values;
  std::vector<std::vector<double>> method_seconds(methods, std::vector<double>(photos, 0.0));
  int64_t with_masks = 0;
  for (size_t i = 0; i < photos; ++i) {
    with_masks += e.photos[i].mask;
    for (size_t k = 0; k < methods; ++k) {
      method_seconds[k][i] = e.photos[i].explain_seconds[k];
      for (size_t j = 0; j < metrics.size(); ++j) values[k][j][i] = e.photos[i].values[k][j], seconds[k][j][i] = e.photos[i].seconds[k][j];
    }
  }
  // Tables.
  std::vector<std::vector<Summary>> summary(methods, std::vector<Summary>(metrics.size()));
  for (size_t k = 0; k < methods; ++k)
    for (size_t j = 0; j < metrics.size(); ++j) summary[k][j] = summarise(values[k][j]);
  // Rank of each method per metric (1 = best; ties share their mean rank; n/a stays NaN).
  std::vector<std::vector<double>> ranks(methods, std::vector<double>(metrics.size(), nan));
  for (size_t j = 0; j < metrics.size(); ++j) {
    std::vector<size_t> present;
    std::vector<double> keys;
    for (size_t k = 0; k < methods; ++k)
      if (summary[k][j].n > 0) present.push_back(k), keys.push_back(metrics[j].higher_is_better ? -summary[k][j].mean : summary[k][j].mean);
    const auto r = salient::detail::average_ranks(keys);
    for (size_t q = 0; q < present.size(); ++q) ranks[present[q]][j] = r[q];
  }

  std::ofstream values_csv(output.file("values.csv"));
  values_csv << "photo,target,method,metric,value,seconds\n";
  for (size_t i = 0; i < photos; ++i)
    for (size_t k = 0; k < methods; ++k)
      for (size_t j = 0; j < metrics.size(); ++j)
        if (!std::isnan(seconds[k][j][i]))
          values_csv << e.photos[i].name << "," << e.photos[i].target << "," << method_names[k] << "," << metrics[j].name << ","
                     << values[k][j][i] << "," << seconds[k][j][i] << "\n";
  std::ofstream summary_csv(output.file("summary.csv"));
  summary_csv << "method,metric,n,mean,ci95_low,ci95_high,rank,seconds_per_photo\n";
  json table = json::object();
  for (size_t k = 0; k < methods; ++k) {
    for (size_t j = 0; j < metrics.size(); ++j) {
      const auto& s = summary[k][j];
      const auto time = summarise(seconds[k][j]).mean;
      summary_csv << method_names[k] << "," << metrics[j].name << "," << s.n << "," << s.mean << "," << s.low << "," << s.high
                  << "," << ranks[k][j] << "," << time << "\n";
      table[method_names[k]][metrics[j].name] = {{"n", s.n}, {"mean", s.mean}, {"ci95", {s.low, s.high}}, {"rank", ranks[k][j]},
                                                  {"seconds_per_photo", time}};
    }
    table[method_names[k]]["explain_seconds_per_photo"] = summarise(method_seconds[k]).mean;
  }

  // Charts: one bar chart per metric, the ranking grid.
  for (size_t j = 0; j < metrics.size(); ++j) {
    std::vector<salient::Bar> bars;
    for (size_t k = 0; k < methods; ++k) bars.push_back({method_names[k], summary[k][j].mean, summary[k][j].low, summary[k][j].high});
    salient::save_png(salient::bar_chart(bars, {.title = metrics[j].name + " (" + metrics[j].category + ")",
                                                .y_label = "mean over photos, 95% interval",
                                                .higher_is_better = metrics[j].higher_is_better}),
                      output.file("charts/" + metrics[j].name + ".png"));
  }
  std::vector<std::string> metric_columns;
  for (const auto& m : metrics) metric_columns.push_back(m.name);
  salient::save_png(salient::rank_grid(method_names, metric_columns, ranks, {.title = "rank per metric (1 = best)", .mean_column = true}),
                    output.file("ranking.png"));

  // Markdown.
  std::ostringstream md;
  md << "| method |";
  for (const auto& m : metrics) md << " " << m.name << (m.higher_is_better ? " (higher better)" : " (lower better)") << " |";
  md << "\n|---|";
  for (size_t j = 0; j < metrics.size(); ++j) md << "---|";
  md << "\n";
  for (size_t k = 0; k < methods; ++k) {
    md << "| " << method_names[k] << " |";
    for (size_t j = 0; j < metrics.size(); ++j) md << " " << cell(summary[k][j]) << " |";
    md << "\n";
  }
  md << "\nSeconds per photo (explanation; each metric):\n\n| method | explain |";
  for (const auto& m : metrics) md << " " << m.name << " |";
  md << "\n|---|---|";
  for (size_t j = 0; j < metrics.size(); ++j) md << "---|";
  md << "\n";
  for (size_t k = 0; k < methods; ++k) {
    md << "| " << method_names[k] << " | " << salient::cli::number(summarise(method_seconds[k]).mean) << " |";
    for (size_t j = 0; j < metrics.size(); ++j) md << " " << salient::cli::number(summarise(seconds[k][j]).mean) << " |";
    md << "\n";
  }
  std::ofstream(output.file("results.md")) << md.str();
  std::cout << md.str();

  json metric_list = json::array(), photo_list = json::array();
  for (const auto& m : metrics) metric_list.push_back(metric_json(m));
  for (const auto& p : e.photos) photo_list.push_back(photo_json(e, p));
  const json results{{"model", e.model}, {"photos", photo_list}, {"methods", e.method_parameters}, {"method_order", e.method_names},
                     {"metrics", metric_list},
                     {"table", table}, {"seed", e.seed}, {"input_size", e.input_size}, {"threads", e.threads},
                     {"seconds", e.seconds}, {"shard", {{"index", e.shard.index}, {"count", e.shard.count}}},
                     {"photos_total", e.photos_total}, {"skipped", e.skipped}, {"identity", e.identity}};
  std::ofstream(output.file("results.json")) << results.dump(1) << "\n";

  // index.html: the table, the ranking, the charts, the timings and the definitions.
  std::ofstream html(output.file("index.html"));
  std::ostringstream header;
  header << "<p>Model <code>" << html_escape(e.model) << "</code>, " << photos << " photos (" << with_masks << " with masks"
         << (e.skipped.empty() ? std::string() : ", " + std::to_string(e.skipped.size()) + " unreadable ones skipped")
         << "), top-1 class of each; mean over photos and 95% interval (Student's t). "
         << salient::cli::three_digits(e.seconds) << " s with " << e.threads << " threads.</p>\n";
  salient::cli::page_start(html, "salient-evaluate", header.str(),
                           "td{text-align:right}td:first-child,th{text-align:left}.charts img{width:400px;margin:4px}\n");
  html << "<table><tr><th>method</th>";
  for (const auto& m : metrics) html << "<th>" << html_escape(m.name) << "<br><small>" << (m.higher_is_better ? "higher" : "lower") << " is better</small></th>";
  html << "</tr>\n";
  for (size_t k = 0; k < methods; ++k) {
    html << "<tr><td>" << html_escape(method_names[k]) << "</td>";
    for (size_t j = 0; j < metrics.size(); ++j) html << "<td>" << html_escape(cell(summary[k][j])) << "</td>";
    html << "</tr>\n";
  }
  html << "</table><h2>Ranking</h2><img src=\"ranking.png\" alt=\"rank per metric\"><h2>Per metric</h2><div class=\"charts\">";
  for (const auto& m : metrics) html << "<img src=\"charts/" << html_escape(m.name) << ".png\" alt=\"" << html_escape(m.name) << "\">";
  html << "</div><h2>Time per photo</h2><table><tr><th>method</th><th>explain</th>";
  for (const auto& m : metrics) html << "<th>" << html_escape(m.name) << "</th>";
  html << "</tr>\n";
  for (size_t k = 0; k < methods; ++k) {
    html << "<tr><td>" << html_escape(method_names[k]) << "</td><td>" << salient::cli::milliseconds(summarise(method_seconds[k]).mean) << "</td>";
    for (size_t j = 0; j < metrics.size(); ++j) html << "<td>" << salient::cli::milliseconds(summarise(seconds[k][j]).mean) << "</td>";
    html << "</tr>\n";
  }
  html << "</table><h2>Metrics</h2><ul>";
  for (const auto& m : metrics)
    html << "<li><b>" << html_escape(m.name) << "</b> (" << m.category << "): " << html_escape(m.definition) << "; options <code>"
         << html_escape(m.options.dump()) << "</code></li>";
  html << "</ul><p>Every value: <a href=\"values.csv\">values.csv</a>; the table: <a href=\"summary.csv\">summary.csv</a>, "
          "<a href=\"results.json\">results.json</a>.</p>\n";
  salient::cli::page_end(html);
  html.close();
  std::cerr << "salient-evaluate: wrote " << (out / "index.html").string() << " (" << e.seconds << " s)\n";
}

int evaluate(const Options& options, const std::vector<std::string>& method_names, const std::vector<salient::Method<Model>>& methods,
             const std::vector<salient::MethodSettings>& method_settings, const std::vector<Metric>& metrics,
             salient::cli::Processes& processes);

int run(int argc, char** argv) {
  Options options;
  static const std::string help = usage();
  salient::cli::parse_options(argc, argv, help.c_str(), {"--mpi", "--skip-bad"}, [&](const std::string& flag, const std::string& value) {
    if (salient::cli::input_flag(flag, value, options.input) || salient::cli::method_flag(flag, value, options.settings)) return;
    if (flag == "--model") options.model = value;
    else if (flag == "--images") options.images.push_back(value);
    else if (flag == "--limit") options.limit = parse_int(flag, value, 1, 100000);
    else if (flag == "--methods") options.methods = salient::cli::split_commas(value);
    else if (flag == "--metrics") options.metrics = salient::cli::split_commas(value);
    else if (flag == "--metric-option") options.metric_options.push_back(value);
    else if (flag == "--method-option") options.method_options.push_back(value);
    else if (flag == "--masks") options.masks = value;
    else if (flag == "--shard") options.shard = salient::parse_shard(value);
    else if (flag == "--merge") options.merge.push_back(value);
    else if (flag == "--part-size") options.part_size = parse_int(flag, value, 1, 100000);
    else if (flag == "--mpi") options.mpi = true;
    else if (flag == "--skip-bad") options.skip_bad = true;
    else if (flag == "--out") options.out = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (!options.merge.empty()) {
    if (!options.model.empty() || !options.images.empty()) fail("--merge joins finished shards: it takes no --model or --images");
    salient::cli::OutputFolder output(options.out, "salient-evaluate");
    const auto merged = merge_shards(options.merge);
    write_report(output, merged, options.out);
    output.finish();
    return 0;
  }
  if (options.images.empty()) fail("--images is required (see --help)");
  if (options.methods.empty() || options.metrics.empty()) fail("--methods and --metrics need at least one name each");
  if (options.methods.size() > 100 || options.metrics.size() > 100) fail("at most 100 methods and 100 metrics");
  if (options.model.empty()) options.model = salient::cli::shipped_model("salient-evaluate");
  options.settings.normalization = options.input.normalization;
  // Every name and option is checked before any work.
  std::vector<std::string> method_names;
  std::vector<salient::Method<Model>> methods;
  std::vector<salient::MethodSettings> method_settings;
  const auto entry_of = [](const std::string& name) -> const salient::MethodEntry& {
    return salient::find_method(name == "gradient" ? "saliency" : name);
  };
  for (const auto& name : options.methods) {
    if (std::count(options.methods.begin(), options.methods.end(), name) > 1) fail("method '", name, "' is listed twice");
    entry_of(name);
    method_names.push_back(name);
    method_settings.push_back(options.settings);
  }
  for (const auto& text : options.method_options) {
    const auto [name, option, value] = named_option("--method-option", text);
    const auto it = std::find(method_names.begin(), method_names.end(), name);
    if (it == method_names.end()) fail("--method-option: method '", name, "' is not in --methods");
    auto& settings = method_settings[it - method_names.begin()];
    const auto& known = entry_of(name).option_names;
    if (std::find(known.begin(), known.end(), option) == known.end()) {
      std::string names;
      for (const auto& n : known) names += (names.empty() ? "" : ", ") + n;
      fail("method '", name, "' has no option '", option, "' (its options: ", names.empty() ? "none" : names, ")");
    }
    settings.options[option] = value;
    entry_of(name).parameters(settings);  // checks the value now, before any work
  }
  for (size_t k = 0; k < method_names.size(); ++k) methods.push_back(entry_of(method_names[k]).bind(method_settings[k]));
  std::vector<Metric> metrics;
  for (const auto& name : options.metrics) {
    if (std::count(options.metrics.begin(), options.metrics.end(), name) > 1) fail("metric '", name, "' is listed twice");
    metrics.push_back({&salient::find_metric(name), {}});
  }
  for (const auto& text : options.metric_options) {
    const auto [name, option, value] = named_option("--metric-option", text);
    const auto it = std::find_if(metrics.begin(), metrics.end(), [&](const Metric& m) { return m.entry->name == name; });
    if (it == metrics.end()) fail("--metric-option: metric '", name, "' is not in --metrics (", salient::find_metric(name).name, ")");
    it->options[option] = value;
    it->entry->parameters(it->options);  // checks the value now, before any work
  }
  if (!options.masks.empty() && !fs::is_directory(options.masks)) fail("--masks '", options.masks, "' is not a folder");
  salient::cli::Processes::check_launch("salient-evaluate", options.mpi);
  salient::cli::configure_process(options.input.threads);
  salient::cli::Processes processes(options.mpi);  // --mpi: this process is one rank of the job
  return salient::cli::ranks_guard("salient-evaluate", processes, [&] {
    return evaluate(options, method_names, methods, method_settings, metrics, processes);
  });
}

// Evaluates the photos' parts not finished before (every process takes parts from the shared
// counter), then rank 0 joins the parts' rows into the report.
int evaluate(const Options& options, const std::vector<std::string>& method_names, const std::vector<salient::Method<Model>>& methods,
             const std::vector<salient::MethodSettings>& method_settings, const std::vector<Metric>& metrics,
             salient::cli::Processes& processes) {
  std::optional<salient::cli::OutputFolder> output;  // rank 0's, claimed before any work
  if (processes.root()) output.emplace(options.out, "salient-evaluate");
  auto model = salient::cli::load_model(options.model);
  int64_t photos_total = 0;
  const auto photos = list_photos(options, photos_total);
  // A shard may hold no photos, or none with a mask: its empty rows still join the others'.
  const bool sharded = options.shard.count > 1;
  if (photos.empty() && !sharded) fail("no photos in --images");
  const auto labels = salient::cli::class_labels(options.model, options.input);
  const bool tty = isatty(fileno(stderr)) && processes.size() == 1;
  int64_t with_masks = 0;
  for (const auto& p : photos) with_masks += p.mask.has_value();
  for (const auto& m : metrics)
    if (m.entry->needs_mask && with_masks == 0 && !sharded) fail("metric '", m.entry->name, "' needs object masks: none of the photos has one in --masks");
  if (processes.root())
    std::cerr << "salient-evaluate: " << photos.size() << " photos (" << with_masks << " with masks), " << methods.size()
              << " methods, " << metrics.size() << " metrics" << (processes.size() > 1 ? ", " + std::to_string(processes.size()) + " processes" : "")
              << "\n";

  Evaluation evaluation{.model = options.model, .method_names = method_names, .photos_total = photos_total,
                        .shard = options.shard, .seed = static_cast<int64_t>(options.settings.seed), .input_size = options.input.size,
                        .threads = options.input.threads};
  for (size_t k = 0; k < methods.size(); ++k)
    evaluation.method_parameters[method_names[k]] = salient::find_method(method_names[k] == "gradient" ? "saliency" : method_names[k]).parameters(method_settings[k]);
  for (const auto& m : metrics)
    evaluation.metrics.push_back({m.entry->name, m.entry->category, m.entry->definition, m.entry->higher_is_better,
                                  m.entry->needs_mask, m.entry->parameters(m.options)});
  // What makes two runs' rows the same: rows of another identity are never reused.
  json metric_list = json::array();
  for (const auto& m : evaluation.metrics) metric_list.push_back(metric_json(m));
  json selection{{"images", options.images}, {"limit", options.limit}, {"photos", photos.size()}};
  selection["shard"] = {options.shard.index, options.shard.count};
  evaluation.identity = json{{"tool", "salient-evaluate"}, {"model", options.model},
                             {"model_sha256", salient::detail::file_sha256(options.model, "model")},
                             {"methods", evaluation.method_parameters}, {"method_order", method_names}, {"metrics", metric_list},
                             {"seed", options.settings.seed}, {"input_size", options.input.size}, {"normalize", options.input.normalize},
                             {"masks", options.masks}, {"selection", selection}};

  // A finished run into this folder with the same identity computes nothing again.
  const fs::path results_file = fs::path(options.out) / "results.json";
  const bool finished =
      processes.broadcast(processes.root() && salient::cli::finished_run(results_file, evaluation.identity).has_value());
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [](auto since) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count(); };
  if (finished) {
    if (!processes.root()) return 0;
    std::cerr << "salient-evaluate: " << results_file.string() << " already holds this run; reusing it\n";
    write_report(*output, read_shard(options.out), options.out);
    output->finish();
    return 0;
  }

  std::vector<salient::BoundMetric> bound;
  for (const auto& m : metrics) bound.push_back(m.entry->bind(m.options));
  const auto preprocessing = options.input.preprocessing();
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  // One photo's row: its top-1 class explained by every method, every map scored by every metric.
  const auto evaluate_photo = [&](const Photo& photo) -> json {
    json skipped;
    const auto read = salient::cli::read_photo("salient-evaluate", photo, preprocessing, options.skip_bad, skipped);
    if (!read) return {{"skipped", skipped}};
    const auto& input = *read;
    const std::optional<torch::Tensor> mask =
        photo.mask ? std::optional<torch::Tensor>(load_mask(*photo.mask, preprocessing, input)) : std::nullopt;
    auto scores = salient::cli::checked_scores(model.forward(input));
    salient::cli::check_label_count(labels, scores.size(1));
    PhotoRow row{.name = photo.name, .index = photo.index, .target = scores.argmax(1).item<int64_t>(), .mask = mask.has_value(),
                 .explain_seconds = std::vector<double>(methods.size(), 0.0),
                 .values = std::vector<std::vector<double>>(methods.size(), std::vector<double>(metrics.size(), nan))};
    row.label = salient::cli::class_label(labels, row.target);
    row.seconds = row.values;
    for (size_t k = 0; k < methods.size(); ++k) {
      auto t0 = std::chrono::steady_clock::now();
      const auto attribution = methods[k](model, input, salient::Target(row.target));
      row.explain_seconds[k] = elapsed(t0);
      if (attribution.dim() != 4 || attribution.size(0) != 1 || attribution.size(2) != input.size(2) ||
          attribution.size(3) != input.size(3))
        fail("method '", method_names[k], "' returned a map of shape ", attribution.sizes(), " for an input of shape ", input.sizes());
      const torch::Tensor map = attribution.sum(1, true).to(torch::kFloat32);
      int64_t version = salient::parameter_version(model);
      const auto method = salient::reusing_map(methods[k], input, row.target, attribution, &version);
      const salient::MetricInput context{model, input, row.target, map, &method, mask};
      for (size_t j = 0; j < metrics.size(); ++j) {
        if (metrics[j].entry->needs_mask && !mask) continue;
        if (tty)
          std::cerr << "\r  photo " << photo.index + 1 << " " << method_names[k] << " / " << metrics[j].entry->name
                    << "                    " << std::flush;
        t0 = std::chrono::steady_clock::now();
        row.values[k][j] = bound[j](context);
        row.seconds[k][j] = elapsed(t0);
        version = salient::parameter_version(model);  // restored by the metric
      }
    }
    return photo_json(evaluation, row);
  };
  salient::cli::JsonParts parts(output ? &*output : nullptr, options.out, photos.size(), static_cast<std::size_t>(options.part_size),
                                evaluation.identity);
  int64_t done = 0;
  parts.run(processes, [&](std::size_t first, std::size_t end) {
    json rows = json::array();
    for (std::size_t i = first; i < end; ++i) {
      rows.push_back(evaluate_photo(photos[i]));
      if (tty) continue;
      std::cerr << "  " << (processes.size() > 1 ? "rank " + std::to_string(processes.rank()) + ": " : "") << "photo " << i + 1
                << "/" << photos.size() << " (" << photos[i].name << ") done at " << elapsed(start) << " s\n";
    }
    done += static_cast<int64_t>(end - first);
    return rows;
  });
  if (tty && done > 0) std::cerr << "\n";
  evaluation.seconds = processes.sum(elapsed(start));  // this run's time over all processes
  if (!processes.root()) return 0;  // rank 0 writes the report
  for (const auto& row : parts.rows()) {
    if (row.contains("skipped")) evaluation.skipped.push_back(row["skipped"]);
    else evaluation.photos.push_back(photo_row(evaluation, row));
  }
  if (evaluation.photos.empty() && !sharded) fail("no photo of the ", photos.size(), " given could be read (see the reasons above)");
  write_report(*output, evaluation, options.out);
  parts.remove(*output);  // results.json holds every row now
  output->finish();
  return 0;
}

}  // namespace evaluate_tool

int salient_tool_evaluate(int argc, char** argv) {
  return salient::cli::main_guard("salient-evaluate", [&] { return evaluate_tool::run(argc, argv); });
}
