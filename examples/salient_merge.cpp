// salient-merge: the shard files of one salient-explain --format hdf5 run (--shard i/n, e.g. a
// Slurm array job's tasks) combined into one attributions file, as the unsharded run writes it.
// Refuses anything that would make the result differ from that run: a file of another run or
// other settings, a missing or repeated shard, an unfinished file, an item held twice.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#ifdef SALIENT_HAVE_HDF5
#include "salient/io/hdf5.hpp"
#endif

namespace merge_tool {

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;

constexpr const char* usage = R"(usage: salient-merge --in SHARD --in SHARD ... --out merged.h5
  --in PATH    a shard's attributions.h5 (salient-explain --format hdf5 --shard i/n), or the --out folder
                 holding it; repeatable, one per shard, in any order
  --out FILE   the merged file (must not exist): every item once, in the dataset's order, each map's
                 bytes as the shard stored them; equal to what the run without --shard writes
Checks: every shard 0..n-1 of one n, each once; the same model, methods and settings; every file
finished (all its items written); no item in two files.
)";

int run(int argc, char** argv) {
  std::vector<fs::path> inputs;
  fs::path out;
  salient::cli::parse_options(argc, argv, usage, {}, [&](const std::string& flag, const std::string& value) {
    if (flag == "--in") {
      const fs::path path(value);
      inputs.push_back(fs::is_directory(path) ? path / "attributions.h5" : path);
      if (inputs.size() > 100'000) fail("at most 100000 --in files");
    } else if (flag == "--out") {
      out = value;
    } else {
      fail("unknown option '", flag, "' (see --help)");
    }
  });
  if (inputs.empty() || out.empty()) fail("give the shards with --in and the merged file with --out (see --help)");
#ifndef SALIENT_HAVE_HDF5
  fail("this salient-merge was built without HDF5 (install libhdf5-dev and rebuild)");
#else
  std::error_code error;
  if (fs::exists(fs::symlink_status(out, error))) fail("'", out.string(), "' exists; salient-merge writes a new file only");
  // Every shard's settings without its shard and item count: they must agree.
  json common;
  int64_t shard_count = -1, items = 0;
  std::map<int64_t, fs::path> shards;
  json skipped = json::array();
  for (const auto& input : inputs) {
    const salient::AttributionReader file(input);
    auto parameters = json::parse(file.parameters(), nullptr, false);
    const auto part = json::parse(file.attribute("part"), nullptr, false);
    if (!parameters.is_object() || parameters.value("tool", "") != "salient-explain" || !parameters.contains("selection") ||
        !part.is_object())
      fail("'", input.string(), "' was not written by salient-explain --format hdf5");
    const auto shard = parameters["selection"].value("shard", json::array({0, 1}));
    const int64_t index = shard.at(0), count = shard.at(1), total = parameters.value("items", int64_t{-1});
    if (part.value("first", int64_t{-1}) != 0 || part.value("end", int64_t{-1}) != total ||
        file.size() + static_cast<int64_t>(part.value("skipped", json::array()).size()) != total)
      fail("'", input.string(), "' is not a finished run's file (it holds ", file.size(), " of its ", total, " items)");
    if (shard_count >= 0 && count != shard_count)
      fail("'", input.string(), "' is shard ", index, "/", count, "; the files before it are shards of ", shard_count);
    shard_count = count;
    if (!shards.emplace(index, input).second)
      fail("shard ", index, "/", count, " is given twice: '", shards[index].string(), "' and '", input.string(), "'");
    parameters["selection"].erase("shard");
    parameters.erase("items");
    if (common.is_null()) common = parameters;
    else if (parameters != common)
      fail("'", input.string(), "' was written with other settings (model, methods, options or selection) than '",
           inputs[0].string(), "'");
    items += total;
    for (auto entry : part["skipped"]) {
      entry.erase("index");  // a position in its shard's list
      skipped.push_back(entry);
    }
  }
  for (int64_t index = 0; index < shard_count; ++index)
    if (!shards.count(index)) fail("shard ", index, "/", shard_count, " is missing");
  // What the unsharded run's file says of itself.
  common["selection"]["shard"] = json::array({0, 1});
  common["items"] = items;
  // Written under a temporary name, renamed when complete: the output is whole or absent.
  const fs::path partial = out.string() + ".partial";
  if (fs::exists(fs::symlink_status(partial, error))) fail("'", partial.string(), "' exists; remove it or choose another --out");
  std::vector<fs::path> ordered;
  for (const auto& [index, path] : shards) ordered.push_back(path);
  // (It removes its unfinished file itself on an error, and never touches one it did not make.)
  const int64_t written = salient::merge_attribution_files(
      ordered, partial, common.dump(), {{"part", json{{"first", 0}, {"end", items}, {"skipped", skipped}}.dump()}});
  // Published with link(), which, unlike rename(), never replaces a file that appeared at --out meanwhile.
  if (::link(partial.c_str(), out.c_str()) != 0) {
    const int reason = errno;
    fs::remove(partial, error);
    fail("cannot write '", out.string(), "': ", reason == EEXIST ? "it appeared while merging" : std::strerror(reason));
  }
  fs::remove(partial, error);
  std::cout << "wrote " << out.string() << " (" << written << " items from " << shard_count << " shards"
            << (skipped.empty() ? "" : ", " + std::to_string(skipped.size()) + " skipped as unreadable") << ")\n";
  return 0;
#endif
}

}  // namespace merge_tool

int salient_tool_merge(int argc, char** argv) {
  return salient::cli::main_guard("salient-merge", [&] { return merge_tool::run(argc, argv); });
}
