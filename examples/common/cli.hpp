#pragma once
// What every command-line tool shares: argument parsing helpers, process settings, and the
// "one line on stderr, exit code 2" error convention.
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/torch.h>

#include "salient/core/error.hpp"

namespace salient::cli {

using detail::fail;

inline int64_t parse_int(const std::string& flag, const std::string& value, int64_t minimum) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty()) fail(flag, " expects an integer, got '", value, "'");
  if (v < minimum) fail(flag, " must be at least ", minimum, ", got ", v);
  return v;
}

inline double parse_double(const std::string& flag, const std::string& value) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || !std::isfinite(v)) fail(flag, " expects a number, got '", value, "'");
  return v;
}

inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

inline std::vector<std::string> read_labels(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read labels file '", path.string(), "'");
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) labels.push_back(line);
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
    if (i + 1 >= argc) fail("option ", flag, " needs a value (see --help)");
    on_option(flag, std::string(argv[++i]));
  }
}

// Threads, allocator and TorchScript executor settings for a process that explains models.
inline void configure_process(int threads) {
  torch::set_num_threads(threads);
  // Keep freed memory in the heap: otherwise glibc returns every large activation buffer to
  // the kernel and the next batch page-faults it in again (2-5x slower backward passes).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // TorchScript's profiling executor re-profiles the graph for every new input shape and
  // requires-grad pattern (batch 1 for the top-5, 16 for IG, 2 for the delta ...), which
  // cost seconds per configuration here; the simple executor runs the graph as it is.
  torch::jit::getExecutorMode() = false;
}

// LibTorch's own warnings (deprecations inside model graphs) would break the promise of
// one clear line on stderr; results are unaffected by them.
struct QuietWarnings : c10::WarningHandler {
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};

// Runs a tool's main; an exception becomes one line on stderr and exit code 2.
template <class Fn>
int main_guard(const char* tool, Fn&& run) {
  QuietWarnings quiet;
  c10::Warning::set_warning_handler(&quiet);
  try {
    return run();
  } catch (const std::exception& e) {
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    std::cerr << tool << ": error: " << message << "\n";
    return 2;
  }
}

}  // namespace salient::cli
