// Datasets of image files: ImageFolder order and labels, list files, seeded samples, shards.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "salient/io/dataset.hpp"
#include "temp_dir.hpp"

namespace {
namespace fs = std::filesystem;
using salient::test::TempDir;

void touch(const fs::path& file) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "x";
}

std::vector<std::string> keys(const std::vector<salient::DatasetItem>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.key);
  return out;
}

std::vector<salient::DatasetItem> numbered(int n) {
  std::vector<salient::DatasetItem> items;
  for (int i = 0; i < n; ++i) items.push_back({"img" + std::to_string(i) + ".png", "img" + std::to_string(i) + ".png", i % 7});
  return items;
}
}  // namespace

TEST_CASE("image_folder reads an ImageFolder tree in torchvision's order with its labels", "[dataset]") {
  TempDir dir("salient_dataset");
  const auto root = dir.path / "root";
  for (const char* f : {"top.png", "cats/b.png", "cats/a.jpg", "cats/sub/c.PNG", "cats/sub-x/d.png", "cats/sub/deep/f.png",
                        "cats/notes.txt", "cats/.hidden/e.png", "dogs/z.jpeg", ".ipynb_checkpoints/x.png"})
    touch(root / f);
  const auto dataset = salient::image_folder(root);
  // Python: for r, _, f in sorted(os.walk("cats")): sorted(f) gives a, b, sub/c, sub-x/d, sub/deep/f.
  CHECK(keys(dataset.items) == std::vector<std::string>{"top.png", "cats/a.jpg", "cats/b.png", "cats/sub/c.PNG",
                                                         "cats/sub-x/d.png", "cats/sub/deep/f.png", "dogs/z.jpeg"});
  CHECK(dataset.classes == std::vector<std::string>{"cats", "dogs"});
  std::vector<int64_t> labels;
  for (const auto& item : dataset.items) labels.push_back(item.label);
  CHECK(labels == std::vector<int64_t>{-1, 0, 0, 0, 0, 0, 1});
  CHECK(dataset.items[1].path == root / "cats" / "a.jpg");
  CHECK(fs::exists(dataset.items[5].path));
}

TEST_CASE("image_folder: a flat folder, masks left out on request, and its errors", "[dataset]") {
  TempDir dir("salient_dataset");
  for (const char* f : {"b.png", "a.jpg", "a_mask.png", "c.bmp", "readme.md"}) touch(dir.path / "flat" / f);
  const auto all = salient::image_folder(dir.path / "flat");
  CHECK(keys(all.items) == std::vector<std::string>{"a.jpg", "a_mask.png", "b.png", "c.bmp"});
  CHECK(all.classes.empty());
  CHECK(all.items.front().label == -1);
  CHECK(keys(salient::image_folder(dir.path / "flat", {.skip_masks = true}).items) ==
        std::vector<std::string>{"a.jpg", "b.png", "c.bmp"});
  CHECK_THROWS_WITH(salient::image_folder(dir.path / "flat", {.max_items = 3}), Catch::Contains("more than 3 images"));

  fs::create_directories(dir.path / "empty" / "class");
  CHECK_THROWS_WITH(salient::image_folder(dir.path / "empty"), Catch::Contains("holds no images"));
  CHECK_THROWS_WITH(salient::image_folder(dir.path / "missing"), Catch::Contains("not a readable folder"));
  touch(dir.path / "loop" / "cls" / "a.png");
  fs::create_directory_symlink(dir.path / "loop" / "cls", dir.path / "loop" / "cls" / "again");
  CHECK_THROWS_WITH(salient::image_folder(dir.path / "loop"), Catch::Contains("symlink cycle"));
}

TEST_CASE("image_list reads path[,label] lines relative to the list's folder", "[dataset]") {
  TempDir dir("salient_dataset");
  const auto list = dir.path / "lists" / "val.txt";
  fs::create_directories(list.parent_path());
  std::ofstream(list) << "# photos\r\nimages/a.png,3\r\n\n  \nimages/with,comma.png\n/abs/b.jpg, 12 \nc.png,x7\n";
  const auto dataset = salient::image_list(list);
  CHECK(keys(dataset.items) == std::vector<std::string>{"images/a.png", "images/with,comma.png", "/abs/b.jpg", "c.png,x7"});
  CHECK(dataset.items[0].path == dir.path / "lists" / "images" / "a.png");
  CHECK(dataset.items[2].path == fs::path("/abs/b.jpg"));
  std::vector<int64_t> labels;
  for (const auto& item : dataset.items) labels.push_back(item.label);
  CHECK(labels == std::vector<int64_t>{3, -1, 12, -1});
  CHECK(dataset.classes.empty());

  std::ofstream(dir.path / "bad.txt") << "a.png,1\nb.png,-2\n";
  CHECK_THROWS_WITH(salient::image_list(dir.path / "bad.txt"), Catch::Contains("line 2") && Catch::Contains("-2"));
  std::ofstream(dir.path / "blank.txt") << "# nothing\n\n";
  CHECK_THROWS_WITH(salient::image_list(dir.path / "blank.txt"), Catch::Contains("holds no items"));
  std::ofstream(dir.path / "nopath.txt") << ",4\n";
  CHECK_THROWS_WITH(salient::image_list(dir.path / "nopath.txt"), Catch::Contains("line 1 has no path"));
  CHECK_THROWS_WITH(salient::image_list(dir.path / "missing.txt"), Catch::Contains("cannot read dataset list"));
}

TEST_CASE("sample_items draws a seeded subset in the listing's order", "[dataset]") {
  const auto items = numbered(100);
  const auto a = salient::sample_items(items, 10, 7);
  CHECK(a.size() == 10);
  CHECK(keys(a) == keys(salient::sample_items(items, 10, 7)));
  CHECK(keys(a) != keys(salient::sample_items(items, 10, 8)));
  std::vector<int> indices;
  for (const auto& item : a) indices.push_back(std::stoi(item.key.substr(3)));
  CHECK(std::is_sorted(indices.begin(), indices.end()));
  CHECK(std::set<int>(indices.begin(), indices.end()).size() == 10);
  CHECK(keys(salient::sample_items(items, 500, 7)) == keys(items));
  CHECK_THROWS_WITH(salient::sample_items(items, 0, 7), Catch::Contains(">= 1"));
}

TEST_CASE("shards partition the items by key, stably and evenly", "[dataset]") {
  const auto items = numbered(3000);
  std::vector<std::string> merged;
  for (int64_t i = 0; i < 3; ++i) {
    const auto shard = salient::shard_items(items, {.index = i, .count = 3});
    CHECK(shard.size() > 900);  // 1000 expected; a hash that clumps would fail this
    CHECK(shard.size() < 1100);
    const auto k = keys(shard);
    merged.insert(merged.end(), k.begin(), k.end());
  }
  auto all = keys(items);
  std::sort(all.begin(), all.end());
  std::sort(merged.begin(), merged.end());
  CHECK(merged == all);  // every item exactly once
  // An item's shard does not depend on the other items.
  const auto few = salient::shard_items(numbered(10), {.index = 1, .count = 3});
  const auto many = salient::shard_items(items, {.index = 1, .count = 3});
  for (const auto& item : few)
    CHECK(std::any_of(many.begin(), many.end(), [&](const auto& other) { return other.key == item.key; }));
  CHECK(keys(salient::shard_items(items, {.index = 0, .count = 1})) == keys(items));

  const auto shard = salient::parse_shard("2/5");
  CHECK((shard.index == 2 && shard.count == 5));
  CHECK_THROWS_WITH(salient::parse_shard("5/5"), Catch::Contains("shard index"));
  CHECK_THROWS_WITH(salient::parse_shard("1"), Catch::Contains("I/N"));
  CHECK_THROWS_WITH(salient::parse_shard("0/0"), Catch::Contains("shard count"));
  CHECK_THROWS_WITH(salient::parse_shard("a/2"), Catch::Contains("shard index"));
  CHECK_THROWS_WITH(salient::shard_items(items, {.index = 3, .count = 3}), Catch::Contains("not a shard"));
}
