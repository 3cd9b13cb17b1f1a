#pragma once
// A resumable run over a list of items whose results are JSON rows (salient-evaluate's metric
// rows, salient-sanity's similarity rows): the items go into parts of `part_size`, each part's
// rows are written as `parts/part-NNNNNNN.json.partial` and renamed when whole (a file under
// its final name is always complete). A rerun into the same folder reuses every finished part
// written with the same identity (what makes two runs' rows the same: model, methods, options,
// selection) and computes the rest; a part of other settings is refused and left alone. Under
// MPI the processes take parts from one shared counter; rank 0 reads them all at the end.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/output.hpp"
#include "common/processes.hpp"
#include "salient/core/error.hpp"

namespace salient::cli {

// The JSON document at `path` when a finished run of `identity` wrote it (its "identity" is
// equal); nothing when it is missing, unreadable or of another run.
inline std::optional<nlohmann::json> finished_run(const std::filesystem::path& path, const nlohmann::json& identity) {
  std::error_code error;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) return std::nullopt;
  std::ifstream in(path);
  auto previous = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!previous.is_object() || previous.value("identity", nlohmann::json()) != identity) return std::nullopt;
  return previous;
}

class JsonParts {
 public:
  static constexpr std::size_t max_parts = 100'000;

  // `output`: the run's folder on rank 0, null on the other ranks (they write only the files
  // rank 0 has recorded). Every part's names are recorded before any work.
  JsonParts(OutputFolder* output, std::filesystem::path folder, std::size_t items, std::size_t part_size,
            nlohmann::json identity)
      : folder_(std::move(folder)), items_(items), part_size_(part_size), identity_(std::move(identity)) {
    if (part_size_ == 0) raise(error_kind::bad_input, "internal: a part holds at least one item");
    const std::size_t count = (items_ + part_size_ - 1) / part_size_;
    if (count > max_parts)
      raise(error_kind::bad_input, "--part-size ", part_size_, " makes ", count, " parts; at most ", max_parts,
            ": choose a larger --part-size");
    for (std::size_t k = 0; k < count; ++k) {
      char name[48];
      std::snprintf(name, sizeof name, "parts/part-%07zu.json", k);
      names_.push_back(name);
    }
    if (output)
      for (const auto& name : names_) output->file(name), output->file(name + ".partial");
    output_ = output;
  }

  std::size_t count() const { return names_.size(); }
  std::size_t first(std::size_t part) const { return part * part_size_; }
  std::size_t end(std::size_t part) const { return std::min(items_, (part + 1) * part_size_); }

  // Computes every part not finished before: `work(first, end)` returns the rows of items
  // [first, end), one per item. Parts come from the processes' shared counter; every process
  // calls this (it ends with a barrier).
  void run(Processes& processes, const std::function<nlohmann::json(std::size_t first, std::size_t end)>& work) {
    processes.barrier();  // rank 0 has recorded every name
    // Finished parts outlive an error or a signal (a run that fails before any part is finished
    // leaves nothing). Rank 0 cannot see the other ranks' parts: under MPI it keeps from the start.
    const auto keep = [&] {
      if (output_) output_->keep_on_failure();
    };
    if (processes.size() > 1) keep();
    std::error_code error;
    for (auto k = static_cast<std::size_t>(processes.next_task()); k < count();
         k = static_cast<std::size_t>(processes.next_task())) {
      const auto path = folder_ / names_[k], partial = folder_ / (names_[k] + ".partial");
      if (std::filesystem::exists(std::filesystem::symlink_status(path, error))) {
        read(k);  // checked now: a foreign part stops the run before more work
        keep();
        continue;
      }
      std::filesystem::remove(partial, error);  // an unfinished part of an earlier run (this tool's own file)
      auto rows = work(first(k), end(k));
      if (!rows.is_array() || rows.size() != end(k) - first(k))
        raise(error_kind::bad_input, "internal: part ", k, " has ", rows.size(), " rows for ", end(k) - first(k), " items");
      {
        std::ofstream out(partial);
        out << nlohmann::json{{"identity", identity_}, {"first", first(k)}, {"end", end(k)}, {"rows", std::move(rows)}}.dump()
            << "\n";
        out.close();
        if (!out) raise(error_kind::io, "cannot write '", partial.string(), "'");
      }
      std::filesystem::rename(partial, path);
      keep();
    }
    processes.barrier();
  }

  // The rows of items [0, items), from the finished parts (rank 0, after `run`).
  nlohmann::json rows() const {
    auto all = nlohmann::json::array();
    for (std::size_t k = 0; k < count(); ++k)
      for (auto& row : read(k)) all.push_back(std::move(row));
    return all;
  }

  // The parts are folded into the run's results: they go (rank 0, once the results are written).
  void remove(OutputFolder& output) const {
    for (const auto& name : names_) output.remove(name), output.remove(name + ".partial");
  }

 private:
  // Part k's rows: written with this identity for exactly its items, or the run stops.
  nlohmann::json read(std::size_t k) const {
    const auto path = folder_ / names_[k];
    const auto refuse = [&](const std::string& why) {
      raise(error_kind::io, "'", path.string(), "', written by an earlier run into this folder, cannot be reused: ", why,
            ". It is left as it is: remove it (or choose another --out) to compute its items again");
    };
    std::ifstream in(path);
    const auto part = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!part.is_object()) refuse("it is not a part file (not JSON)");
    if (!part.contains("identity") || part["identity"] != identity_)
      refuse("it was written with other settings (model, methods, metrics, options or selection)");
    const auto position = [&](const char* key) { return part.contains(key) && part[key].is_number_unsigned() ? part[key].get<std::size_t>() : items_ + 1; };
    if (position("first") != first(k) || position("end") != end(k))
      refuse("it does not hold items " + std::to_string(first(k)) + " to " + std::to_string(end(k)) + " (another --part-size?)");
    if (!part.contains("rows") || !part["rows"].is_array() || part["rows"].size() != end(k) - first(k))
      refuse("it does not hold one row per item");
    return part["rows"];
  }

  OutputFolder* output_ = nullptr;
  std::filesystem::path folder_;
  std::size_t items_, part_size_;
  nlohmann::json identity_;
  std::vector<std::string> names_;
};

}  // namespace salient::cli
