"""What a call from Python adds to the C++ time: saliency on resnet18, batch 1, 224x224.

    PYTHONPATH=build/python /usr/bin/python3 bench/bench_python.py build/models/resnet18.pt [threads]

Each call's wall time (Python's clock around salient.saliency) minus the time the C++ side
measured around the method itself (salient.last_call_seconds()): argument checks, option
conversion, the model lookup, GIL hand-over and wrapping the result. Medians over 200 calls
after 20 warm-up calls, for a model given as a salient.Model, a path and a ScriptModule.
"""
import statistics
import sys
import time

import torch

import salient


def main():
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print("saliency, resnet18, batch 1, 224x224, %d thread(s); medians over 200 calls" % threads)
    print("| model given as | wall per call | C++ per call | Python's part |")
    print("|---|---|---|---|")
    order = (("salient.Model", salient.load(path)), ("path", path), ("ScriptModule", torch.jit.load(path)))
    for label, model in order + order:  # twice: glibc's allocator settles over the first hundreds of calls
        for _ in range(20):
            salient.saliency(model, x, target=1)
        walls, inner = [], []
        for _ in range(200):
            start = time.perf_counter()
            salient.saliency(model, x, target=1)
            walls.append(time.perf_counter() - start)
            inner.append(salient.last_call_seconds())
        overhead = statistics.median(w - i for w, i in zip(walls, inner))
        print("| %s | %.2f ms | %.2f ms | %.3f ms |" % (label, 1e3 * statistics.median(walls), 1e3 * statistics.median(inner),
                                                     1e3 * overhead))


if __name__ == "__main__":
    main()
