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

#include <chrono>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "salient/analysis/torch_certificate.hpp"
#include "salient/attribution/torch_registry.hpp"
#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/io/certificate.hpp"
#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"
#include "salient/masking/maskers.hpp"

namespace py = pybind11;

namespace salient::python {

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
  return {std::make_shared<TorchModel>(TorchModel::load(path, model_options(optimize_for_inference, incremental, output_element))),
          path};
}

Model load_bytes(const py::bytes& bytes, bool optimize_for_inference, bool incremental, int output_element) {
  std::istringstream stream(std::string{bytes});
  return {std::make_shared<TorchModel>(TorchModel::load(stream, "the TorchScript module",
                                                        model_options(optimize_for_inference, incremental, output_element))),
          "a TorchScript module"};
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
  if (!progress.is_none()) {
    auto held = held_with_gil(progress);
    settings.progress = [held](int64_t done, int64_t total) {
      py::gil_scoped_acquire gil;
      (*held)(done, total);
    };
  }
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
    py::gil_scoped_release release;
    const auto start = std::chrono::steady_clock::now();
    map = entry.run(*model.model, x, resolved, settings);
    last_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (return_delta)
      delta = torch::tensor(entry.delta(*model.model, x, resolved, map, settings), torch::kDouble);
  }
  if (!return_delta) return py::cast(map);
  return py::make_tuple(map, delta);
}

// Superpixels of one input [1,C,H,W] by a --segments spec (slic:N[:compactness],
// felzenszwalb:SCALE[:SIGMA:MIN_SIZE], grid:CELL): an int64 label map [H,W], labels 0..count-1.
torch::Tensor segment(const py::object& image, const std::string& spec, const std::string& normalization) {
  check_inputs(image);
  const auto x = image.cast<torch::Tensor>();
  if (x.size(0) != 1) detail::fail("segment takes one input [1,C,H,W], got ", shape_string(x));
  const auto normalized = parse_normalization(normalization);
  py::gil_scoped_release release;
  return segment_input(spec, x, normalized);
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
  py::gil_scoped_release release;
  return chosen.outputs(*model.model, x, m, {.batch_size = batch_size});
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
    py::gil_scoped_release release;
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
    py::dict c;
    c["mask"] = check.claim.mask;
    c["in_top_k"] = check.claim.in_top_k;
    c["not_in_top_k"] = check.claim.not_in_top_k;
    c["holds"] = check.holds;
    c["top_k"] = check.top_k;
    checks.append(c);
  }
  result["checks"] = checks;
  return result;
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
        py::gil_scoped_release release;
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
        py::gil_scoped_release release;
        return salient::load_input(path, preprocessing);
      }, py::arg("path"), py::arg("size"), py::arg("normalization"));
  m.def("verify", &verify_files, py::arg("certificate"), py::arg("model"), py::arg("image"), py::arg("normalization"));
  m.def("last_seconds", [] { return last_seconds; }, "Seconds the last attribute() call of this thread spent in C++.");
  m.def("methods_json", &methods_json);
  m.def("canonical_name", [](const std::string& name) { return salient::find_method(name).name; });
}
