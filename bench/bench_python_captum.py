"""salient from Python beside Captum's definitions run in eager PyTorch (Captum itself cannot be
installed here: no PyPI), on torchvision's resnet18 (random weights, torch.manual_seed(0)),
224x224, batch 1, target 1:

  saliency              x.grad of the target logit (Captum's Saliency, abs=False)
  integrated_gradients  Captum's IntegratedGradients: 50 Gauss-Legendre steps, zero baseline,
                        all steps in one batch (internal_batch_size=None); salient's batch_size=50
  gradcam               Captum's LayerGradCam on layer4 + relu_attributions, upsampled
                        bilinearly to the input (a forward hook on the nn.Module)

Gradients as Captum takes them: torch.autograd.grad of the target's output for the inputs (or
the layer's activations) only, no parameter gradients.

Both sides run in one process with the same settings: LibTorch threads (argument), one
OpenBLAS thread (OPENBLAS_NUM_THREADS=1, what salient's calls use) and glibc's allocator
thresholds (MALLOC_*_THRESHOLD_=1 GiB, what the CLIs use), set by the command below.
salient runs the traced module of the same weights. Medians over 10 calls after 3 warm-up calls,
and the largest difference of the maps relative to the eager map's largest magnitude.

    OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 \\
      PYTHONPATH=build/python /usr/bin/python3 bench/bench_python_captum.py [threads]
"""
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

import salient


# As Captum: torch.autograd.grad for what is explained only (no parameter gradients).
def eager_saliency(net, x, target):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(x)[:, target].sum(), x)[0]


def eager_integrated_gradients(net, x, target, steps=50):
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # Captum's gausslegendre rule on [0, 1]
    alphas = torch.tensor(0.5 * (nodes + 1), dtype=x.dtype)
    scale = torch.tensor(0.5 * weights, dtype=x.dtype)
    path = (alphas.view(-1, 1, 1, 1) * x).requires_grad_(True)  # zero baseline
    gradients = torch.autograd.grad(net(path)[:, target].sum(), path)[0]
    return x * (gradients * scale.view(-1, 1, 1, 1)).sum(0, keepdim=True)


def eager_gradcam(net, x, target):
    saved = {}
    hook = net.layer4.register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    try:
        output = net(x)
    finally:
        hook.remove()
    a = saved["a"]
    g = torch.autograd.grad(output[:, target].sum(), a)[0]
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)


def median_seconds(call, repeats=10, warmup=3):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    traced = torch.jit.trace(net, x)
    model = salient.load(traced)
    target = 1
    cases = (
        ("saliency", lambda: eager_saliency(net, x, target), lambda: salient.saliency(model, x, target=target)),
        ("integrated_gradients (50 steps)", lambda: eager_integrated_gradients(net, x, target),
         lambda: salient.integrated_gradients(model, x, target=target, steps=50, batch_size=50)),
        ("gradcam (layer4)", lambda: eager_gradcam(net, x, target),
         lambda: salient.gradcam(model, x, target=target, layer="layer4")),
    )
    print("resnet18, 224x224, batch 1, %d LibTorch thread(s); medians over 10 calls" % threads)
    print("| method | Captum's definition, eager | salient from Python | ratio | max difference / max |eager| |")
    print("|---|---|---|---|---|")
    for name, eager, ours in cases:
        reference, result = eager().detach(), ours()
        difference = float((reference - result).abs().max() / reference.abs().max())
        t_eager, t_ours = median_seconds(eager), median_seconds(ours)
        print("| %s | %.1f ms | %.1f ms | %.2fx | %.1e |" % (name, 1e3 * t_eager, 1e3 * t_ours, t_eager / t_ours, difference))


if __name__ == "__main__":
    main()
