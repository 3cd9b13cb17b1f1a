// Benchmark of the PAIR and Xplique methods (issue 17) against the model passes they need:
//
//   bench_pair PHOTO MODEL.pt [MODEL.pt ...]     prints a Markdown report
//
// Per model, at 224x224: Blur IG (20 steps) against 20 forward + backward passes in batches of
// 16 (it adds two double-precision blurs per step), Guided IG (20 steps) against 20 passes one at a
// time (each step needs the previous step's gradient); XRAI
// (2 x 20 path points and the six-scale segmentation) against 40 forward + backward passes;
// Sobol attribution (grid 8, 8 designs: 8 x 65 = 520 masks, zero fill, batches of 32) against
// 520 masked forwards through the same masker. The targets: path methods <= 1.1x their passes,
// Sobol <= 1.1x its masked forwards.
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_pair PHOTO MODEL.pt [MODEL.pt ...]\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  try {
    auto input = salient::load_input(argv[1]);
    std::cout << "### PAIR and Xplique methods (bench/bench_pair.cpp)\n\nThreads: " << threads << ", photo " << argv[1]
              << " at 224x224; best of 3 runs after a warm-up, interleaved.\n\n"
              << "| model | 20 fwd+bwd, batches of 16 (s) | Blur IG, 20 steps (s) | ratio | 20 fwd+bwd, one at a time (s) | "
                 "Guided IG, 20 steps (s) | ratio | 40 fwd+bwd, batches of 16 (s) | "
                 "XRAI, 2 x 20 points (s) | ratio | 520 masked forwards (s) | Sobol, grid 8, 8 designs (s) | ratio |\n"
              << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (int i = 2; i < argc; ++i) {
      auto model = salient::TorchModel::load(argv[i]);
      const int64_t target = model.forward(input).argmax(1).item<int64_t>();
      const auto resolved = salient::resolve_target(model, input, target);
      auto passes = [&](int64_t count, int64_t batch) {
        for (int64_t done = 0; done < count; done += batch) {
          const int64_t chunk = std::min<int64_t>(batch, count - done);
          model.gradient(input.expand({chunk, -1, -1, -1}).contiguous(), resolved.tiled(chunk));
        }
      };
      salient::PerturbationOptions<salient::TorchModel> evaluation{.masker = salient::make_masker("zero"), .batch_size = 32};
      auto masks = torch::rand({520, 1, 224, 224});
      auto times = salient::bench::interleaved_best(
          3, {[&] { passes(20, 16); },
              [&] { salient::blur_integrated_gradients(model, input, target, {.steps = 20}); },
              [&] { salient::guided_integrated_gradients(model, input, target, {.steps = 20}); },
              [&] { passes(40, 16); },
              [&] { salient::xrai(model, input, target, {.steps = 20}); },
              [&] { passes(20, 1); },
              [&] { evaluation.masker.outputs(model, input, masks, {.batch_size = 32}); },
              [&] { salient::sobol_attribution(model, input, target, {.grid = 8, .designs = 8, .evaluation = evaluation}); }});
      std::cout << "| " << argv[i] << " | " << times[0] << " | " << times[1] << " | **" << times[1] / times[0] << "** | "
                << times[5] << " | " << times[2] << " | **" << times[2] / times[5] << "** | " << times[3] << " | " << times[4]
                << " | **" << times[4] / times[3] << "** | " << times[6] << " | " << times[7] << " | **" << times[7] / times[6]
                << "** |\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_pair: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
