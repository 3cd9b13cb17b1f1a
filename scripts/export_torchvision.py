#!/usr/bin/python3
"""Exports torchvision classifiers with random (seeded) weights to TorchScript.

Usage: /usr/bin/python3 scripts/export_torchvision.py OUT_DIR [--script] NAME [NAME ...]
Writes OUT_DIR/NAME.pt (torch.jit.trace in eval mode on a 1x3x224x224 example, or
torch.jit.script with --script). Existing files are kept (the export is deterministic).
This is also how to export your own model: model.eval(); torch.jit.trace(model, example).save(path).
"""
import os
import sys

import torch
import torchvision


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, names = argv[0], argv[1:]
    script = "--script" in names
    names = [n for n in names if n != "--script"]
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, name + (".script" if script else "") + ".pt")
        if os.path.exists(path):
            continue
        torch.manual_seed(0)
        kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
        example = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            exported = torch.jit.script(model) if script else torch.jit.trace(model, example)
        tmp = path + ".tmp"
        exported.save(tmp)
        os.replace(tmp, path)
        print("exported", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
