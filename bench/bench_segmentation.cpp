// Benchmark of the superpixel segmenters (segmentation/superpixels.hpp), LibTorch-free.
//
//   bench_segmentation IMAGES_DIR                      prints a Markdown report
//   bench_segmentation IMAGES_DIR --figure OUT_DIR     also writes segmentation_*.png figures
//
// Every PNG/JPEG photo in IMAGES_DIR (masks, *_mask.*, left out) resized to 224x224 (PIL-style
// bilinear); per photo the best of 5 runs of SLIC (n_segments 50) and Felzenszwalb (scale 100,
// sigma 0.8, min_size 50), one thread. Target: each under 20 ms.
// The figures: for three photos, the borders (red) of SLIC 50, SLIC 200 and Felzenszwalb 100
// (sigma 0.8, min_size 50) drawn over the photo, one 224x224 PNG each.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "salient/io/image.hpp"
#include "salient/io/heatmap.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace fs = std::filesystem;

namespace {

template <class F>
double best_ms(int repeats, F&& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (const double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--figure")) {
    std::cerr << "usage: bench_segmentation IMAGES_DIR [--figure OUT_DIR]\n";
    return 2;
  }
  try {
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(argv[1])) {
      const auto ext = entry.path().extension().string();
      if ((ext == ".png" || ext == ".jpg" || ext == ".jpeg") &&
          entry.path().stem().string().find("_mask") == std::string::npos)
        paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) {
      std::cerr << "no photos in " << argv[1] << "\n";
      return 2;
    }
    const salient::SlicOptions slic_options{.n_segments = 50};
    const salient::FelzenszwalbOptions felzenszwalb_options{.scale = 100, .sigma = 0.8, .min_size = 50};
    std::vector<double> slic_ms, felzenszwalb_ms, slic_counts, felzenszwalb_counts;
    for (const auto& path : paths) {
      const auto photo = salient::resize(salient::load_image(path), 224, 224);
      salient::LabelMap a, b;
      slic_ms.push_back(best_ms(5, [&] { a = salient::slic(photo, slic_options); }));
      felzenszwalb_ms.push_back(best_ms(5, [&] { b = salient::felzenszwalb(photo, felzenszwalb_options); }));
      slic_counts.push_back(static_cast<double>(a.count));
      felzenszwalb_counts.push_back(static_cast<double>(b.count));
    }
    std::cout << std::fixed << std::setprecision(2);
    std::cout << "## Superpixels on " << paths.size() << " photos at 224x224 (best of 5 per photo, one thread)\n\n"
              << "| method | median ms | max ms | mean segments | min segments | max segments |\n"
              << "|---|---|---|---|---|---|\n";
    const auto row = [](const char* name, const std::vector<double>& ms, const std::vector<double>& counts) {
      std::cout << "| " << name << " | " << median(ms) << " | " << *std::max_element(ms.begin(), ms.end())
                << " | " << std::setprecision(1) << mean(counts) << std::setprecision(0) << " | "
                << *std::min_element(counts.begin(), counts.end()) << " | "
                << *std::max_element(counts.begin(), counts.end()) << std::setprecision(2) << " |\n";
    };
    row("SLIC (n_segments 50)", slic_ms, slic_counts);
    row("Felzenszwalb (scale 100, sigma 0.8, min_size 50)", felzenszwalb_ms, felzenszwalb_counts);

    if (argc == 4) {
      const fs::path out_dir = argv[3];
      fs::create_directories(out_dir);
      std::cout << "\nFigures:\n";
      for (const char* name : {"cat.png", "owl.jpg", "kite_and_cold.jpg"}) {
        const fs::path path = fs::path(argv[1]) / name;
        if (!fs::exists(path)) continue;
        const auto photo = salient::resize(salient::load_image(path), 224, 224);
        const std::pair<const char*, salient::LabelMap> maps[] = {
            {"slic50", salient::slic(photo, {.n_segments = 50})},
            {"slic200", salient::slic(photo, {.n_segments = 200})},
            {"felzenszwalb100", salient::felzenszwalb(photo, felzenszwalb_options)}};
        for (const auto& [method, map] : maps) {
          const fs::path file = out_dir / ("segmentation_" + path.stem().string() + "_" + method + ".png");
          salient::save_png(salient::mark_boundaries(photo, map, {1.f, 0.1f, 0.1f}), file);
          std::cout << "- " << file.string() << " (" << map.count << " segments, "
                    << fs::file_size(file) / 1024 << " KiB)\n";
        }
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_segmentation: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
