"""salient from Python: the C++ library's attribution methods on torch tensors.

    import torch, salient
    model = torch.jit.load("resnet18.pt")              # or a path, or any callable
    x = salient.load_input("cat.jpg")                   # [1,3,224,224], ImageNet-normalised
    ig = salient.integrated_gradients(model, x, target=281, steps=64)
    cam = salient.gradcam(model, x)                     # target None: each input's top-1 class

Every method of the registry is a function `salient.<name>(model, inputs, target=None,
**options)`: option names are the C++ options structs' fields, with the same defaults
(`salient.methods()` lists them). Computation runs in C++ with the GIL released; errors raise
`salient.Error` (a ValueError) with the C++ message.
"""
import json as _json
import os as _os
import weakref as _weakref

import torch as _torch  # first: the extension uses torch's own tensor type

from . import _salient

Error = _salient.Error
Model = _salient.Model

__all__ = ["Error", "Model", "load", "methods", "attribute", "masked_outputs", "load_input", "verify", "segment", "last_call_seconds"]

_script_models = _weakref.WeakKeyDictionary()  # ScriptModule -> {options: Model}, loaded once per module
_path_models = {}  # (path, mtime, size, options) -> Model


def load(model, optimize_for_inference=True, incremental=True, output_element=-1):
    """A salient.Model from a TorchScript file path, a torch.jit.ScriptModule (serialised once and
    cached while the module lives) or any callable Tensor -> Tensor (forward-only methods; the
    gradient methods too when it is differentiable; layer methods need TorchScript).

    TorchScript options (C++ ModelOptions), as the tools use them: `optimize_for_inference`
    runs forward-only batches on a frozen, inference-optimised copy (batch norm folded: outputs
    equal to ~1e-6 relative); `incremental` evaluates small occlusions from the image's kept
    activations; `output_element` picks the explained output of a model returning a tuple."""
    if isinstance(model, Model):
        return model
    options = (optimize_for_inference, incremental, output_element)
    if isinstance(model, (str, _os.PathLike)):
        path = _os.fspath(model)
        try:
            stat = _os.stat(path)
            key = (_os.path.realpath(path), stat.st_mtime_ns, stat.st_size) + options
        except OSError:
            return Model.load(path, *options)  # the C++ loader says what is wrong
        if key not in _path_models:
            _path_models[key] = Model.load(path, *options)
        return _path_models[key]
    if isinstance(model, _torch.jit.ScriptModule):
        cached = _script_models.setdefault(model, {}) if _weakly_referable(model) else {}
        if options not in cached:
            cached[options] = Model.from_bytes(model.save_to_buffer(), *options)
        return cached[options]
    if callable(model):
        return Model.from_callable(model)
    raise Error("model must be a TorchScript path, a torch.jit.ScriptModule, a salient.Model or a callable, "
                "got %s" % type(model).__name__)


def _weakly_referable(obj):
    try:
        _weakref.ref(obj)
        return True
    except TypeError:
        return False


_facts = _json.loads(_salient.methods_json())


def methods():
    """Every method: name, aliases, summary, what it needs (gradient, forward, layers, ...),
    its map shape, and its options with their defaults."""
    return [dict(m) for m in _facts]


def attribute(method, model, inputs, target=None, progress=None, return_convergence_delta=False, **options):
    """The attribution map of `method` (a name or alias) for `inputs` [N,C,H,W] (float32, CPU,
    contiguous). `target`: a class index, one per input (list or integer tensor), or None for
    each input's top-1 class. `progress(done, total)` is called as the work advances. With
    `return_convergence_delta` (methods that have one: integrated gradients, Guided IG,
    DeepLIFT), (map, delta): sum(map) - (F(x) - F(baseline)) per input, as Captum's."""
    return _salient.attribute(method, load(model), inputs, target, options, progress, return_convergence_delta)


def _method_function(facts):
    name = facts["name"]

    def method(model, inputs, target=None, progress=None, return_convergence_delta=False, **options):
        return _salient.attribute(name, load(model), inputs, target, options, progress, return_convergence_delta)

    method.__name__ = method.__qualname__ = name
    defaults = ", ".join("%s=%s" % (k, _json.dumps(v)) for k, v in sorted(facts["defaults"].items()))
    method.__doc__ = "%s\n\nOptions (defaults): %s" % (facts["summary"], defaults or "none")
    return method


for _facts_of_one in _facts:
    _function = _method_function(_facts_of_one)
    for _name in [_facts_of_one["name"]] + list(_facts_of_one["aliases"]):
        if not _name.isidentifier():  # gradcam++: attribute("gradcam++", ...) still takes it
            continue
        globals()[_name] = _function
        __all__.append(_name)
del _facts_of_one, _function, _name


def masked_outputs(model, image, masks, masker="layer", batch_size=32, normalization="imagenet", seed=0):
    """The model's outputs on `image` [1,C,H,W] (or one per mask, [K,C,H,W]) with `masks` applied
    (1 = keep; [K,1,H,W], [1,1,H,W] or [H,W]) by `masker`: "layer" (layer masking: removed pixels
    are removed inside the network, so their colour cannot reach the output), "zero", "mean",
    "black", "grey", "blur" or "noise"."""
    return _salient.masked_outputs(load(model), image, masks, masker, batch_size, normalization, seed)


def load_input(path, size=224, normalization="imagenet"):
    """A photo (PNG, JPEG, BMP) as the tools read it: shorter side resized to `size` (PIL's
    bilinear, as torchvision on a PIL image), centre crop, ImageNet-normalised: [1,3,size,size]."""
    return _salient.load_input(_os.fspath(path), size, normalization)


def verify(certificate, model, image, normalization="imagenet"):
    """Checks a top-k certificate (salient-topk's JSON with its mask PNGs beside it) as
    `salient-topk verify` does: the certificate must name this model and image file by SHA-256,
    its claims must be exactly those that prove its verdict, and each must hold when the model
    runs on the image with the certificate's masks applied. Returns a dict: holds, rejected
    (the reason, or None), relation, class_a, class_b, k, masker, image_top_k, checks."""
    return _salient.verify(_os.fspath(certificate), _os.fspath(model), _os.fspath(image), normalization)


def segment(image, spec="slic:50", normalization="imagenet"):
    """The regions LIME, KernelSHAP and feature ablation use for `image` [1,C,H,W] (a model input,
    un-normalised with `normalization` first): an int64 label map [H,W] with labels 0..count-1.
    `spec`: slic:N[:compactness], felzenszwalb:SCALE[:SIGMA:MIN_SIZE] or grid:CELL."""
    return _salient.segment(image, spec, normalization)


def last_call_seconds():
    """Seconds the last method call of this thread spent in C++ (what Python added is the rest)."""
    return _salient.last_seconds()
