#pragma once
// Datasets of image files: what a run over many photos explains, in a fixed order, with
// labels where the layout gives them (LibTorch-free; decoding stays in io/image.hpp).
//
// - image_folder(root): every image file below `root`, recursively. When `root` holds
//   sub-folders it is read as torchvision's ImageFolder: the class names are the sorted
//   names of root's sub-folders, a file's label is the index of the top-level folder it lies
//   in (at any depth), and items come in ImageFolder's order (classes sorted; inside a class
//   the folders sorted by path, then the files sorted by name), so item i here is
//   `ImageFolder(root)[i]` there. Files directly in `root` have no label (-1) and come
//   first; ImageFolder ignores them. Deviation: folders and files whose names start with '.'
//   (.ipynb_checkpoints, .DS_Store) are skipped, where ImageFolder makes a hidden folder a
//   class. Extensions (any case): .png .jpg .jpeg .bmp .ppm .pgm (the ones io/image.hpp
//   decodes). Folder symlinks are followed, at most `max_depth` levels deep.
// - image_list(file): one item per line, `path` or `path,label` (the label is the text after
//   the last comma when it is an integer); relative paths are relative to the list file's
//   folder; blank lines and lines starting with '#' are skipped; CRLF is accepted.
// - sample_items(items, n, seed): a seeded subset of n items, in the listing's order.
// - shard_items(items, {index, count}): the items whose key hashes to `index` mod `count`.
//   The key is an item's path relative to the dataset root (as written in a list), so an item
//   lands in the same shard whatever else the dataset holds, on every machine.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/core/options.hpp"
#include "salient/core/random.hpp"

namespace salient {

struct DatasetItem {
  std::filesystem::path path;  // the image file
  std::string key;             // its path relative to the dataset root, '/'-separated: the item's identity
  int64_t label = -1;          // class index; -1: none
};

struct ImageDataset {
  std::vector<DatasetItem> items;
  std::vector<std::string> classes;  // ImageFolder's class folders, sorted (label = index); empty for a list
};

struct DatasetOptions {
  int64_t max_items = max_option_count;  // more files than this is an error, not a silent cut
  int max_depth = 32;                    // folder nesting (a symlink cycle stops here with an error)
  bool skip_masks = false;               // leave out files whose stem contains "_mask" (salient-evaluate's masks)
};

struct Shard {
  int64_t index = 0;  // in [0, count)
  int64_t count = 1;  // in [1, 65536]
};

namespace detail {
inline bool is_image_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".ppm" || ext == ".pgm";
}

inline bool is_hidden(const std::filesystem::path& path) {
  const auto name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

// 64-bit FNV-1a of the key, then SplitMix64's finaliser: stable across machines and runs.
inline uint64_t key_hash(const std::string& key) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

struct FolderEntries {
  std::vector<std::filesystem::path> files, folders;  // each sorted by name
};

// One folder's image files and sub-folders (hidden ones left out).
inline FolderEntries list_folder(const std::filesystem::path& folder, const DatasetOptions& options) {
  namespace fs = std::filesystem;
  FolderEntries entries;
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const auto& path = it->path();
    if (is_hidden(path)) continue;
    std::error_code kind;
    if (fs::is_directory(path, kind))
      entries.folders.push_back(path);
    else if (fs::is_regular_file(path, kind) && is_image_file(path) &&
             !(options.skip_masks && path.stem().string().find("_mask") != std::string::npos))
      entries.files.push_back(path);
  }
  if (error) fail("cannot read dataset folder ", folder.string(), ": ", error.message());
  std::sort(entries.files.begin(), entries.files.end());
  std::sort(entries.folders.begin(), entries.folders.end());
  return entries;
}

inline void add_items(const std::filesystem::path& root, const std::vector<std::filesystem::path>& files, int64_t label,
                      const DatasetOptions& options, std::vector<DatasetItem>& out) {
  for (const auto& file : files) {
    if (static_cast<int64_t>(out.size()) >= options.max_items)
      fail("dataset ", root.string(), " holds more than ", options.max_items, " images");
    out.push_back({file, file.lexically_relative(root).generic_string(), label});
  }
}

// The images at any depth of one class folder, in torchvision's order: sorted(os.walk(...))
// sorts the folders by their path string ("a/b-x" before "a/b/c"), each folder's files by name.
inline void add_class(const std::filesystem::path& root, const std::filesystem::path& folder, int64_t label,
                      const DatasetOptions& options, std::vector<DatasetItem>& out) {
  std::vector<std::pair<std::string, std::vector<std::filesystem::path>>> folders;  // (path, its files)
  std::vector<std::pair<std::filesystem::path, int>> pending = {{folder, 1}};
  while (!pending.empty()) {
    auto [current, depth] = pending.back();
    pending.pop_back();
    if (depth > options.max_depth)
      fail("dataset folder ", current.string(), " is nested more than ", options.max_depth,
           " levels deep (a folder symlink cycle?)");
    if (static_cast<int64_t>(folders.size()) >= options.max_items)
      fail("dataset ", root.string(), " holds more than ", options.max_items, " folders");
    auto entries = list_folder(current, options);
    for (const auto& sub : entries.folders) pending.emplace_back(sub, depth + 1);
    folders.emplace_back(current.generic_string(), std::move(entries.files));
  }
  std::sort(folders.begin(), folders.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, files] : folders) add_items(root, files, label, options, out);
}
}  // namespace detail

// Every image below `root` (see the top of this header).
inline ImageDataset image_folder(const std::filesystem::path& root, const DatasetOptions& options = {}) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(root, error)) detail::fail("dataset folder ", root.string(), " is not a readable folder");
  ImageDataset dataset;
  // Root's own files (no label), then one class per sub-folder.
  const auto top = detail::list_folder(root, options);
  detail::add_items(root, top.files, -1, options, dataset.items);
  for (std::size_t c = 0; c < top.folders.size(); ++c) {
    dataset.classes.push_back(top.folders[c].filename().string());
    detail::add_class(root, top.folders[c], static_cast<int64_t>(c), options, dataset.items);
  }
  if (dataset.items.empty()) detail::fail("dataset folder ", root.string(), " holds no images (.png .jpg .jpeg .bmp .ppm .pgm)");
  return dataset;
}

// The items of a list file (see the top of this header).
inline ImageDataset image_list(const std::filesystem::path& list, const DatasetOptions& options = {}) {
  std::ifstream in(list);
  if (!in) detail::fail("cannot read dataset list ", list.string());
  const auto base = list.parent_path();
  ImageDataset dataset;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    if (line.size() > 4096) detail::fail("dataset list ", list.string(), " line ", number, " is longer than 4096 characters");
    std::string path = line;
    int64_t label = -1;
    if (const auto comma = line.rfind(','); comma != std::string::npos) {
      const std::string tail = line.substr(comma + 1);
      const bool integer = !tail.empty() && std::all_of(tail.begin(), tail.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == ' ';
      });
      if (integer) {
        const auto begin = tail.find_first_not_of(' '), end = tail.find_last_not_of(' ');
        try {
          label = detail::parse_integer("label", begin == std::string::npos ? tail : tail.substr(begin, end - begin + 1), 0,
                                1'000'000);
        } catch (const error& e) {
          detail::fail("dataset list ", list.string(), " line ", number, ": ", e.what());
        }
        path = line.substr(0, comma);
      }
    }
    if (path.empty()) detail::fail("dataset list ", list.string(), " line ", number, " has no path");
    if (static_cast<int64_t>(dataset.items.size()) >= options.max_items)
      detail::fail("dataset list ", list.string(), " holds more than ", options.max_items, " items");
    const std::filesystem::path file(path);
    dataset.items.push_back({file.is_absolute() ? file : base / file, file.generic_string(), label});
  }
  if (in.bad()) detail::fail("cannot read dataset list ", list.string());
  if (dataset.items.empty()) detail::fail("dataset list ", list.string(), " holds no items");
  return dataset;
}

// A seeded subset of `n` items (all when n >= their count), in the items' own order.
inline std::vector<DatasetItem> sample_items(const std::vector<DatasetItem>& items, int64_t n, uint64_t seed) {
  if (n < 1) detail::fail("sample size must be >= 1, got ", n);
  const auto count = static_cast<int64_t>(items.size());
  if (n >= count) return items;
  detail::Random random(detail::mix_seed(seed, 0, 0));
  auto chosen = random.choose(count, n);
  std::sort(chosen.begin(), chosen.end());
  std::vector<DatasetItem> subset;
  subset.reserve(chosen.size());
  for (const int64_t i : chosen) subset.push_back(items[static_cast<std::size_t>(i)]);
  return subset;
}

// "i/n" (0 <= i < n <= 65536).
inline Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) detail::fail("shard must be I/N (e.g. 0/4), got '", text, "'");
  Shard shard;
  shard.count = detail::parse_integer("shard count", text.substr(slash + 1), 1, 65536);
  shard.index = detail::parse_integer("shard index", text.substr(0, slash), 0, shard.count - 1);
  return shard;
}

// The items of one shard, in the items' own order; the shards of one count partition the items.
inline std::vector<DatasetItem> shard_items(const std::vector<DatasetItem>& items, const Shard& shard) {
  if (shard.count < 1 || shard.count > 65536 || shard.index < 0 || shard.index >= shard.count)
    detail::fail("shard ", shard.index, "/", shard.count, " is not a shard (0 <= index < count <= 65536)");
  std::vector<DatasetItem> mine;
  for (const auto& item : items)
    if (detail::key_hash(item.key) % static_cast<uint64_t>(shard.count) == static_cast<uint64_t>(shard.index))
      mine.push_back(item);
  return mine;
}

}  // namespace salient
