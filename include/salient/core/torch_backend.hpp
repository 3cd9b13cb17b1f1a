#pragma once
// The LibTorch backend and the LibTorch model adapter.
//
// TorchModel wraps a TorchScript module (loaded from a file or given), a torch::nn module,
// or any callable Tensor -> Tensor behind one type. Gradients come from autograd; forward-
// only evaluation runs without autograd and, for TorchScript modules, optionally on an
// inference-optimised copy (torch::jit::freeze + optimize_for_inference), made once on
// first use. The adapter never changes global thread settings.
#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/core/parameters.hpp"

namespace salient {

namespace detail {
// The model's own message in an error from TorchScript's interpreter: the last "...Error: "
// line of its traceback ("builtins.RuntimeError: <what the model raised>", else the last
// line), not the traceback's header; nothing when `text` is not such an error.
inline std::optional<std::string> model_error_line(const std::string& text) {
  if (text.find("The following operation failed in the TorchScript interpreter") == std::string::npos) return std::nullopt;
  std::string last, last_error;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos) continue;
    last = line.substr(start);
    if (last.find("Error: ") != std::string::npos) last_error = last;
  }
  return last_error.empty() ? last : last_error;
}
}  // namespace detail

inline std::string shape_string(const torch::Tensor& t) { return detail::shape_text(t.sizes().vec()); }

struct TorchBackend {
  using Tensor = torch::Tensor;

  static int64_t rows(const Tensor& t) { return t.dim() == 0 ? 0 : t.size(0); }
  static Tensor slice_rows(const Tensor& t, int64_t begin, int64_t end) { return t.slice(0, begin, end); }
  static Tensor concat_rows(const std::vector<Tensor>& parts) {
    return parts.size() == 1 ? parts.front() : torch::cat(parts, 0);
  }
  static Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows) {
    return t.index_select(0, torch::tensor(rows, torch::kLong).to(t.device()));
  }
  // One broadcast multiply-add: alphas as float32 scalars, as `tensor * python_float` is.
  static Tensor lerp_batch(const Tensor& start, const Tensor& delta, const std::vector<double>& alphas) {
    std::vector<int64_t> shape(start.dim() + 1, 1);
    shape[0] = static_cast<int64_t>(alphas.size());
    auto a = torch::tensor(alphas, torch::kDouble).to(start.options()).reshape(shape);
    auto batch = torch::addcmul(start.unsqueeze(0), delta.unsqueeze(0), a);
    auto sizes = start.sizes().vec();
    sizes[0] *= static_cast<int64_t>(alphas.size());
    return batch.reshape(sizes);
  }
  static Tensor zeros_like(const Tensor& t) { return torch::zeros_like(t); }
  static Tensor abs(const Tensor& t) { return t.abs(); }
  // In-place adds on views: no copy of t, and no BLAS call (OpenBLAS's own threads would
  // compete with LibTorch's for the cores during the next forward pass).
  static void add_weighted_blocks(Tensor& acc, const Tensor& t, const std::vector<double>& weights) {
    const int64_t block = rows(acc);
    for (size_t k = 0; k < weights.size(); ++k)
      acc.add_(t.slice(0, static_cast<int64_t>(k) * block, static_cast<int64_t>(k + 1) * block),
               static_cast<float>(weights[k]));
  }
  static void add_rows_grouped(Tensor& acc, const Tensor& t, int64_t first, int64_t group) {
    auto rows_to_items = torch::div(torch::arange(first, first + rows(t), torch::kLong), group, "floor");
    acc.index_add_(0, rows_to_items.to(acc.device()), t);
  }
  // Drawn on the CPU from seeded generators, then moved: the same on every device.
  static void add_normal_noise(Tensor& t, double stdev, const std::vector<uint64_t>& seeds) {
    if (static_cast<int64_t>(seeds.size()) != rows(t)) detail::fail("add_normal_noise: one seed per row needed");
    auto noise = torch::empty(t.sizes(), torch::TensorOptions().dtype(t.dtype()));
    // Rows have their own generators, so they are filled in parallel.
    at::parallel_for(0, rows(t), 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        auto generator = at::make_generator<at::CPUGeneratorImpl>(seeds[r]);
        noise[r].normal_(0.0, stdev, generator);
      }
    });
    t.add_(noise.to(t.device()));
  }
  static Tensor broadcast_to(const Tensor& baseline, const Tensor& inputs) {
    if (baseline.numel() == 1) return torch::full_like(inputs, baseline.item<double>());
    bool same_item_shape = baseline.dim() == inputs.dim() &&
                           baseline.sizes().slice(1) == inputs.sizes().slice(1);
    if (same_item_shape && (rows(baseline) == rows(inputs) || rows(baseline) == 1))
      return baseline.to(inputs.options()).expand_as(inputs);
    detail::fail("baseline of shape ", shape_string(baseline), " does not match inputs of shape ",
                 shape_string(inputs), " (expected a scalar, one item or one per input)");
  }
  static std::vector<double> row_sums(const Tensor& t) {
    return to_vector(t.reshape({rows(t), -1}).sum(1, /*keepdim=*/false, torch::kDouble));
  }
  static std::vector<double> to_vector(const Tensor& t) {
    auto flat = t.detach().to(torch::kCPU, torch::kDouble).contiguous().reshape({-1});
    return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
  }
  static std::vector<int64_t> argmax_rows(const Tensor& output) {
    check_logits(output);
    auto best = output.argmax(1).to(torch::kCPU).contiguous();
    return {best.data_ptr<int64_t>(), best.data_ptr<int64_t>() + best.numel()};
  }
  static Tensor select(const Tensor& output, const ResolvedTarget<Tensor>& target) {
    if (target.is_custom()) {
      auto scores = target.custom(output);
      if (scores.dim() != 1 || scores.size(0) != rows(output))
        detail::fail("custom target returned shape ", shape_string(scores), "; expected one score per item [",
                     rows(output), "]");
      return scores;
    }
    check_logits(output);
    detail::check_class_range(target.classes, output.size(1));
    if (static_cast<int64_t>(target.classes.size()) != rows(output))
      detail::fail("target has ", target.classes.size(), " classes for ", rows(output), " outputs");
    auto index = torch::tensor(target.classes, torch::kLong).to(output.device()).unsqueeze(1);
    return output.gather(1, index).squeeze(1);
  }
  static void check_finite(const Tensor& t, std::string_view what) {
    if (!torch::isfinite(t).all().item<bool>()) detail::fail(what, " contains NaN or Inf");
  }
  static std::vector<int64_t> shape(const Tensor& t) { return t.sizes().vec(); }
  static Tensor reshape(const Tensor& t, const std::vector<int64_t>& shape) { return t.reshape(shape); }
  static Tensor from_values(const std::vector<double>& values, const std::vector<int64_t>& shape, const Tensor& like) {
    return torch::tensor(values, torch::kDouble).view(shape).to(like.options());
  }
  static std::array<double, 2> value_range(const Tensor& t) {
    auto [lo, hi] = torch::aminmax(t.is_floating_point() ? t.detach() : t.detach().to(torch::kDouble));
    return {lo.item<double>(), hi.item<double>()};
  }
  static std::vector<int64_t> labels(const Tensor& t) {
    if (t.scalar_type() != torch::kLong && t.scalar_type() != torch::kInt)
      detail::fail("segments must be an integer label map, got ", t.scalar_type());
    auto flat = t.to(torch::kCPU, torch::kLong).contiguous().reshape({-1});
    return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
  }
  static Tensor blend(const Tensor& x, const Tensor& masks, const Tensor& fill) {
    auto sizes = x.sizes().vec();
    sizes[0] = masks.size(0);
    return torch::lerp(fill.to(x.options()).expand(sizes), x.expand(sizes), masks.to(x.options()).expand(sizes));
  }
  // Probabilities in float at least (a half-precision softmax loses small probabilities).
  static Tensor softmax_rows(const Tensor& t) { return torch::softmax(t.to(torch::kFloat), 1); }
  // Two matrix products per operator pair, on t's device: [H, H] x [H, C W], then [H C, W] x
  // [W, W]^T. One pair at a time keeps each product's operands in cache (stacking the
  // vertical operators into one product was ~2x slower per blur at 224x224).
  static Tensor separable_filter(const Tensor& image, const std::vector<double>& vertical,
                                 const std::vector<double>& horizontal) {
    const auto count = detail::separable_operator_count(shape(image), vertical.size(), horizontal.size());
    const int64_t channels = image.size(1), height = image.size(2), width = image.size(3);
    torch::NoGradGuard no_grad;
    const auto doubles = torch::TensorOptions().dtype(torch::kDouble);
    auto columns = image.to(torch::kDouble)[0].permute({1, 0, 2}).reshape({height, channels * width});  // [H, C W]
    auto out = torch::empty({count, channels, height, width}, image.options());
    // On the CPU the operator pairs are spread over LibTorch's threads, and the roundings and
    // the final transpose are plain loops: a LibTorch parallel region between two BLAS calls
    // makes its threads and BLAS's contend for the cores (2x slower per blur at 2 threads).
    auto operators = [&](int64_t p) {  // views of pair p, no copies
      return std::pair{torch::from_blob(const_cast<double*>(vertical.data()) + p * height * height, {height, height}, doubles),
                       torch::from_blob(const_cast<double*>(horizontal.data()) + p * width * width, {width, width}, doubles)};
    };
    if (!image.is_cpu() || image.scalar_type() != torch::kFloat) {
      for (int64_t p = 0; p < count; ++p) {
        const auto [v, h] = operators(p);
        auto first = torch::mm(v.to(image.device()), columns).to(image.scalar_type()).to(torch::kDouble);  // rounded
        auto second = torch::mm(first.view({height * channels, width}), h.to(image.device()).t());
        out[p].copy_(second.view({height, channels, width}).permute({1, 0, 2}));
      }
      return out;
    }
    at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const auto [v, h] = operators(p);
        auto first = banded_product(v, columns);  // [H, C W]
        double* f = first.data_ptr<double>();
        for (int64_t i = 0; i < first.numel(); ++i) f[i] = static_cast<float>(f[i]);
        const auto second = banded_product(h, first.view({height * channels, width}).t());  // [W, H C]
        const double* from = second.data_ptr<double>();
        float* to = out.data_ptr<float>() + p * channels * height * width;
        for (int64_t x = 0; x < width; ++x)
          for (int64_t y = 0; y < height; ++y)
            for (int64_t c = 0; c < channels; ++c)
              to[(c * height + y) * width + x] = static_cast<float>(from[(x * height + y) * channels + c]);
      }
    });
    return out;
  }

 private:
  // op [R, K] x matrix [K, M] for a banded operator (a blur's: zero beyond its radius): blocks
  // of 32 output rows multiply only the columns of `op` that hold non-zeros in those rows. The
  // terms left out are exact zeros, so the sums change only in the order BLAS adds them.
  static Tensor banded_product(const Tensor& op, const Tensor& matrix) {
    const int64_t rows = op.size(0), inner = op.size(1), block = 32;
    const double* values = op.data_ptr<double>();
    std::vector<std::pair<int64_t, int64_t>> spans;  // per block, the columns [first, last) it needs
    bool banded = false;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      int64_t first = inner, last = 0;
      for (int64_t r = r0; r < std::min(rows, r0 + block); ++r)
        for (int64_t k = 0; k < inner; ++k)
          if (values[r * inner + k] != 0) first = std::min(first, k), last = std::max(last, k + 1);
      if (first >= last) first = 0, last = 1;  // an all-zero block: any one column gives its zeros
      banded |= last - first < inner;
      spans.emplace_back(first, last);
    }
    if (!banded) return torch::mm(op, matrix);
    auto out = torch::empty({rows, matrix.size(1)}, op.options());
    for (std::size_t b = 0; b < spans.size(); ++b) {
      const int64_t r0 = static_cast<int64_t>(b) * block, height = std::min(block, rows - r0);
      const auto [first, last] = spans[b];
      auto part = out.narrow(0, r0, height);
      torch::mm_out(part, op.narrow(0, r0, height).narrow(1, first, last - first), matrix.narrow(0, first, last - first));
    }
    return out;
  }

  static void check_logits(const Tensor& output) {
    if (output.dim() != 2)
      detail::fail("model output has shape ", shape_string(output),
                   "; class targets need [N, classes] (use a custom target for other outputs)");
  }
};
static_assert(TensorBackend<TorchBackend>);

using Target = BasicTarget<torch::Tensor>;

struct ModelOptions {
  // Forward-only evaluation of TorchScript modules on a frozen, inference-optimised copy
  // (batch norms folded into convolutions: outputs equal the plain model's to ~1e-6
  // relative), for forward() calls of at least `inference_batch` inputs; smaller calls run
  // the plain module. Freezing costs ~0.1 s (MobileNetV2), more than a few inputs save, so a
  // run that predicts one photo and takes gradients never pays for it; and which module runs
  // depends only on the call, never on what ran before (a resumed or sharded run computes
  // every item as the whole run does).
  bool optimize_for_inference = false;
  int64_t inference_batch = 8;
  // Masked inputs that differ from their image only inside a small rectangle (occlusion
  // windows, small segments) are evaluated incrementally from the image's kept activations
  // (masking/incremental.hpp): equal to a full forward up to the order of floating-point sums.
  bool incremental = true;
  // For models returning a tuple or list (scripted GoogLeNet: (logits, aux2, aux1)): the
  // element that is the output to explain. -1: the model must return a single tensor.
  int output_element = -1;
};

class TorchModel {
 public:
  using backend = TorchBackend;
  using Function = std::function<torch::Tensor(const torch::Tensor&)>;

  // Any callable Tensor -> Tensor (it must be differentiable for gradient methods).
  explicit TorchModel(Function forward) : forward_(std::move(forward)) {}

  // A TorchScript module; put in eval mode (a copy: the caller's module is not changed).
  explicit TorchModel(const torch::jit::Module& module, ModelOptions options = {})
      : TorchModel(Owned{module.clone()}, options) {}

  // A torch::nn module (e.g. a torch::nn::Sequential or any ModuleHolder with forward(Tensor)),
  // shared with the caller and put in eval mode.
  template <class Holder>
    requires requires(Holder h, torch::Tensor x) { h->eval(); { h->forward(x) } -> std::convertible_to<torch::Tensor>; }
  explicit TorchModel(Holder module) : nn_module_(module_pointer(module)) {
    module->eval();
    forward_ = [module](const torch::Tensor& x) mutable { return module->forward(x); };
  }

  // Loads a TorchScript file; clear errors for missing, unreadable or non-TorchScript files.
  static TorchModel load(const std::filesystem::path& path, ModelOptions options = {}) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) detail::fail_io("cannot load model '", path.string(), "': file not found");
    if (std::filesystem::is_directory(path, ec)) detail::fail_io("cannot load model '", path.string(), "': is a directory");
    try {
      return TorchModel(Owned{torch::jit::load(path.string(), torch::kCPU)}, options);
    } catch (const c10::Error& e) {
      detail::fail_io("cannot load model '", path.string(), "': not a TorchScript file or corrupt (",
                   first_line(e.what_without_backtrace()), ")");
    }
  }

  // Loads a TorchScript module from a stream (e.g. the bytes of a Python ScriptModule's
  // save_to_buffer()); `what` names it in errors.
  static TorchModel load(std::istream& stream, const std::string& what, ModelOptions options = {}) {
    try {
      return TorchModel(Owned{torch::jit::load(stream, torch::kCPU)}, options);
    } catch (const c10::Error& e) {
      detail::fail_io("cannot load ", what, ": not a TorchScript module or corrupt (", first_line(e.what_without_backtrace()), ")");
    }
  }

  // The output with autograd (what gradient methods differentiate).
  torch::Tensor operator()(const torch::Tensor& x) { return call(forward_, x); }

  // Forward-only output: no autograd, inference-optimised copy where available.
  torch::Tensor forward(const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    if (module_ && options_.optimize_for_inference) {
      if (auto optimized = x.dim() > 0 && x.size(0) >= options_.inference_batch ? inference_->module(*module_, parameter_versions()) : std::nullopt) {
        try {
          return output_tensor(optimized->forward({x}), options_.output_element);
        } catch (const std::exception&) {
          // The optimised graph's kernels can refuse what the model accepts (MKLDNN's adaptive
          // pooling wants divisible sizes: VGG at 64x64): the plain module from now on.
          inference_->refuse();
        }
      }
    }
    return call(forward_, x);
  }

  ScoredGradient<torch::Tensor> gradient(const torch::Tensor& x, const ResolvedTarget<torch::Tensor>& target) {
    torch::AutoGradMode enable_grad(true);
    auto input = x.detach().requires_grad_(true);
    auto scores = TorchBackend::select(call(forward_, input), target);
    auto gradient = torch::autograd::grad({scores}, {input}, {torch::ones_like(scores)})[0];
    return {scores.detach(), gradient};
  }

  // The TorchScript module (eval mode) when this model wraps one.
  const std::optional<torch::jit::Module>& module() const { return module_; }
  // The torch::nn module when this model wraps one.
  const std::shared_ptr<torch::nn::Module>& nn_module() const { return nn_module_; }
  const ModelOptions& options() const { return options_; }
  // The model's parameters (shared tensors, module registration order), for parameter
  // randomisation and training. Empty for a plain callable.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, torch::Tensor>> result;
    if (module_)
      for (const auto& p : module_->named_parameters(/*recurse=*/true)) result.emplace_back(p.name, p.value);
    else if (nn_module_)
      for (const auto& p : nn_module_->named_parameters(/*recurse=*/true)) result.emplace_back(p.key(), p.value());
    return result;
  }
  // Moves the module's parameters and buffers to `device` (shared with copies of this model,
  // as the module is) and drops what was derived from them; inputs must then be on `device`.
  // A model made from a plain function cannot be moved: its callable decides where it runs.
  void to(const torch::Device& device) {
    if (module_) module_->to(device);
    else if (nn_module_) nn_module_->to(device);
    else detail::fail("a model made from a plain function cannot be moved to ", device.str(), "; move what it computes with");
    inference_->drop();
    derived_ = std::make_shared<Derived>();
  }
  // The inference-optimised copy folded the parameters' values into constants: it is made
  // again when any parameter or buffer changed in place since (seen by the tensors' version
  // counters; this call drops it at once, e.g. after changes through .data()).
  void parameters_changed() {
    inference_->drop();
    ++*generation_;
  }
  // How many times parameters_changed() was called on this model or its copies (caches of
  // values computed from the parameters compare it).
  int64_t parameter_generation() const { return generation_->load(); }
  // What values derived from the parameters depend on: parameter_generation() and every
  // parameter's and buffer's version counter (bumped by each in-place change). Equal lists mean
  // nothing changed since (a plain function has only the generation).
  std::vector<int64_t> parameter_versions() const {
    std::vector<int64_t> all{parameter_generation()};
    auto add = [&](const torch::Tensor& t) { all.push_back(static_cast<int64_t>(t._version())); };
    if (module_) {
      for (const auto& p : module_->parameters(/*recurse=*/true)) add(p);
      for (const auto& b : module_->buffers(/*recurse=*/true)) add(b);
    } else if (nn_module_) {
      for (const auto& p : nn_module_->parameters(/*recurse=*/true)) add(p);
      for (const auto& b : nn_module_->buffers(/*recurse=*/true)) add(b);
    }
    return all;
  }
  // What another part of the library derives from the model once (the graph executor's
  // program: graph/layers.hpp), by type: made by `make()` on first use, shared by copies.
  // Safe from several threads at once: the first caller makes it while the others wait (a
  // `make` may itself ask for another derived value, hence the recursive lock).
  template <class T, class Make>
  const T& derived(Make&& make) {
    const std::lock_guard<std::recursive_mutex> hold(derived_->mutex);
    auto& slot = derived_->values[std::type_index(typeid(T))];
    if (!slot) slot = std::make_shared<const T>(make());
    return *static_cast<const T*>(slot.get());
  }

  // The output to explain from what the model returned (a tensor, or an element of a tuple).
  static torch::Tensor output_tensor(const c10::IValue& value, int element) {
    if (value.isTensor() && element < 0) return value.toTensor();
    if ((value.isTuple() || value.isList()) && element >= 0) {
      auto elements = value.isTuple() ? value.toTupleRef().elements().vec() : value.toListRef().vec();
      if (element >= static_cast<int>(elements.size()))
        detail::fail("output_element ", element, " out of range: the model returned ", elements.size(), " values");
      if (elements[element].isTensor()) return elements[element].toTensor();
    }
    if (element < 0)
      detail::fail("model returned a ", value.tagKind(),
                   ", expected a single tensor (choose an element with ModelOptions::output_element)");
    detail::fail("model returned a ", value.tagKind(), " whose element ", element, " is not a tensor");
  }

 private:
  struct Owned {
    torch::jit::Module module;  // not shared with the caller: no copy needed
  };
  TorchModel(Owned owned, ModelOptions options) : options_(options), module_(std::move(owned.module)) {
    module_->eval();
    forward_ = [module = *module_, element = options.output_element](const torch::Tensor& x) mutable {
      return output_tensor(module.forward({x}), element);
    };
  }

  template <class Holder>
  static std::shared_ptr<torch::nn::Module> module_pointer(const Holder& holder) {
    if constexpr (requires { holder.ptr(); })
      return holder.ptr();
    else if constexpr (std::is_convertible_v<Holder, std::shared_ptr<torch::nn::Module>>)
      return holder;
    else
      return nullptr;
  }
  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }
  static std::string model_message(const std::string& text) { return detail::model_error_line(text).value_or(first_line(text)); }

  // Model errors (an input size the model rejects, ...) become salient::error naming the input.
  template <class Fn>
  static torch::Tensor call(Fn&& fn, const torch::Tensor& x) {
    try {
      return fn(x);
    } catch (const c10::Error& e) {
      detail::fail("the model rejected an input of shape ", shape_string(x), ": ",
                   model_message(e.what_without_backtrace()));
    } catch (const std::runtime_error& e) {
      if (dynamic_cast<const error*>(&e)) throw;
      detail::fail("the model rejected an input of shape ", shape_string(x), ": ", model_message(e.what()));
    }
  }

  // The frozen, inference-optimised copy of a module, shared by the copies of a TorchModel
  // (they share the module, so a change through one is a change for all).
  class InferenceCopy {
   public:
    // The copy of `source` as it is now (made on first use, and again when `versions`, the
    // source model's parameter_versions(), changed), or none once it failed. A handle: a drop()
    // meanwhile does not end a forward running on it.
    std::optional<torch::jit::Module> module(const torch::jit::Module& source, std::vector<int64_t> versions) {
      const std::lock_guard<std::mutex> hold(mutex_);
      if (refused_) return std::nullopt;
      if (optimized_ && versions != versions_) optimized_.reset();  // a parameter changed in place
      if (!optimized_) {
        versions_ = std::move(versions);
        auto frozen = torch::jit::freeze(source);  // a frozen copy; `source` is unchanged
        optimized_ = torch::jit::optimize_for_inference(frozen);
      }
      return optimized_;
    }
    void drop() {
      const std::lock_guard<std::mutex> hold(mutex_);
      optimized_.reset();
    }
    void refuse() {
      const std::lock_guard<std::mutex> hold(mutex_);
      optimized_.reset();
      refused_ = true;
    }

   private:
    std::mutex mutex_;
    std::optional<torch::jit::Module> optimized_;
    std::vector<int64_t> versions_;
    bool refused_ = false;  // the optimised copy failed on an input the module may accept
  };

  ModelOptions options_{};
  Function forward_;
  std::optional<torch::jit::Module> module_;
  std::shared_ptr<InferenceCopy> inference_ = std::make_shared<InferenceCopy>();
  std::shared_ptr<std::atomic<int64_t>> generation_ = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<torch::nn::Module> nn_module_;
  struct Derived {
    std::recursive_mutex mutex;
    std::map<std::type_index, std::shared_ptr<const void>> values;
  };
  std::shared_ptr<Derived> derived_ = std::make_shared<Derived>();
};
static_assert(Model<TorchModel>);

// The parameter capability (core/parameters.hpp): the module's parameters, changed in place
// (the inference-optimised copy is dropped after every change).
inline std::vector<ParameterInfo> parameter_list(const TorchModel& model) {
  std::vector<ParameterInfo> list;
  for (const auto& [name, tensor] : model.named_parameters()) list.push_back({name, tensor.sizes().vec()});
  return list;
}

struct TorchParameterSnapshot {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;  // live parameter, its copy
};

inline TorchParameterSnapshot snapshot_parameters(const TorchModel& model) {
  TorchParameterSnapshot snapshot;
  for (const auto& [name, tensor] : model.named_parameters()) snapshot.saved.push_back({tensor, tensor.detach().clone()});
  return snapshot;
}

inline void restore_parameters(TorchModel& model, const TorchParameterSnapshot& snapshot) {
  torch::NoGradGuard no_grad;
  for (const auto& [live, copy] : snapshot.saved) live.detach().copy_(copy);
  model.parameters_changed();
}

inline void set_parameter(TorchModel& model, const std::string& name, const std::vector<double>& values) {
  for (const auto& [n, live] : model.named_parameters()) {
    if (n != name) continue;
    if (static_cast<int64_t>(values.size()) != live.numel())
      detail::fail("parameter '", name, "' has ", live.numel(), " values, got ", values.size());
    torch::NoGradGuard no_grad;
    auto source = torch::from_blob(const_cast<double*>(values.data()), live.sizes(), torch::kDouble);
    live.detach().copy_(source);
    model.parameters_changed();
    return;
  }
  detail::fail("the model has no parameter '", name, "'");
}
static_assert(ParameterModel<TorchModel>);

}  // namespace salient
