#!/usr/bin/env python3
"""Writes TorchScript models that misbehave, for the CLI's error tests:
nan_output.pt (scores are NaN), long_output.pt (integer scores) and failing.pt (raises its
own error inside forward). Usage: export_bad_models.py OUT_DIR"""
import os
import sys

import torch


class NanOutput(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=[2, 3]).repeat(1, 334)[:, :1000] * float("nan")


class LongOutput(torch.nn.Module):
    def forward(self, x):
        return (x.mean(dim=[2, 3]).repeat(1, 334)[:, :1000] * 100).long()


class Failing(torch.nn.Module):
    def forward(self, x):
        if x.size(1) == 3:
            raise RuntimeError("this model only takes grey images (made to fail)")
        return x.mean(dim=[2, 3])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, module in [("nan_output", NanOutput()), ("long_output", LongOutput()), ("failing", Failing())]:
        torch.jit.script(module).save(os.path.join(out, name + ".pt"))


if __name__ == "__main__":
    main()
