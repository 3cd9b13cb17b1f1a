#!/usr/bin/python3
"""Writes reference attribution arrays for the C++ tests, computed in plain eager PyTorch.

Usage: /usr/bin/python3 scripts/reference_attributions.py OUT_DIR [MODELS_DIR]

The definitions of Captum (LayerGradCam, GuidedBackprop, Deconvolution, GuidedGradCam,
LayerGradientXActivation) and pytorch-grad-cam (GradCAMPlusPlus, XGradCAM, LayerCAM) are
reimplemented here with forward hooks and a custom ReLU autograd function; neither library
is needed.

Model: torchvision resnet18 with random weights, built exactly as
scripts/export_torchvision.py does (torch.manual_seed(0) right before
resnet18(weights=None), eval mode), so its weights equal MODELS_DIR/resnet18.pt. When
MODELS_DIR is given, the traced model's logits are checked against the eager model's.

Input: torch.manual_seed(1); torch.rand(2, 3, 224, 224), normalised per channel with the
ImageNet mean/std. Targets: class 3 for item 0, class 7 for item 1. The score of item i is
the raw logit output[i, target_i] (no softmax). A = output of a layer (forward hook),
G = dScore/dA. Every file is float32 unless noted; N = 2.

  input.npy                  [N,3,224,224] normalised input
  targets.npy                [N] int64 target classes
  logits.npy                 [N,1000] eager model output
  gradcam_layer4.npy         [N,1,7,7]   Captum LayerGradCam(layer4), defaults:
                             sum_c(mean_hw(G) * A), no ReLU, no upsampling
  gradcam_layer3_relu.npy    [N,1,14,14] Captum LayerGradCam(layer3), relu_attributions=True
  guided_backprop.npy        [N,3,224,224] Captum GuidedBackprop: every nn.ReLU passes back
                             relu(grad_input) = 1[x>0] 1[g>0] g; input gradient
  deconvolution.npy          [N,3,224,224] Captum Deconvolution: every nn.ReLU passes back
                             relu(grad_output), ignoring its forward input; input gradient
  guided_gradcam_layer4.npy  [N,3,224,224] Captum GuidedGradCam(layer4):
                             nearest-upsampled (to 224x224) LayerGradCam(layer4,
                             relu_attributions=True) times guided_backprop
  layer_gxa_layer3.npy       [N,256,14,14] Captum LayerGradientXActivation(layer3),
                             multiply_by_inputs=True: A * G
  gradcampp_layer4.npy       [N,1,7,7] pytorch-grad-cam GradCAMPlusPlus weighted sum
  xgradcam_layer4.npy        [N,1,7,7] pytorch-grad-cam XGradCAM weighted sum
  layercam_layer4.npy        [N,1,7,7] pytorch-grad-cam LayerCAM map
  {gradcampp,xgradcam,layercam}_layer3.npy [N,1,14,14] the same three at layer3
                             (the last three are taken before pytorch-grad-cam's ReLU,
                             min-max scaling and resizing; computed in float64 from the
                             float32 A and G, saved as float32)
  done.txt                   written last; if present the script does nothing.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
TARGETS = (3, 7)


class _ModifiedReLUFunction(torch.autograd.Function):
    """Out-of-place ReLU whose backward is the guided-backprop or deconvolution rule."""

    @staticmethod
    def forward(ctx, x, guided):
        ctx.guided = guided
        if guided:
            ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad):
        if ctx.guided:
            (x,) = ctx.saved_tensors
            grad = grad * (x > 0).to(grad.dtype)  # ordinary ReLU input gradient
        return grad.clamp_min(0), None


class _ModifiedReLU(torch.nn.Module):
    def __init__(self, guided):
        super().__init__()
        self.guided = guided

    def forward(self, x):
        return _ModifiedReLUFunction.apply(x, self.guided)


def build_model():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def replace_relus(model, guided):
    """Replaces every nn.ReLU module (shared ones included) by a _ModifiedReLU, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(parent, name, _ModifiedReLU(guided))
    return model


def make_input():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 224, 224)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def forward_backward(model, x, targets, layers=()):
    """Returns (input gradient, {layer: (A, G)}) for the summed target scores."""
    acts = {}
    handles = [getattr(model, name).register_forward_hook(
        lambda m, i, o, name=name: acts.__setitem__(name, o)) for name in layers]
    try:
        x = x.clone().requires_grad_(True)
        out = model(x)
        score = out[torch.arange(x.shape[0]), targets].sum()
        grads = torch.autograd.grad(score, [x] + [acts[n] for n in layers])
    finally:
        for h in handles:
            h.remove()
    return grads[0].detach(), {n: (acts[n].detach(), g.detach()) for n, g in zip(layers, grads[1:])}


def grad_cam(a, g, relu):
    cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True)
    return torch.relu(cam) if relu else cam


def grad_cam_pp(a, g):
    a, g = a.double(), g.double()
    g2 = g ** 2
    g3 = g2 * g
    s = a.sum(dim=(2, 3))
    aij = g2 / (2 * g2 + s[:, :, None, None] * g3 + 1e-6)
    aij = torch.where(g != 0, aij, torch.zeros_like(aij))
    w = (torch.relu(g) * aij).sum(dim=(2, 3))
    return (w[:, :, None, None] * a).sum(dim=1, keepdim=True).float()


def xgrad_cam(a, g):
    a, g = a.double(), g.double()
    s = a.sum(dim=(2, 3))
    w = (g * a / (s[:, :, None, None] + 1e-7)).sum(dim=(2, 3))
    return (w[:, :, None, None] * a).sum(dim=1, keepdim=True).float()


def layer_cam(a, g):
    a, g = a.double(), g.double()
    return (torch.relu(g) * a).sum(dim=1, keepdim=True).float()


def main(argv):
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[0]
    if os.path.exists(os.path.join(out_dir, "done.txt")):
        return 0
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)

    x = make_input()
    targets = torch.tensor(TARGETS, dtype=torch.int64)
    model = build_model()
    with torch.no_grad():
        logits = model(x)
    if len(argv) == 2:
        traced = torch.jit.load(os.path.join(argv[1], "resnet18.pt")).eval()
        with torch.no_grad():
            diff = (traced(x) - logits).abs().max().item()
        assert diff <= 1e-5, f"traced resnet18 logits differ from the eager model by {diff}"

    _, acts = forward_backward(model, x, targets, ("layer3", "layer4"))
    a3, g3 = acts["layer3"]
    a4, g4 = acts["layer4"]
    guided, _ = forward_backward(replace_relus(build_model(), guided=True), x, targets)
    deconv, _ = forward_backward(replace_relus(build_model(), guided=False), x, targets)
    cam4_relu = F.interpolate(grad_cam(a4, g4, relu=True), size=(224, 224), mode="nearest")

    arrays = {
        "input": x,
        "targets": targets,
        "logits": logits,
        "gradcam_layer4": grad_cam(a4, g4, relu=False),
        "gradcam_layer3_relu": grad_cam(a3, g3, relu=True),
        "guided_backprop": guided,
        "deconvolution": deconv,
        "guided_gradcam_layer4": cam4_relu * guided,
        "layer_gxa_layer3": a3 * g3,
        "gradcampp_layer4": grad_cam_pp(a4, g4),
        "xgradcam_layer4": xgrad_cam(a4, g4),
        "layercam_layer4": layer_cam(a4, g4),
        # layer3's gradient varies over positions (layer4's does not: global average
        # pooling follows it), so these tell XGrad-CAM and Grad-CAM apart.
        "gradcampp_layer3": grad_cam_pp(a3, g3),
        "xgradcam_layer3": xgrad_cam(a3, g3),
        "layercam_layer3": layer_cam(a3, g3),
    }
    for name, t in arrays.items():
        arr = t.numpy()
        assert arr.dtype == (np.int64 if name == "targets" else np.float32), name
        np.save(os.path.join(out_dir, name + ".npy"), arr)
    with open(os.path.join(out_dir, "done.txt"), "w") as f:
        f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
