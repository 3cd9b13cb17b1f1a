// The Python module's C++ side (`salient._salient`): the method registry of
// attribution/torch_registry.hpp on torch tensors. python/salient/__init__.py turns each
// registry entry into `salient.<name>(model, inputs, target, **options)`.
//
// Tensors cross without copies and without DLPack: Debian's python3-torch and libtorch-dev are
// one LibTorch (libtorch.so.1.13), so a torch.Tensor *is* an at::Tensor behind a Python object
// (torch/csrc/utils/pybind.h unwraps and wraps it). TorchScript modules cross as their
// serialised bytes (the Python side caches the loaded model per module), since a
// torch.jit.ScriptModule's C++ object belongs to torch._C's pybind11 registry, not ours.
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <dlfcn.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "salient/analysis/entities.hpp"
#include "salient/analysis/torch_certificate.hpp"
#include "salient/analysis/torch_topk.hpp"
#include "salient/attribution/torch_registry.hpp"
#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/metric_registry.hpp"
#include "salient/evaluation/sanity.hpp"
#include "salient/io/certificate.hpp"
#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"
#include "salient/masking/maskers.hpp"

namespace py = pybind11;

namespace salient::python {

// What every computation runs under, as the tools run (cli.hpp's configure_process): the GIL
// released (other Python threads run meanwhile); TorchScript's simple graph executor (the
// profiling executor re-profiles every new input shape, seconds each); and one OpenBLAS thread
// per calling thread (LibTorch already spreads a batch over its threads; OpenBLAS's own pool
// only contends with them, and its threaded GEMM rounds differently, so maps would differ
// from the tools' in the last bits). Both settings are process-wide: they are set while any
// computation of this module runs and restored after the last, so the caller's own code keeps
// its settings between calls.
class Computing {
 public:
  Computing() {
    std::lock_guard lock(state().mutex);
    auto& s = state();
    if (s.active++ > 0) return;
    s.executor_mode = torch::jit::getExecutorMode();
    torch::jit::getExecutorMode() = false;
    if (s.get_blas_threads && s.set_blas_threads) {
      s.blas_threads = s.get_blas_threads();
      if (s.blas_threads != 1) s.set_blas_threads(1);
    }
  }
  ~Computing() {
    std::lock_guard lock(state().mutex);
    auto& s = state();
    if (--s.active > 0) return;
    torch::jit::getExecutorMode() = s.executor_mode;
    if (s.get_blas_threads && s.set_blas_threads && s.blas_threads != 1) s.set_blas_threads(s.blas_threads);
  }
  Computing(const Computing&) = delete;
  Computing& operator=(const Computing&) = delete;

 private:
  struct State {
    std::mutex mutex;
    int active = 0;  // computations running
    bool executor_mode = true;
    int blas_threads = 1;
    // OpenBLAS where it is the BLAS (Debian's alternatives); nothing to do with another.
    int (*get_blas_threads)() = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    void (*set_blas_threads)(int) = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  };
  static State& state() {
    static State s;
    return s;
  }
  py::gil_scoped_release release_;  // first: the lock is never waited for while holding the GIL
};

// A model as Python holds it: shared, so that calls from several Python threads use one model
// (TorchModel's derived state is locked; stop 42's test).
struct Model {
  std::shared_ptr<TorchModel> model;
  std::string source;  // for repr and errors: a path, "a TorchScript module" or "a Python callable"
};

// ModelOptions from Python, with the tools' default: forward-only calls on the frozen,
// inference-optimised copy (so a Python call gives what salient-explain writes).
ModelOptions model_options(bool optimize_for_inference, bool incremental, int output_element) {
  if (output_element < -1) detail::fail("output_element must be -1 (a single output) or an index, got ", output_element);
  return {.optimize_for_inference = optimize_for_inference, .incremental = incremental, .output_element = output_element};
}

Model load_path(const std::string& path, bool optimize_for_inference, bool incremental, int output_element) {
  const auto options = model_options(optimize_for_inference, incremental, output_element);
  Computing computing;
  return {std::make_shared<TorchModel>(TorchModel::load(path, options)), path};
}

Model load_bytes(const py::bytes& bytes, bool optimize_for_inference, bool incremental, int output_element) {
  std::istringstream stream(std::string{bytes});
  const auto options = model_options(optimize_for_inference, incremental, output_element);
  Computing computing;
  return {std::make_shared<TorchModel>(TorchModel::load(stream, "the TorchScript module", options)), "a TorchScript module"};
}

// A Python object's type, for errors ("str", "float", ...).
std::string type_name(const py::handle& object) { return py::str(py::type::of(object).attr("__name__")); }

// A Python object kept by C++ code that runs without the GIL (a model callable, a progress
// callback): shared, and let go of under the GIL wherever the last copy goes.
template <class Object>
std::shared_ptr<Object> held_with_gil(Object object) {
  return std::shared_ptr<Object>(new Object(std::move(object)), [](Object* held) {
    py::gil_scoped_acquire gil;
    delete held;
  });
}

// Any Python callable Tensor -> Tensor. The methods run with the GIL released, so the call
// takes it back.
Model from_callable(py::function function) {
  auto held = held_with_gil(std::move(function));
  return {std::make_shared<TorchModel>([held](const torch::Tensor& x) {
            py::gil_scoped_acquire gil;
            py::object result = (*held)(x);
            if (!THPVariable_Check(result.ptr()))
              detail::fail("the model callable returned a ", type_name(result),
                           ", not a torch.Tensor");
            return result.cast<torch::Tensor>();
          }),
          "a Python callable"};
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& n : names) text += (text.empty() ? "" : ", ") + n;
  return text;
}

// A Python option value as the registry's text form: bool true/false, integers and floats
// exactly (repr round-trips), strings as they are, sequences comma-joined.
std::string option_text(const std::string& name, const py::handle& value) {
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::int_>(value)) return std::string(py::str(value));
  if (py::isinstance<py::float_>(value)) {
    if (!std::isfinite(value.cast<double>())) detail::fail("option ", name, " must be finite, got ", std::string(py::repr(value)));
    return std::string(py::repr(value));
  }
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    std::string text;
    for (const auto& item : value) {
      if (py::isinstance<py::list>(item) || py::isinstance<py::tuple>(item))
        detail::fail("option ", name, " takes a flat list, got ", std::string(py::repr(value)));
      text += (text.empty() ? "" : ",") + option_text(name, item);
    }
    return text;
  }
  detail::fail("option ", name, " cannot be a ", type_name(value));
}

// A Python progress(done, total) callable as the C++ callback (none for None), called with
// the GIL taken back.
Progress progress_of(const py::object& progress) {
  if (progress.is_none()) return {};
  if (!PyCallable_Check(progress.ptr())) detail::fail("progress must be a callable progress(done, total), got a ", type_name(progress));
  auto held = held_with_gil(progress);
  return [held](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    (*held)(done, total);
  };
}

// Keyword options -> the settings the method runs with: the method's own options (its options
// struct's fields), and masker, segments and baseline where the method uses them (they appear
// in its parameters), normalization for all. Unknown names are errors that list the known ones.
MethodSettings settings_of(const MethodEntry& entry, const py::dict& options, const py::object& progress) {
  MethodSettings settings;
  const auto defaults = entry.parameters(settings);
  for (const auto& [key, value] : options) {
    const auto name = py::cast<std::string>(key);
    if (value.is_none()) continue;  // None: the default
    const bool own = std::find(entry.option_names.begin(), entry.option_names.end(), name) != entry.option_names.end();
    const bool shared = name == "normalization" || ((name == "masker" || name == "segments" || name == "baseline") &&
                                                    defaults.contains(name));
    if (!own && !shared)
      detail::fail("unknown option '", name, "' for ", entry.name, " (its options: ", joined(entry.option_names),
                   defaults.contains("masker") ? ", masker" : "", defaults.contains("segments") ? ", segments" : "",
                   defaults.contains("baseline") ? ", baseline" : "", ", normalization)");
    const auto text = option_text(name, value);
    if (own) settings.options[name] = text;
    else if (name == "masker") settings.masker = text;
    else if (name == "segments") settings.segments = text;
    else if (name == "baseline") settings.baseline = text;
    else settings.normalization = parse_normalization(text);
  }
  settings.progress = progress_of(progress);
  entry.parameters(settings);  // every value checked before any work
  return settings;
}

TargetOf<TorchModel> target_of(const py::object& target) {
  if (target.is_none()) return top1;
  if (py::isinstance<py::bool_>(target)) detail::fail("target must be a class index, a list of them or None, got a bool");
  if (py::isinstance<py::int_>(target)) return target.cast<int64_t>();
  if (py::isinstance<py::list>(target) || py::isinstance<py::tuple>(target)) {
    std::vector<int64_t> classes;
    for (const auto& item : target) {
      if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
        detail::fail("target list must hold class indices (ints), got ", std::string(py::repr(item)));
      classes.push_back(item.cast<int64_t>());
    }
    return classes;
  }
  if (THPVariable_Check(target.ptr())) {
    const auto t = target.cast<torch::Tensor>();
    if (t.dim() > 1 || !(t.scalar_type() == torch::kLong || t.scalar_type() == torch::kInt))
      detail::fail("a target tensor must hold integer class indices, one per input (shape [N]), got ",
                   shape_string(t), " of ", t.dtype().name());
    const auto longs = t.to(torch::kLong).contiguous();
    if (t.dim() == 0) return longs.item<int64_t>();
    return std::vector<int64_t>(longs.data_ptr<int64_t>(), longs.data_ptr<int64_t>() + longs.numel());
  }
  detail::fail("target must be a class index, a list of them, an integer tensor or None (top-1), got a ",
               type_name(target));
}

// What every method takes: a float32 CPU tensor [N,C,H,W], contiguous, finite.
void check_inputs(const py::handle& object) {
  if (!THPVariable_Check(object.ptr()))
    detail::fail("inputs must be a torch.Tensor [N,C,H,W], got a ", type_name(object));
  const auto inputs = object.cast<torch::Tensor>();
  if (!inputs.device().is_cpu())
    detail::fail("inputs are on ", inputs.device().str(), "; this salient runs on the CPU (LibTorch from Debian has no "
                 "CUDA): pass inputs.cpu()");
  if (inputs.scalar_type() != torch::kFloat)
    detail::fail("inputs must be float32, got ", inputs.dtype().name(), " (pass inputs.float())");
  if (inputs.dim() != 4) detail::fail("inputs must have shape [N,C,H,W], got ", shape_string(inputs));
  if (inputs.size(0) == 0) detail::fail("inputs must be a batch with at least one item, got ", shape_string(inputs));
  if (!inputs.is_contiguous())
    detail::fail("inputs are not contiguous (strides ", inputs.strides(), "); pass inputs.contiguous()");
  TorchBackend::check_finite(inputs, "inputs");
}

// Seconds the last attribute() call of this thread spent in C++ (the call overhead benchmark).
thread_local double last_seconds = 0;

// The map, or (map, delta) with `return_delta`: sum(map) - (F(x) - F(baseline)) per input,
// float64 [N], as Captum's return_convergence_delta.
py::object attribute(const std::string& method, const Model& model, const py::object& inputs, const py::object& target,
                     const py::dict& options, const py::object& progress, bool return_delta) {
  const auto& entry = find_method(method);
  if (return_delta && !entry.has_delta) {
    std::vector<std::string> with;
    for (const auto& m : methods())
      if (m.has_delta) with.push_back(m.name);
    detail::fail(entry.name, " has no convergence delta (", joined(with), " have one)");
  }
  check_inputs(inputs);
  const auto x = inputs.cast<torch::Tensor>().detach();  // the caller's autograd history stays theirs
  const auto settings = settings_of(entry, options, progress);
  const auto resolved = target_of(target);
  torch::Tensor map, delta;
  {
    Computing computing;
    const auto start = std::chrono::steady_clock::now();
    map = entry.run(*model.model, x, resolved, settings);
    last_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (return_delta)
      delta = torch::tensor(entry.delta(*model.model, x, resolved, map, settings), torch::kDouble);
  }
  if (!return_delta) return py::cast(map);
  return py::make_tuple(map, delta);
}

// The regions of one input [1,C,H,W] by a --segments spec (slic:N[:compactness],
// felzenszwalb:SCALE[:SIGMA:MIN_SIZE], grid:CELL, or model:FILE.pt, a segmentation model's):
// an int64 label map [H,W], labels 0..count-1.
torch::Tensor segment(const py::object& image, const std::string& spec, const std::string& normalization) {
  check_inputs(image);
  const auto x = image.cast<torch::Tensor>();
  if (x.size(0) != 1) detail::fail("segment takes one input [1,C,H,W], got ", shape_string(x));
  const auto normalized = parse_normalization(normalization);
  Computing computing;
  return segments_by_spec(spec, x, normalized);
}

// The model's outputs on `image` [1,C,H,W] or [N,C,H,W] with `masks` (1 = keep; [K,1,H,W],
// [1,1,H,W] or [H,W]) applied by the named masker (make_masker: layer, zero, mean, black, grey,
// blur, noise), forward passes in batches of `batch_size`.
torch::Tensor masked_outputs(const Model& model, const py::object& image, const torch::Tensor& masks,
                             const std::string& masker, int64_t batch_size, const std::string& normalization,
                             uint64_t seed) {
  check_inputs(image);
  if (batch_size < 1 || batch_size > 4096) detail::fail("batch_size must be in 1..4096, got ", batch_size);
  const auto chosen = make_masker(masker, {.normalization = parse_normalization(normalization), .seed = seed});
  const auto x = image.cast<torch::Tensor>().detach();
  const auto m = masks.detach().to(torch::kFloat);
  TorchBackend::check_finite(m, "masks");
  Computing computing;
  return chosen.outputs(*model.model, x, m, {.batch_size = batch_size});
}

// One claim of a certificate: its mask's name and the classes that must be, and must not be,
// in the top-k of the masked input.
py::dict claim_dict(const TopkClaim& claim) {
  py::dict c;
  c["mask"] = claim.mask;
  c["in_top_k"] = claim.in_top_k;
  c["not_in_top_k"] = claim.not_in_top_k;
  return c;
}

// A top-k certificate checked as `salient-topk verify` checks it, from files: the certificate
// (JSON and mask PNGs), the model and the image it names by SHA-256; the model runs on the
// image at the certificate's size. A certificate that is malformed, edited, about other files
// or whose claims do not hold gives holds = False and the reason; a model or image that cannot
// be read raises.
py::dict verify_files(const std::string& certificate_path, const std::string& model_path, const std::string& image_path,
                      const std::string& normalization) {
  const std::map<std::string, SubjectFile> files{{"model", subject_file(model_path, "model")},
                                                 {"image", subject_file(image_path, "image")}};
  const auto normalized = parse_normalization(normalization);
  auto model = TorchModel::load(model_path);
  py::dict result;
  TopkCertificate certificate;
  Verification verification;
  try {
    Computing computing;
    certificate = load_certificate(certificate_path);
    check_certificate_subject(certificate, files);
    const auto input = load_input(image_path, {certificate.height, normalized});
    verification = verify(model, input, certificate);
  } catch (const error& e) {
    result["holds"] = false;
    result["rejected"] = std::string(e.what());
    return result;
  }
  result["holds"] = verification.holds();
  result["rejected"] = py::none();
  result["relation"] = std::string(to_string(certificate.relation));
  result["class_a"] = certificate.class_a;
  result["class_b"] = certificate.class_b;
  result["k"] = certificate.k;
  result["masker"] = certificate.masker;
  result["image_top_k"] = verification.image_top_k;
  result["classes_in_top_k"] = verification.classes_in_top_k;
  py::list checks;
  for (const auto& check : verification.checks) {
    auto c = claim_dict(check.claim);
    c["holds"] = check.holds;
    c["top_k"] = check.top_k;
    checks.append(c);
  }
  result["checks"] = checks;
  return result;
}

// A metric's keyword options as its text options (names and values are checked by the entry's
// bind, before any work).
MetricOptions metric_options_of(const py::dict& options) {
  MetricOptions given;
  for (const auto& [key, value] : options) {
    if (value.is_none()) continue;
    const auto name = py::cast<std::string>(key);
    given[name] = option_text(name, value);
  }
  return given;
}

// One score per input of `metric` (salient-evaluate's catalogue, evaluation/metric_registry.hpp)
// for the map of each input's class, float64 [N]. The maps are `attributions` [N,C',H,W], or
// `method`'s (computed here one input at a time, as salient-evaluate does, and reused where a
// metric explains the unchanged model again). `masks` [H,W] or [N,H,W]: the object (1) for the
// localisation metrics.
torch::Tensor evaluate(const std::string& metric, const Model& model, const py::object& inputs, const py::object& attributions,
                       const py::object& target, const py::object& method, const py::dict& method_options,
                       const py::object& masks, const py::object& progress, const py::dict& options) {
  const auto& entry = find_metric(metric);
  const auto report = progress_of(progress);
  const auto bound = entry.bind(metric_options_of(options));
  check_inputs(inputs);
  const auto x = inputs.cast<torch::Tensor>().detach();
  const int64_t n = x.size(0);
  std::optional<Method<TorchModel>> explain;
  if (!method.is_none()) {
    const auto& method_entry = find_method(py::cast<std::string>(method));
    explain = method_entry.bind(settings_of(method_entry, method_options, py::none()));
  } else if (!method_options.empty()) {
    detail::fail("method_options without a method");
  }
  torch::Tensor given;
  if (!attributions.is_none()) {
    if (!THPVariable_Check(attributions.ptr()))
      detail::fail("attributions must be a torch.Tensor [N,C,H,W], got a ", type_name(attributions));
    given = attributions.cast<torch::Tensor>().detach();
    if (given.dim() != 4 || given.size(0) != n || given.size(2) != x.size(2) || given.size(3) != x.size(3))
      detail::fail("attributions must have shape [N,C,H,W] with the inputs' N, H and W (", shape_string(x), "), got ",
                   shape_string(given));
    if (!given.device().is_cpu()) detail::fail("attributions are on ", given.device().str(), "; pass attributions.cpu()");
    TorchBackend::check_finite(given, "attributions");
  } else if (!explain) {
    detail::fail("evaluate needs the maps: pass attributions, or a method to compute them");
  }
  if (entry.needs_method && !explain)
    detail::fail("metric '", entry.name, "' explains changed inputs or a randomised model again: pass method= (and "
                 "method_options=) as well");
  torch::Tensor mask_tensor;
  if (!masks.is_none()) {
    if (!THPVariable_Check(masks.ptr())) detail::fail("masks must be a torch.Tensor [H,W] or [N,H,W], got a ", type_name(masks));
    mask_tensor = masks.cast<torch::Tensor>().detach().to(torch::kFloat);
    if (!(mask_tensor.dim() == 2 || (mask_tensor.dim() == 3 && mask_tensor.size(0) == n)))
      detail::fail("masks must have shape [H,W] (one for every input) or [N,H,W], got ", shape_string(mask_tensor));
  } else if (entry.needs_mask) {
    detail::fail("metric '", entry.name, "' needs masks= (the object's pixels, 1 = object)");
  }
  const auto resolved = target_of(target);
  Computing computing;
  const auto classes = resolve_target(*model.model, x, resolved);
  if (classes.is_custom()) detail::fail("evaluate needs a class target (one class per input)");
  auto scores = torch::empty({n}, torch::kDouble);
  auto* out = scores.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    const auto input = x.slice(0, i, i + 1);
    const int64_t cls = classes.classes.at(static_cast<size_t>(i));
    const auto attribution = given.defined() ? given.slice(0, i, i + 1) : (*explain)(*model.model, input, Target(cls));
    const torch::Tensor map = attribution.sum(1, true).to(torch::kFloat32);
    int64_t version = parameter_version(*model.model);
    std::optional<Method<TorchModel>> reused;
    if (explain) reused = given.defined() ? *explain : reusing_map(*explain, input, cls, attribution, &version);
    const std::optional<torch::Tensor> mask =
        mask_tensor.defined() ? std::optional<torch::Tensor>(mask_tensor.dim() == 2 ? mask_tensor : mask_tensor[i]) : std::nullopt;
    const MetricInput in{*model.model, input, cls, map, reused ? &*reused : nullptr, mask};
    out[i] = bound(in);
    if (report) report(i + 1, n);
  }
  return scores;
}

// The methods of a sanity test: a list of names (default options) or a dict name -> options.
std::vector<SanityMethod> sanity_methods(const py::object& methods) {
  std::vector<SanityMethod> out;
  const auto add = [&](const py::handle& name, const py::dict& options) {
    if (!py::isinstance<py::str>(name)) detail::fail("methods must be names (str), got a ", type_name(name));
    const auto& entry = find_method(name.cast<std::string>());
    out.push_back({entry.name, entry.bind(settings_of(entry, options, py::none()))});
  };
  if (py::isinstance<py::dict>(methods)) {
    for (const auto& [name, options] : methods.cast<py::dict>()) {
      if (!options.is_none() && !py::isinstance<py::dict>(options))
        detail::fail("methods as a dict map each name to its options dict, got a ", type_name(options));
      add(name, options.is_none() ? py::dict() : options.cast<py::dict>());
    }
  } else if (py::isinstance<py::str>(methods)) {
    add(methods, py::dict());
  } else if (py::isinstance<py::list>(methods) || py::isinstance<py::tuple>(methods)) {
    for (const auto& name : methods) add(name, py::dict());
  } else {
    detail::fail("methods must be a name, a list of names or a dict name -> options, got a ", type_name(methods));
  }
  if (out.empty()) detail::fail("no methods to test");
  if (out.size() > 64) detail::fail("at most 64 methods per test, got ", out.size());
  return out;
}

// Similarities [..., input] as four float64 tensors of `shape`, one per measure.
py::dict similarity_tensors(const std::vector<MapSimilarity>& flat, const std::vector<int64_t>& shape) {
  py::dict out;
  const std::pair<const char*, double MapSimilarity::*> measures[] = {
      {"spearman_abs", &MapSimilarity::spearman_abs}, {"spearman", &MapSimilarity::spearman},
      {"ssim", &MapSimilarity::ssim}, {"hog", &MapSimilarity::hog}};
  for (const auto& [name, member] : measures) {
    auto values = torch::empty(shape, torch::kDouble);
    auto* data = values.data_ptr<double>();
    for (size_t i = 0; i < flat.size(); ++i) data[i] = flat[i].*member;
    out[name] = values;
  }
  return out;
}

py::list tensor_lists(const std::vector<std::vector<torch::Tensor>>& maps) {
  py::list out;
  for (const auto& step : maps) out.append(py::cast(step));
  return out;
}

// The model parameter randomisation test (Adebayo et al. 2018; salient-sanity's): each method's
// maps on the model and after each step of randomising its layer groups, compared with the
// original maps. The model's parameters are restored afterwards.
py::dict parameter_randomisation(const Model& model, const py::object& inputs, const py::object& methods,
                                 const py::object& target, const std::string& mode, const std::string& init,
                                 int64_t group_depth, const std::vector<std::string>& groups, uint64_t seed,
                                 bool keep_maps, const py::object& progress) {
  check_inputs(inputs);
  const auto x = inputs.cast<torch::Tensor>().detach();
  const auto tested = sanity_methods(methods);
  RandomisationTestOptions options{.keep_maps = keep_maps};
  if (mode == "cascading") options.randomisation.mode = RandomisationMode::cascading;
  else if (mode == "independent") options.randomisation.mode = RandomisationMode::independent;
  else detail::fail("mode must be cascading or independent, got '", mode, "'");
  if (init == "default") options.randomisation.init.scheme = Reinitialisation::layer_default;
  else if (init == "normal") options.randomisation.init.scheme = Reinitialisation::normal;
  else if (init == "uniform") options.randomisation.init.scheme = Reinitialisation::uniform;
  else detail::fail("init must be default, normal or uniform, got '", init, "'");
  if (group_depth < 0 || group_depth > 16) detail::fail("group_depth must be in 0..16, got ", group_depth);
  options.randomisation.group_depth = static_cast<int>(group_depth);
  options.randomisation.groups = groups;
  options.randomisation.init.seed = seed;
  if (const auto report = progress_of(progress)) {
    // Steps: the original model and one per randomised group.
    const auto total = 1 + static_cast<int64_t>(groups.empty() ? parameter_groups(*model.model, options.randomisation.group_depth).size()
                                                               : groups.size());
    options.on_step = [report, total](const RandomisationStep& step) { report(step.index + 1, total); };
  }
  const auto resolved = target_of(target);
  RandomisationTestResult result;
  {
    Computing computing;
    result = parameter_randomisation_test(*model.model, x, resolved, tested, options);
  }
  py::dict out;
  out["methods"] = result.methods;
  out["targets"] = result.targets;
  py::list steps;
  std::vector<MapSimilarity> flat;
  for (size_t s = 0; s < result.steps.size(); ++s) {
    py::dict step;
    step["index"] = result.steps[s].index;
    step["group"] = result.steps[s].group;
    step["randomised"] = result.steps[s].randomised;
    steps.append(step);
    for (const auto& method : result.similarity[s]) flat.insert(flat.end(), method.begin(), method.end());
  }
  out["steps"] = steps;
  out["similarity"] = similarity_tensors(flat, {static_cast<int64_t>(result.steps.size()),
                                                static_cast<int64_t>(result.methods.size()), x.size(0)});
  out["maps"] = keep_maps ? py::object(tensor_lists(result.maps)) : py::object(py::none());
  return out;
}

// The data randomisation test: each method's maps for a model trained on the true labels and for
// the same architecture trained on permuted labels, and their similarity.
py::dict data_randomisation(const Model& trained, const Model& permuted, const py::object& inputs, const py::object& methods,
                            const py::object& target) {
  check_inputs(inputs);
  const auto x = inputs.cast<torch::Tensor>().detach();
  const auto tested = sanity_methods(methods);
  const auto resolved = target_of(target);
  DataRandomisationResult result;
  {
    Computing computing;
    result = data_randomisation_test(*trained.model, *permuted.model, x, resolved, tested);
  }
  std::vector<MapSimilarity> flat;
  for (const auto& method : result.similarity) flat.insert(flat.end(), method.begin(), method.end());
  py::dict out;
  out["methods"] = result.methods;
  out["similarity"] = similarity_tensors(flat, {static_cast<int64_t>(result.methods.size()), x.size(0)});
  out["trained_maps"] = result.trained_maps;
  out["permuted_maps"] = result.permuted_maps;
  return out;
}

// A top-k certificate's claims as Python dicts.
py::list claims_of(const TopkCertificate& certificate) {
  py::list claims;
  for (const auto& claim : certificate.claims) claims.append(claim_dict(claim));
  return claims;
}

// Writes a certificate as salient-topk does (JSON at `path`, its mask PNGs beside it), naming
// the model and image files (and a composite's second image) by SHA-256 so that `verify` can
// check them. Refuses to replace any existing file: a certificate is written once, new.
py::list save_certificate_files(const TopkCertificate& certificate, const std::string& path, const std::string& model_path,
                                const std::string& image_path, const std::string& composite_path) {
  namespace fs = std::filesystem;
  TopkCertificate subjectful = certificate;
  subjectful.subject = {{"model", subject_file(model_path, "model").sha256}, {"image", subject_file(image_path, "image").sha256}};
  if (!composite_path.empty()) subjectful.subject["composite"] = subject_file(composite_path, "image").sha256;
  const fs::path json_path(path);
  if (json_path.extension() != ".json") detail::fail("a certificate's file name ends in .json, got '", path, "'");
  std::vector<fs::path> files{json_path};
  for (const auto& [name, mask] : certificate.masks) files.push_back(json_path.parent_path() / certificate_mask_file(json_path, name));
  for (const auto& file : files)
    if (fs::exists(fs::symlink_status(file))) detail::fail("'", file.string(), "' exists; a certificate is written only as new files");
  {
    Computing computing;
    save_certificate(subjectful, json_path);
  }
  py::list written;
  for (const auto& file : files) written.append(file.string());
  return written;
}

// The top-k search of salient-topk on one input [1,C,H,W]: the model's k highest classes, each
// explained by `method`; entities from a segmentation model ("model:FILE.pt"), from the maps
// over superpixels ("attribution", with `segments`) or given as a label map [H,W] (0 =
// background); every pair decided one or two entities with a certificate, or left undecided.
py::dict disambiguate(const Model& model, const py::object& image, int64_t k, const std::string& method,
                      const py::dict& method_options, const py::object& entities, const std::string& segments,
                      const std::string& masker, double coverage, double min_area, int64_t max_entities, int64_t segmenter_size,
                      double max_entity_area, double min_split_relevance, int64_t batch_size, const std::string& normalization) {
  check_inputs(image);
  const auto input = image.cast<torch::Tensor>().detach();
  if (input.size(0) != 1) detail::fail("disambiguate_topk takes one input [1,C,H,W], got ", shape_string(input));
  if (k < 2 || k > 20) detail::fail("k must be in 2..20 (as salient-topk), got ", k);
  if (batch_size < 1 || batch_size > 4096) detail::fail("batch_size must be in 1..4096, got ", batch_size);
  if (max_entities < 1 || max_entities > 255) detail::fail("max_entities must be in 1..255, got ", max_entities);
  if (segmenter_size < 0 || segmenter_size > 4096) detail::fail("segmenter_size must be in 0..4096, got ", segmenter_size);
  const auto& entry = find_method(method);
  auto settings = settings_of(entry, method_options, py::none());
  settings.normalization = parse_normalization(normalization);
  const EntityOptions entity_options{.coverage = coverage, .min_area = min_area, .max_entities = max_entities,
                                     .segmenter_size = segmenter_size};
  TopkOptions topk{.k = k, .masker = masker, .max_entity_area = max_entity_area, .min_split_relevance = min_split_relevance};
  topk.masker_options.batch_size = batch_size;
  make_masker(masker);  // an unknown masker's error before any work
  std::string source = "attribution";
  torch::Tensor given;
  if (py::isinstance<py::str>(entities)) {
    source = entities.cast<std::string>();
    if (source != "attribution" && source.rfind("model:", 0) != 0)
      detail::fail("entities must be \"attribution\", \"model:FILE.pt\" or a label map [H,W], got '", source, "'");
  } else if (THPVariable_Check(entities.ptr())) {
    given = entities.cast<torch::Tensor>().detach().to(torch::kLong).contiguous();
    if (given.dim() != 2 || given.size(0) != input.size(2) || given.size(1) != input.size(3))
      detail::fail("an entity label map must be [H,W] of the input's size, got ", shape_string(given));
  } else {
    detail::fail("entities must be \"attribution\", \"model:FILE.pt\" or a label map [H,W], got a ", type_name(entities));
  }
  TopkDisambiguation result;
  {
    Computing computing;
    const auto [classes, probabilities] = top_k_classes(*model.model, input, k);
    std::vector<torch::Tensor> maps;
    for (auto c : classes) maps.push_back(entry.run(*model.model, input, Target(c), settings)[0].sum(0));
    const auto attributions = torch::stack(maps);
    torch::Tensor labels = given;
    if (!labels.defined() && source == "attribution") {
      labels = attribution_entities(segment_input(segments, input, settings.normalization), attributions, entity_options);
    } else if (!labels.defined()) {
      auto segmenter = TorchModel::load(source.substr(6));
      labels = segmentation_entities(segmenter, input, entity_options);
    }
    result = disambiguate_topk(*model.model, input, labels, attributions, topk);
  }
  py::dict out;
  out["classes"] = result.classes;
  out["probabilities"] = result.probabilities;
  out["entities"] = result.entities;
  out["entity_count"] = result.entity_count;
  out["relevance"] = result.relevance;
  out["top_k_kept_alone"] = result.top_k_kept_alone;
  out["top_k_removed"] = result.top_k_removed;
  out["masked_inputs"] = result.masked_inputs;
  py::list pairs;
  for (const auto& pair : result.pairs) {
    py::dict p;
    p["class_a"] = pair.class_a;
    p["class_b"] = pair.class_b;
    p["relation"] = std::string(to_string(pair.relation));
    p["split_entity"] = pair.split_entity;
    p["reason"] = pair.reason;
    p["certificate"] = pair.certificate ? py::cast(*pair.certificate) : py::object(py::none());
    pairs.append(p);
  }
  out["pairs"] = pairs;
  return out;
}

// Every metric with its facts and its options' defaults (JSON text, as methods_json).
std::string metrics_json() {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : metrics())
    list.push_back({{"name", m.name},
                    {"category", m.category},
                    {"definition", m.definition},
                    {"higher_is_better", m.higher_is_better},
                    {"needs_mask", m.needs_mask},
                    {"needs_method", m.needs_method},
                    {"options", m.option_names},
                    {"defaults", m.parameters({})}});
  return list.dump();
}

// Every method with its facts and its options' defaults (as JSON text; the Python side parses it).
std::string methods_json() {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : methods())
    list.push_back({{"name", m.name},
                    {"aliases", m.aliases},
                    {"summary", m.summary},
                    {"signed", m.is_signed},
                    {"multiplies_input", m.multiplies_input},
                    {"has_delta", m.has_delta},
                    {"needs", std::string(to_string(m.needs))},
                    {"map", std::string(to_string(m.shape))},
                    {"options", m.option_names},
                    {"defaults", m.parameters(MethodSettings{})}});
  return list.dump();
}

}  // namespace salient::python

PYBIND11_MODULE(_salient, m) {
  using namespace salient::python;
  m.doc() = "salient's C++ methods on torch tensors (import salient, not this module)";
  static py::exception<salient::error> error(m, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const salient::error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });
  py::class_<Model>(m, "Model")
      .def_static("load", &load_path, py::arg("path"), py::arg("optimize_for_inference") = true,
                  py::arg("incremental") = true, py::arg("output_element") = -1, "A TorchScript file.")
      .def_static("from_bytes", &load_bytes, py::arg("data"), py::arg("optimize_for_inference") = true,
                  py::arg("incremental") = true, py::arg("output_element") = -1,
                  "A TorchScript module's bytes (ScriptModule.save_to_buffer()).")
      .def_static("from_callable", &from_callable, py::arg("function"), "Any callable Tensor -> Tensor.")
      .def("__call__", [](const Model& model, const torch::Tensor& x) {
        Computing computing;
        torch::NoGradGuard no_grad;
        return model.model->forward(x);
      })
      .def_readonly("source", &Model::source)
      .def("__repr__", [](const Model& model) { return "salient.Model(" + model.source + ")"; });
  m.def("attribute", &attribute, py::arg("method"), py::arg("model"), py::arg("inputs"), py::arg("target"),
        py::arg("options"), py::arg("progress"), py::arg("return_delta"));
  m.def("segment", &segment, py::arg("image"), py::arg("spec"), py::arg("normalization"));
  m.def("masked_outputs", &masked_outputs, py::arg("model"), py::arg("image"), py::arg("masks"), py::arg("masker"),
        py::arg("batch_size"), py::arg("normalization"), py::arg("seed"));
  m.def("load_input", [](const std::string& path, int64_t size, const std::string& normalization) {
        if (size < 1 || size > 4096) salient::detail::fail("size must be in 1..4096, got ", size);
        const salient::Preprocessing preprocessing{size, salient::parse_normalization(normalization)};
        Computing computing;
        return salient::load_input(path, preprocessing);
      }, py::arg("path"), py::arg("size"), py::arg("normalization"));
  m.def("verify", &verify_files, py::arg("certificate"), py::arg("model"), py::arg("image"), py::arg("normalization"));
  m.def("last_seconds", [] { return last_seconds; }, "Seconds the last attribute() call of this thread spent in C++.");
  m.def("methods_json", &methods_json);
  m.def("metrics_json", &metrics_json);
  py::class_<salient::TopkCertificate>(m, "Certificate", "A top-k certificate (salient-topk's); save() writes it for verify().")
      .def_property_readonly("relation", [](const salient::TopkCertificate& c) { return std::string(salient::to_string(c.relation)); })
      .def_readonly("class_a", &salient::TopkCertificate::class_a)
      .def_readonly("class_b", &salient::TopkCertificate::class_b)
      .def_readonly("k", &salient::TopkCertificate::k)
      .def_readonly("masker", &salient::TopkCertificate::masker)
      .def_readonly("masks", &salient::TopkCertificate::masks)
      .def_property_readonly("claims", &claims_of)
      .def("save", &save_certificate_files, py::arg("path"), py::arg("model"), py::arg("image"), py::arg("composite") = "",
           "Writes the certificate (JSON at path, mask PNGs beside it) naming the model and image files by SHA-256; "
           "refuses to replace existing files. Returns the files written.")
      .def("__repr__", [](const salient::TopkCertificate& c) {
        return "salient.Certificate(" + std::string(salient::to_string(c.relation)) + ", " + std::to_string(c.class_a) + " vs " +
               std::to_string(c.class_b) + ", top-" + std::to_string(c.k) + ")";
      });
  m.def("disambiguate_topk", &disambiguate, py::arg("model"), py::arg("image"), py::arg("k"), py::arg("method"),
        py::arg("method_options"), py::arg("entities"), py::arg("segments"), py::arg("masker"), py::arg("coverage"),
        py::arg("min_area"), py::arg("max_entities"), py::arg("segmenter_size"), py::arg("max_entity_area"),
        py::arg("min_split_relevance"), py::arg("batch_size"), py::arg("normalization"));
  m.def("parameter_randomisation", &parameter_randomisation, py::arg("model"), py::arg("inputs"), py::arg("methods"),
        py::arg("target"), py::arg("mode"), py::arg("init"), py::arg("group_depth"), py::arg("groups"), py::arg("seed"),
        py::arg("keep_maps"), py::arg("progress"));
  m.def("data_randomisation", &data_randomisation, py::arg("trained"), py::arg("permuted"), py::arg("inputs"),
        py::arg("methods"), py::arg("target"));
  m.def("evaluate", &evaluate, py::arg("metric"), py::arg("model"), py::arg("inputs"), py::arg("attributions"),
        py::arg("target"), py::arg("method"), py::arg("method_options"), py::arg("masks"), py::arg("progress"),
        py::arg("options"));
  m.def("canonical_name", [](const std::string& name) { return salient::find_method(name).name; });
}
