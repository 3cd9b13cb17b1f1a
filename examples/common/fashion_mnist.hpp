#pragma once
// The demo's embedded default model: a small CNN trained in C++ on Fashion-MNIST from
// Debian's dataset-fashion-mnist, cached after the first run.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/evaluation/training.hpp"
#include "salient/io/idx.hpp"

namespace salient::demo {

inline const std::filesystem::path fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

inline const std::vector<std::string> fashion_mnist_labels = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

struct Dataset {
  torch::Tensor images;  // [N, 1, 28, 28] float in [0, 1]
  torch::Tensor labels;  // [N] int64
};

// split: "train" or "t10k".
inline Dataset load_fashion_mnist(const std::string& split, const std::filesystem::path& dir = fashion_mnist_dir) {
  auto images = load_idx(dir / (split + "-images-idx3-ubyte.gz"));
  auto labels = load_idx(dir / (split + "-labels-idx1-ubyte.gz"));
  if (images.shape.size() != 3 || labels.shape.size() != 1 || images.shape[0] != labels.shape[0])
    raise(error_kind::io, "Fashion-MNIST ", split, " files in '", dir.string(), "' do not match (images vs labels)");
  auto x = torch::from_blob(images.data.data(), {images.shape[0], 1, images.shape[1], images.shape[2]}, torch::kUInt8)
               .to(torch::kFloat32)
               .div_(255.0);
  auto y = torch::from_blob(labels.data.data(), {labels.shape[0]}, torch::kUInt8).to(torch::kLong);
  return {x, y};
}

// Pooling before ReLU (the same function, max-pool and ReLU commute) runs the ReLU and its
// backward on 4x fewer values: training is dominated by such elementwise passes on 2 cores.
struct SmallCnnImpl : torch::nn::Module {
  torch::nn::Sequential layers{nullptr};
  SmallCnnImpl() {
    layers = register_module(
        "layers", torch::nn::Sequential(
                      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)), torch::nn::MaxPool2d(2),
                      torch::nn::ReLU(),
                      torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)), torch::nn::MaxPool2d(2),
                      torch::nn::ReLU(), torch::nn::Flatten(), torch::nn::Linear(32 * 7 * 7, 64),
                      torch::nn::ReLU(), torch::nn::Linear(64, 10)));
  }
  torch::Tensor forward(torch::Tensor x) { return layers->forward(x); }
};
TORCH_MODULE(SmallCnn);

inline double accuracy(SmallCnn& model, const Dataset& data) {
  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.images.size(0); begin += 1000) {
    auto x = data.images.slice(0, begin, begin + 1000);
    correct += (model->forward(x).argmax(1) == data.labels.slice(0, begin, begin + 1000)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(data.images.size(0));
}

struct TrainedModel {
  SmallCnn model;
  double test_accuracy = 0;
  bool from_cache = false;
};

// Trains (2 epochs of Adam, seeded) or loads the cached model from `cache_dir`.
inline TrainedModel fashion_cnn(const std::filesystem::path& cache_dir,
                                const std::function<void(const std::string&)>& log = {}) {
  const auto weights = cache_dir / "fashion_cnn.pt", info = cache_dir / "fashion_cnn.json";
  TrainedModel result{SmallCnn(), 0, false};
  if (std::filesystem::exists(weights) && std::filesystem::exists(info)) {
    try {
      torch::load(result.model, weights.string());
      std::ifstream in(info);
      result.test_accuracy = nlohmann::json::parse(in).at("test_accuracy").get<double>();
      result.from_cache = true;
      result.model->eval();
      return result;
    } catch (const std::exception&) {
      result.model = SmallCnn();  // stale or corrupt cache: train again
    }
  }
  torch::manual_seed(0);
  result.model = SmallCnn();
  auto train = load_fashion_mnist("train"), test = load_fashion_mnist("t10k");
  const int64_t epochs = 2;
  salient::train_classifier(result.model, train.images, train.labels,
                            {.epochs = epochs, .batch_size = 128, .on_epoch = [&](const EpochReport& r) {
                               if (log) log("epoch " + std::to_string(r.epoch) + "/" + std::to_string(epochs) + " done");
                             }});
  result.test_accuracy = accuracy(result.model, test);
  result.model->eval();
  std::filesystem::create_directories(cache_dir);
  torch::save(result.model, weights.string());
  std::ofstream(info) << nlohmann::json{{"test_accuracy", result.test_accuracy}, {"epochs", epochs}}.dump(1);
  return result;
}

}  // namespace salient::demo
