// salient-masking-eval: the layer-masking paper's evaluations on the sample photos.
//
//   salient-masking-eval --model m.pt --images DIR [--masks N] [--seed S] [--json out.json]
//
// For every masker (layer masking and the input fills mean, black, grey, blur, noise):
// 1. Colour invariance: random masks (rectangles and blobs); layer masking is run with the
//    removed pixels holding the photo, black, grey or noise (its predictions should not
//    change: max |logit difference| and mean pairwise KL); every fill masker's prediction is
//    compared with the layer-masked one (mean KL).
// 2. Mask-shape leakage: on photos without dogs or birds, remove (or keep only) a dog- or
//    bird-shaped region (the silhouettes of ../shared's segmentation masks) or a rectangle
//    of the same area, and measure how much probability moves to dog / bird classes.
// 3. Missingness bias: remove the k% least important pixels by a fixed attribution (Grad-CAM
//    of the unmasked photo's top-1) and count how often the top-1 changes.
// Prints Markdown tables (docs/masking.md holds a run) and writes JSON with --json.
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/input_settings.hpp"
#include "common/cli.hpp"
#include "common/evaluation.hpp"
#include "common/output.hpp"
#include "salient/salient.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using salient::cli::fail;

namespace masking_eval_tool {
using salient::cli::load_photos;
using salient::cli::Photo;
using salient::cli::number;
using salient::cli::print_row;

const char* usage = R"(usage: salient-masking-eval --model m.pt --images DIR [options]
  --model m.pt      ImageNet classifier (TorchScript, ImageNet-normalised 224x224 input; default: data/'s MobileNetV2)
  --images DIR      folder of photos (../shared/images; *_mask.png files are silhouettes)
  --masks N         random masks per photo for the colour test (default 8, at most 10000)
  --seed S          seed for masks and noise (default 0)
  --threads N       LibTorch threads (default: all cores, at most twice the cores)
  --json out.json   write every number
)";

constexpr int64_t kSize = 224;
const std::vector<std::string> kMaskers = {"layer", "mean", "black", "grey", "blur", "noise"};

bool is_dog(int64_t c) { return c >= 151 && c <= 268; }
bool is_bird(int64_t c) { return (c >= 7 && c <= 24) || (c >= 80 && c <= 100) || (c >= 127 && c <= 146); }

torch::Tensor class_mass(const torch::Tensor& probabilities, bool (*in_set)(int64_t)) {
  auto selector = torch::zeros({probabilities.size(1)});
  for (int64_t c = 0; c < probabilities.size(1); ++c) selector[c] = in_set(c) ? 1.0 : 0.0;
  return (probabilities * selector).sum(1);
}

// KL(p || q) per row, from logits.
torch::Tensor kl(const torch::Tensor& logits_p, const torch::Tensor& logits_q) {
  auto log_p = torch::log_softmax(logits_p, 1), log_q = torch::log_softmax(logits_q, 1);
  return (log_p.exp() * (log_p - log_q)).sum(1);
}

// Half rectangles, half blobs (smoothed noise above a threshold); each keeps 40-80%.
torch::Tensor random_masks(int64_t n, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto masks = torch::ones({n, 1, kSize, kSize});
  for (int64_t i = 0; i < n; ++i) {
    if (i % 2 == 0) {
      auto r = at::randint(0, kSize / 2, {4}, generator);
      const int64_t h = kSize / 4 + r[2].item<int64_t>() / 2, w = kSize / 4 + r[3].item<int64_t>() / 2;
      masks[i].slice(1, r[0].item<int64_t>(), r[0].item<int64_t>() + h).slice(2, r[1].item<int64_t>(), r[1].item<int64_t>() + w).zero_();
    } else {
      auto noise = at::rand({1, 1, kSize / 16, kSize / 16}, generator);
      auto smooth = torch::nn::functional::interpolate(
          noise, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{kSize, kSize}).mode(torch::kBilinear).align_corners(false));
      masks[i] = (smooth[0] > 0.4).to(torch::kFloat);
    }
  }
  return masks;
}

torch::Tensor silhouette(const fs::path& file) {
  auto image = salient::to_tensor(salient::prepare_image(salient::load_image(file), {}));
  return (image.mean(1, true) >= 0.5).to(torch::kFloat);  // [1,1,224,224], 1 = the animal
}

// A centred rectangle with the same number of pixels as `mask`.
torch::Tensor rectangle_like(const torch::Tensor& mask) {
  const double area = mask.sum().item<double>();
  const int64_t side = std::min<int64_t>(kSize, static_cast<int64_t>(std::sqrt(area)));
  const int64_t other = std::min<int64_t>(kSize, static_cast<int64_t>(area / std::max<int64_t>(1, side)));
  auto rect = torch::zeros_like(mask);
  const int64_t top = (kSize - other) / 2, left = (kSize - side) / 2;
  rect[0][0].slice(0, top, top + other).slice(1, left, left + side).fill_(1);
  return rect;
}

int run(int argc, char** argv) {
  std::string model_path, images, json_path;
  int64_t masks_per_photo = 8;
  uint64_t seed = 0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  salient::cli::parse_options(argc, argv, usage, {}, [&](const std::string& flag, const std::string& value) {
    if (flag == "--model") model_path = value;
    else if (flag == "--images") images = value;
    else if (flag == "--masks") masks_per_photo = salient::cli::parse_int(flag, value, 2, 10000);
    else if (flag == "--seed") seed = static_cast<uint64_t>(salient::cli::parse_int(flag, value, 0, salient::cli::max_seed));
    else if (flag == "--threads") threads = salient::cli::parse_threads(flag, value);
    else if (flag == "--json") json_path = value;
    else fail("unknown option '", flag, "' (see --help)");
  });
  if (images.empty()) fail("--images is required (see --help)");
  if (model_path.empty()) model_path = salient::cli::shipped_model("salient-masking-eval");
  if (!json_path.empty()) salient::cli::check_output_file(json_path, "salient-masking-eval");  // before any work
  salient::cli::configure_process(threads);
  auto model = salient::TorchModel::load(model_path);
  auto photos = load_photos(images);
  std::map<std::string, salient::AnyMasker> maskers;
  for (const auto& name : kMaskers) maskers.emplace(name, salient::make_masker(name, {.seed = seed}));
  const salient::MaskerOptions batch{.batch_size = 32};
  json result{{"written_by", "salient-masking-eval"}, {"model", model_path}, {"photos", photos.size()}, {"masks_per_photo", masks_per_photo}, {"seed", seed}};

  // 1. Colour invariance.
  std::map<std::string, double> kl_to_layer;
  double layer_max_logit_change = 0, layer_pairwise_kl = 0;
  int64_t pairs = 0, count = 0;
  for (size_t p = 0; p < photos.size(); ++p) {
    const auto& x = photos[p].input;
    auto masks = random_masks(masks_per_photo, seed + p);
    auto layer_logits = maskers.at("layer").outputs(model, x, masks, batch);
    std::vector<torch::Tensor> contents;  // layer masking with different removed contents
    for (auto kind : {salient::BaselineKind::black, salient::BaselineKind::grey, salient::BaselineKind::noise}) {
      auto filled = salient::FillMasker::baseline(kind, {.seed = seed + p}).masked_inputs(x, masks);
      contents.push_back(salient::LayerMasker{}.outputs(model, filled, masks, batch));
    }
    contents.push_back(layer_logits);
    for (size_t a = 0; a < contents.size(); ++a)
      for (size_t b = a + 1; b < contents.size(); ++b) {
        layer_max_logit_change = std::max(layer_max_logit_change, (contents[a] - contents[b]).abs().max().item<double>());
        layer_pairwise_kl += kl(contents[a], contents[b]).mean().item<double>();
        ++pairs;
      }
    for (const auto& name : kMaskers) {
      if (name == "layer") continue;
      kl_to_layer[name] += kl(maskers.at(name).outputs(model, x, masks, batch), layer_logits).sum().item<double>();
    }
    count += masks_per_photo;
  }
  std::cout << "### Colour invariance (" << photos.size() << " photos x " << masks_per_photo
            << " random masks)\n\n| masker | mean KL(prediction \\|\\| layer-masked prediction) |\n|---|---|\n";
  print_row({"layer, removed pixels = photo / black / grey / noise",
             "pairwise " + number(layer_pairwise_kl / static_cast<double>(pairs)) + " (max \\|logit change\\| " +
                 number(layer_max_logit_change) + ")"});
  json colour{{"layer_pairwise_kl", layer_pairwise_kl / static_cast<double>(pairs)},
              {"layer_max_logit_change", layer_max_logit_change}};
  for (const auto& [name, total] : kl_to_layer) {
    print_row({name, number(total / static_cast<double>(count))});
    colour["kl_to_layer"][name] = total / static_cast<double>(count);
  }
  result["colour_invariance"] = colour;

  // 2. Mask-shape leakage on photos without dogs and birds (by their unmasked top-5).
  const fs::path dir(images);
  std::vector<std::pair<std::string, torch::Tensor>> shapes;
  if (fs::exists(dir / "dog_segmentation_mask.png")) shapes.emplace_back("dog", silhouette(dir / "dog_segmentation_mask.png"));
  if (fs::exists(dir / "bird_segmentation_mask.png")) shapes.emplace_back("bird", silhouette(dir / "bird_segmentation_mask.png"));
  std::vector<const Photo*> neutral;
  for (const auto& photo : photos) {
    auto top5 = std::get<1>(model.forward(photo.input).topk(5, 1));
    bool animal = false;
    for (int64_t k = 0; k < 5; ++k) animal = animal || is_dog(top5[0][k].item<int64_t>()) || is_bird(top5[0][k].item<int64_t>());
    if (!animal) neutral.push_back(&photo);
  }
  std::cout << "\n### Mask-shape leakage (" << neutral.size()
            << " photos with no dog or bird in their top-5)\n\nIncrease of the probability of dog (bird) classes "
               "over the unmasked photo, mean over photos; the rectangle has the silhouette's area.\n\n";
  std::vector<std::string> header{"masker"};
  for (const auto& [animal, mask] : shapes)
    for (const char* mode : {"removed", "kept only"})
      for (const char* form : {"silhouette", "rectangle"}) header.push_back(animal + " " + form + " " + mode);
  print_row(header);
  print_row(std::vector<std::string>(header.size(), "---"));
  json leakage;
  for (const auto& name : kMaskers) {
    std::vector<std::string> row{name};
    for (const auto& [animal, mask] : shapes) {
      auto in_set = animal == "dog" ? is_dog : is_bird;
      for (bool removed : {true, false})
        for (bool rectangle : {false, true}) {
          auto region = rectangle ? rectangle_like(mask) : mask;
          auto keep = removed ? 1 - region : region;
          double shift = 0;
          for (const auto* photo : neutral) {
            auto masked = torch::softmax(maskers.at(name).outputs(model, photo->input, keep, batch), 1);
            auto plain = torch::softmax(model.forward(photo->input), 1);
            shift += (class_mass(masked, in_set) - class_mass(plain, in_set)).item<double>();
          }
          shift /= std::max<double>(1, static_cast<double>(neutral.size()));
          row.push_back(number(shift, 2));
          leakage[name][animal + (rectangle ? " rectangle" : " silhouette") + (removed ? " removed" : " kept only")] = shift;
        }
    }
    print_row(row);
  }
  result["shape_leakage"] = leakage;

  // 3. Missingness bias: remove the least important pixels by Grad-CAM.
  const std::vector<double> fractions{0.1, 0.25, 0.5};
  std::cout << "\n### Missingness bias (" << photos.size()
            << " photos)\n\nFraction of photos whose top-1 changes when the k% least important pixels (Grad-CAM of "
               "the top-1) are removed.\n\n";
  header = {"masker"};
  for (double f : fractions) header.push_back("k = " + number(100 * f) + "%");
  print_row(header);
  print_row(std::vector<std::string>(header.size(), "---"));
  std::vector<torch::Tensor> keep_masks;  // per photo: [fractions, 1, H, W]
  std::vector<int64_t> top1;
  for (const auto& photo : photos) {
    auto logits = model.forward(photo.input);
    top1.push_back(logits.argmax(1).item<int64_t>());
    auto cam = salient::grad_cam(model, photo.input, top1.back()).flatten();
    auto order = std::get<1>(cam.sort());  // least important first
    auto masks = torch::ones({static_cast<int64_t>(fractions.size()), kSize * kSize});
    for (size_t k = 0; k < fractions.size(); ++k)
      masks[k].index_fill_(0, order.slice(0, 0, static_cast<int64_t>(fractions[k] * kSize * kSize)), 0.0);
    keep_masks.push_back(masks.view({-1, 1, kSize, kSize}));
  }
  json missingness;
  for (const auto& name : kMaskers) {
    std::vector<std::string> row{name};
    std::vector<double> changed(fractions.size(), 0);
    for (size_t p = 0; p < photos.size(); ++p) {
      auto predicted = maskers.at(name).outputs(model, photos[p].input, keep_masks[p], batch).argmax(1);
      for (size_t k = 0; k < fractions.size(); ++k) changed[k] += predicted[k].item<int64_t>() != top1[p] ? 1 : 0;
    }
    for (size_t k = 0; k < fractions.size(); ++k) {
      row.push_back(number(changed[k] / static_cast<double>(photos.size()), 2));
      missingness[name].push_back(changed[k] / static_cast<double>(photos.size()));
    }
    print_row(row);
  }
  result["missingness_bias"] = {{"fractions", fractions}, {"top1_changed", missingness}};
  if (!json_path.empty()) std::ofstream(json_path) << result.dump(2) << "\n";
  return 0;
}

}  // namespace masking_eval_tool

int salient_tool_masking_eval(int argc, char** argv) {
  return salient::cli::main_guard("salient-masking-eval", [&] { return masking_eval_tool::run(argc, argv); });
}
