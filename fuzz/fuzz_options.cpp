// libFuzzer target: the command-line option parser the tools share (common/cli.hpp's
// parse_options and number readers, the input flags, the method flags, --method lists with a
// method's own settings, --shard, --device). The input is the command line, one argument per
// line, cut at a 0 byte as argv's C strings are (-h/--help, which print and exit, are left out).
//
// What the parser accepts must also be what the methods accept: every method the command line
// names (all of them when it names none) is configured with the settings it would run with
// (MethodEntry::parameters, the same path as a run), and that must not fail. A flag value the
// parser lets through and a method then refuses would be found only after minutes of work.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/input_settings.hpp"
#include "common/method_settings.hpp"
#include "salient/io/dataset.hpp"

#ifndef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY LLVMFuzzerTestOneInput  // tests/fuzz_replay_tools.cpp renames it
#endif

extern "C" int SALIENT_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::vector<std::string> arguments{"salient-fuzz"};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::size_t start = 0; start <= text.size();) {
    const auto end = std::min(text.find('\n', start), text.size());
    const auto argument = text.substr(start, end - start);
    arguments.emplace_back(argument.substr(0, argument.find('\0')));  // a C string ends at its first 0
    if (arguments.back() == "-h" || arguments.back() == "--help") return 0;
    start = end + 1;
  }
  std::vector<char*> argv;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);

  salient::cli::InputSettings input;
  salient::MethodSettings shared = salient::cli::tool_method_settings();
  salient::cli::MethodList list;
  try {
    salient::cli::parse_options(static_cast<int>(arguments.size()), argv.data(), "", {"--skip-bad", "--mpi"},
                                [&](const std::string& flag, const std::string& value) {
      if (salient::cli::input_flag(flag, value, input) || salient::cli::method_flag(flag, value, shared)) return;
      if (flag == "--method") list = salient::cli::parse_method_list(flag, value);
      else if (flag == "--shard") salient::parse_shard(value);
      else if (flag == "--device") salient::cli::parse_device(flag, value);
      else if (flag == "--sample" || flag == "--limit") salient::cli::parse_int(flag, value, 1, salient::max_option_count);
      else if (flag != "--skip-bad" && flag != "--mpi" && flag != "--image" && flag != "--model" && flag != "--out")
        salient::cli::fail("unknown option '", flag, "' (see --help)");
    });
  } catch (const salient::error&) {
    return 0;
  }
  if (input.size < 1 || input.size > salient::cli::max_input_size || input.threads < 1 ||
      input.threads > salient::cli::max_threads())
    __builtin_trap();
  shared.normalization = input.normalization;  // as the tools do
  std::vector<std::string> names = list.names;
  if (names.empty())
    for (const auto& method : salient::methods()) names.push_back(method.name);
  for (const auto& name : names) {
    try {
      salient::find_method(name).parameters(list.settings(name, shared));
    } catch (const salient::error&) {
      __builtin_trap();  // accepted by the parser, refused by the method
    }
  }
  return 0;
}
