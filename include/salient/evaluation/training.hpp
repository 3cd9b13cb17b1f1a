#pragma once
// A small, seeded training loop for classifiers written as torch::nn modules (Adam, cross
// entropy, shuffled mini-batches), and the label permutation of the data randomisation test
// (Adebayo et al. 2018): a model that fits permuted labels can only have memorised them.
#include <algorithm>
#include <cstdint>
#include <functional>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "salient/core/model.hpp"
#include "salient/core/torch_backend.hpp"

namespace salient {

struct EpochReport {
  int64_t epoch = 0;    // 1-based
  double loss = 0;      // mean training loss over the epoch
  double accuracy = 0;  // fraction of training items classified correctly during the epoch
};

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 64;
  double learning_rate = 1e-3;
  double weight_decay = 0;
  uint64_t seed = 0;            // the shuffling order
  double stop_accuracy = 2;     // stop after an epoch whose training accuracy reaches this
  std::function<void(const EpochReport&)> on_epoch = {};
};

namespace detail {
inline void check_classification_data(const torch::Tensor& images, const torch::Tensor& labels) {
  check_inputs<TorchBackend>(images);
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    fail("labels of shape ", shape_string(labels), " do not fit ", images.size(0), " images (expected [", images.size(0), "])");
  if (labels.scalar_type() != torch::kLong) fail("labels must be int64 class indices, got ", labels.scalar_type());
  if (labels.numel() > 0 && labels.min().item<int64_t>() < 0)
    fail("labels must be class indices >= 0, found ", labels.min().item<int64_t>());
}
}  // namespace detail

// Trains `module` (any torch::nn module holder with forward(Tensor) -> logits) in place and
// leaves it in eval mode. Returns the last epoch's report.
template <class Holder>
  requires requires(Holder h, torch::Tensor x) { h->parameters(); h->train(); { h->forward(x) } -> std::convertible_to<torch::Tensor>; }
EpochReport train_classifier(Holder& module, const torch::Tensor& images, const torch::Tensor& labels,
                             const TrainOptions& options = {}) {
  detail::check_classification_data(images, labels);
  if (options.epochs < 1 || options.batch_size < 1)
    detail::fail("training needs epochs >= 1 and batch_size >= 1, got ", options.epochs, " and ", options.batch_size);
  if (!(options.learning_rate > 0)) detail::fail("learning rate must be > 0, got ", options.learning_rate);
  torch::optim::Adam optimizer(module->parameters(),
                               torch::optim::AdamOptions(options.learning_rate).weight_decay(options.weight_decay));
  auto generator = at::detail::createCPUGenerator(options.seed);
  const int64_t n = images.size(0);
  EpochReport report;
  for (int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    module->train();
    auto order = torch::randperm(n, generator, torch::kLong);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t begin = 0; begin < n; begin += options.batch_size) {
      auto index = order.slice(0, begin, std::min(n, begin + options.batch_size)).to(images.device());
      auto y = labels.index_select(0, index);
      auto logits = module->forward(images.index_select(0, index));
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item().toDouble() * static_cast<double>(index.size(0));
      correct += (logits.detach().argmax(1) == y).sum().item().toLong();
    }
    report = {epoch, loss_sum / static_cast<double>(n), static_cast<double>(correct) / static_cast<double>(n)};
    if (options.on_epoch) options.on_epoch(report);
    if (report.accuracy >= options.stop_accuracy) break;
  }
  module->eval();
  return report;
}

// Fraction of `images` whose top-1 output is their label (forward-only, in batches).
inline double classification_accuracy(TorchModel& model, const torch::Tensor& images, const torch::Tensor& labels,
                                      int64_t batch_size = 256) {
  detail::check_classification_data(images, labels);
  auto predicted = evaluate(model, images, {.batch_size = batch_size}).argmax(1);
  return (predicted == labels.to(predicted.device())).to(torch::kDouble).mean().item<double>();
}

// The labels in a random order (seeded): the training labels of the data randomisation test.
inline torch::Tensor permuted_labels(const torch::Tensor& labels, uint64_t seed = 0) {
  if (labels.dim() != 1) detail::fail("labels must be 1-D, got shape ", shape_string(labels));
  auto generator = at::detail::createCPUGenerator(seed);
  return labels.index_select(0, torch::randperm(labels.size(0), generator, torch::kLong).to(labels.device()));
}

}  // namespace salient
