// Benchmark of incremental inference (masking/incremental.hpp): occlusion and feature ablation
// with small segments, incremental against the full recompute of every masked input.
//
//   bench_incremental PHOTO MODEL.pt [MODEL.pt ...]     prints a Markdown report
//
// Both sides use the inference-optimised copy for full forwards (as the command-line tools
// do); the full side has ModelOptions::incremental off. Occlusion: window 15x15, stride 8
// (729 windows at 224x224), zero fill (Captum's default), batches of 32. Feature ablation:
// SLIC segments (slic:200), the same fill. Threads: all cores, or SALIENT_BENCH_THREADS.
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_incremental PHOTO MODEL.pt [MODEL.pt ...]\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  try {
    auto input = salient::load_input(argv[1]);
    auto segments = salient::segment_input("slic:200", input);
    const int64_t count = segments.max().item<int64_t>() + 1;
    std::cout << "### Incremental inference (bench/bench_incremental.cpp)\n\nThreads: " << threads << ", photo " << argv[1]
              << " at 224x224, zero fill, batches of 32, full forwards on the inference-optimised copy; one run after a "
                 "warm-up run of each, interleaved. FLOP ratio: the convolutions' and linear layers' multiply-adds of a "
                 "full recompute over those the incremental run computed.\n\n"
              << "| model | occlusion 15x15 stride 8, full (s) | incremental (s) | speed-up | FLOP ratio | max rel. diff | "
                 "ablation, "
              << count << " SLIC segments, full (s) | incremental (s) | speed-up | FLOP ratio |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (int i = 2; i < argc; ++i) {
      auto incremental = salient::TorchModel::load(argv[i], {.optimize_for_inference = true});
      auto full = salient::TorchModel::load(argv[i], {.optimize_for_inference = true, .incremental = false});
      const int64_t target = incremental.forward(input).argmax(1).item<int64_t>();
      const salient::PerturbationOptions<salient::TorchModel> evaluation{.batch_size = 32};
      const salient::OcclusionOptions<salient::TorchModel> occlusion{.window = {15, 15}, .strides = {8, 8}, .evaluation = evaluation};
      torch::Tensor a, b;
      salient::IncrementalStats occlusion_stats, ablation_stats;
      auto times = salient::bench::interleaved_best(
          1, {[&] { b = salient::occlusion(full, input, target, occlusion); },
              [&] {
                salient::reset_incremental_stats(incremental);
                a = salient::occlusion(incremental, input, target, occlusion);
                occlusion_stats = salient::incremental_stats(incremental);
              },
              [&] { salient::feature_ablation(full, input, target, {.segments = segments, .evaluation = evaluation}); },
              [&] {
                salient::reset_incremental_stats(incremental);
                salient::feature_ablation(incremental, input, target, {.segments = segments, .evaluation = evaluation});
                ablation_stats = salient::incremental_stats(incremental);
              }});
      const double difference = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
      auto flop_ratio = [](const salient::IncrementalStats& s) {
        return s.macs > 0 ? std::to_string(s.full_macs / s.macs) : std::string("- (") + s.refused + ")";
      };
      std::cout << "| " << argv[i] << " | " << times[0] << " | " << times[1] << " | **" << times[0] / times[1] << "** | "
                << flop_ratio(occlusion_stats) << " | " << difference << " | " << times[2] << " | " << times[3] << " | **"
                << times[2] / times[3] << "** | " << flop_ratio(ablation_stats) << " |\n";
      std::cerr << argv[i] << ": occlusion's rectangles ended at " << occlusion_stats.ended << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_incremental: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
