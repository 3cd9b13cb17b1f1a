#pragma once
// Files the command-line tools write: raw attributions (.npy), heatmap overlays (.png) and an
// HTML page that shows every image with its heatmaps side by side.
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/output.hpp"

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
  map = normalize_percentile(map, is_signed, 99.0);
  auto shown = display_size(photo);
  if (shown.height != map.height || shown.width != map.width) map = resize(map, shown.height, shown.width);
  save_png(overlay(shown, map, is_signed ? Colormap::diverging : Colormap::inferno, 0.8f), place(files.heatmap));
  return files;
}

struct ReportCell {
  std::string method, heatmap;
  double seconds;
};
struct ReportRow {
  std::string source, input;
  nlohmann::json top5;
  std::vector<ReportCell> cells;
};

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

struct Report {
  std::vector<ReportRow> rows;

  void write(const std::filesystem::path& path, const nlohmann::json& summary) const {
    std::ofstream html(path);
    html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>salient report</title>\n"
         << "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
         << "td{vertical-align:top;padding:4px;text-align:center}img{width:224px;image-rendering:pixelated}"
         << ".top5{text-align:left;font-size:90%}</style></head><body>\n"
         << "<h1>salient report</h1>\n<p>model: " << html_escape(summary.value("model", "")) << "</p>\n";
    if (summary.contains("test_accuracy"))
      html << "<p>test accuracy: " << summary["test_accuracy"].get<double>() << "</p>\n";
    html << "<p>red: evidence for the target class, blue: against (signed methods); "
         << "bright: large magnitude (unsigned methods). Raw values: the .npy files.</p>\n<table>\n";
    for (const auto& row : rows) {
      html << "<tr><td><img src=\"" << html_escape(row.input) << "\" alt=\"input\"><br>" << html_escape(row.source)
           << "<div class=\"top5\">";
      for (const auto& entry : row.top5)
        html << html_escape(entry["label"].get<std::string>()) << " (" << entry["index"].get<int64_t>() << "): "
             << static_cast<int>(entry["probability"].get<double>() * 1000) / 10.0 << "%<br>";
      html << "</div></td>";
      for (const auto& cell : row.cells)
        html << "<td><img src=\"" << html_escape(cell.heatmap) << "\" alt=\"" << html_escape(cell.method) << "\"><br>"
             << html_escape(cell.method) << "<br><small>" << cell.seconds << " s</small></td>";
      html << "</tr>\n";
    }
    html << "</table>\n</body></html>\n";
  }
};

}  // namespace salient::cli
