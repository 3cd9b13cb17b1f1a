// Benchmark of layer masking: the masked forward pass against the plain forward pass.
//
//   bench_masking MODEL.pt [MODEL.pt ...]          prints a Markdown report
//
// Batch of 32 inputs at 224x224, all cores, simple TorchScript executor, freed memory kept
// in the heap. Two kinds of masks: a random rectangle removed per input (a third of the
// pixels: occlusion, feature ablation of a few segments), and RISE-style masks (a random 7x7
// grid of cells kept with probability 0.5, upsampled with a random shift: half the pixels,
// and far more boundary to fill along). Target (issue 4): the masked forward at most 1.5x
// the plain forward.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

namespace {


torch::Tensor rectangle_masks(int64_t n, int64_t size) {
  auto masks = torch::ones({n, 1, size, size});
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  for (int64_t i = 0; i < n; ++i) {
    auto r = at::randint(0, size / 2, {2}, generator);
    const int64_t top = r[0].item<int64_t>(), left = r[1].item<int64_t>();
    masks[i].slice(1, top, top + size / 2).slice(2, left, left + size * 2 / 3).zero_();
  }
  return masks;
}

// RISE's masks: 7x7 binary cells (p = 0.5) upsampled nearest to 8/7 of the image and cropped
// at a random shift.
torch::Tensor grid_masks(int64_t n, int64_t size) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(12);
  const int64_t cell = (size + 6) / 7;
  auto cells = (at::rand({n, 1, 7, 7}, generator) < 0.5).to(torch::kFloat);
  auto big = cells.repeat_interleave(cell, 2).repeat_interleave(cell, 3);
  big = torch::cat({big, big}, 2);
  big = torch::cat({big, big}, 3);
  auto masks = torch::empty({n, 1, size, size});
  auto shifts = at::randint(0, cell, {n, 2}, generator);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = shifts[i][0].item<int64_t>(), dx = shifts[i][1].item<int64_t>();
    masks[i] = big[i].slice(1, dy, dy + size).slice(2, dx, dx + size);
  }
  return masks;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_masking MODEL.pt [MODEL.pt ...]\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  std::cout << "### Layer masking (bench/bench_masking.cpp)\n\nThreads: " << threads
            << ", batch of 32 at 224x224; masks: a random rectangle removed per input (1/3 of the pixels), or "
               "RISE-style (7x7 random cells, p = 0.5, shifted); best of 7 interleaved runs.\n\n"
            << "| model | plain forward (s) | layer-masked, rectangles (s) | ratio | layer-masked, RISE grids (s) | "
               "ratio |\n|---|---|---|---|---|---|\n";
  try {
    torch::manual_seed(0);
    auto x = torch::randn({32, 3, 224, 224});
    auto rectangles = rectangle_masks(32, 224), grids = grid_masks(32, 224);
    for (int i = 1; i < argc; ++i) {
      auto model = salient::TorchModel::load(argv[i]);
      auto times = salient::bench::interleaved_best(7, {[&] { model.forward(x); },
                                                        [&] { salient::layer_masked_forward(model, x, rectangles); },
                                                        [&] { salient::layer_masked_forward(model, x, grids); }});
      std::cout << "| " << argv[i] << " | " << times[0] << " | " << times[1] << " | **" << times[1] / times[0]
                << "** | " << times[2] << " | **" << times[2] / times[0] << "** |\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_masking: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
