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
Certificate = _salient.Certificate

__all__ = ["Error", "Model", "load", "methods", "attribute", "masked_outputs", "load_input", "verify", "segment", "last_call_seconds",
           "metrics", "evaluate", "parameter_randomisation", "data_randomisation",
           "disambiguate_topk", "Certificate"]

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
    `spec`: slic:N[:compactness], felzenszwalb:SCALE[:SIGMA:MIN_SIZE], grid:CELL, or
    model:FILE.pt: the regions of a TorchScript segmentation model (its per-pixel argmax over
    classes, split into connected regions, as the methods' segments="model:FILE.pt")."""
    return _salient.segment(image, spec, normalization)


def last_call_seconds():
    """Seconds the last method call of this thread spent in C++ (what Python added is the rest)."""
    return _salient.last_seconds()


_metric_facts = _json.loads(_salient.metrics_json())


def metrics():
    """Every evaluation metric (salient-evaluate's): name, category (faithfulness, robustness,
    randomisation, complexity, localisation), definition with its reference, higher_is_better,
    needs_mask, needs_method, and its options with their defaults."""
    return [dict(m) for m in _metric_facts]


def evaluate(metric, model, inputs, attributions=None, target=None, method=None, method_options=None, masks=None,
             progress=None, **options):
    """One score per input of `metric` (a name of `salient.metrics()`) for each input's map,
    float64 [N], as salient-evaluate computes it. The maps: `attributions` [N,C,H,W] (any
    method's, e.g. Captum's; channels are summed), or `method` (a salient method name, with its
    `method_options` dict) computes them one input at a time. Robustness and randomisation
    metrics explain changed inputs or a randomised model again and need `method`. Localisation
    metrics need `masks`: [H,W] for every input or [N,H,W], 1 = object. `target`: as for the
    methods (None: each input's top-1 class). `progress(done, total)` is called after each input.
    `**options`: the metric's own options."""
    return _salient.evaluate(metric, load(model), inputs, attributions, target, method, dict(method_options or {}),
                             masks, progress, options)


def parameter_randomisation(model, inputs, methods, target=None, mode="cascading", init="default", group_depth=2,
                            groups=None, seed=0, keep_maps=False, progress=None):
    """The model parameter randomisation test (Adebayo et al. 2018), as salient-sanity runs it:
    every method's maps for `inputs` on the model and after each step of re-initialising its
    layer groups (`mode` "cascading": from the logits down, step k randomises the last k groups;
    "independent": one group at a time; `init` "default" (each layer's own initialiser),
    "normal" or "uniform"; `group_depth` module path components per group; `groups` only these),
    each compared with the original maps. The model's parameters are restored afterwards.

    `methods`: a name, a list of names, or a dict name -> options dict. `target`: as for the
    methods (None: each input's top-1 class on the original model, kept at every step).
    Returns a dict: methods, targets, steps (index, group, randomised), similarity (spearman_abs,
    spearman, ssim, hog: float64 tensors [step, method, input]; step 0 is the original model),
    maps ([step][method] tensors with `keep_maps`, else None). `progress(done, total)` is called
    after each step."""
    return _salient.parameter_randomisation(load(model), inputs, methods, target, mode, init, group_depth,
                                            list(groups or []), seed, keep_maps, progress)


def data_randomisation(trained, permuted, inputs, methods, target=None):
    """The data randomisation test (Adebayo et al. 2018): every method's maps for a model trained
    on the true labels and for the same architecture trained on permuted labels, for the same
    targets (None: the trained model's top-1 classes). Returns a dict: methods, similarity
    (spearman_abs, spearman, ssim, hog: float64 tensors [method, input]), trained_maps and
    permuted_maps (one tensor per method)."""
    return _salient.data_randomisation(load(trained), load(permuted), inputs, methods, target)


def disambiguate_topk(model, image, k=5, method="gradcam", method_options=None, entities="attribution", segments="slic:100",
                      masker="layer", coverage=0.5, min_area=0.01, max_entities=12, segmenter_size=513, max_entity_area=0.9,
                      min_split_relevance=0.1, batch_size=16, normalization="imagenet"):
    """salient-topk's search on one input `image` [1,C,H,W]: are the model's top-k classes one
    entity or two? Each class is explained by `method` (with `method_options`); the entities are
    a segmentation model's regions (`entities="model:FILE.pt"`, seen at `segmenter_size`), the
    classes' maps over `segments` superpixels ("attribution"), or a label map [H,W] you give
    (0 = background). Each pair of the top-k is decided "one_entity" or "two_entities" with a
    `salient.Certificate` (masks and claims anyone can check by running the model: `save()` it,
    then `salient.verify`), or left "undecided" with the reason. `masker` removes pixels
    ("layer": layer masking). Returns a dict: classes, probabilities, entities, entity_count,
    relevance [k, entities], pairs (class_a, class_b, relation, split_entity, reason,
    certificate), top_k_kept_alone, top_k_removed, masked_inputs."""
    return _salient.disambiguate_topk(load(model), image, k, method, dict(method_options or {}), entities, segments, masker,
                                      coverage, min_area, max_entities, segmenter_size, max_entity_area, min_split_relevance,
                                      batch_size, normalization)
