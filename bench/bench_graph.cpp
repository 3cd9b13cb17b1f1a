// Benchmark of the graph executor and the CAM family.
//
//   bench_graph MODEL.pt [MODEL.pt ...]          prints a Markdown report
//
// For each model at 224x224 with all cores (simple TorchScript executor, freed memory kept in
// the heap, as salient-explain):
//  * forward-only of a batch of 16: module.forward vs the executor's plain run (the target:
//    at most 1.15x), and the executor with autograd + one captured layer vs module.forward
//    with autograd (what Grad-CAM adds to a forward pass);
//  * one image: Grad-CAM, Grad-CAM++, guided backprop, guided Grad-CAM, Eigen-CAM and
//    Score-CAM (C masked forward passes, C = the CAM layer's channels, batches of 16 and 64).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "salient/salient.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best of `repeats` for each variant, run interleaved so that drifts of the machine hit all alike.

void bench_model(const std::string& path) {
  auto model = salient::TorchModel::load(path);
  auto module = *model.module();
  const auto& program = salient::program_of(model);
  torch::manual_seed(0);
  auto batch = torch::randn({16, 3, 224, 224});
  auto image = batch.slice(0, 0, 1);
  const auto layer = salient::default_cam_layer(model, image);
  std::cout << "\n### " << path << "\n\n"
            << program.body.ops.size() << " ops, " << program.layers.size() << " named layers; CAM layer `" << layer
            << "`\n\n";

  auto plain = salient::graph::plain_rules();
  // The no-grad pair runs interleaved; with autograd, alternating TorchScript's autodiff
  // executor and eager autograd made every eager run as slow as a cold first run here
  // (2.3 s instead of 0.15 s on torchvision's mobilenet_v2), so those run one after the other.
  auto forward_times = salient::bench::interleaved_best(9, {
      [&] { torch::NoGradGuard g; module.forward({batch}); },
      [&] { torch::NoGradGuard g; salient::graph::run(program, plain, {batch}); },
  });
  auto autograd_times = salient::bench::interleaved_best(5, {[&] {
                                             auto x = batch.detach().requires_grad_(true);
                                             module.forward({x});
                                           }});
  auto executor_autograd = salient::bench::interleaved_best(5, {[&] {
                                                auto x = batch.detach().requires_grad_(true);
                                                salient::run_layers(model, x, {{layer}});
                                              }});
  autograd_times.push_back(executor_autograd[0]);
  forward_times.insert(forward_times.end(), autograd_times.begin(), autograd_times.end());
  std::cout << "| batch of 16, 224x224 | seconds | ratio |\n|---|---|---|\n"
            << "| module.forward, no grad | " << forward_times[0] << " | 1 |\n"
            << "| executor, plain rules, no grad | " << forward_times[1] << " | **" << forward_times[1] / forward_times[0]
            << "** |\n"
            << "| module.forward, autograd recording | " << forward_times[2] << " | 1 |\n"
            << "| executor, autograd recording, layer `" << layer << "` captured | " << forward_times[3] << " | "
            << forward_times[3] / forward_times[2] << " |\n\n";

  auto cam_times = salient::bench::interleaved_best(3, {
      [&] { salient::grad_cam(model, image, 1, {.layer = layer}); },
      [&] { salient::grad_cam_plus_plus(model, image, 1, {.layer = layer}); },
      [&] { salient::eigen_cam(model, image, 1, {.layer = layer}); },
      [&] { salient::guided_backprop(model, image, 1); },
      [&] { salient::guided_grad_cam(model, image, 1, {.layer = layer}); },
      [&] { salient::grad_cam(model, batch, 1, {.layer = layer}); },
  });
  std::cout << "| one 224x224 image (last row: 16) | seconds |\n|---|---|\n"
            << "| Grad-CAM | " << cam_times[0] << " |\n| Grad-CAM++ | " << cam_times[1] << " |\n"
            << "| Eigen-CAM | " << cam_times[2] << " |\n| guided backprop | " << cam_times[3] << " |\n"
            << "| guided Grad-CAM | " << cam_times[4] << " |\n| Grad-CAM, batch of 16 | " << cam_times[5] << " |\n";

  const int64_t channels = salient::run_layers(model, image, {{layer}}).activations[0].size(1);
  for (int64_t batch_size : {16, 64}) {
    auto start = std::chrono::steady_clock::now();
    salient::score_cam(model, image, 1, {.layer = layer, .batch_size = batch_size});
    const double s = seconds_since(start);
    std::cout << "| Score-CAM, " << channels << " channels, masked inputs in batches of " << batch_size << " | " << s
              << " (" << 1000 * s / static_cast<double>(channels) << " ms per masked input) |\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_graph MODEL.pt [MODEL.pt ...]\n";
    return 2;
  }
  const int threads = salient::bench::configure();
  std::cout << "### Graph executor and CAMs (bench/bench_graph.cpp)\n\nThreads: " << threads
            << " (torch::set_num_threads), simple TorchScript executor, freed memory kept in the heap.\n"
            << "Best of 9 (no grad) or 5 (autograd) interleaved runs, best of 3 (CAMs); Score-CAM: one run.\n";
  try {
    for (int i = 1; i < argc; ++i) bench_model(argv[i]);
  } catch (const std::exception& e) {
    std::cerr << "bench_graph: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
