// Benchmark of the gradient family against the model's own batched forward+backward.
//
//   bench_gradients MODEL.pt [MODEL.pt ...]          prints a Markdown report
//
// For each model at 224x224 with all cores:
//  * reference: one forward+backward of a batch of 64 inputs (what IG with 64 steps and
//    SmoothGrad with 64 samples must compute anyway), and the same as 4 batches of 16;
//    TorchScript runs on the simple executor and freed memory stays in the heap, as in
//    salient-explain (SALIENT_BENCH_GLIBC_DEFAULT=1 keeps glibc's allocator defaults);
//  * integrated gradients (64 steps, Gauss-Legendre) and SmoothGrad (64 samples) at the
//    default batch size (16) and at 64, with their ratio to the reference;
//  * peak memory (VmHWM growth over the loaded model) of IG at batch sizes 8, 16 and 64, each
//    measured in a fresh process (the binary re-runs itself with --peak);
//  * forward-only time of the plain module and of its frozen, inference-optimised copy.
#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/jit/runtime/graph_executor.h>

#include "bench_common.hpp"
#include "salient/salient.hpp"

extern char** environ;

namespace {

constexpr int64_t kSteps = 64;
constexpr int64_t kClass = 1;  // an explicit target, as a Captum user would pass

template <class Fn>
double best_seconds(int repeats, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// The model's own forward+backward of `inputs`, straight on the TorchScript module.
void forward_backward(torch::jit::Module& module, const torch::Tensor& inputs) {
  auto x = inputs.detach().requires_grad_(true);
  auto scores = module.forward({x}).toTensor().select(1, kClass);
  auto grad = torch::autograd::grad({scores}, {x}, {torch::ones_like(scores)})[0];
  (void)grad;
}

torch::Tensor example_input() {
  torch::manual_seed(0);
  return torch::randn({1, 3, 224, 224});
}

// Child mode: peak resident memory of one IG call at `batch_size` above the loaded model.
int peak_mode(const std::string& path, int64_t batch_size, int threads) {
  torch::set_num_threads(threads);
  torch::jit::getExecutorMode() = false;
  auto model = salient::TorchModel::load(path, {.optimize_for_inference = false});
  auto x = example_input();
  salient::integrated_gradients(model, x, kClass, {.steps = 2, .batch_size = 1});  // load lazily-built state
  const long before = salient::bench::status_kib("VmRSS:");
  salient::integrated_gradients(model, x, kClass, {.steps = kSteps, .batch_size = batch_size});
  std::cout << salient::bench::status_kib("VmHWM:") - before << "\n";
  return 0;
}

long measure_peak(const std::string& self, const std::string& path, int64_t batch_size, int threads) {
  const std::string out = "/tmp/salient_bench_peak_" + std::to_string(getpid());
  std::vector<std::string> args = {self, "--peak", path, std::to_string(batch_size), std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  if (posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  posix_spawn_file_actions_destroy(&actions);
  std::ifstream in(out);
  long kib = -1;
  in >> kib;
  std::remove(out.c_str());
  return kib;
}

void bench_model(const std::string& self, const std::string& path, int threads) {
  auto model = salient::TorchModel::load(path, {.optimize_for_inference = false});
  auto module = *model.module();
  auto x = example_input();
  auto scaled = torch::cat(std::vector<torch::Tensor>(kSteps, x)) * torch::rand({kSteps, 1, 1, 1});

  // Warm up: the profiling executor optimises the graph during the first calls.
  for (int i = 0; i < 2; ++i) forward_backward(module, scaled.slice(0, 0, 16));
  forward_backward(module, scaled);

  auto ig = [&](int64_t batch) { salient::integrated_gradients(model, x, kClass, {.steps = kSteps, .batch_size = batch}); };
  auto smoothgrad = [&](int64_t batch) {
    auto gradient = [](salient::TorchModel& m, const torch::Tensor& in, const salient::Target& t) {
      return salient::saliency(m, in, t, {.abs = false, .batch_size = 1 << 20});
    };
    salient::noise_tunnel(model, x, kClass, gradient, {.samples = kSteps, .stdev = 0.3, .batch_size = batch});
  };
  ig(16), smoothgrad(16);  // warm-up of every code path
  // Interleaved repeats, best of each: slow drifts of the machine hit every variant alike.
  double reference64 = 1e30, reference16 = 1e30, ig16 = 1e30, ig64 = 1e30, sg16 = 1e30, sg64 = 1e30;
  for (int repeat = 0; repeat < 9; ++repeat) {
    reference16 = std::min(reference16, best_seconds(1, [&] {
      for (int64_t b = 0; b < kSteps; b += 16) forward_backward(module, scaled.slice(0, b, b + 16));
    }));
    ig16 = std::min(ig16, best_seconds(1, [&] { ig(16); }));
    sg16 = std::min(sg16, best_seconds(1, [&] { smoothgrad(16); }));
    reference64 = std::min(reference64, best_seconds(1, [&] { forward_backward(module, scaled); }));
    ig64 = std::min(ig64, best_seconds(1, [&] { ig(64); }));
    sg64 = std::min(sg64, best_seconds(1, [&] { smoothgrad(64); }));
  }

  auto optimized = salient::TorchModel::load(path, {.optimize_for_inference = true});
  auto batch16 = scaled.slice(0, 0, 16).contiguous();
  for (int i = 0; i < 3; ++i) optimized.forward(batch16), model.forward(batch16);
  double plain_forward = best_seconds(5, [&] { model.forward(batch16); });
  double optimized_forward = best_seconds(5, [&] { optimized.forward(batch16); });

  std::printf("\n### %s\n\n", path.c_str());
  std::printf("| what (64 inputs, 224x224, %d threads) | seconds | ratio to one forward+backward of 64 |\n|---|---|---|\n", threads);
  std::printf("| model forward+backward, one batch of 64 (reference) | %.3f | 1.000 |\n", reference64);
  std::printf("| model forward+backward, 4 batches of 16 | %.3f | %.3f |\n", reference16, reference16 / reference64);
  std::printf("| integrated gradients, 64 steps, batch_size 16 (default) | %.3f | %.3f |\n", ig16, ig16 / reference64);
  std::printf("| integrated gradients, 64 steps, batch_size 64 | %.3f | %.3f |\n", ig64, ig64 / reference64);
  std::printf("| SmoothGrad, 64 samples, batch_size 16 (default) | %.3f | %.3f |\n", sg16, sg16 / reference64);
  std::printf("| SmoothGrad, 64 samples, batch_size 64 | %.3f | %.3f |\n", sg64, sg64 / reference64);
  std::printf("\nIG vs the same batching of the model's own passes: %.3f (batch 16), %.3f (batch 64).\n",
              ig16 / reference16, ig64 / reference64);

  std::printf("\n| IG batch_size | peak memory above the loaded model (MiB) | share of batch 64 |\n|---|---|---|\n");
  long peak64 = measure_peak(self, path, 64, threads);
  for (int64_t batch : {8, 16, 64}) {
    long peak = batch == 64 ? peak64 : measure_peak(self, path, batch, threads);
    std::printf("| %ld | %.1f | %.2f |\n", static_cast<long>(batch), peak / 1024.0,
                peak64 > 0 ? static_cast<double>(peak) / static_cast<double>(peak64) : 0.0);
  }
  std::printf("\n| forward only, batch 16 | seconds | ratio |\n|---|---|---|\n");
  std::printf("| plain module (no autograd) | %.3f | 1.000 |\n", plain_forward);
  std::printf("| frozen + optimize_for_inference | %.3f | %.3f |\n", optimized_forward, optimized_forward / plain_forward);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (argc == 5 && std::string(argv[1]) == "--peak") return peak_mode(argv[2], std::stoll(argv[3]), std::stoi(argv[4]));
    if (argc < 2) {
      std::cerr << "usage: bench_gradients MODEL.pt [MODEL.pt ...]\n";
      return 2;
    }
    torch::set_num_threads(threads);
    // As salient-explain: the simple TorchScript executor (no re-profiling per input shape).
    torch::jit::getExecutorMode() = false;
    const bool keep_heap = !std::getenv("SALIENT_BENCH_GLIBC_DEFAULT");
    if (keep_heap) {
      // As salient-explain does: keep freed blocks in the heap instead of returning them to
      // the kernel, so large activations are not page-faulted in again on every call.
      mallopt(M_MMAP_THRESHOLD, 1 << 30);
      mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
    const std::string self = std::filesystem::canonical("/proc/self/exe").string();
    std::printf("## Gradient methods (bench/bench_gradients.cpp)\n\nThreads: %d (torch::set_num_threads), LibTorch %s, "
                "allocator: %s.\n", threads, TORCH_VERSION,
                keep_heap ? "freed memory kept in the heap (mallopt, as salient-explain)" : "glibc defaults");
    for (int i = 1; i < argc; ++i) bench_model(self, argv[i], threads);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_gradients: error: " << e.what() << "\n";
    return 2;
  }
}
