#pragma once
// Files the command-line tools write: raw attributions (.npy), heatmap overlays (.png), and the
// HTML reports' common look (one stylesheet and page frame) with salient-explain's report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/output.hpp"

#include "salient/attribution/registry.hpp"
#include "salient/io/heatmap.hpp"
#include "salient/io/image.hpp"
#include "salient/io/npy.hpp"
#include "salient/io/tensor_image.hpp"

namespace salient::cli {

// Small inputs (Fashion-MNIST's 28x28) are enlarged by an integer factor with nearest
// neighbours so their pixels stay visible in the report.
inline Image display_size(const Image& image, int64_t minimum = 192) {
  const int64_t factor = std::max<int64_t>(1, minimum / std::max<int64_t>(1, std::min(image.height, image.width)));
  if (factor == 1) return image;
  Image out(image.channels, image.height * factor, image.width * factor);
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = 0; y < out.height; ++y)
      for (int64_t x = 0; x < out.width; ++x) out.at(c, y, x) = image.at(c, y / factor, x / factor);
  return out;
}

struct WrittenFiles {
  std::string heatmap, attribution;
  double scale = 0;  // the map value drawn at full colour (the colour bar's end)
};

// The files one item's map is written to (one place that names them).
inline WrittenFiles attribution_files(const std::string& stem, const std::string& method, bool npy = true) {
  return {stem + "." + method + ".png", npy ? stem + "." + method + ".npy" : ""};
}

// Where a tool writes a file of its output folder: OutputFolder::file on the process that owns
// the folder, the path that process recorded on the other processes of an MPI run.
using FilePlace = std::function<std::filesystem::path(const std::string& relative)>;

// <stem>.<method>.npy: the exact attribution ([1,C,H,W] float32); <stem>.<method>.png: its
// channel-reduced map (signed: sum, diverging colours; unsigned: sum, inferno) over the photo.
// Without `npy` only the heatmap is written (a dataset run that keeps its maps in HDF5).
inline WrittenFiles write_attribution(const FilePlace& place, const std::string& stem, const std::string& method,
                                      const torch::Tensor& attribution, const Image& photo, bool is_signed,
                                      bool npy = true) {
  const auto files = attribution_files(stem, method, npy);
  auto values = attribution.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (npy) save_npy(place(files.attribution), values.data_ptr<float>(), values.sizes().vec());
  auto image = to_image(values);
  auto map = reduce_channels(image, ChannelReduction::sum);
  const double scale = percentile_scale(map, is_signed, 99.0);  // one percentile pass: the bar's end and the colours
  map = normalize_by_scale(map, is_signed, scale);
  auto shown = display_size(photo);
  if (shown.height != map.height || shown.width != map.width) map = resize(map, shown.height, shown.width);
  save_png(overlay(shown, map, is_signed ? Colormap::diverging : Colormap::inferno, 0.8f), place(files.heatmap));
  return {files.heatmap, files.attribution, scale};
}

inline std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A number with 3 significant digits, without an exponent where one is not needed
// (0.00254, 36.2, 1.23e-07).
inline std::string three_digits(double value) {
  if (!std::isfinite(value)) return value != value ? "?" : (value > 0 ? "inf" : "-inf");
  char text[32];
  const double magnitude = std::abs(value);
  if (magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e6)) {
    std::snprintf(text, sizeof text, "%.3g", value);
  } else if (magnitude >= 1000) {  // 36164 -> 36200
    const double unit = std::pow(10.0, std::floor(std::log10(magnitude)) - 2);
    std::snprintf(text, sizeof text, "%.0f", std::round(value / unit) * unit);
  } else {  // '#' keeps the trailing zeros of 3 digits (2.50); a bare trailing '.' goes
    std::snprintf(text, sizeof text, "%#.3g", value);
  }
  std::string out = text;
  if (out.back() == '.') out.pop_back();
  return out;
}

inline std::string milliseconds(double seconds) { return three_digits(seconds * 1000) + " ms"; }

// Every report's look: one stylesheet, one page frame (salient-explain, -evaluate, -sanity,
// -topk, -guidance). Self-contained: no fonts, scripts or images from the network; readable
// without JavaScript. The width fits a 1280-px window.
inline const char* report_stylesheet() {
  return R"(body{font-family:system-ui,sans-serif;margin:0 auto;padding:0 16px 32px;max-width:1240px;color:#222;line-height:1.35}
header{border-bottom:1px solid #ddd;margin-bottom:12px}header p{margin:4px 0}
h1{font-size:1.5em;margin:16px 0 4px}h2{font-size:1.25em;margin:24px 0 8px;border-bottom:1px solid #eee}h3{font-size:1em;margin:14px 0 6px;color:#555}
nav a{margin-right:10px}a{color:#1558b0}small,.note{color:#666}
table{border-collapse:collapse}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
img{max-width:100%;height:auto}
.photo{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}.photo>img{width:224px;image-rendering:pixelated}
.top5{min-width:300px;max-width:520px;flex:1}.prob{display:grid;grid-template-columns:minmax(120px,1fr) 120px 52px;gap:6px;align-items:center;font-size:90%;margin:2px 0}
.prob .bar{background:#eee;height:12px}.prob .bar span{display:block;height:12px;background:#4a7bd0}
.groups{display:flex;flex-wrap:wrap;gap:4px 24px;margin-top:8px}.group{max-width:100%}.group h3{margin:6px 0}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure.tile{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fafafa;width:176px;box-sizing:border-box}
figure.tile img{width:100%;image-rendering:pixelated;display:block}
figcaption{font-size:85%;margin-top:4px}figcaption .head{display:flex;flex-wrap:wrap;justify-content:space-between;column-gap:6px}
figcaption .name{font-weight:600}figcaption .time{color:#555;white-space:nowrap;margin-left:auto}
.scale{height:10px;margin-top:4px;border:1px solid #ccc}.ends{display:flex;justify-content:space-between;font-size:80%;color:#555}
details{font-size:85%;margin-top:2px}summary{cursor:pointer;color:#1558b0}details table td{padding:1px 4px;border:0}
dl.methods dt{font-weight:600;margin-top:6px}dl.methods dd{margin-left:16px}
.compare td,.compare th{text-align:center}.compare img{width:160px;image-rendering:pixelated}
.choose{font-size:90%;margin:6px 0}.choose label{margin-right:10px;white-space:nowrap}
)";
}

// <!doctype ...><header> ... up to the page's body; end with page_end.
inline void page_start(std::ostream& html, const std::string& title, const std::string& header_html,
                       const std::string& extra_style = "") {
  html << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" << html_escape(title)
       << "</title>\n<style>\n" << report_stylesheet() << extra_style << "</style></head><body>\n<header><h1>"
       << html_escape(title) << "</h1>\n" << header_html << "</header>\n";
}
inline void page_end(std::ostream& html) { html << "</body></html>\n"; }

// A table: a header row and rows of (escaped) text cells.
inline std::string html_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string html = "<table><tr>";
  for (const auto& cell : header) html += "<th>" + html_escape(cell) + "</th>";
  html += "</tr>\n";
  for (const auto& row : rows) {
    html += "<tr>";
    for (const auto& cell : row) html += "<td>" + html_escape(cell) + "</td>";
    html += "</tr>\n";
  }
  return html + "</table>\n";
}

// A top-k list ([{index, label, probability}], as every tool writes it) as labelled bars.
inline std::string top_classes_html(const nlohmann::json& top, const std::string& title) {
  std::string html = "<div class=\"top5\"><b>" + html_escape(title) + "</b>\n";
  for (const auto& entry : top) {
    const double p = entry.value("probability", 0.0);
    html += "<div class=\"prob\"><span>" + html_escape(entry.value("label", "")) + " <small>(" +
            std::to_string(entry.value("index", int64_t{-1})) + ")</small></span><span class=\"bar\"><span style=\"width:" +
            three_digits(std::clamp(p, 0.0, 1.0) * 100) + "%\"></span></span><span>" + three_digits(p * 100) + "%</span></div>\n";
  }
  return html + "</div>";
}

// A colour map as a CSS gradient (the report's colour bars need no image files).
inline std::string css_gradient(Colormap colormap) {
  const bool diverging = colormap == Colormap::diverging;
  std::string css = "linear-gradient(to right";
  for (int k = 0; k <= 10; ++k) {
    const float v = diverging ? -1.f + 0.2f * static_cast<float>(k) : 0.1f * static_cast<float>(k);
    const auto rgb = detail::colormap_rgb(colormap, v);
    char stop[40];
    std::snprintf(stop, sizeof stop, ",rgb(%d,%d,%d) %d%%", static_cast<int>(std::lround(rgb[0] * 255)),
                  static_cast<int>(std::lround(rgb[1] * 255)), static_cast<int>(std::lround(rgb[2] * 255)), 10 * k);
    css += stop;
  }
  return css + ")";
}

// The report's groups, in order: what a method needs of the model decides its family.
inline std::string method_group(Capability needs) {
  switch (needs) {
    case Capability::gradient: return "Gradients";
    case Capability::layers: return "Class activation maps";
    case Capability::rules: return "Propagation rules and baselines";
    case Capability::forward: return "Perturbation";
  }
  return "Other";
}

inline const MethodFacts* method_facts_of(const std::string& name) {
  for (const auto& facts : method_facts())
    if (facts.name == name) return &facts;
  return nullptr;
}

struct ReportCell {
  std::string method, heatmap, attribution;  // attribution: the .npy ("" when the maps are in HDF5)
  double seconds = 0;
  double scale = std::numeric_limits<double>::quiet_NaN();  // the colour bar's end (NaN: unknown)
  nlohmann::json parameters = nlohmann::json::object();
};
struct ReportRow {
  std::string source, input;
  nlohmann::json top5;
  std::vector<ReportCell> cells;
};

// The anchor of an image's section and of a method's description.
inline std::string image_anchor(std::size_t index) { return "image-" + std::to_string(index + 1); }
inline std::string method_anchor(const std::string& method) { return "method-" + method; }

// salient-explain's report: index.html, one section per image (photo, top-5 bars, the methods as
// a wrapping grid of tiles grouped by family), the methods' descriptions; compare.html, methods
// as rows and images as columns, with a choice of which to show (CSS only).
struct Report {
  std::vector<ReportRow> rows;

  void write(const std::filesystem::path& index, const std::filesystem::path& compare, const nlohmann::json& summary) const {
    write_index(index, summary);
    write_compare(compare, summary);
  }

 private:
  std::vector<std::string> method_order() const {
    std::vector<std::string> names;
    for (const auto& row : rows)
      for (const auto& cell : row.cells)
        if (std::find(names.begin(), names.end(), cell.method) == names.end()) names.push_back(cell.method);
    return names;
  }

  std::string header(const nlohmann::json& summary) const {
    std::ostringstream html;
    html << "<p>Model <code>" << html_escape(summary.value("model", "")) << "</code>";
    if (summary.contains("test_accuracy")) html << " (test accuracy " << three_digits(summary["test_accuracy"].get<double>()) << ")";
    html << ", " << rows.size() << (rows.size() == 1 ? " image, " : " images, ") << method_order().size() << " methods, "
         << summary.value("threads", 0) << " threads.</p>\n"
         << "<p class=\"note\">Each heatmap is the attribution summed over colour channels, over the photo. Signed methods "
         << "(<span style=\"color:#c00\">red</span>: evidence for the explained class, <span style=\"color:#00c\">blue</span>: "
         << "against) and unsigned ones (dark to bright: small to large) are scaled so the 99th percentile of the magnitude "
         << "is full colour; the bar under each tile gives that value in the map's own units. The exact maps are the "
         << "<code>.npy</code> files each heatmap links to; times are per image.</p>\n<nav><a href=\"compare.html\">compare "
         << "view</a>";
    for (std::size_t i = 0; i < rows.size(); ++i)
      html << "<a href=\"#" << image_anchor(i) << "\">" << html_escape(std::filesystem::path(rows[i].source).filename().string()) << "</a>";
    html << "<a href=\"#methods\">methods</a></nav>\n";
    return html.str();
  }

  static void write_tile(std::ostream& html, const ReportCell& cell) {
    const auto* facts = method_facts_of(cell.method);
    const bool is_signed = facts ? facts->is_signed : true;
    html << "<figure class=\"tile\">";
    if (!cell.attribution.empty()) html << "<a href=\"" << html_escape(cell.attribution) << "\" title=\"the exact map (.npy)\">";
    html << "<img src=\"" << html_escape(cell.heatmap) << "\" alt=\"" << html_escape(cell.method) << "\">";
    if (!cell.attribution.empty()) html << "</a>";
    html << "<figcaption><div class=\"head\"><a class=\"name\" href=\"index.html#" << method_anchor(cell.method) << "\">"
         << html_escape(cell.method) << "</a><span class=\"time\">" << milliseconds(cell.seconds) << "</span></div>"
         << "<div class=\"scale\" style=\"background:" << css_gradient(is_signed ? Colormap::diverging : Colormap::inferno)
         << "\"></div><div class=\"ends\">";
    const std::string end = std::isnan(cell.scale) ? "?" : three_digits(cell.scale);
    if (is_signed) html << "<span>-" << end << "</span><span>0</span><span>" << end << "</span>";
    else html << "<span>0</span><span>" << end << "</span>";
    html << "</div>";
    if (!cell.parameters.empty()) {
      html << "<details><summary>parameters</summary><table>";
      for (const auto& [key, value] : cell.parameters.items())
        html << "<tr><td>" << html_escape(key) << "</td><td>" << html_escape(value.is_string() ? value.get<std::string>() : value.dump())
             << "</td></tr>";
      html << "</table></details>";
    }
    html << "</figcaption></figure>\n";
  }

  void write_index(const std::filesystem::path& path, const nlohmann::json& summary) const {
    std::ofstream html(path);
    page_start(html, "salient report", header(summary));
    const auto order = method_order();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      const auto name = std::filesystem::path(row.source).filename().string();
      html << "<section id=\"" << image_anchor(i) << "\"><h2>" << html_escape(name);
      if (name != row.source) html << " <small>" << html_escape(row.source) << "</small>";
      html << "</h2>\n<div class=\"photo\"><img src=\"" << html_escape(row.input)
           << "\" alt=\"the photo as the model sees it\">" << top_classes_html(row.top5, "Top-5") << "</div>\n";
      // The families side by side, each a wrapping row of tiles: a few methods fit one row.
      html << "<div class=\"groups\">\n";
      for (const auto* group : {"Gradients", "Class activation maps", "Propagation rules and baselines", "Perturbation", "Other"}) {
        bool opened = false;
        for (const auto& name : order)
          for (const auto& cell : row.cells) {
            if (cell.method != name) continue;
            const auto* facts = method_facts_of(cell.method);
            if ((facts ? method_group(facts->needs) : std::string("Other")) != group) continue;
            if (!opened) html << "<div class=\"group\"><h3>" << group << "</h3>\n<div class=\"grid\">\n";
            opened = true;
            write_tile(html, cell);
          }
        if (opened) html << "</div></div>\n";
      }
      html << "</div></section>\n";
    }
    html << "<section id=\"methods\"><h2>Methods</h2><dl class=\"methods\">\n";
    for (const auto& name : order) {
      const auto* facts = method_facts_of(name);
      html << "<dt id=\"" << method_anchor(name) << "\">" << html_escape(name) << "</dt><dd>"
           << html_escape(facts ? facts->summary : std::string("(not in this build's registry)"))
           << (facts ? (facts->is_signed ? ". Signed: red for, blue against the class." : ". Unsigned: brighter is more important.") : "")
           << "</dd>\n";
    }
    html << "</dl></section>\n";
    page_end(html);
  }

  // Methods as rows, images as columns. The checkboxes hide rows and columns with CSS alone
  // (:has), so the view works without JavaScript; everything shows by default.
  void write_compare(const std::filesystem::path& path, const nlohmann::json& summary) const {
    const auto order = method_order();
    std::ostringstream style;
    for (std::size_t m = 0; m < order.size(); ++m)
      style << "body:has(#show-m" << m << ":not(:checked)) .m" << m << "{display:none}\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
      style << "body:has(#show-i" << i << ":not(:checked)) .i" << i << "{display:none}\n";
    std::ofstream html(path);
    page_start(html, "salient report: compare", "<p>Model <code>" + html_escape(summary.value("model", "")) +
                                                   "</code>. Methods as rows, images as columns; untick what to hide. "
                                                   "<a href=\"index.html\">Back to the report</a>.</p>\n", style.str());
    html << "<div class=\"choose\">Methods: ";
    for (std::size_t m = 0; m < order.size(); ++m)
      html << "<label><input type=\"checkbox\" id=\"show-m" << m << "\" checked> " << html_escape(order[m]) << "</label>";
    html << "</div>\n<div class=\"choose\">Images: ";
    for (std::size_t i = 0; i < rows.size(); ++i)
      html << "<label><input type=\"checkbox\" id=\"show-i" << i << "\" checked> "
           << html_escape(std::filesystem::path(rows[i].source).filename().string()) << "</label>";
    html << "</div>\n<div style=\"overflow-x:auto\"><table class=\"compare\"><tr><th></th>";
    for (std::size_t i = 0; i < rows.size(); ++i)
      html << "<th class=\"i" << i << "\"><img src=\"" << html_escape(rows[i].input) << "\" alt=\"photo\"><br>"
           << html_escape(std::filesystem::path(rows[i].source).filename().string()) << "</th>";
    html << "</tr>\n";
    for (std::size_t m = 0; m < order.size(); ++m) {
      html << "<tr class=\"m" << m << "\"><th><a href=\"index.html#" << method_anchor(order[m]) << "\">" << html_escape(order[m]) << "</a></th>";
      for (std::size_t i = 0; i < rows.size(); ++i) {
        html << "<td class=\"i" << i << "\">";
        for (const auto& cell : rows[i].cells)
          if (cell.method == order[m])
            html << "<img src=\"" << html_escape(cell.heatmap) << "\" alt=\"" << html_escape(cell.method) << "\"><br><small>"
                 << milliseconds(cell.seconds) << "</small>";
        html << "</td>";
      }
      html << "</tr>\n";
    }
    html << "</table></div>\n";
    page_end(html);
  }
};

}  // namespace salient::cli
