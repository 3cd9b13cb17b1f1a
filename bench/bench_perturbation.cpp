// Benchmark of the perturbation methods: LIME and KernelSHAP against the masked forward passes
// they need, and the settings the issue compares with Captum and the `lime` package.
//
//   bench_perturbation PHOTO MODEL.pt [MODEL.pt ...]     prints a Markdown report
//
// Per model: 1000 masked forward passes (random coalitions of 38-ish SLIC segments, batches
// of 32, the mean-colour fill), then LIME and KernelSHAP with 1000 samples on the same
// segments and masker, and Occlusion with a 15x15 window and stride 8 (729 windows at
// 224x224). The model is the inference-optimised copy (frozen + optimize_for_inference).
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_perturbation PHOTO MODEL.pt [MODEL.pt ...]\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  try {
    auto input = salient::load_input(argv[1]);
    auto segments = salient::segment_input("slic:40", input);
    const int64_t count = segments.max().item<int64_t>() + 1;
    std::cout << "### Perturbation methods (bench/bench_perturbation.cpp)\n\nThreads: " << threads << ", photo "
              << argv[1] << " at 224x224, " << count
              << " SLIC segments (slic:40), mean-colour fill, batches of 32, inference-optimised model; one run after a warm-up "
                 "run of each.\n\n"
              << "| model | 1000 masked forwards (s) | LIME, 1000 samples (s) | ratio | KernelSHAP, 1000 samples (s) | "
                 "ratio | Occlusion 15x15 stride 8, 729 windows (s) |\n|---|---|---|---|---|---|---|\n";
    for (int i = 2; i < argc; ++i) {
      auto model = salient::TorchModel::load(argv[i], {.optimize_for_inference = true});
      salient::PerturbationOptions<salient::TorchModel> evaluation{.masker = salient::make_masker("mean"), .batch_size = 32};
      auto generator = at::make_generator<at::CPUGeneratorImpl>(1);
      auto z = at::randint(0, 2, {1000, count}, generator).to(torch::kFloat);
      auto masks = z.index_select(1, segments.reshape({-1})).view({1000, 1, 224, 224});
      const int64_t target = model.forward(input).argmax(1).item<int64_t>();
      auto times = salient::bench::interleaved_best(
          1, {[&] { evaluation.masker.outputs(model, input, masks, {.batch_size = 32}); },
              [&] { salient::lime(model, input, target, {.segments = segments, .samples = 1000, .evaluation = evaluation}); },
              [&] { salient::kernel_shap(model, input, target, {.segments = segments, .samples = 1000, .evaluation = evaluation}); },
              [&] {
                salient::occlusion(model, input, target, {.window = {15, 15}, .strides = {8, 8}, .evaluation = evaluation});
              }});
      std::cout << "| " << argv[i] << " | " << times[0] << " | " << times[1] << " | **" << times[1] / times[0] << "** | "
                << times[2] << " | **" << times[2] / times[0] << "** | " << times[3] << " |\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_perturbation: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
