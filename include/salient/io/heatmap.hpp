#pragma once
// Attribution maps to pictures: reduce an attribution's channels to one 2-D map, scale it to
// [0, 1] (or [-1, 1] when its sign matters) by a robust percentile, colour it, lay it over the
// photo, and tile several pictures into one figure. No LibTorch: maps are plain float arrays.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"
#include "salient/segmentation/label_map.hpp"

namespace salient {

// One value per pixel, row-major: data[y * width + x].
struct Map2D {
  int64_t height = 0, width = 0;
  std::vector<float> data;

  // Bounds-checked access (throws salient::error).
  float& at(int64_t y, int64_t x) { return data[index(y, x)]; }
  float at(int64_t y, int64_t x) const { return data[index(y, x)]; }

 private:
  size_t index(int64_t y, int64_t x) const {
    if (y < 0 || y >= height || x < 0 || x >= width)
      detail::fail("map position (y=", y, ", x=", x, ") is outside the ", height, "x", width,
                   " map");
    return static_cast<size_t>(y * width + x);
  }
};

namespace detail {
inline void check_map(const Map2D& map, std::string_view what) {
  const size_t expected = checked_count(what, 1, map.height, map.width);
  if (map.data.size() != expected)
    fail(what, ": map data holds ", map.data.size(), " values but its shape ", map.height, "x",
         map.width, " needs ", expected);
  if (expected == 0)
    fail(what, ": map is empty (", map.height, "x", map.width, "); expected at least one pixel");
}
}  // namespace detail

// How an attribution's colour channels become one value per pixel.
//   sum:     signed total; positive and negative evidence in different channels cancel.
//   abs_sum: total magnitude; never negative.
//   max_abs: the channel value of largest magnitude, keeping its sign (ties: first channel).
enum class ChannelReduction { sum, abs_sum, max_abs };

// "sum", "abs_sum" or "max_abs" (command-line spelling).
inline ChannelReduction parse_channel_reduction(std::string_view name) {
  if (name == "sum") return ChannelReduction::sum;
  if (name == "abs_sum") return ChannelReduction::abs_sum;
  if (name == "max_abs") return ChannelReduction::max_abs;
  detail::fail("unknown channel reduction '", name, "'; expected 'sum', 'abs_sum' or 'max_abs'");
}

// Reduces a planar CHW float array (e.g. one attribution of a batch) to a height x width map.
inline Map2D reduce_channels(const float* chw, int64_t channels, int64_t height, int64_t width,
                             ChannelReduction reduction) {
  const size_t count = detail::checked_count("reduce_channels", channels, height, width);
  if (channels < 1 || height < 1 || width < 1)
    detail::fail("reduce_channels: shape ", channels, "x", height, "x", width,
                 " must have at least one channel and one pixel");
  if (chw == nullptr) detail::fail("reduce_channels: data pointer is null for ", count, " values");
  Map2D map{height, width, std::vector<float>(static_cast<size_t>(height * width), 0.f)};
  const int64_t plane = height * width;
  for (int64_t i = 0; i < plane; ++i) {
    float acc = 0.f;
    for (int64_t c = 0; c < channels; ++c) {
      const float v = chw[c * plane + i];
      switch (reduction) {
        case ChannelReduction::sum:
          acc += v;
          break;
        case ChannelReduction::abs_sum:
          acc += std::abs(v);
          break;
        case ChannelReduction::max_abs:
          if (c == 0 || std::abs(v) > std::abs(acc)) acc = v;
          break;
      }
    }
    map.data[static_cast<size_t>(i)] = acc;
  }
  return map;
}

inline Map2D reduce_channels(const Image& image, ChannelReduction reduction) {
  detail::check_image(image, "reduce_channels");
  return reduce_channels(image.data.data(), image.channels, image.height, image.width, reduction);
}

// PIL-compatible bilinear resize of a map (float arithmetic), e.g. to bring a coarse Grad-CAM
// map up to the input size before overlaying it.
inline Map2D resize(const Map2D& map, int64_t height, int64_t width) {
  detail::check_map(map, "resize");
  Image as_image;
  as_image.channels = 1;
  as_image.height = map.height;
  as_image.width = map.width;
  as_image.data = map.data;
  Image out = resize(as_image, height, width, ResizeArithmetic::float32);
  return Map2D{out.height, out.width, std::move(out.data)};
}

namespace detail {
// NumPy's default ("linear") percentile of the values; `values` is reordered.
inline double percentile_linear(std::vector<float>& values, double percentile) {
  if (values.empty()) return 0.0;
  const double pos = percentile / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lo), values.end());
  const double a = values[lo];
  if (frac <= 0.0 || lo + 1 >= values.size()) return a;
  const double b =
      *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(lo) + 1, values.end());
  return a + (b - a) * frac;
}
}  // namespace detail

// Scales a map for display by a robust maximum: q = the `percentile` of the magnitudes, so one
// extreme pixel does not wash out the rest.
//   signed_map = false: the map is expected to be >= 0 (negative values count as 0);
//                       result max(v, 0) / q clipped to [0, 1], q taken over max(v, 0).
//   signed_map = true:  result v / q clipped to [-1, 1], q taken over |v|; the sign is kept.
// If q is 0 (e.g. a sparse map whose 99th percentile is 0) the largest magnitude is used instead;
// an all-zero map gives zeros. NaN values become 0 and do not count towards q.
// percentile_scale is q: the map value drawn at full colour (a report's colour bar ends).
inline double percentile_scale(const Map2D& map, bool signed_map, double percentile = 99.0) {
  detail::check_map(map, "normalize_percentile");
  if (!(percentile > 0.0 && percentile <= 100.0))
    detail::fail("normalize_percentile: percentile ", percentile, " is outside (0, 100]");
  const auto magnitude = [signed_map](float v) {
    return signed_map ? std::abs(v) : std::max(v, 0.f);
  };
  std::vector<float> magnitudes;
  magnitudes.reserve(map.data.size());
  for (const float v : map.data)
    if (std::isfinite(v)) magnitudes.push_back(magnitude(v));
  const double q = detail::percentile_linear(magnitudes, percentile);
  if (q > 0.0) return q;
  return magnitudes.empty() ? 0.0 : double{*std::max_element(magnitudes.begin(), magnitudes.end())};
}

// The map divided by a scale q (percentile_scale's), clipped as normalize_percentile does.
inline Map2D normalize_by_scale(const Map2D& map, bool signed_map, double q) {
  Map2D out{map.height, map.width, std::vector<float>(map.data.size(), 0.f)};
  if (!(q > 0.0)) {
    // Only zeros (and perhaps infinities): keep the infinities' direction, the rest is 0.
    for (size_t i = 0; i < map.data.size(); ++i)
      if (std::isinf(map.data[i])) out.data[i] = map.data[i] > 0 ? 1.f : (signed_map ? -1.f : 0.f);
    return out;
  }
  const float lower = signed_map ? -1.f : 0.f;
  for (size_t i = 0; i < map.data.size(); ++i) {
    const float v = map.data[i];
    if (std::isnan(v)) continue;
    const double scaled = static_cast<double>(signed_map ? v : std::max(v, 0.f)) / q;
    out.data[i] = static_cast<float>(std::clamp(scaled, double{lower}, 1.0));
  }
  return out;
}

inline Map2D normalize_percentile(const Map2D& map, bool signed_map, double percentile = 99.0) {
  return normalize_by_scale(map, signed_map, percentile_scale(map, signed_map, percentile));
}

// viridis and inferno: perceptually uniform, for unsigned maps in [0, 1]; gray: black to white;
// diverging: matplotlib's "bwr" for signed maps in [-1, 1] (-1 blue, 0 white, +1 red).
enum class Colormap { viridis, inferno, gray, diverging };

// "viridis", "inferno", "gray" (or "grey"), "diverging" (or "bwr").
inline Colormap parse_colormap(std::string_view name) {
  if (name == "viridis") return Colormap::viridis;
  if (name == "inferno") return Colormap::inferno;
  if (name == "gray" || name == "grey") return Colormap::gray;
  if (name == "diverging" || name == "bwr") return Colormap::diverging;
  detail::fail("unknown colormap '", name,
               "'; expected 'viridis', 'inferno', 'gray' or 'diverging'");
}

namespace detail {
using Rgb = std::array<float, 3>;

// matplotlib's 256-entry tables (_cm_listed.py; the mpl-colormaps data by Smith and van der Walt,
// CC0). Values between entries are interpolated linearly.
// clang-format off
inline constexpr std::array<Rgb, 256> kViridis{{
    {0.267004f, 0.004874f, 0.329415f}, {0.268510f, 0.009605f, 0.335427f}, {0.269944f, 0.014625f, 0.341379f},
    {0.271305f, 0.019942f, 0.347269f}, {0.272594f, 0.025563f, 0.353093f}, {0.273809f, 0.031497f, 0.358853f},
    {0.274952f, 0.037752f, 0.364543f}, {0.276022f, 0.044167f, 0.370164f}, {0.277018f, 0.050344f, 0.375715f},
    {0.277941f, 0.056324f, 0.381191f}, {0.278791f, 0.062145f, 0.386592f}, {0.279566f, 0.067836f, 0.391917f},
    {0.280267f, 0.073417f, 0.397163f}, {0.280894f, 0.078907f, 0.402329f}, {0.281446f, 0.084320f, 0.407414f},
    {0.281924f, 0.089666f, 0.412415f}, {0.282327f, 0.094955f, 0.417331f}, {0.282656f, 0.100196f, 0.422160f},
    {0.282910f, 0.105393f, 0.426902f}, {0.283091f, 0.110553f, 0.431554f}, {0.283197f, 0.115680f, 0.436115f},
    {0.283229f, 0.120777f, 0.440584f}, {0.283187f, 0.125848f, 0.444960f}, {0.283072f, 0.130895f, 0.449241f},
    {0.282884f, 0.135920f, 0.453427f}, {0.282623f, 0.140926f, 0.457517f}, {0.282290f, 0.145912f, 0.461510f},
    {0.281887f, 0.150881f, 0.465405f}, {0.281412f, 0.155834f, 0.469201f}, {0.280868f, 0.160771f, 0.472899f},
    {0.280255f, 0.165693f, 0.476498f}, {0.279574f, 0.170599f, 0.479997f}, {0.278826f, 0.175490f, 0.483397f},
    {0.278012f, 0.180367f, 0.486697f}, {0.277134f, 0.185228f, 0.489898f}, {0.276194f, 0.190074f, 0.493001f},
    {0.275191f, 0.194905f, 0.496005f}, {0.274128f, 0.199721f, 0.498911f}, {0.273006f, 0.204520f, 0.501721f},
    {0.271828f, 0.209303f, 0.504434f}, {0.270595f, 0.214069f, 0.507052f}, {0.269308f, 0.218818f, 0.509577f},
    {0.267968f, 0.223549f, 0.512008f}, {0.266580f, 0.228262f, 0.514349f}, {0.265145f, 0.232956f, 0.516599f},
    {0.263663f, 0.237631f, 0.518762f}, {0.262138f, 0.242286f, 0.520837f}, {0.260571f, 0.246922f, 0.522828f},
    {0.258965f, 0.251537f, 0.524736f}, {0.257322f, 0.256130f, 0.526563f}, {0.255645f, 0.260703f, 0.528312f},
    {0.253935f, 0.265254f, 0.529983f}, {0.252194f, 0.269783f, 0.531579f}, {0.250425f, 0.274290f, 0.533103f},
    {0.248629f, 0.278775f, 0.534556f}, {0.246811f, 0.283237f, 0.535941f}, {0.244972f, 0.287675f, 0.537260f},
    {0.243113f, 0.292092f, 0.538516f}, {0.241237f, 0.296485f, 0.539709f}, {0.239346f, 0.300855f, 0.540844f},
    {0.237441f, 0.305202f, 0.541921f}, {0.235526f, 0.309527f, 0.542944f}, {0.233603f, 0.313828f, 0.543914f},
    {0.231674f, 0.318106f, 0.544834f}, {0.229739f, 0.322361f, 0.545706f}, {0.227802f, 0.326594f, 0.546532f},
    {0.225863f, 0.330805f, 0.547314f}, {0.223925f, 0.334994f, 0.548053f}, {0.221989f, 0.339161f, 0.548752f},
    {0.220057f, 0.343307f, 0.549413f}, {0.218130f, 0.347432f, 0.550038f}, {0.216210f, 0.351535f, 0.550627f},
    {0.214298f, 0.355619f, 0.551184f}, {0.212395f, 0.359683f, 0.551710f}, {0.210503f, 0.363727f, 0.552206f},
    {0.208623f, 0.367752f, 0.552675f}, {0.206756f, 0.371758f, 0.553117f}, {0.204903f, 0.375746f, 0.553533f},
    {0.203063f, 0.379716f, 0.553925f}, {0.201239f, 0.383670f, 0.554294f}, {0.199430f, 0.387607f, 0.554642f},
    {0.197636f, 0.391528f, 0.554969f}, {0.195860f, 0.395433f, 0.555276f}, {0.194100f, 0.399323f, 0.555565f},
    {0.192357f, 0.403199f, 0.555836f}, {0.190631f, 0.407061f, 0.556089f}, {0.188923f, 0.410910f, 0.556326f},
    {0.187231f, 0.414746f, 0.556547f}, {0.185556f, 0.418570f, 0.556753f}, {0.183898f, 0.422383f, 0.556944f},
    {0.182256f, 0.426184f, 0.557120f}, {0.180629f, 0.429975f, 0.557282f}, {0.179019f, 0.433756f, 0.557430f},
    {0.177423f, 0.437527f, 0.557565f}, {0.175841f, 0.441290f, 0.557685f}, {0.174274f, 0.445044f, 0.557792f},
    {0.172719f, 0.448791f, 0.557885f}, {0.171176f, 0.452530f, 0.557965f}, {0.169646f, 0.456262f, 0.558030f},
    {0.168126f, 0.459988f, 0.558082f}, {0.166617f, 0.463708f, 0.558119f}, {0.165117f, 0.467423f, 0.558141f},
    {0.163625f, 0.471133f, 0.558148f}, {0.162142f, 0.474838f, 0.558140f}, {0.160665f, 0.478540f, 0.558115f},
    {0.159194f, 0.482237f, 0.558073f}, {0.157729f, 0.485932f, 0.558013f}, {0.156270f, 0.489624f, 0.557936f},
    {0.154815f, 0.493313f, 0.557840f}, {0.153364f, 0.497000f, 0.557724f}, {0.151918f, 0.500685f, 0.557587f},
    {0.150476f, 0.504369f, 0.557430f}, {0.149039f, 0.508051f, 0.557250f}, {0.147607f, 0.511733f, 0.557049f},
    {0.146180f, 0.515413f, 0.556823f}, {0.144759f, 0.519093f, 0.556572f}, {0.143343f, 0.522773f, 0.556295f},
    {0.141935f, 0.526453f, 0.555991f}, {0.140536f, 0.530132f, 0.555659f}, {0.139147f, 0.533812f, 0.555298f},
    {0.137770f, 0.537492f, 0.554906f}, {0.136408f, 0.541173f, 0.554483f}, {0.135066f, 0.544853f, 0.554029f},
    {0.133743f, 0.548535f, 0.553541f}, {0.132444f, 0.552216f, 0.553018f}, {0.131172f, 0.555899f, 0.552459f},
    {0.129933f, 0.559582f, 0.551864f}, {0.128729f, 0.563265f, 0.551229f}, {0.127568f, 0.566949f, 0.550556f},
    {0.126453f, 0.570633f, 0.549841f}, {0.125394f, 0.574318f, 0.549086f}, {0.124395f, 0.578002f, 0.548287f},
    {0.123463f, 0.581687f, 0.547445f}, {0.122606f, 0.585371f, 0.546557f}, {0.121831f, 0.589055f, 0.545623f},
    {0.121148f, 0.592739f, 0.544641f}, {0.120565f, 0.596422f, 0.543611f}, {0.120092f, 0.600104f, 0.542530f},
    {0.119738f, 0.603785f, 0.541400f}, {0.119512f, 0.607464f, 0.540218f}, {0.119423f, 0.611141f, 0.538982f},
    {0.119483f, 0.614817f, 0.537692f}, {0.119699f, 0.618490f, 0.536347f}, {0.120081f, 0.622161f, 0.534946f},
    {0.120638f, 0.625828f, 0.533488f}, {0.121380f, 0.629492f, 0.531973f}, {0.122312f, 0.633153f, 0.530398f},
    {0.123444f, 0.636809f, 0.528763f}, {0.124780f, 0.640461f, 0.527068f}, {0.126326f, 0.644107f, 0.525311f},
    {0.128087f, 0.647749f, 0.523491f}, {0.130067f, 0.651384f, 0.521608f}, {0.132268f, 0.655014f, 0.519661f},
    {0.134692f, 0.658636f, 0.517649f}, {0.137339f, 0.662252f, 0.515571f}, {0.140210f, 0.665859f, 0.513427f},
    {0.143303f, 0.669459f, 0.511215f}, {0.146616f, 0.673050f, 0.508936f}, {0.150148f, 0.676631f, 0.506589f},
    {0.153894f, 0.680203f, 0.504172f}, {0.157851f, 0.683765f, 0.501686f}, {0.162016f, 0.687316f, 0.499129f},
    {0.166383f, 0.690856f, 0.496502f}, {0.170948f, 0.694384f, 0.493803f}, {0.175707f, 0.697900f, 0.491033f},
    {0.180653f, 0.701402f, 0.488189f}, {0.185783f, 0.704891f, 0.485273f}, {0.191090f, 0.708366f, 0.482284f},
    {0.196571f, 0.711827f, 0.479221f}, {0.202219f, 0.715272f, 0.476084f}, {0.208030f, 0.718701f, 0.472873f},
    {0.214000f, 0.722114f, 0.469588f}, {0.220124f, 0.725509f, 0.466226f}, {0.226397f, 0.728888f, 0.462789f},
    {0.232815f, 0.732247f, 0.459277f}, {0.239374f, 0.735588f, 0.455688f}, {0.246070f, 0.738910f, 0.452024f},
    {0.252899f, 0.742211f, 0.448284f}, {0.259857f, 0.745492f, 0.444467f}, {0.266941f, 0.748751f, 0.440573f},
    {0.274149f, 0.751988f, 0.436601f}, {0.281477f, 0.755203f, 0.432552f}, {0.288921f, 0.758394f, 0.428426f},
    {0.296479f, 0.761561f, 0.424223f}, {0.304148f, 0.764704f, 0.419943f}, {0.311925f, 0.767822f, 0.415586f},
    {0.319809f, 0.770914f, 0.411152f}, {0.327796f, 0.773980f, 0.406640f}, {0.335885f, 0.777018f, 0.402049f},
    {0.344074f, 0.780029f, 0.397381f}, {0.352360f, 0.783011f, 0.392636f}, {0.360741f, 0.785964f, 0.387814f},
    {0.369214f, 0.788888f, 0.382914f}, {0.377779f, 0.791781f, 0.377939f}, {0.386433f, 0.794644f, 0.372886f},
    {0.395174f, 0.797475f, 0.367757f}, {0.404001f, 0.800275f, 0.362552f}, {0.412913f, 0.803041f, 0.357269f},
    {0.421908f, 0.805774f, 0.351910f}, {0.430983f, 0.808473f, 0.346476f}, {0.440137f, 0.811138f, 0.340967f},
    {0.449368f, 0.813768f, 0.335384f}, {0.458674f, 0.816363f, 0.329727f}, {0.468053f, 0.818921f, 0.323998f},
    {0.477504f, 0.821444f, 0.318195f}, {0.487026f, 0.823929f, 0.312321f}, {0.496615f, 0.826376f, 0.306377f},
    {0.506271f, 0.828786f, 0.300362f}, {0.515992f, 0.831158f, 0.294279f}, {0.525776f, 0.833491f, 0.288127f},
    {0.535621f, 0.835785f, 0.281908f}, {0.545524f, 0.838039f, 0.275626f}, {0.555484f, 0.840254f, 0.269281f},
    {0.565498f, 0.842430f, 0.262877f}, {0.575563f, 0.844566f, 0.256415f}, {0.585678f, 0.846661f, 0.249897f},
    {0.595839f, 0.848717f, 0.243329f}, {0.606045f, 0.850733f, 0.236712f}, {0.616293f, 0.852709f, 0.230052f},
    {0.626579f, 0.854645f, 0.223353f}, {0.636902f, 0.856542f, 0.216620f}, {0.647257f, 0.858400f, 0.209861f},
    {0.657642f, 0.860219f, 0.203082f}, {0.668054f, 0.861999f, 0.196293f}, {0.678489f, 0.863742f, 0.189503f},
    {0.688944f, 0.865448f, 0.182725f}, {0.699415f, 0.867117f, 0.175971f}, {0.709898f, 0.868751f, 0.169257f},
    {0.720391f, 0.870350f, 0.162603f}, {0.730889f, 0.871916f, 0.156029f}, {0.741388f, 0.873449f, 0.149561f},
    {0.751884f, 0.874951f, 0.143228f}, {0.762373f, 0.876424f, 0.137064f}, {0.772852f, 0.877868f, 0.131109f},
    {0.783315f, 0.879285f, 0.125405f}, {0.793760f, 0.880678f, 0.120005f}, {0.804182f, 0.882046f, 0.114965f},
    {0.814576f, 0.883393f, 0.110347f}, {0.824940f, 0.884720f, 0.106217f}, {0.835270f, 0.886029f, 0.102646f},
    {0.845561f, 0.887322f, 0.099702f}, {0.855810f, 0.888601f, 0.097452f}, {0.866013f, 0.889868f, 0.095953f},
    {0.876168f, 0.891125f, 0.095250f}, {0.886271f, 0.892374f, 0.095374f}, {0.896320f, 0.893616f, 0.096335f},
    {0.906311f, 0.894855f, 0.098125f}, {0.916242f, 0.896091f, 0.100717f}, {0.926106f, 0.897330f, 0.104071f},
    {0.935904f, 0.898570f, 0.108131f}, {0.945636f, 0.899815f, 0.112838f}, {0.955300f, 0.901065f, 0.118128f},
    {0.964894f, 0.902323f, 0.123941f}, {0.974417f, 0.903590f, 0.130215f}, {0.983868f, 0.904867f, 0.136897f},
    {0.993248f, 0.906157f, 0.143936f},
}};

inline constexpr std::array<Rgb, 256> kInferno{{
    {0.001462f, 0.000466f, 0.013866f}, {0.002267f, 0.001270f, 0.018570f}, {0.003299f, 0.002249f, 0.024239f},
    {0.004547f, 0.003392f, 0.030909f}, {0.006006f, 0.004692f, 0.038558f}, {0.007676f, 0.006136f, 0.046836f},
    {0.009561f, 0.007713f, 0.055143f}, {0.011663f, 0.009417f, 0.063460f}, {0.013995f, 0.011225f, 0.071862f},
    {0.016561f, 0.013136f, 0.080282f}, {0.019373f, 0.015133f, 0.088767f}, {0.022447f, 0.017199f, 0.097327f},
    {0.025793f, 0.019331f, 0.105930f}, {0.029432f, 0.021503f, 0.114621f}, {0.033385f, 0.023702f, 0.123397f},
    {0.037668f, 0.025921f, 0.132232f}, {0.042253f, 0.028139f, 0.141141f}, {0.046915f, 0.030324f, 0.150164f},
    {0.051644f, 0.032474f, 0.159254f}, {0.056449f, 0.034569f, 0.168414f}, {0.061340f, 0.036590f, 0.177642f},
    {0.066331f, 0.038504f, 0.186962f}, {0.071429f, 0.040294f, 0.196354f}, {0.076637f, 0.041905f, 0.205799f},
    {0.081962f, 0.043328f, 0.215289f}, {0.087411f, 0.044556f, 0.224813f}, {0.092990f, 0.045583f, 0.234358f},
    {0.098702f, 0.046402f, 0.243904f}, {0.104551f, 0.047008f, 0.253430f}, {0.110536f, 0.047399f, 0.262912f},
    {0.116656f, 0.047574f, 0.272321f}, {0.122908f, 0.047536f, 0.281624f}, {0.129285f, 0.047293f, 0.290788f},
    {0.135778f, 0.046856f, 0.299776f}, {0.142378f, 0.046242f, 0.308553f}, {0.149073f, 0.045468f, 0.317085f},
    {0.155850f, 0.044559f, 0.325338f}, {0.162689f, 0.043554f, 0.333277f}, {0.169575f, 0.042489f, 0.340874f},
    {0.176493f, 0.041402f, 0.348111f}, {0.183429f, 0.040329f, 0.354971f}, {0.190367f, 0.039309f, 0.361447f},
    {0.197297f, 0.038400f, 0.367535f}, {0.204209f, 0.037632f, 0.373238f}, {0.211095f, 0.037030f, 0.378563f},
    {0.217949f, 0.036615f, 0.383522f}, {0.224763f, 0.036405f, 0.388129f}, {0.231538f, 0.036405f, 0.392400f},
    {0.238273f, 0.036621f, 0.396353f}, {0.244967f, 0.037055f, 0.400007f}, {0.251620f, 0.037705f, 0.403378f},
    {0.258234f, 0.038571f, 0.406485f}, {0.264810f, 0.039647f, 0.409345f}, {0.271347f, 0.040922f, 0.411976f},
    {0.277850f, 0.042353f, 0.414392f}, {0.284321f, 0.043933f, 0.416608f}, {0.290763f, 0.045644f, 0.418637f},
    {0.297178f, 0.047470f, 0.420491f}, {0.303568f, 0.049396f, 0.422182f}, {0.309935f, 0.051407f, 0.423721f},
    {0.316282f, 0.053490f, 0.425116f}, {0.322610f, 0.055634f, 0.426377f}, {0.328921f, 0.057827f, 0.427511f},
    {0.335217f, 0.060060f, 0.428524f}, {0.341500f, 0.062325f, 0.429425f}, {0.347771f, 0.064616f, 0.430217f},
    {0.354032f, 0.066925f, 0.430906f}, {0.360284f, 0.069247f, 0.431497f}, {0.366529f, 0.071579f, 0.431994f},
    {0.372768f, 0.073915f, 0.432400f}, {0.379001f, 0.076253f, 0.432719f}, {0.385228f, 0.078591f, 0.432955f},
    {0.391453f, 0.080927f, 0.433109f}, {0.397674f, 0.083257f, 0.433183f}, {0.403894f, 0.085580f, 0.433179f},
    {0.410113f, 0.087896f, 0.433098f}, {0.416331f, 0.090203f, 0.432943f}, {0.422549f, 0.092501f, 0.432714f},
    {0.428768f, 0.094790f, 0.432412f}, {0.434987f, 0.097069f, 0.432039f}, {0.441207f, 0.099338f, 0.431594f},
    {0.447428f, 0.101597f, 0.431080f}, {0.453651f, 0.103848f, 0.430498f}, {0.459875f, 0.106089f, 0.429846f},
    {0.466100f, 0.108322f, 0.429125f}, {0.472328f, 0.110547f, 0.428334f}, {0.478558f, 0.112764f, 0.427475f},
    {0.484789f, 0.114974f, 0.426548f}, {0.491022f, 0.117179f, 0.425552f}, {0.497257f, 0.119379f, 0.424488f},
    {0.503493f, 0.121575f, 0.423356f}, {0.509730f, 0.123769f, 0.422156f}, {0.515967f, 0.125960f, 0.420887f},
    {0.522206f, 0.128150f, 0.419549f}, {0.528444f, 0.130341f, 0.418142f}, {0.534683f, 0.132534f, 0.416667f},
    {0.540920f, 0.134729f, 0.415123f}, {0.547157f, 0.136929f, 0.413511f}, {0.553392f, 0.139134f, 0.411829f},
    {0.559624f, 0.141346f, 0.410078f}, {0.565854f, 0.143567f, 0.408258f}, {0.572081f, 0.145797f, 0.406369f},
    {0.578304f, 0.148039f, 0.404411f}, {0.584521f, 0.150294f, 0.402385f}, {0.590734f, 0.152563f, 0.400290f},
    {0.596940f, 0.154848f, 0.398125f}, {0.603139f, 0.157151f, 0.395891f}, {0.609330f, 0.159474f, 0.393589f},
    {0.615513f, 0.161817f, 0.391219f}, {0.621685f, 0.164184f, 0.388781f}, {0.627847f, 0.166575f, 0.386276f},
    {0.633998f, 0.168992f, 0.383704f}, {0.640135f, 0.171438f, 0.381065f}, {0.646260f, 0.173914f, 0.378359f},
    {0.652369f, 0.176421f, 0.375586f}, {0.658463f, 0.178962f, 0.372748f}, {0.664540f, 0.181539f, 0.369846f},
    {0.670599f, 0.184153f, 0.366879f}, {0.676638f, 0.186807f, 0.363849f}, {0.682656f, 0.189501f, 0.360757f},
    {0.688653f, 0.192239f, 0.357603f}, {0.694627f, 0.195021f, 0.354388f}, {0.700576f, 0.197851f, 0.351113f},
    {0.706500f, 0.200728f, 0.347777f}, {0.712396f, 0.203656f, 0.344383f}, {0.718264f, 0.206636f, 0.340931f},
    {0.724103f, 0.209670f, 0.337424f}, {0.729909f, 0.212759f, 0.333861f}, {0.735683f, 0.215906f, 0.330245f},
    {0.741423f, 0.219112f, 0.326576f}, {0.747127f, 0.222378f, 0.322856f}, {0.752794f, 0.225706f, 0.319085f},
    {0.758422f, 0.229097f, 0.315266f}, {0.764010f, 0.232554f, 0.311399f}, {0.769556f, 0.236077f, 0.307485f},
    {0.775059f, 0.239667f, 0.303526f}, {0.780517f, 0.243327f, 0.299523f}, {0.785929f, 0.247056f, 0.295477f},
    {0.791293f, 0.250856f, 0.291390f}, {0.796607f, 0.254728f, 0.287264f}, {0.801871f, 0.258674f, 0.283099f},
    {0.807082f, 0.262692f, 0.278898f}, {0.812239f, 0.266786f, 0.274661f}, {0.817341f, 0.270954f, 0.270390f},
    {0.822386f, 0.275197f, 0.266085f}, {0.827372f, 0.279517f, 0.261750f}, {0.832299f, 0.283913f, 0.257383f},
    {0.837165f, 0.288385f, 0.252988f}, {0.841969f, 0.292933f, 0.248564f}, {0.846709f, 0.297559f, 0.244113f},
    {0.851384f, 0.302260f, 0.239636f}, {0.855992f, 0.307038f, 0.235133f}, {0.860533f, 0.311892f, 0.230606f},
    {0.865006f, 0.316822f, 0.226055f}, {0.869409f, 0.321827f, 0.221482f}, {0.873741f, 0.326906f, 0.216886f},
    {0.878001f, 0.332060f, 0.212268f}, {0.882188f, 0.337287f, 0.207628f}, {0.886302f, 0.342586f, 0.202968f},
    {0.890341f, 0.347957f, 0.198286f}, {0.894305f, 0.353399f, 0.193584f}, {0.898192f, 0.358911f, 0.188860f},
    {0.902003f, 0.364492f, 0.184116f}, {0.905735f, 0.370140f, 0.179350f}, {0.909390f, 0.375856f, 0.174563f},
    {0.912966f, 0.381636f, 0.169755f}, {0.916462f, 0.387481f, 0.164924f}, {0.919879f, 0.393389f, 0.160070f},
    {0.923215f, 0.399359f, 0.155193f}, {0.926470f, 0.405389f, 0.150292f}, {0.929644f, 0.411479f, 0.145367f},
    {0.932737f, 0.417627f, 0.140417f}, {0.935747f, 0.423831f, 0.135440f}, {0.938675f, 0.430091f, 0.130438f},
    {0.941521f, 0.436405f, 0.125409f}, {0.944285f, 0.442772f, 0.120354f}, {0.946965f, 0.449191f, 0.115272f},
    {0.949562f, 0.455660f, 0.110164f}, {0.952075f, 0.462178f, 0.105031f}, {0.954506f, 0.468744f, 0.099874f},
    {0.956852f, 0.475356f, 0.094695f}, {0.959114f, 0.482014f, 0.089499f}, {0.961293f, 0.488716f, 0.084289f},
    {0.963387f, 0.495462f, 0.079073f}, {0.965397f, 0.502249f, 0.073859f}, {0.967322f, 0.509078f, 0.068659f},
    {0.969163f, 0.515946f, 0.063488f}, {0.970919f, 0.522853f, 0.058367f}, {0.972590f, 0.529798f, 0.053324f},
    {0.974176f, 0.536780f, 0.048392f}, {0.975677f, 0.543798f, 0.043618f}, {0.977092f, 0.550850f, 0.039050f},
    {0.978422f, 0.557937f, 0.034931f}, {0.979666f, 0.565057f, 0.031409f}, {0.980824f, 0.572209f, 0.028508f},
    {0.981895f, 0.579392f, 0.026250f}, {0.982881f, 0.586606f, 0.024661f}, {0.983779f, 0.593849f, 0.023770f},
    {0.984591f, 0.601122f, 0.023606f}, {0.985315f, 0.608422f, 0.024202f}, {0.985952f, 0.615750f, 0.025592f},
    {0.986502f, 0.623105f, 0.027814f}, {0.986964f, 0.630485f, 0.030908f}, {0.987337f, 0.637890f, 0.034916f},
    {0.987622f, 0.645320f, 0.039886f}, {0.987819f, 0.652773f, 0.045581f}, {0.987926f, 0.660250f, 0.051750f},
    {0.987945f, 0.667748f, 0.058329f}, {0.987874f, 0.675267f, 0.065257f}, {0.987714f, 0.682807f, 0.072489f},
    {0.987464f, 0.690366f, 0.079990f}, {0.987124f, 0.697944f, 0.087731f}, {0.986694f, 0.705540f, 0.095694f},
    {0.986175f, 0.713153f, 0.103863f}, {0.985566f, 0.720782f, 0.112229f}, {0.984865f, 0.728427f, 0.120785f},
    {0.984075f, 0.736087f, 0.129527f}, {0.983196f, 0.743758f, 0.138453f}, {0.982228f, 0.751442f, 0.147565f},
    {0.981173f, 0.759135f, 0.156863f}, {0.980032f, 0.766837f, 0.166353f}, {0.978806f, 0.774545f, 0.176037f},
    {0.977497f, 0.782258f, 0.185923f}, {0.976108f, 0.789974f, 0.196018f}, {0.974638f, 0.797692f, 0.206332f},
    {0.973088f, 0.805409f, 0.216877f}, {0.971468f, 0.813122f, 0.227658f}, {0.969783f, 0.820825f, 0.238686f},
    {0.968041f, 0.828515f, 0.249972f}, {0.966243f, 0.836191f, 0.261534f}, {0.964394f, 0.843848f, 0.273391f},
    {0.962517f, 0.851476f, 0.285546f}, {0.960626f, 0.859069f, 0.298010f}, {0.958720f, 0.866624f, 0.310820f},
    {0.956834f, 0.874129f, 0.323974f}, {0.954997f, 0.881569f, 0.337475f}, {0.953215f, 0.888942f, 0.351369f},
    {0.951546f, 0.896226f, 0.365627f}, {0.950018f, 0.903409f, 0.380271f}, {0.948683f, 0.910473f, 0.395289f},
    {0.947594f, 0.917399f, 0.410665f}, {0.946809f, 0.924168f, 0.426373f}, {0.946392f, 0.930761f, 0.442367f},
    {0.946403f, 0.937159f, 0.458592f}, {0.946903f, 0.943348f, 0.474970f}, {0.947937f, 0.949318f, 0.491426f},
    {0.949545f, 0.955063f, 0.507860f}, {0.951740f, 0.960587f, 0.524203f}, {0.954529f, 0.965896f, 0.540361f},
    {0.957896f, 0.971003f, 0.556275f}, {0.961812f, 0.975924f, 0.571925f}, {0.966249f, 0.980678f, 0.587206f},
    {0.971162f, 0.985282f, 0.602154f}, {0.976511f, 0.989753f, 0.616760f}, {0.982257f, 0.994109f, 0.631017f},
    {0.988362f, 0.998364f, 0.644924f},
}};
// clang-format on

inline Rgb lookup(const std::array<Rgb, 256>& table, float t) {
  const float pos = t * 255.f;
  const auto i = static_cast<size_t>(std::min(std::max(pos, 0.f), 254.f));
  const float f = pos - static_cast<float>(i);
  Rgb rgb{};
  for (size_t c = 0; c < 3; ++c) rgb[c] = table[i][c] + (table[i + 1][c] - table[i][c]) * f;
  return rgb;
}

// Colour of one map value; values outside the colormap's domain are clamped, NaN counts as 0.
inline Rgb colormap_rgb(Colormap colormap, float v) {
  if (std::isnan(v)) v = 0.f;
  if (colormap == Colormap::diverging) {
    v = std::clamp(v, -1.f, 1.f);
    return v < 0.f ? Rgb{1.f + v, 1.f + v, 1.f} : Rgb{1.f, 1.f - v, 1.f - v};
  }
  v = std::clamp(v, 0.f, 1.f);
  switch (colormap) {
    case Colormap::viridis:
      return lookup(kViridis, v);
    case Colormap::inferno:
      return lookup(kInferno, v);
    default:
      return Rgb{v, v, v};
  }
}

// Photos and heat images may be grey: read channel c of a 1- or 3-channel image.
inline float rgb_channel(const Image& image, int64_t c, int64_t i) {
  const int64_t plane = image.height * image.width;
  return image.data[static_cast<size_t>((image.channels == 1 ? 0 : c) * plane + i)];
}

inline void check_rgb_or_grey(const Image& image, std::string_view what, std::string_view role) {
  check_image(image, what);
  if (image.channels != 1 && image.channels != 3)
    fail(what, ": the ", role, " has ", image.channels, " channels, expected 1 or 3");
}

inline void check_alpha(float alpha, std::string_view what) {
  if (!(alpha >= 0.f && alpha <= 1.f)) fail(what, ": alpha ", alpha, " is outside [0, 1]");
}
}  // namespace detail

// A 3-channel picture of the map. viridis / inferno / gray expect [0, 1], diverging [-1, 1]
// (what normalize_percentile returns); values outside are clamped.
inline Image colorize(const Map2D& map, Colormap colormap) {
  detail::check_map(map, "colorize");
  Image out(3, map.height, map.width);
  const size_t plane = map.data.size();
  for (size_t i = 0; i < plane; ++i) {
    const detail::Rgb rgb = detail::colormap_rgb(colormap, map.data[i]);
    for (size_t c = 0; c < 3; ++c) out.data[c * plane + i] = rgb[c];
  }
  return out;
}

// (1 - alpha) * photo + alpha * heat, as RGB. Both must have the same height and width; either
// may be grey (1 channel), which is repeated across R, G and B.
inline Image overlay(const Image& photo, const Image& heat, float alpha = 0.5f) {
  detail::check_rgb_or_grey(photo, "overlay", "photo");
  detail::check_rgb_or_grey(heat, "overlay", "heat image");
  detail::check_alpha(alpha, "overlay");
  if (photo.height != heat.height || photo.width != heat.width)
    detail::fail("overlay: heat image is ", heat.height, "x", heat.width, " but the photo is ",
                 photo.height, "x", photo.width, "; resize one to the other first");
  Image out(3, photo.height, photo.width);
  const int64_t plane = photo.height * photo.width;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < plane; ++i)
      out.data[static_cast<size_t>(c * plane + i)] =
          (1.f - alpha) * detail::rgb_channel(photo, c, i) +
          alpha * detail::rgb_channel(heat, c, i);
  return out;
}

// Colours the map and lays it over the photo with a per-pixel opacity of alpha * |value|
// (value clamped to the colormap's domain), so pixels without attribution show the photo
// unchanged and the strongest ones are tinted by `alpha`. The map must match the photo's size.
inline Image overlay(const Image& photo, const Map2D& map, Colormap colormap, float alpha = 0.6f) {
  detail::check_rgb_or_grey(photo, "overlay", "photo");
  detail::check_map(map, "overlay");
  detail::check_alpha(alpha, "overlay");
  if (photo.height != map.height || photo.width != map.width)
    detail::fail("overlay: map is ", map.height, "x", map.width, " but the photo is ", photo.height,
                 "x", photo.width, "; resize the map to the photo first");
  Image out(3, photo.height, photo.width);
  const int64_t plane = photo.height * photo.width;
  for (int64_t i = 0; i < plane; ++i) {
    float v = map.data[static_cast<size_t>(i)];
    if (std::isnan(v)) v = 0.f;
    const float magnitude =
        colormap == Colormap::diverging ? std::min(std::abs(v), 1.f) : std::clamp(v, 0.f, 1.f);
    const float a = alpha * magnitude;
    const detail::Rgb rgb = detail::colormap_rgb(colormap, v);
    for (int64_t c = 0; c < 3; ++c)
      out.data[static_cast<size_t>(c * plane + i)] =
          (1.f - a) * detail::rgb_channel(photo, c, i) + a * rgb[static_cast<size_t>(c)];
  }
  return out;
}

// Tiles images row by row, `columns` per row (fewer if there are fewer tiles), like
// torchvision's make_grid: every cell has the largest tile's height and width, tiles sit at the
// cell's top-left, and `padding` pixels of `background` surround every cell, so the result is
// rows * (cell_h + padding) + padding by columns * (cell_w + padding) + padding. The result is RGB
// if any tile is; grey tiles are repeated across channels.
inline Image grid(const std::vector<Image>& tiles, int64_t columns, int64_t padding = 4,
                  float background = 1.f) {
  if (tiles.empty()) detail::fail("grid: no tiles given, expected at least one image");
  if (columns < 1) detail::fail("grid: columns = ", columns, ", expected at least 1");
  if (padding < 0) detail::fail("grid: padding = ", padding, ", expected >= 0");
  int64_t cell_h = 0, cell_w = 0, channels = 1;
  for (const Image& tile : tiles) {
    detail::check_rgb_or_grey(tile, "grid", "tile");
    cell_h = std::max(cell_h, tile.height);
    cell_w = std::max(cell_w, tile.width);
    channels = std::max(channels, tile.channels);
  }
  const auto n = static_cast<int64_t>(tiles.size());
  const int64_t cols = std::min(columns, n);
  const int64_t rows = (n + cols - 1) / cols;
  Image out(channels, rows * (cell_h + padding) + padding, cols * (cell_w + padding) + padding,
            background);
  for (int64_t t = 0; t < n; ++t) {
    const Image& tile = tiles[static_cast<size_t>(t)];
    const int64_t top = padding + (t / cols) * (cell_h + padding);
    const int64_t left = padding + (t % cols) * (cell_w + padding);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < tile.height; ++y)
        for (int64_t x = 0; x < tile.width; ++x)
          out.data[static_cast<size_t>((c * out.height + top + y) * out.width + left + x)] =
              detail::rgb_channel(tile, c, y * tile.width + x);
  }
  return out;
}

// The photo with segment borders painted in `color`: a pixel is painted when its right or lower
// neighbour has another label (one-pixel lines).
inline Image mark_boundaries(const Image& rgb, const LabelMap& map,
                             const std::array<float, 3>& color = {1.f, 1.f, 0.f}) {
  detail::check_image(rgb, "mark_boundaries");
  detail::superpixels::check_label_map(map, "mark_boundaries");
  if (rgb.channels != 3 || rgb.height != map.height || rgb.width != map.width)
    detail::fail("mark_boundaries: image ", rgb.channels, "x", rgb.height, "x", rgb.width,
                 " does not match the ", map.height, "x", map.width,
                 " label map (expected an RGB image of the same size)");
  Image out = rgb;
  const int64_t h = map.height, w = map.width, n = h * w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      const int64_t l = map.labels[static_cast<size_t>(i)];
      const bool edge = (x + 1 < w && map.labels[static_cast<size_t>(i + 1)] != l) ||
                        (y + 1 < h && map.labels[static_cast<size_t>(i + w)] != l);
      if (edge)
        for (size_t c = 0; c < 3; ++c)
          out.data[c * static_cast<size_t>(n) + static_cast<size_t>(i)] = color[c];
    }
  return out;
}

}  // namespace salient
