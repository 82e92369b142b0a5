"""Time one optimizer step on MLP-sized parameters: minidl vs PyTorch, each in its own process.

Usage: python benchmarks/bench_optim.py            (runs both frameworks, prints a table)
       python benchmarks/bench_optim.py minidl     (one framework only, prints JSON)
"""
import json
import subprocess
import sys
import timeit

import numpy as np

SIZES = {"784-128-10": [784, 128, 10], "784-512-512-10": [784, 512, 512, 10],
         "1024-2048-2048-10": [1024, 2048, 2048, 10]}
CASES = {"SGD": dict(lr=0.01), "SGD momentum": dict(lr=0.01, momentum=0.9),
         "Adam": dict(lr=1e-3), "AdamW": dict(lr=1e-3), "RMSprop": dict(lr=1e-3),
         "Adagrad": dict(lr=1e-2)}


def shapes(widths):
    return [s for a, b in zip(widths, widths[1:]) for s in ((b, a), (b,))]


def run(framework: str) -> dict:
    if framework == "torch":
        import torch

        torch.set_num_threads(1)  # as NumPy: one core for the elementwise math
        make_param = lambda x: torch.nn.Parameter(torch.from_numpy(x))
        make_grad, optim = torch.from_numpy, torch.optim
    else:
        import minidl
        from minidl import optim
        from minidl.nn.parameter import Parameter

        make_param = lambda x: Parameter(minidl.tensor(x))
        make_grad = minidl.tensor
    results = {}
    rng = np.random.default_rng(0)
    for size, widths in SIZES.items():
        for case, options in CASES.items():
            params = [make_param(rng.standard_normal(s).astype(np.float32)) for s in shapes(widths)]
            for p in params:
                p.grad = make_grad(rng.standard_normal(p.shape).astype(np.float32))
            name = case.split()[0]
            optimizer = getattr(optim, name)(params, **options)
            optimizer.step()
            number = 20
            best = min(timeit.repeat(optimizer.step, number=number, repeat=5)) / number
            results[f"{case} {size}"] = best * 1e6
    return results


def main():
    if len(sys.argv) > 1:
        print(json.dumps(run(sys.argv[1])))
        return
    timings = {}
    for framework in ("minidl", "torch"):
        output = subprocess.run([sys.executable, __file__, framework], capture_output=True,
                                text=True, check=True).stdout
        timings[framework] = json.loads(output)
    print(f"{'case':<32}{'minidl us':>12}{'torch us':>12}{'speed-up':>10}")
    for key, ours in timings["minidl"].items():
        theirs = timings["torch"][key]
        print(f"{key:<32}{ours:>12.1f}{theirs:>12.1f}{theirs / ours:>10.2f}")


if __name__ == "__main__":
    main()
