// HDF5 attribution files: what is written reads back (here and in h5py), float16 rounds as
// numpy does, and a file that is not ours is refused, never overwritten.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "salient/io/hdf5.hpp"
#include "temp_dir.hpp"

namespace {
using salient::test::TempDir;

salient::AttributionIndexEntry entry_for(int64_t i) {
  salient::AttributionIndexEntry e;
  e.item = 10 + i;
  e.key = "class_" + std::to_string(i % 2) + "/photo " + std::to_string(i) + ".png";
  e.source = "/data/" + e.key;
  e.label = i % 2;
  e.top_classes = {i, i + 1, i + 2};
  e.top_probabilities = {0.5, 0.25, 0.125};
  e.seconds = {0.1 * static_cast<double>(i), 1.0};
  e.convergence_delta = {std::numeric_limits<double>::quiet_NaN(), 1e-3 * static_cast<double>(i)};
  return e;
}

std::vector<float> ramp(std::size_t n, float start) {
  std::vector<float> v(n);
  for (std::size_t k = 0; k < n; ++k) v[k] = start + 0.25f * static_cast<float>(k) - 3.0f;
  return v;
}
}  // namespace

TEST_CASE("float16 conversion rounds to nearest even as numpy does", "[hdf5]") {
  using salient::detail::half_bits;
  using salient::detail::half_value;
  CHECK(half_bits(1.0f) == 0x3c00);
  CHECK(half_bits(-2.0f) == 0xc000);
  CHECK(half_bits(65504.0f) == 0x7bff);
  CHECK(half_bits(65520.0f) == 0x7c00);  // halfway to the next power: rounds up to inf
  CHECK(half_bits(65519.0f) == 0x7bff);
  CHECK(half_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK((half_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7c00) == 0x7c00);
  CHECK(half_bits(5.9604645e-8f) == 0x0001);  // the smallest subnormal
  CHECK(half_bits(2.9802322e-8f) == 0x0000);  // exactly half of it: ties to even (0)
  CHECK(half_bits(1e-9f) == 0x0000);
  CHECK(half_bits(1.0f + 1.0f / 2048) == 0x3c00);       // tie between 1 and 1 + 2^-10: even (1)
  CHECK(half_bits(1.0f + 3.0f / 2048) == 0x3c02);       // tie: to the even 1 + 2^-9
  CHECK(half_bits(6.1035156e-5f) == 0x0400);  // the smallest normal
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {  // every finite half survives the round trip
    const auto h = static_cast<uint16_t>(bits);
    if ((h & 0x7c00) == 0x7c00) continue;
    if (half_bits(half_value(h)) != h) FAIL("half " << bits << " does not survive the round trip");
  }
}

TEST_CASE("an attribution file reads back what was appended, in float32 and float16", "[hdf5]") {
  TempDir dir("salient_hdf5");
  for (const bool half : {false, true}) {
    const auto path = dir.path / (half ? "half.h5" : "float.h5");
    {
      salient::AttributionWriter writer(path, {"integrated_gradients", "gradcam"}, half, R"({"steps": 8})");
      for (int64_t i = 0; i < 3; ++i)
        writer.append(entry_for(i), {ramp(3 * 4 * 5, static_cast<float>(i)), ramp(4 * 5, -static_cast<float>(i))},
                      {{3, 4, 5}, {1, 4, 5}});
      CHECK(writer.size() == 3);
      CHECK_THROWS_WITH(writer.append(entry_for(3), {ramp(3 * 4 * 5, 0), ramp(4 * 6, 0)}, {{3, 4, 5}, {1, 4, 6}}),
                        Catch::Contains("changed its shape"));
      CHECK_THROWS_WITH(writer.append(entry_for(3), {ramp(3, 0)}, {{3}}), Catch::Contains("1 maps for 2 methods"));
      if (half) {  // a map whose values all lie below float16's normal range is refused, not stored as zeros
        std::vector<float> tiny(3 * 4 * 5, 1e-9f);
        CHECK_THROWS_WITH(writer.append(entry_for(3), {tiny, ramp(4 * 5, 0)}, {{3, 4, 5}, {1, 4, 5}}),
                          Catch::Contains("float16 cannot hold this map of integrated_gradients"));
        CHECK(writer.size() == 3);
      }
      writer.close();
    }
    const salient::AttributionReader reader(path);
    CHECK(reader.methods() == std::vector<std::string>{"integrated_gradients", "gradcam"});
    CHECK(reader.parameters() == R"({"steps": 8})");
    REQUIRE(reader.size() == 3);
    for (int64_t i = 0; i < 3; ++i) {
      const auto e = reader.entry(i), want = entry_for(i);
      CHECK(e.item == want.item);
      CHECK(e.key == want.key);
      CHECK(e.source == want.source);
      CHECK(e.label == want.label);
      CHECK(e.top_classes == want.top_classes);
      CHECK(e.top_probabilities == want.top_probabilities);
      CHECK(e.seconds == want.seconds);
      CHECK(std::isnan(e.convergence_delta[0]));
      CHECK(e.convergence_delta[1] == want.convergence_delta[1]);
      const auto [values, shape] = reader.map("integrated_gradients", i);
      CHECK(shape == std::vector<int64_t>{3, 4, 5});
      CHECK(values == ramp(3 * 4 * 5, static_cast<float>(i)));  // multiples of 1/4: exact in float16 too
      CHECK(reader.map("gradcam", i).second == std::vector<int64_t>{1, 4, 5});
    }
    CHECK_THROWS_WITH(reader.map("lime", 0), Catch::Contains("no maps of lime"));
    CHECK_THROWS_WITH(reader.entry(3), Catch::Contains("outside"));
    // Never replaced.
    CHECK_THROWS_WITH(salient::AttributionWriter(path, {"gradcam"}, false, "{}"), Catch::Contains("exists"));
  }
  // h5py reads it as the header says.
  const std::string script =
      "import h5py, json, numpy as np, sys\n"
      "f = h5py.File(sys.argv[1])\n"
      "assert f.attrs['format'] == 'salient-attributions 1'\n"
      "assert json.loads(f.attrs['methods']) == ['integrated_gradients', 'gradcam']\n"
      "assert list(f['index/key'].asstr()[:]) == ['class_0/photo 0.png', 'class_1/photo 1.png', 'class_0/photo 2.png']\n"
      "m = f['maps/integrated_gradients']\n"
      "assert m.shape == (3, 3, 4, 5) and m.dtype == np.dtype(sys.argv[2]), (m.shape, m.dtype)\n"
      "assert np.array_equal(m[1].ravel(), 1 + 0.25 * np.arange(60) - 3)\n"
      "assert list(f['index/top5_class'][2]) == [2, 3, 4, -1, -1]\n";
  std::ofstream(dir.path / "check.py") << script;
  for (const auto& [file, dtype] : {std::pair{"float.h5", "float32"}, std::pair{"half.h5", "float16"}}) {
    const std::string command = "/usr/bin/python3 " + (dir.path / "check.py").string() + " " + (dir.path / file).string() +
                                " " + dtype + " 2>&1";
    INFO(command);
    CHECK(std::system(command.c_str()) == 0);
  }
}

TEST_CASE("a file that is not an attribution file is refused", "[hdf5]") {
  TempDir dir("salient_hdf5");
  std::ofstream(dir.path / "text.h5") << "not HDF5";
  CHECK_THROWS_WITH(salient::AttributionReader(dir.path / "text.h5"), Catch::Contains("not an HDF5 file"));
  CHECK_THROWS_WITH(salient::AttributionReader(dir.path / "missing.h5"), Catch::Contains("not a readable file"));
  const auto other = dir.path / "other.h5";
  H5Fclose(H5Fcreate(other.string().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT));
  CHECK_THROWS_WITH(salient::AttributionReader(other), Catch::Contains("not a salient attribution file"));
  CHECK_THROWS_WITH(salient::AttributionWriter(other, {"gradcam"}, false, "{}"), Catch::Contains("exists"));
  CHECK_THROWS_WITH(salient::AttributionWriter(dir.path / "new.h5", {"grad cam"}, false, "{}"),
                    Catch::Contains("not a dataset name"));
  CHECK_FALSE(std::filesystem::exists(dir.path / "new.h5"));  // checked before the file is made
}

TEST_CASE("merging attribution files orders their items and copies every map bit for bit", "[hdf5]") {
  TempDir dir("salient_hdf5");
  for (const bool half : {false, true}) {
    const auto name = [&](const std::string& stem) { return dir.path / (stem + (half ? ".half.h5" : ".h5")); };
    // The whole run, and the same items split into two interleaved shards (items 10..15).
    salient::AttributionWriter whole(name("whole"), {"integrated_gradients", "gradcam"}, half, "{}");
    salient::AttributionWriter even(name("even"), {"integrated_gradients", "gradcam"}, half, "{}");
    salient::AttributionWriter odd(name("odd"), {"integrated_gradients", "gradcam"}, half, "{}");
    for (int64_t i = 0; i < 6; ++i) {
      const std::vector<std::vector<float>> maps = {ramp(3 * 4 * 5, 0.37f * static_cast<float>(i)), ramp(4 * 5, -1.1f * static_cast<float>(i))};
      whole.append(entry_for(i), maps, {{3, 4, 5}, {1, 4, 5}});
      (i % 2 ? odd : even).append(entry_for(i), maps, {{3, 4, 5}, {1, 4, 5}});
    }
    odd.set_attribute("note", R"({"shard": 1})");
    whole.close(), even.close(), odd.close();
    CHECK(salient::AttributionReader(name("odd")).attribute("note") == R"({"shard": 1})");
    CHECK(salient::AttributionReader(name("odd")).attribute("absent").empty());
    CHECK(salient::AttributionReader(name("odd")).half() == half);

    CHECK(salient::merge_attribution_files({name("odd"), name("even")}, name("merged"), R"({"merged": true})") == 6);
    const salient::AttributionReader merged(name("merged")), reference(name("whole"));
    CHECK(merged.parameters() == R"({"merged": true})");
    REQUIRE(merged.size() == 6);
    for (int64_t i = 0; i < 6; ++i) {
      CHECK(merged.entry(i).key == reference.entry(i).key);
      CHECK(merged.entry(i).item == 10 + i);
      for (std::size_t m = 0; m < 2; ++m) {
        CHECK(merged.stored_map(m, i).bytes == reference.stored_map(m, i).bytes);
        CHECK(merged.map(merged.methods()[m], i) == reference.map(reference.methods()[m], i));
      }
    }
    // Overlapping files, other methods, other storage types and an existing output are refused.
    CHECK_THROWS_WITH(salient::merge_attribution_files({name("whole"), name("odd")}, name("twice"), "{}"),
                      Catch::Contains("item 11 is in") && Catch::Contains("overlap"));
    CHECK_FALSE(std::filesystem::exists(name("twice")));
    CHECK_THROWS_WITH(salient::merge_attribution_files({name("odd"), name("even")}, name("merged"), "{}"), Catch::Contains("exists"));
    CHECK(salient::AttributionReader(name("merged")).size() == 6);  // refused, and left as it was
    {
      salient::AttributionWriter other(name("other"), {"gradcam"}, half, "{}");
      auto row = entry_for(9);
      row.seconds.resize(1), row.convergence_delta.resize(1);
      other.append(row, {ramp(4 * 5, 0)}, {{1, 4, 5}});
    }
    CHECK_THROWS_WITH(salient::merge_attribution_files({name("odd"), name("other")}, name("x"), "{}"), Catch::Contains("other methods"));
  }
  CHECK_THROWS_WITH(salient::merge_attribution_files({dir.path / "odd.h5", dir.path / "even.half.h5"}, dir.path / "x.h5", "{}"),
                    Catch::Contains("float16"));
  // Uncompressed maps read back the same; files of other compression levels are not merged (their
  // stored chunks would be decoded with the wrong filters).
  {
    salient::AttributionWriter raw(dir.path / "raw.h5", {"integrated_gradients", "gradcam"}, false, "{}", 0);
    raw.append(entry_for(7), {ramp(3 * 4 * 5, 1.5f), ramp(4 * 5, 2.5f)}, {{3, 4, 5}, {1, 4, 5}});
  }
  const salient::AttributionReader raw(dir.path / "raw.h5");
  CHECK(raw.compression() == 0);
  CHECK(salient::AttributionReader(dir.path / "odd.h5").compression() == 1);
  CHECK(raw.map("integrated_gradients", 0).first == ramp(3 * 4 * 5, 1.5f));
  CHECK(raw.stored_map(0, 0).bytes.size() == 3 * 4 * 5 * sizeof(float));
  CHECK_THROWS_WITH(salient::merge_attribution_files({dir.path / "odd.h5", dir.path / "raw.h5"}, dir.path / "y.h5", "{}"),
                    Catch::Contains("at level 0"));
  // An input that fails while its rows are copied (its map chunk is gone): the output is not left behind.
  {
    salient::AttributionWriter empty_maps(dir.path / "no_chunks.h5", {"integrated_gradients", "gradcam"}, false, "{}");
    auto row = entry_for(40);
    empty_maps.append(row, {ramp(3 * 4 * 5, 0), ramp(4 * 5, 0)}, {{3, 4, 5}, {1, 4, 5}});
  }
  {
    const auto broken = dir.path / "no_chunks.h5";
    // Every dataset grows a second row (item 0, so it is copied first) whose map chunks were never written.
    const hid_t file = H5Fopen(broken.string().c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    for (const char* name : {"maps/integrated_gradients", "maps/gradcam", "index/item", "index/key", "index/source", "index/label",
                             "index/top5_class", "index/top5_probability", "index/seconds", "index/convergence_delta"}) {
      const hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
      const hid_t space = H5Dget_space(dataset);
      hsize_t dims[4] = {0, 0, 0, 0};
      H5Sget_simple_extent_dims(space, dims, nullptr);
      dims[0] = 2;
      H5Dset_extent(dataset, dims);
      H5Sclose(space);
      H5Dclose(dataset);
    }
    H5Fclose(file);
  }
  CHECK_THROWS_WITH(salient::merge_attribution_files({dir.path / "no_chunks.h5"}, dir.path / "w.h5", "{}"),
                    Catch::Contains("chunk"));
  CHECK_FALSE(std::filesystem::exists(dir.path / "w.h5"));
  CHECK(salient::merge_attribution_files({dir.path / "raw.h5"}, dir.path / "raw_copy.h5", "{}") == 1);
  CHECK(salient::AttributionReader(dir.path / "raw_copy.h5").compression() == 0);
  CHECK(salient::AttributionReader(dir.path / "raw_copy.h5").map("gradcam", 0).first == ramp(4 * 5, 2.5f));
  CHECK_THROWS_WITH(salient::AttributionWriter(dir.path / "z.h5", {"gradcam"}, false, "{}", 10), Catch::Contains("outside [0, 9]"));
}
