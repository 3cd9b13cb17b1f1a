// Superpixels (segmentation/superpixels.hpp): every segmenter returns a valid label map; SLIC and
// Felzenszwalb reproduce scikit-image's label maps on a small synthetic image (references
// computed with skimage 0.19.3), follow colour edges, keep their size promises on real photos;
// grids, connected components and spec parsing are exact.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "salient/io/image.hpp"
#include "salient/io/heatmap.hpp"
#include "salient/segmentation/superpixels.hpp"
#include "shared_data.hpp"

using Catch::Matchers::Contains;
using salient::Image;
using salient::LabelMap;

namespace {

// labels[y*width+x] in 0..count-1, every label used.
void require_valid(const LabelMap& map, int64_t height, int64_t width) {
  REQUIRE(map.height == height);
  REQUIRE(map.width == width);
  REQUIRE(map.labels.size() == static_cast<size_t>(height * width));
  REQUIRE(map.count >= 1);
  std::vector<int64_t> used(static_cast<size_t>(map.count), 0);
  int64_t out_of_range = 0;
  for (const int64_t label : map.labels) {
    if (label < 0 || label >= map.count) ++out_of_range;
    else ++used[static_cast<size_t>(label)];
  }
  REQUIRE(out_of_range == 0);
  CHECK(std::count(used.begin(), used.end(), 0) == 0);
}

std::vector<int64_t> sizes(const LabelMap& map) {
  std::vector<int64_t> n(static_cast<size_t>(map.count), 0);
  for (const int64_t label : map.labels) ++n[static_cast<size_t>(label)];
  return n;
}

// Mean over segments of (pixels / bounding-box area): 1 for rectangles, small for ragged shapes.
double mean_box_fill(const LabelMap& map) {
  const auto k = static_cast<size_t>(map.count);
  std::vector<int64_t> y0(k, map.height), y1(k, -1), x0(k, map.width), x1(k, -1);
  const auto n = sizes(map);
  for (int64_t y = 0; y < map.height; ++y)
    for (int64_t x = 0; x < map.width; ++x) {
      const auto l = static_cast<size_t>(map.labels[static_cast<size_t>(y * map.width + x)]);
      y0[l] = std::min(y0[l], y);
      y1[l] = std::max(y1[l], y);
      x0[l] = std::min(x0[l], x);
      x1[l] = std::max(x1[l], x);
    }
  double sum = 0;
  for (size_t l = 0; l < k; ++l)
    sum += static_cast<double>(n[l]) / static_cast<double>((y1[l] - y0[l] + 1) * (x1[l] - x0[l] + 1));
  return sum / static_cast<double>(k);
}

// Is every segment 4-connected? (SLIC's and grids' are; Felzenszwalb's are 8-connected.)
bool all_connected(const LabelMap& map) {
  return salient::connected_components(map).count == map.count;
}

// Two flat colours left and right of column `split`, plus uniform noise of +-amplitude (from a
// fixed xorshift generator, so the image is the same on every platform).
Image two_colours(int64_t height, int64_t width, int64_t split, float amplitude, uint32_t seed) {
  uint32_t state = seed * 2654435761u + 1u;
  const auto noise = [&] {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return amplitude * (static_cast<float>(state >> 8) / 8388608.f - 1.f);
  };
  const float left[3] = {0.80f, 0.25f, 0.20f}, right[3] = {0.20f, 0.35f, 0.75f};
  Image image(3, height, width);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        image.data[static_cast<size_t>((c * height + y) * width + x)] =
            (x < split ? left[c] : right[c]) + noise();
  return image;
}

// Does any segment hold pixels on both sides of column `split`?
bool straddles(const LabelMap& map, int64_t split) {
  std::vector<int> side(static_cast<size_t>(map.count), -1);
  for (int64_t y = 0; y < map.height; ++y)
    for (int64_t x = 0; x < map.width; ++x) {
      int& s = side[static_cast<size_t>(map.labels[static_cast<size_t>(y * map.width + x)])];
      const int here = x < split ? 0 : 1;
      if (s >= 0 && s != here) return true;
      s = here;
    }
  return false;
}

// A 24x32 test card on the 1/255 grid (exact in float and double): a gradient, a green
// rectangle, a red disc and a fixed pseudo-noise pattern.
Image test_card() {
  const int64_t h = 24, w = 32;
  Image image(3, h, w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      int64_t base[3] = {40 + 4 * x, 60 + 3 * y, 120};
      if ((y - 15) * (y - 15) + (x - 21) * (x - 21) <= 36) {
        base[0] = 200, base[1] = 50, base[2] = 40;
      }
      if (3 <= y && y <= 9 && 2 <= x && x <= 12) base[0] = 30, base[1] = 160, base[2] = 60;
      for (int64_t c = 0; c < 3; ++c)
        image.data[static_cast<size_t>((c * h + y) * w + x)] =
            static_cast<float>(base[c] + (x * 7 + y * 13 + c * 5) % 9 - 4) / 255.f;
    }
  return image;
}

// A label map written one character per label (0-9, a-z, A-Z), row-major.
std::vector<int64_t> decode(const std::string& text) {
  const std::string digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::vector<int64_t> labels;
  for (const char ch : text) labels.push_back(static_cast<int64_t>(digits.find(ch)));
  return labels;
}

// A few of the shared photos (the sanitizer build runs this too).
std::vector<std::filesystem::path> shared_photos() {
  std::vector<std::filesystem::path> photos;
  const auto shared = salient::test::shared_dir();
  if (!shared) return photos;
  for (const char* name : {"cat.png", "parrot.jpg", "owl.jpg", "grace_hopper.png", "hot_dog.jpg"})
    if (std::filesystem::exists(*shared / "images" / name)) photos.push_back(*shared / "images" / name);
  return photos;
}

// The repository's cat.png at 224x224.
Image cat_photo() {
  return salient::resize(salient::load_image(salient::test::shipped_dir() / "images" / "cat.png"), 224, 224);
}

}  // namespace

TEST_CASE("SLIC and Felzenszwalb reproduce scikit-image's label maps on a test card") {
  const Image card = test_card();
  // skimage.segmentation.slic(card, n_segments=12, start_label=0) (compactness 10, sigma 0).
  const auto slic12 = decode(
      "0000000000000000000111111111111100000000000000000001111111111111"
      "0000000000000000001111111111111100222222222220000001111111111111"
      "0022222222222000000111111111111100222222222220000000111111111111"
      "0022222222222000000111111111111100222222222223300331111111444114"
      "0022222222222333333331114444444450222222222223333333364444444444"
      "5552222333333333336666666444444455555225533333333666666666444444"
      "5555555555533333666666666664444455555555555553336666666666644444"
      "5555555555555553666666666664444455555555555555566666666666664444"
      "7755555555555556666666666668844477775555559995596666666666688884"
      "7777775577999999666666666668888877777777779999999666666666888888"
      "7777777777999999996666666888888877777777777999999999968888888888"
      "7777777777777999999999888888888877777777777999999999999988888888");
  // slic(card, n_segments=30, compactness=5, sigma=1, start_label=0): smoothing in Lab.
  const auto slic30 = decode(
      "0000000000111111111222222333333300000000000111111112222223333333"
      "0011111111111111111222222233333300111111111111411112222222333333"
      "0015555555555541111222222233333300055555555555444444222222333333"
      "6005555555555544444447777788888860055555555555944444777777788888"
      "6005555555555594444777777778888860055555555555944447777788888888"
      "660555555555599944477777888888886666666aaaaa9999444bbbbb888cc888"
      "6666666aaaaa99999bbbbbbbb88ccccc6666666aaaaaa9999bbbbbbbbbbccccc"
      "6666666aaaaaaa999bbbbbbbbbbcccccddddddeeaaaaaee99bbbbbbbbbbccccc"
      "ddddddeeeeeeeee99bbbbbbbbbbbccccdddddddeeeeeeee999bbbbbbbbbbfffc"
      "dddddddeeeeeeee999bbbbbbbbbbffffddddddgggeeeehh999bbbbbbbbbfffff"
      "iiiiiggggggghhhh99bbbbbbbbffffffiiiiiigggggghhhhhbbbbbbbffffffff"
      "iiiiiiigggggghhhhhhjjjjjjjjjffffiiiiiiigggggghhhhhhhjjjjjjjjjfff");
  // slic(card, n_segments=12, min_size_factor=0.1, max_size_factor=0.5, start_label=0): pieces
  // are cut after half the mean segment size (skimage's breadth-first search limit).
  const auto slic12_cut = decode(
      "0000000000011111111222222223333300000000011111111112222222333333"
      "0000000011111111142222222333333300555555556661114442222233333337"
      "0055555556666114444222288333337700555555666661444444288888833777"
      "005555566666644444488888888887770055599666666aa44aa8888888bbb77b"
      "0055999966666aaaaaaaa8888bbbbbbbc059999996666aaaaaaaad88bbbbbbbb"
      "ccc9999aaaaaaaaaaadddddddbbbbbbbccccc99eeaaaaaaaadddddddddbbbbbf"
      "ccccccceeeeaaaaaggdddddddhhbbbffcccccceeeeeeaaaagggdddddhhhfffff"
      "ccccceeeeeeeaiiaggggdddhhhhfffffcccceeeeeeeeiiigggggggghhhhhffff"
      "jjcceeeeeeeiiiiggggggghhhhhkkfffjjjjeeeeeellliilggggghhhhhhkkkkf"
      "jjjjjjeemmllllllgggnnnhhhhhkkkkkjjjjjjjmmmlllllllgnnnnnnhhkkkkkk"
      "jjjjjjmmmmllllllllnnnnnnnkkkkkkojjjjmmmmmmmllllllppppnqqqkkkkkoo"
      "jjjmmmmmmmmmmlllppppppqqqqkkkooojjmmmmmmmmmmmlppppppppppqqqkoooo");
  // skimage.segmentation.felzenszwalb(card, scale=50, sigma=0.5, min_size=10).
  const auto felz50 = decode(
      "0000000000000000000000000000000000000000000000000000000000000000"
      "0011111111111100000000000000000011222222222221000000000000000000"
      "1123333333332100000000000000000011233333333320000000000000000000"
      "1123333333332000000000000000000011233333333320000000000000000000"
      "1023333333332000000004000000000000222222222220000044454440000000"
      "0000000000000000045555555400000000000000000000004555555555400000"
      "0000000000000004555555555550000000000000000000045555555555500000"
      "0000000000000004555555555556000000000000000000755555555555556000"
      "0000000000000007555555555556000000000000000000075555555555560000"
      "0000000000000007555555555556000000000000000000007555555555600000"
      "0000000000000000075555555600000000000000000000000077756660000000"
      "0000000000000000000007000000000000000000000000000000000000000000");

  const auto a = salient::slic(card, {.n_segments = 12});
  require_valid(a, 24, 32);
  CHECK(a.count == 10);
  CHECK(a.labels == slic12);
  const auto b = salient::slic(card, {.n_segments = 30, .compactness = 5, .sigma = 1});
  require_valid(b, 24, 32);
  CHECK(b.count == 20);
  CHECK(b.labels == slic30);
  const auto cut = salient::slic(card, {.n_segments = 12, .min_size_factor = 0.1, .max_size_factor = 0.5});
  require_valid(cut, 24, 32);
  CHECK(cut.count == 27);
  CHECK(cut.labels == slic12_cut);
  const auto c = salient::felzenszwalb(card, {.scale = 50, .sigma = 0.5, .min_size = 10});
  require_valid(c, 24, 32);
  CHECK(c.count == 8);
  CHECK(c.labels == felz50);
  // skimage stretches the image to [0, 1] before SLIC, so an affine change of the values
  // (one scale and offset for all channels) gives the same segments.
  Image dimmed = card;
  for (auto& v : dimmed.data) v = 0.2f + 0.5f * v;
  CHECK(salient::slic(dimmed, {.n_segments = 12}).labels == slic12);
}

TEST_CASE("Felzenszwalb equals skimage where many edge weights tie") {
  // A periodic pattern gives thousands of equal edge weights: skimage takes them in
  // numpy.argsort's (unstable) order, which the result depends on; salient sorts the same way.
  // Channels c of pixel (y, x): ((7x + 13y + 5c) mod 4) / 3, with a block of red 0.9.
  const int64_t h = 16, w = 20;
  Image image(3, h, w);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        image.at(c, y, x) = c == 0 && y >= 4 && y < 12 && x >= 5 && x < 15 ? 0.9f : static_cast<float>((7 * x + 13 * y + 5 * c) % 4) / 3.0f;
  // skimage.segmentation.felzenszwalb(image (HWC float32), scale=20, sigma=0.5, min_size=5).
  const auto fine = decode(
      "012334566789abcddeeef012334566789abcddeegf012334566789abcddehgf012334566789abcddihgf"
      "012jk45ll789abcdmihgfno2jk45ll789abcpmihgqno2jk45ll789abrpmihsqno2jk45lt789aurpmihsq"
      "no2jk45vt789wurpmhhsqno2jk4xvt78ywurphhhsqno2jk4xvt7zywurphhhsqno2jA4xvtBzywurpCChsD"
      "Do2AA4xvBBzywurpCChsDDo2AA4xBBBzywurpCChsDDo2AA4BBBBzywurpCChsDDo2AA");
  // ... scale=200, sigma=0.8, min_size=10.
  const auto coarse = decode(
      "000000000001122222220000000000001122222200000000000001122222000000000000001122223000"
      "000000000001122233000000000000001122333000000000000001123333000000000000001143333000"
      "000000000001443330000000000000005443330000000000000055443330000000000000555443333000"
      "00000000555544333300000000005555544333300000000055555544333300000000");
  const auto a = salient::felzenszwalb(image, {.scale = 20, .sigma = 0.5, .min_size = 5});
  require_valid(a, h, w);
  CHECK(a.count == 40);
  CHECK(a.labels == fine);
  const auto b = salient::felzenszwalb(image, {.scale = 200, .sigma = 0.8, .min_size = 10});
  CHECK(b.count == 6);
  CHECK(b.labels == coarse);
}

TEST_CASE("SLIC and Felzenszwalb follow a colour edge") {
  // The edge is not on SLIC's seed grid. Stronger noise (+-0.03 here) makes SLIC's k-means
  // leave small noisy pieces along the edge, which connectivity enforcement merges into
  // whichever neighbour it met last, across the edge or not: skimage gives the same maps.
  const int64_t h = 60, w = 90, split = 37;
  const Image image = two_colours(h, w, split, 0.02f, 11);
  SECTION("SLIC") {
    for (const int64_t n : {6, 20, 60}) {
      INFO("n_segments " << n);
      const auto map = salient::slic(image, {.n_segments = n});
      require_valid(map, h, w);
      CHECK_FALSE(straddles(map, split));
      CHECK(all_connected(map));
    }
    // Without connectivity enforcement the k-means labels still respect the edge.
    const auto raw = salient::slic(image, {.n_segments = 20, .enforce_connectivity = false});
    require_valid(raw, h, w);
    CHECK_FALSE(straddles(raw, split));
  }
  SECTION("Felzenszwalb") {
    // The smoothing turns the edge into a ramp a few columns wide; each column is one segment
    // of h pixels until min_size exceeds h, when the columns join the side they are closest to.
    for (const double scale : {50.0, 100.0, 300.0}) {
      INFO("scale " << scale);
      const auto map = salient::felzenszwalb(image, {.scale = scale, .sigma = 0.8, .min_size = 100});
      require_valid(map, h, w);
      CHECK(map.count == 2);
      CHECK_FALSE(straddles(map, split));
      const auto ramp = salient::felzenszwalb(image, {.scale = scale, .sigma = 0.8, .min_size = 20});
      CHECK(ramp.count > 2);
      CHECK_FALSE(straddles(ramp, split));
    }
    // Without smoothing the edge is one step (min_size only absorbs lone noisy pixels).
    const auto sharp = salient::felzenszwalb(image, {.scale = 100, .sigma = 0, .min_size = 20});
    CHECK(sharp.count == 2);
    CHECK_FALSE(straddles(sharp, split));
    // A tiny scale leaves the noise in pieces, but none crosses the edge.
    const auto fine = salient::felzenszwalb(image, {.scale = 1, .sigma = 0.8, .min_size = 0});
    require_valid(fine, h, w);
    CHECK(fine.count > 2);
    CHECK_FALSE(straddles(fine, split));
  }
}

TEST_CASE("Felzenszwalb: scale coarsens, min_size is a floor on segment size") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> noise(-0.15f, 0.15f);
  Image image = two_colours(48, 64, 20, 0.f, 0);
  for (auto& v : image.data) v = std::clamp(v + noise(rng), 0.f, 1.f);
  const auto fine = salient::felzenszwalb(image, {.scale = 10, .sigma = 0.8, .min_size = 0});
  const auto coarse = salient::felzenszwalb(image, {.scale = 1000, .sigma = 0.8, .min_size = 0});
  require_valid(fine, 48, 64);
  require_valid(coarse, 48, 64);
  CHECK(coarse.count < fine.count);
  for (const int64_t min_size : {1, 10, 50, 200}) {
    INFO("min_size " << min_size);
    const auto map = salient::felzenszwalb(image, {.scale = 10, .sigma = 0.8, .min_size = min_size});
    require_valid(map, 48, 64);
    const auto n = sizes(map);
    CHECK(*std::min_element(n.begin(), n.end()) >= min_size);
  }
  // No smoothing and scale 0: nothing merges, every pixel its own segment.
  CHECK(salient::felzenszwalb(image, {.scale = 0, .sigma = 0, .min_size = 0}).count == 48 * 64);
  // One flat colour: one segment; but with scale 0 not even weight-0 edges merge, since the
  // merge test is strict (w < Int(C) + k/|C|, as in skimage).
  CHECK(salient::felzenszwalb(Image(3, 10, 10, 0.5f), {}).count == 1);
  CHECK(salient::felzenszwalb(Image(3, 6, 6, 0.5f), {.scale = 0, .sigma = 0, .min_size = 0}).count == 36);
}

TEST_CASE("SLIC: segment count, connectivity and sizes on small and odd shapes") {
  const Image card = test_card();
  // More segments asked than pixels: every pixel a seed.
  const auto all = salient::slic(card, {.n_segments = 5000, .enforce_connectivity = false});
  require_valid(all, 24, 32);
  CHECK(all.count == 24 * 32);
  CHECK(salient::slic(card, {.n_segments = 1}).count == 1);
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{1, 50}, {3, 200}, {200, 3}, {1, 1}, {7, 5}}) {
    INFO(h << "x" << w);
    Image image(3, h, w);
    for (size_t i = 0; i < image.data.size(); ++i) image.data[i] = static_cast<float>(i % 17) / 16.f;
    const auto map = salient::slic(image, {.n_segments = 10});
    require_valid(map, h, w);
    CHECK(all_connected(map));
  }
  // Connectivity enforcement: each segment connected, and pieces under min_size_factor x the
  // mean segment size merged (H*W / 15 seeds here, so the bound below is a little loose).
  const auto map = salient::slic(card, {.n_segments = 16, .compactness = 1});
  require_valid(map, 24, 32);
  CHECK(all_connected(map));
  const auto n = sizes(map);
  CHECK(*std::min_element(n.begin(), n.end()) >= static_cast<int64_t>(0.5 * 24 * 32 / 16));
}

TEST_CASE("Superpixels on real photos (224x224)") {
  const auto photos = shared_photos();
  if (photos.empty()) {
    std::cout << "SKIPPED: no photos in the shared folder\n";
    return;
  }
  for (const auto& path : photos) {
    INFO(path.string());
    const Image photo = salient::resize(salient::load_image(path), 224, 224);
    for (const char* spec : {"slic:50", "slic:200", "felzenszwalb:100", "grid:16"}) {
      INFO(spec);
      const auto map = salient::segment(spec, photo);
      require_valid(map, 224, 224);
      if (spec[0] != 'f') CHECK(all_connected(map));
    }
  }
}

TEST_CASE("SLIC on a photo: count near the request, compact segments") {
  const auto photo = cat_photo();
  for (const int64_t n : {50, 200}) {
    INFO("n_segments " << n);
    const auto map = salient::slic(photo, {.n_segments = n});
    CHECK(map.count >= n / 2);
    CHECK(map.count <= n * 3 / 2);
    CHECK(mean_box_fill(map) > 0.45);
    // No segment grows far beyond its seed's +-2 step window.
    const auto n_px = sizes(map);
    const double cell = 224.0 * 224.0 / static_cast<double>(n);
    CHECK(static_cast<double>(*std::max_element(n_px.begin(), n_px.end())) < 6 * cell);
  }
  // The counts skimage 0.19.3 gives on this resized photo (its maps are the same, label for label).
  CHECK(salient::slic(photo, {.n_segments = 50}).count == 38);
  CHECK(salient::slic(photo, {.n_segments = 200}).count == 162);
  CHECK(salient::felzenszwalb(photo, {.scale = 100, .sigma = 0.8, .min_size = 50}).count == 95);
  const double loose = mean_box_fill(salient::slic(photo, {.n_segments = 50, .compactness = 1}));
  const double tight = mean_box_fill(salient::slic(photo, {.n_segments = 50, .compactness = 100}));
  CHECK(tight > 0.75);
  CHECK(tight > loose + 0.2);
}

TEST_CASE("Felzenszwalb on a noisy photo: min_size is a floor") {
  auto noisy = cat_photo();
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 0.1f);
  for (auto& v : noisy.data) v = std::clamp(v + noise(rng), 0.f, 1.f);
  for (const int64_t min_size : {20, 50, 300}) {
    INFO("min_size " << min_size);
    const auto map = salient::felzenszwalb(noisy, {.scale = 100, .sigma = 0.8, .min_size = min_size});
    require_valid(map, 224, 224);
    const auto n = sizes(map);
    CHECK(*std::min_element(n.begin(), n.end()) >= min_size);
  }
}

TEST_CASE("grid_segments: exact cells") {
  const auto map = salient::grid_segments(10, 7, 4);  // 3 x 2 cells, the last ones smaller
  require_valid(map, 10, 7);
  CHECK(map.count == 6);
  const std::vector<int64_t> expected = {
      0, 0, 0, 0, 1, 1, 1,  //
      0, 0, 0, 0, 1, 1, 1,  //
      0, 0, 0, 0, 1, 1, 1,  //
      0, 0, 0, 0, 1, 1, 1,  //
      2, 2, 2, 2, 3, 3, 3,  //
      2, 2, 2, 2, 3, 3, 3,  //
      2, 2, 2, 2, 3, 3, 3,  //
      2, 2, 2, 2, 3, 3, 3,  //
      4, 4, 4, 4, 5, 5, 5,  //
      4, 4, 4, 4, 5, 5, 5};
  CHECK(map.labels == expected);
  const auto cells = salient::grid_segments(224, 224, 16);
  require_valid(cells, 224, 224);
  CHECK(cells.count == 196);
  const auto n = sizes(cells);
  CHECK(std::all_of(n.begin(), n.end(), [](int64_t v) { return v == 256; }));
  CHECK(cells.labels[static_cast<size_t>(17 * 224 + 35)] == 1 * 14 + 2);
  CHECK(salient::grid_segments(5, 5, 100).count == 1);
  CHECK(salient::grid_segments(3, 4, 1).count == 12);
  CHECK_THROWS_WITH(salient::grid_segments(5, 5, 0), Contains("cell size"));
  CHECK_THROWS_WITH(salient::grid_segments(0, 5, 2), Contains("at least 1x1"));
}

TEST_CASE("connected_components splits regions of one label") {
  // Label 7 in two blobs, label 3 around them, label -2 in a corner; the diagonal contact of
  // the two 9s does not connect them (4-connectivity).
  LabelMap map;
  map.height = 4;
  map.width = 6;
  map.labels = {7, 7, 3, 3, 7, 7,   //
                7, 3, 3, 3, 3, 7,   //
                3, 3, 9, 3, 3, 3,   //
                -2, 3, 3, 9, 3, 3};
  map.count = 0;  // not read: any values are accepted
  const auto parts = salient::connected_components(map);
  require_valid(parts, 4, 6);
  CHECK(parts.count == 6);
  const std::vector<int64_t> expected = {0, 0, 1, 1, 2, 2,  //
                                         0, 1, 1, 1, 1, 2,  //
                                         1, 1, 3, 1, 1, 1,  //
                                         4, 1, 1, 5, 1, 1};
  CHECK(parts.labels == expected);
  // A segmentation that is already connected keeps its regions (renumbered by first pixel).
  const auto grid = salient::grid_segments(9, 9, 3);
  CHECK(salient::connected_components(grid).labels == grid.labels);
  LabelMap empty;
  CHECK(salient::connected_components(empty).count == 0);
  LabelMap bad;
  bad.height = 2;
  bad.width = 2;
  bad.labels = {1, 2, 3};
  CHECK_THROWS_WITH(salient::connected_components(bad), Contains("holds 3 labels"));
}

TEST_CASE("relabel_consecutive numbers labels by first appearance") {
  LabelMap map;
  map.height = 2;
  map.width = 3;
  map.labels = {40, -5, 40, 1000000000000, -5, 7};
  const auto out = salient::relabel_consecutive(map);
  require_valid(out, 2, 3);
  CHECK(out.count == 4);
  CHECK(out.labels == std::vector<int64_t>{0, 1, 0, 2, 1, 3});
}

TEST_CASE("mark_boundaries paints one-pixel borders") {
  const Image grey(3, 4, 4, 0.5f);
  const auto map = salient::grid_segments(4, 4, 2);
  const Image marked = salient::mark_boundaries(grey, map, {1.f, 0.f, 0.f});
  int painted = 0;
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) {
      const bool border = x == 1 || y == 1;
      const bool red = marked.at(0, y, x) == 1.f && marked.at(1, y, x) == 0.f;
      CHECK(red == border);
      painted += red;
    }
  CHECK(painted == 7);
  CHECK_THROWS_WITH(salient::mark_boundaries(Image(3, 5, 4), map), Contains("does not match"));
}

TEST_CASE("segment() parses specs") {
  const Image card = test_card();
  SECTION("good specs are the direct calls") {
    CHECK(salient::segment("slic:12", card).labels == salient::slic(card, {.n_segments = 12}).labels);
    CHECK(salient::segment("slic:30:5", card).labels ==
          salient::slic(card, {.n_segments = 30, .compactness = 5}).labels);
    CHECK(salient::segment("felzenszwalb:50", card).labels ==
          salient::felzenszwalb(card, {.scale = 50}).labels);
    CHECK(salient::segment("felzenszwalb:50:0.5:10", card).labels ==
          salient::felzenszwalb(card, {.scale = 50, .sigma = 0.5, .min_size = 10}).labels);
    CHECK(salient::segment("grid:8", card).labels == salient::grid_segments(24, 32, 8).labels);
    CHECK(salient::segment("felzenszwalb:1e2", card).count == salient::felzenszwalb(card, {.scale = 100}).count);
  }
  SECTION("bad specs name the spec and the accepted forms") {
    for (const std::string spec :
         {"", "slic", "slic:", "slic:abc", "slic:5.5", "slic:0", "slic:-3", "slic:50:0", "slic:50:x",
          "slic:50:10:3", "slic:50:nan", "felzenszwalb", "felzenszwalb:100:0.8",
          "felzenszwalb:-1", "felzenszwalb:100:-0.8:20", "felzenszwalb:100:0.8:-1",
          "felzenszwalb:100:0.8:2.5", "felzenszwalb:inf", "grid:0", "grid:", "grid:16:2",
          "quickshift:5", "SLIC:50", "slic :50", "model:seg.pt"}) {
      INFO("spec '" << spec << "'");
      CHECK_THROWS_WITH(salient::segment(spec, card),
                        Contains("bad segmentation spec '" + spec + "'") &&
                            Contains("slic:N[:COMPACTNESS], felzenszwalb:SCALE[:SIGMA:MIN_SIZE] or grid:CELL"));
    }
    CHECK_THROWS_WITH(salient::segment("slic:0", card), Contains("n_segments must be at least 1"));
    CHECK_THROWS_WITH(salient::segment("quickshift:5", card), Contains("unknown method 'quickshift'"));
    CHECK_THROWS_WITH(salient::segment("slic:abc", card), Contains("segment count 'abc' is not an integer"));
  }
}

TEST_CASE("bad input is refused with a clear error") {
  const Image card = test_card();
  const Image grey(1, 8, 8, 0.5f);
  CHECK_THROWS_WITH(salient::slic(grey), Contains("slic") && Contains("3 channels"));
  // Felzenszwalb takes any number of channels, as skimage does (XRAI segments model inputs).
  CHECK(salient::felzenszwalb(grey).count == 1);
  CHECK_THROWS_WITH(salient::segment("slic:10", grey), Contains("3 channels"));
  CHECK_THROWS_WITH(salient::slic(Image()), Contains("empty"));
  CHECK_THROWS_WITH(salient::felzenszwalb(Image(3, 0, 5)), Contains("empty"));
  Image short_data = card;
  short_data.data.pop_back();
  CHECK_THROWS_WITH(salient::slic(short_data), Contains("needs"));
  Image with_nan = card;
  with_nan.data[17] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(salient::slic(with_nan), Contains("non-finite"));
  CHECK_THROWS_WITH(salient::felzenszwalb(with_nan), Contains("non-finite"));
  CHECK_THROWS_WITH(salient::slic(card, {.n_segments = 0}), Contains("n_segments must be at least 1"));
  CHECK_THROWS_WITH(salient::slic(card, {.compactness = 0}), Contains("compactness"));
  CHECK_THROWS_WITH(salient::slic(card, {.sigma = -1}), Contains("sigma"));
  CHECK_THROWS_WITH(salient::slic(card, {.max_iterations = 0}), Contains("max_iterations"));
  CHECK_THROWS_WITH(salient::slic(card, {.min_size_factor = -0.5}), Contains("min_size_factor"));
  CHECK_THROWS_WITH(salient::slic(card, {.max_size_factor = 0}), Contains("max_size_factor"));
  CHECK_THROWS_WITH(salient::felzenszwalb(card, {.scale = -1}), Contains("scale must be >= 0"));
  CHECK_THROWS_WITH(salient::felzenszwalb(card, {.sigma = -0.1}), Contains("sigma"));
  CHECK_THROWS_WITH(salient::felzenszwalb(card, {.sigma = 1e9}), Contains("sigma"));
  CHECK_THROWS_WITH(salient::felzenszwalb(card, {.min_size = -1}), Contains("min_size must be >= 0"));
  // Values outside [0, 1] are fine (SLIC stretches them; Felzenszwalb just sees larger steps).
  Image bright = card;
  for (auto& v : bright.data) v *= 255.f;
  require_valid(salient::slic(bright, {.n_segments = 12}), 24, 32);
  require_valid(salient::felzenszwalb(bright, {.scale = 50}), 24, 32);
  // A large sigma on a small image (the kernel is longer than the image) still works.
  require_valid(salient::slic(card, {.n_segments = 12, .sigma = 50}), 24, 32);
  require_valid(salient::felzenszwalb(card, {.scale = 50, .sigma = 50}), 24, 32);
}
