// Image I/O and preprocessing: codecs round-trip, errors name the file, and resizing matches
// PIL's antialiased bilinear filter on hand-computed cases.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "error_matchers.hpp"
#include "temp_dir.hpp"
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "salient/io/image.hpp"
#include "shared_data.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using salient::Image;

namespace {
using salient::test::require_error_mentioning;
using salient::test::require_error_of_kind;

using salient::test::TempDir;

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Image whose values are all multiples of 1/255, so an 8-bit file can hold them exactly.
Image random_u8_image(int64_t c, int64_t h, int64_t w, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> level(0, 255);
  Image im(c, h, w);
  for (float& v : im.data) v = static_cast<float>(level(rng)) / 255.f;
  return im;
}

// The error message must mention `part`; the exception type must be salient::error.

Image row(const std::vector<float>& values) {
  Image im(1, 1, static_cast<int64_t>(values.size()));
  im.data = values;
  return im;
}

}  // namespace

TEST_CASE("Image stores planar CHW and checks bounds", "[io][image]") {
  Image im(2, 3, 4, 0.25f);
  CHECK(im.size() == 24);
  CHECK(im.at(1, 2, 3) == 0.25f);
  im.at(1, 2, 3) = 7.f;
  CHECK(im.data[(1 * 3 + 2) * 4 + 3] == 7.f);
  im.at(0, 1, 0) = 5.f;
  CHECK(im.data[4] == 5.f);
  CHECK_THROWS_AS(im.at(2, 0, 0), salient::error);
  CHECK_THROWS_AS(im.at(0, 3, 0), salient::error);
  CHECK_THROWS_AS(im.at(0, 0, -1), salient::error);
  CHECK_THROWS_AS(Image(-1, 2, 2), salient::error);
  CHECK(Image().empty());
}

TEST_CASE("PNG round trip is exact for 8-bit values", "[io][image]") {
  TempDir dir;
  const Image rgb = random_u8_image(3, 7, 5, 1);
  save_png(rgb, dir / "rgb.png");
  const Image back = salient::load_image(dir / "rgb.png");
  REQUIRE(back.channels == 3);
  REQUIRE(back.height == 7);
  REQUIRE(back.width == 5);
  CHECK(back.data == rgb.data);

  SECTION("grey is expanded to three equal channels") {
    const Image grey = random_u8_image(1, 4, 6, 2);
    save_png(grey, dir / "grey.png");
    const Image g = salient::load_image(dir / "grey.png");
    REQUIRE(g.channels == 3);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 24; ++i) CHECK(g.data[c * 24 + i] == grey.data[i]);
  }
  SECTION("alpha is dropped, colour kept") {
    Image rgba = random_u8_image(4, 3, 3, 3);
    save_png(rgba, dir / "rgba.png");
    const Image r = salient::load_image(dir / "rgba.png");
    REQUIRE(r.channels == 3);
    CHECK(std::vector<float>(r.data.begin(), r.data.end()) ==
          std::vector<float>(rgba.data.begin(), rgba.data.begin() + 27));
  }
  SECTION("values are clamped and rounded") {
    Image odd(1, 1, 5);
    odd.data = {-0.5f, 1.5f, 0.5f / 255.f + 1e-4f, std::nanf(""), 0.499f / 255.f};
    save_png(odd, dir / "odd.png");
    const Image o = salient::load_image(dir / "odd.png");
    CHECK(o.data[0] == 0.f);
    CHECK(o.data[1] == 1.f);
    CHECK(o.data[2] == 1.f / 255.f);
    CHECK(o.data[3] == 0.f);
    CHECK(o.data[4] == 0.f);
  }
}

TEST_CASE("BMP and JPEG files load as RGB", "[io][image]") {
  TempDir dir;
  const Image rgb = random_u8_image(3, 8, 9, 4);
  std::vector<unsigned char> bytes;
  const auto pixels = salient::detail::interleave_u8(rgb, "test", dir / "x", 4, true);
  REQUIRE(stbi_write_bmp_to_func(salient::detail::append_bytes, &bytes, 9, 8, 3, pixels.data()));
  std::ofstream(dir / "x.bmp", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  CHECK(salient::load_image(dir / "x.bmp").data == rgb.data);

  // JPEG is lossy: a smooth gradient must come back close, with the right size.
  Image smooth(3, 16, 16);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 16; ++y)
      for (int64_t x = 0; x < 16; ++x)
        smooth.at(c, y, x) = static_cast<float>(x + y + 4 * c) / 40.f;
  salient::save_jpeg(smooth, dir / "x.jpg", 95);
  const Image j = salient::load_image(dir / "x.jpg");
  REQUIRE(j.channels == 3);
  REQUIRE(j.height == 16);
  REQUIRE(j.width == 16);
  for (size_t i = 0; i < j.data.size(); ++i)
    CHECK(j.data[i] == Approx(smooth.data[i]).margin(0.05));
}

TEST_CASE("load_image reports bad files with their path", "[io][image]") {
  TempDir dir;
  const fs::path missing = dir / "missing.png";
  require_error_mentioning([&] { salient::load_image(missing); }, missing.string());
  require_error_of_kind([&] { salient::load_image(missing); }, salient::error_kind::io, "file not found");

  write_text(dir / "notes.png", "this is not an image\n");
  require_error_mentioning([&] { salient::load_image(dir / "notes.png"); },
                           (dir / "notes.png").string());
  require_error_mentioning([&] { salient::load_image(dir / "notes.png"); }, "not a valid");

  write_text(dir / "empty.png", "");
  require_error_mentioning([&] { salient::load_image(dir / "empty.png"); }, "empty");

  require_error_mentioning([&] { salient::load_image(dir.path); }, "directory");

  // A PNG cut in half: the decoder must fail cleanly, not crash or return garbage.
  save_png(random_u8_image(3, 32, 32, 5), dir / "whole.png");
  std::ifstream in(dir / "whole.png", std::ios::binary);
  std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(png.size() > 100);
  write_text(dir / "truncated.png", png.substr(0, png.size() / 2));
  require_error_mentioning([&] { salient::load_image(dir / "truncated.png"); },
                           (dir / "truncated.png").string());
  write_text(dir / "header_only.png", png.substr(0, 20));
  CHECK_THROWS_AS(salient::load_image(dir / "header_only.png"), salient::error);

  // A JPEG whose Huffman table declares 16 * 32 = 512 codes: stb 2.27 would write past its
  // 256-entry tables (a sanitizer run would abort); it must be rejected with an error instead.
  salient::save_jpeg(random_u8_image(3, 16, 16, 7), dir / "good.jpg");
  std::ifstream jin(dir / "good.jpg", std::ios::binary);
  std::string jpg((std::istreambuf_iterator<char>(jin)), std::istreambuf_iterator<char>());
  const size_t dht = jpg.find("\xFF\xC4");
  REQUIRE(dht != std::string::npos);
  for (size_t k = 0; k < 16; ++k) jpg[dht + 5 + k] = '\x20';  // FF C4, length (2), class/id (1)
  write_text(dir / "bad_huffman.jpg", jpg);
  require_error_mentioning([&] { salient::load_image(dir / "bad_huffman.jpg"); }, "Huffman");

  // A BMP header claiming 20000 x 20000 pixels is refused before anything is allocated.
  std::vector<unsigned char> bmp;
  const auto px = salient::detail::interleave_u8(random_u8_image(3, 2, 2, 8), "test", "x", 4, true);
  REQUIRE(stbi_write_bmp_to_func(salient::detail::append_bytes, &bmp, 2, 2, 3, px.data()));
  for (size_t field : {size_t{18}, size_t{22}}) {  // biWidth, biHeight (int32, little-endian)
    bmp[field] = 0x20;                             // 20000 = 0x4E20
    bmp[field + 1] = 0x4E;
  }
  write_text(dir / "huge.bmp", std::string(bmp.begin(), bmp.end()));
  require_error_mentioning([&] { salient::load_image(dir / "huge.bmp"); }, "20000x20000");

  // A BMP whose header claims more rows than the file holds (stb would decode them as black):
  // refused, with the sizes; the whole file loads.
  {
    std::vector<unsigned char> whole;
    const auto rgb = salient::detail::interleave_u8(random_u8_image(3, 40, 30, 9), "test", "x", 4, true);
    REQUIRE(stbi_write_bmp_to_func(salient::detail::append_bytes, &whole, 30, 40, 3, rgb.data()));
    write_text(dir / "whole.bmp", std::string(whole.begin(), whole.end()));
    CHECK(salient::load_image(dir / "whole.bmp").height == 40);
    write_text(dir / "cut.bmp", std::string(whole.begin(), whole.end() - 100));
    require_error_mentioning([&] { salient::load_image(dir / "cut.bmp"); }, "truncated BMP");
  }

  // An unknown critical PNG chunk whose type is an escape sequence (ESC [ 2 J clears a
  // terminal): stb quotes the type in its reason; only printable characters may reach the user.
  {
    std::string crafted = png.substr(0, 8 + 25);  // signature + IHDR chunk
    crafted += std::string("\0\0\0\0", 4) + "\x1b[2J" + std::string("\0\0\0\0", 4);
    write_text(dir / "escape.png", crafted);
    try {
      salient::load_image(dir / "escape.png");
      FAIL("a PNG with an unknown critical chunk loaded");
    } catch (const salient::error& e) {
      const std::string message = e.what();
      CHECK(message.find('\x1b') == std::string::npos);
      CHECK(message.find("decoder says: ?[2J") != std::string::npos);
    }
  }

  // Unreadable file (skipped when running as root, who can read anything).
  save_png(random_u8_image(3, 2, 2, 6), dir / "locked.png");
  fs::permissions(dir / "locked.png", fs::perms::none);
  if (std::ifstream(dir / "locked.png").good()) {
    WARN("running with permissions that ignore file modes; unreadable-file check skipped");
  } else {
    require_error_mentioning([&] { salient::load_image(dir / "locked.png"); }, "cannot open");
  }
}

TEST_CASE("save_png reports bad input", "[io][image]") {
  TempDir dir;
  require_error_mentioning([&] { save_png(Image(5, 2, 2), dir / "five.png"); }, "5 channels");
  require_error_mentioning([&] { save_png(Image(), dir / "empty.png"); }, "empty");
  require_error_mentioning([&] { save_png(Image(3, 2, 2), dir / "no_such_dir" / "x.png"); },
                           "does not exist");
  Image broken(3, 2, 2);
  broken.data.pop_back();  // shape and data disagree
  require_error_mentioning([&] { save_png(broken, dir / "broken.png"); }, "needs 12");
}

TEST_CASE("a real photo loads as RGB in [0, 1]", "[io][image]") {
  const fs::path cat = salient::test::shipped_dir() / "images" / "cat.png";
  const Image im = salient::load_image(cat);
  CHECK(im.channels == 3);
  CHECK(im.height > 16);
  CHECK(im.width > 16);
  const auto [lo, hi] = std::minmax_element(im.data.begin(), im.data.end());
  CHECK(*lo >= 0.f);
  CHECK(*hi <= 1.f);
  CHECK(*hi - *lo > 0.5f);  // a photo, not a flat colour
}

TEST_CASE("resize matches PIL's antialiased bilinear filter", "[io][image][resize]") {
  SECTION("same size is the identity") {
    const Image im = random_u8_image(3, 5, 7, 7);
    CHECK(salient::resize(im, 5, 7).data == im.data);
    CHECK(salient::resize(im, 5, 7, salient::ResizeArithmetic::pil_uint8).data == im.data);
  }
  SECTION("a constant image stays constant") {
    const Image im(3, 37, 23, 0.3f);
    for (auto [h, w] : {std::pair{10, 9}, std::pair{80, 50}, std::pair{37, 5}, std::pair{1, 1}}) {
      const Image r = salient::resize(im, h, w);
      REQUIRE(r.height == h);
      REQUIRE(r.width == w);
      for (float v : r.data) CHECK(v == Approx(0.3f).epsilon(1e-6));
    }
  }
  SECTION("downscale by 2: hand-computed PIL weights") {
    // Width 4 -> 2: scale 2, so the triangle filter has support 2 and weight 1 - |d| / 2 at
    // distance d between pixel centres. Output 0 is centred at 1.0: input centres 0.5, 1.5, 2.5
    // get 0.75, 0.75, 0.25 (the pixel at -0.5 is outside and dropped), normalised 3/7, 3/7, 1/7.
    // So [0, 1, 2, 3] -> [(0*3 + 1*3 + 2) / 7, (1 + 2*3 + 3*3) / 7] = [5/7, 16/7].
    const Image r = salient::resize(row({0.f, 1.f, 2.f, 3.f}), 1, 2);
    REQUIRE(r.width == 2);
    CHECK(r.data[0] == Approx(5.0 / 7.0).epsilon(1e-6));
    CHECK(r.data[1] == Approx(16.0 / 7.0).epsilon(1e-6));
  }
  SECTION("upscale by 2: centre-aligned, edges clamped") {
    // Width 2 -> 4: support 1; output centres 0.25, 0.75, 1.25, 1.75 in input coordinates.
    const Image r = salient::resize(row({0.f, 1.f}), 1, 4);
    REQUIRE(r.width == 4);
    CHECK(r.data[0] == Approx(0.0).margin(1e-7));
    CHECK(r.data[1] == Approx(0.25));
    CHECK(r.data[2] == Approx(0.75));
    CHECK(r.data[3] == Approx(1.0));
  }
  SECTION("separable: a product image resizes to the product of resized rows") {
    Image im(1, 6, 4);
    const std::vector<float> r6{0.f, 1.f, 4.f, 2.f, 3.f, 5.f}, c4{1.f, 0.f, 2.f, 3.f};
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 4; ++x) im.at(0, y, x) = r6[y] * c4[x];
    const Image out = salient::resize(im, 3, 2);
    const Image rr = salient::resize(row(r6), 1, 3), cc = salient::resize(row(c4), 1, 2);
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 2; ++x)
        CHECK(out.at(0, y, x) == Approx(rr.data[y] * cc.data[x]).epsilon(1e-5));
  }
  SECTION("pil_uint8 rounds after each pass like PIL's 8-bit path") {
    // 4x4 -> 2x2 with a single 3/255 at the top-left. Horizontal pass: 3 * 3/7 = 1.29 -> 1;
    // vertical pass: 1 * 3/7 = 0.43 -> 0. Float arithmetic instead gives 3 * 9/49 = 0.55 levels.
    Image im(1, 4, 4);
    im.at(0, 0, 0) = 3.f / 255.f;
    const Image pil = salient::resize(im, 2, 2, salient::ResizeArithmetic::pil_uint8);
    CHECK(pil.at(0, 0, 0) == 0.f);
    const Image f = salient::resize(im, 2, 2);
    CHECK(f.at(0, 0, 0) * 255.f == Approx(27.0 / 49.0).epsilon(1e-5));
    // And [0, 70, 140, 210] -> [50, 160] exactly (5/7 and 16/7 of 70).
    const Image q = salient::resize(row({0.f, 70.f / 255, 140.f / 255, 210.f / 255}), 1, 2,
                                    salient::ResizeArithmetic::pil_uint8);
    CHECK(q.data[0] * 255.f == Approx(50.f));
    CHECK(q.data[1] * 255.f == Approx(160.f));
  }
  SECTION("bad sizes are errors") {
    CHECK_THROWS_AS(salient::resize(Image(3, 4, 4), 0, 4), salient::error);
    CHECK_THROWS_AS(salient::resize(Image(), 4, 4), salient::error);
  }
}

TEST_CASE("resize_shorter_side and center_crop follow torchvision", "[io][image]") {
  const Image wide(3, 480, 640);
  const Image r = salient::resize_shorter_side(wide, 256);
  CHECK(r.height == 256);
  CHECK(r.width == 341);  // int(256 * 640 / 480) = int(341.33)
  const Image tall(1, 500, 333);
  const Image t = salient::resize_shorter_side(tall, 224);
  CHECK(t.width == 224);
  CHECK(t.height == 336);  // int(224 * 500 / 333) = int(336.33)

  // Crop coordinates: a value encoding (y, x) tells where the window landed.
  Image coords(1, 7, 10);
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 10; ++x) coords.at(0, y, x) = static_cast<float>(100 * y + x);
  const Image c = salient::center_crop(coords, 4, 5);
  REQUIRE(c.height == 4);
  REQUIRE(c.width == 5);
  // top = round(3 / 2) = 2 (Python rounds half to even), left = round(5 / 2) = 2.
  CHECK(c.at(0, 0, 0) == 202.f);
  CHECK(c.at(0, 3, 4) == 506.f);
  const Image c2 =
      salient::center_crop(coords, 2, 9);  // top = round(2.5) = 2, left = round(0.5) = 0
  CHECK(c2.at(0, 0, 0) == 200.f);
  CHECK(salient::center_crop(coords, 7, 10).data == coords.data);
  require_error_mentioning([&] { salient::center_crop(coords, 8, 4); }, "8x4");
  // The resized image is bounded: a 5000x1 strip at 224 would be 1120000x224.
  require_error_mentioning([&] { salient::resize_shorter_side(Image(3, 1, 5000), 224); }, "aspect ratio is too extreme");
  CHECK(salient::resize_shorter_side(Image(3, 1, 100), 224).width == 22400);
  CHECK_THROWS_AS(salient::center_crop(coords, 0, 4), salient::error);
}

TEST_CASE("normalize and denormalize", "[io][image]") {
  const auto imagenet = salient::Normalization::imagenet();
  CHECK(imagenet.mean[1] == 0.456f);
  CHECK(imagenet.std[2] == 0.225f);
  const Image im = random_u8_image(3, 4, 5, 8);
  const Image n = salient::normalize(im, imagenet);
  CHECK(n.at(1, 2, 3) == Approx((im.at(1, 2, 3) - 0.456f) / 0.224f));
  CHECK(n.at(0, 0, 0) == Approx((im.at(0, 0, 0) - 0.485f) / 0.229f));
  const Image back = salient::denormalize(n, imagenet);
  for (size_t i = 0; i < im.data.size(); ++i)
    CHECK(back.data[i] == Approx(im.data[i]).margin(1e-6));

  const Image grey = random_u8_image(1, 2, 2, 9);
  CHECK(salient::normalize(grey, imagenet).data[0] == Approx((grey.data[0] - 0.485f) / 0.229f));
  CHECK(salient::normalize(im, salient::Normalization::none()).data == im.data);
  CHECK(salient::normalize(Image(4, 2, 2, 0.5f), salient::Normalization::none()).data[0] == 0.5f);
  require_error_mentioning([&] { salient::normalize(Image(4, 2, 2), imagenet); }, "4 channels");
  salient::Normalization zero = imagenet;
  zero.std[1] = 0.f;
  require_error_mentioning([&] { salient::normalize(im, zero); }, "std[1]");

  CHECK(salient::parse_normalization("imagenet").mean == imagenet.mean);
  CHECK(salient::parse_normalization("none").is_identity());
  require_error_mentioning([&] { salient::parse_normalization("ImageNet21k"); }, "ImageNet21k");
}
