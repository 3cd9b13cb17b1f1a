#pragma once
// What every command-line tool shares: argument parsing helpers, process settings, and the
// "one line on stderr, exit code 2" error convention.
#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <limits>
#include <new>
#include <thread>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/options.hpp"
#include "salient/core/torch_backend.hpp"

namespace salient::cli {

// One task at a time on a thread of its own, beside the caller's work (e.g. writing an item's
// files while the next item is explained). wait() rethrows the task's error; destruction waits
// for it, so a task never outlives what it refers to.
class BackgroundTask {
 public:
  BackgroundTask() = default;
  BackgroundTask(const BackgroundTask&) = delete;
  BackgroundTask& operator=(const BackgroundTask&) = delete;
  ~BackgroundTask() {
    if (pending_.valid()) pending_.wait();
  }
  // Waits for the previous task (rethrowing its error), then starts `task`.
  template <class Task>
  void start(Task&& task) {
    wait();
    pending_ = std::async(std::launch::async, std::forward<Task>(task));
  }
  void wait() {
    if (pending_.valid()) pending_.get();
  }

 private:
  std::future<void> pending_;
};

// A tool's own errors (bad options and values) as salient::error of kind bad_input.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  raise(error_kind::bad_input, std::forward<Parts>(parts)...);
}

// Every count, size and thread option is read with its bounds (documented in each --help).
inline int64_t parse_int(const std::string& flag, const std::string& value, int64_t minimum, int64_t maximum) {
  return detail::parse_integer(flag, value, minimum, maximum);
}

// Bounds shared by the tools.
inline constexpr int64_t max_input_size = 2048;   // --size: the model input's side
inline constexpr int64_t max_seed = std::numeric_limits<int64_t>::max();
// --threads: at most twice the cores (more only adds switching; 1000 threads do not finish).
inline int64_t max_threads() { return 2 * std::max<int64_t>(1, std::thread::hardware_concurrency()); }
inline int parse_threads(const std::string& flag, const std::string& value) {
  return static_cast<int>(parse_int(flag, value, 1, max_threads()));
}

// --device cpu|cuda|cuda:I, checked against what this LibTorch build and machine have.
inline torch::Device parse_device(const std::string& flag, const std::string& value) {
  if (value != "cpu" && value != "cuda" && value.rfind("cuda:", 0) != 0) fail(flag, " is cpu, cuda or cuda:I, not '", value, "'");
  if (value == "cpu") return torch::kCPU;
  int64_t index = 0;
  if (value != "cuda") index = parse_int(flag, value.substr(5), 0, 1023);
  if (!torch::cuda::is_available())
    fail(flag, " ", value, ": this LibTorch has no CUDA device to use (Debian's libtorch is built for the CPU only; "
         "a CUDA build of LibTorch and a GPU are needed)");
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (index >= count) fail(flag, " ", value, ": there is no CUDA device ", index, " (", count, " available)");
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

inline double parse_double(const std::string& flag, const std::string& value) { return detail::parse_number(flag, value); }

inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

inline std::vector<std::string> read_labels(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("labels file '", path.string(), "' is a folder; expected a file with one class name per line");
  std::ifstream in(path);
  if (!in) fail("cannot read labels file '", path.string(), "'");
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) labels.push_back(line);
  if (labels.empty()) fail("labels file '", path.string(), "' is empty; expected one class name per line");
  return labels;
}

// Calls on_option(flag, value) for every "--flag value" pair of the command line; flags in
// `switches` take no value (value ""). -h/--help prints `usage` and exits.
template <class Fn>
void parse_options(int argc, char** argv, const char* usage, std::initializer_list<std::string_view> switches,
                   Fn&& on_option) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (std::find(switches.begin(), switches.end(), flag) != switches.end()) {
      on_option(flag, std::string());
      continue;
    }
    if (flag.rfind("--", 0) != 0) fail("unexpected argument '", flag, "' (options start with --; see --help)");
    if (i + 1 >= argc) fail("option ", flag, " needs a value (see --help)");
    const std::string value = argv[++i];
    if (value.rfind("--", 0) == 0) fail("option ", flag, " needs a value, got the option ", value, " (see --help)");
    on_option(flag, value);
  }
}

// Lets the heap's first `bytes` be backed by transparent huge pages. The first pass of a new
// batch shape touches hundreds of MB of fresh heap (IG on resnet18: 130,000 page faults, most
// of the first image's extra time); 2 MB pages take 512x fewer faults. Debian's kernels give
// huge pages only to ranges marked with madvise, and glibc marks its heap only when told by an
// environment variable at start (glibc.malloc.hugetlb): so the heap is grown once by `bytes`,
// marked, and given back to malloc, which keeps it (below the trim threshold) for the tensors.
// Only address space: memory is used as pages are touched.
inline void huge_page_heap(std::size_t bytes = (std::size_t{1} << 30) - (std::size_t{64} << 20)) {
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  auto* block = static_cast<char*>(std::malloc(bytes));
  if (!block) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(block) + huge - 1) & ~(huge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(block) + bytes) & ~(huge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint: failure is harmless
  std::free(block);
}

// Threads, allocator and TorchScript executor settings for a process that explains models.
inline void configure_process(int threads) {
  torch::set_num_threads(threads);
  // The inter-op pool (TorchScript's fork) too: `threads` bounds every pool of the process.
  try {
    at::set_num_interop_threads(threads);
  } catch (const c10::Error&) {
    // already set (a second call in one process): it keeps the first value
  }
  // OpenBLAS (Debian's BLAS once setup installs libopenblas0-pthread) keeps its own thread
  // pool beside LibTorch's. LibTorch already spreads a batch over its threads and calls BLAS
  // from each, so BLAS's threads only contend with them for the cores: their yield loops made
  // batch-1 MobileNetV2 passes 2.7x slower at 2 threads (BENCHMARKS.md). One BLAS thread per
  // caller; nothing happens with another BLAS.
  using SetBlasThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas_threads(1);
  // Keep freed memory in the heap: otherwise glibc returns every large activation buffer to
  // the kernel and the next batch page-faults it in again (2-5x slower backward passes).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (!std::getenv("SALIENT_NO_THP")) huge_page_heap();
  // TorchScript's profiling executor re-profiles the graph for every new input shape and
  // requires-grad pattern (batch 1 for the top-5, 16 for IG, 2 for the delta ...), which
  // cost seconds per configuration here; the simple executor runs the graph as it is.
  torch::jit::getExecutorMode() = false;
}

// A tool's model: forward-only calls of 8 inputs or more (perturbation methods, Score-CAM's
// masked inputs, metrics) run on the frozen, inference-optimised copy, gradients and single
// predictions on the module itself. Certificates (salient-topk) keep the plain module: a claim must hold
// for whoever runs the model as it is.
inline TorchModel load_model(const std::filesystem::path& path) {
  return TorchModel::load(path, {.optimize_for_inference = true});
}

// A classifier's scores [N, classes], checked alike by every tool: floating point and finite
// (a model that outputs NaN is refused, not explained as all-NaN maps).
inline torch::Tensor checked_scores(torch::Tensor scores) {
  if (scores.dim() != 2) fail("model output has shape ", shape_string(scores), "; expected [N, classes]");
  if (!scores.is_floating_point())
    fail("the model outputs ", c10::toString(scores.scalar_type()), " values; a classifier must output floating-point scores");
  TorchBackend::check_finite(scores, "model output");
  return scores;
}

// LibTorch's own warnings (deprecations inside model graphs) would break the promise of
// one clear line on stderr; results are unaffected by them.
struct QuietWarnings : c10::WarningHandler {
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};

// The one line an error message becomes: a TorchScript model's own error rather than the
// interpreter traceback's header, and only printable characters (text read from a file may
// hold terminal escape sequences).
inline std::string one_line(const std::string& message) {
  std::string line;
  if (const auto model_line = detail::model_error_line(message)) {
    line = "the model failed: " + *model_line;
  } else {
    std::stringstream in(message);
    while (std::getline(in, line) && line.find_first_not_of(" \t\r") == std::string::npos) {}
    if (line.find_first_not_of(" \t\r") == std::string::npos) return "unknown error";
  }
  std::string printable;
  for (unsigned char c : line) {
    if (c >= 0x20 && c != 0x7f) printable += static_cast<char>(c);
    else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      printable += hex;
    }
  }
  return printable;
}

// Runs a tool's main; an exception becomes one line on stderr and exit code 2.
template <class Fn>
int main_guard(const char* tool, Fn&& run) {
  QuietWarnings quiet;
  c10::Warning::set_warning_handler(&quiet);
  try {
    return run();
  } catch (const std::bad_alloc&) {
    std::cerr << tool << ": error: out of memory: the run needs more memory than this machine can give "
              << "(try a smaller --size, --batch-size or sample count)\n";
  } catch (const std::exception& e) {
    std::cerr << tool << ": error: " << one_line(e.what()) << "\n";
  }
  return 2;
}

// Runs the body of one process of a (possibly MPI) run: under MPI an exception on any rank
// prints which rank failed and ends the whole job, so that no rank waits for it at a barrier.
template <class Processes, class Fn>
int ranks_guard(const char* tool, Processes& processes, Fn&& run) {
  if (processes.size() == 1) return run();
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << tool << ": error (rank " << processes.rank() << " of " << processes.size() << "): " << one_line(e.what()) << "\n";
    processes.abort(2);
  }
}

}  // namespace salient::cli
