// Benchmark of relevance propagation (LRP composites) and DeepLIFT against the plain input
// gradient of the same batch.
//
//   bench_relevance MODEL.pt [MODEL.pt ...]      prints a Markdown report
//
// Batch of 16 at 224x224, all cores (as salient-explain). Each variant runs in its own loop
// (best of 3 after a warm-up): alternating TorchScript's autodiff with the executor's eager
// autograd slows both here. The target of issue 16: LRP and DeepLIFT at most 1.15x the plain
// forward + backward.
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

namespace {

double best_of(const std::function<void()>& run) { return salient::bench::interleaved_best(3, {run})[0]; }

void bench_model(const std::string& path) {
  auto model = salient::TorchModel::load(path);
  torch::manual_seed(0);
  auto batch = torch::randn({16, 3, 224, 224});
  const salient::Target target(std::vector<int64_t>(16, 1));
  const double module_gradient = best_of([&] { salient::saliency(model, batch, target, {.abs = false}); });
  const double executor_gradient = best_of([&] { salient::rule_gradient(model, batch, target); });
  std::cout << "\n### " << path << "\n\n| batch of 16, 224x224 | seconds | ratio to the executor's gradient |\n|---|---|---|\n"
            << "| input gradient, `module.forward` + autograd | " << module_gradient << " | "
            << module_gradient / executor_gradient << " |\n"
            << "| input gradient, executor (plain rules) | " << executor_gradient << " | 1 |\n";
  for (const char* composite : {"epsilon", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1_flat"}) {
    const double t = best_of([&] { salient::lrp(model, batch, target, {.composite = composite}); });
    std::cout << "| LRP `" << composite << "` | " << t << " | " << t / executor_gradient << " |\n";
  }
  const double deeplift = best_of([&] { salient::deeplift(model, batch, target); });
  std::cout << "| DeepLIFT (zero baseline: the baseline forward once, the 16 inputs forward + backward) | " << deeplift << " | "
            << deeplift / executor_gradient << " |\n";
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = salient::bench::configure();
  std::cout << "## Relevance propagation and DeepLIFT (bench/bench_relevance.cpp)\n\n" << threads << " threads\n";
  for (int i = 1; i < argc; ++i) bench_model(argv[i]);
}
