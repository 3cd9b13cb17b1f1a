#!/usr/bin/env python3
"""Writes small TorchScript models for the CLI tests: three that misbehave, for the error
tests (nan_output.pt: scores are NaN, long_output.pt: integer scores, failing.pt: raises its
own error inside forward), and tiny_fashion.pt, a seeded untrained CNN on 1x28x28 inputs with
10 classes, for Fashion-MNIST dataset runs. Usage: export_small_models.py OUT_DIR"""
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


class TinyFashion(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, module in [("nan_output", NanOutput()), ("long_output", LongOutput()), ("failing", Failing())]:
        torch.jit.script(module).save(os.path.join(out, name + ".pt"))
    torch.manual_seed(0)
    tiny = TinyFashion().eval()
    torch.jit.trace(tiny, torch.zeros(1, 1, 28, 28)).save(os.path.join(out, "tiny_fashion.pt"))


if __name__ == "__main__":
    main()
