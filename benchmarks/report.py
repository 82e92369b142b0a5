"""The results as JSON, a markdown table and a bar chart of the ratios."""
from __future__ import annotations

import json
import os

SECTIONS = (("train", "Training step (forward + backward + optimizer)"),
            ("infer", "Inference (eval, no_grad forward)"),
            ("op", "Ops (forward, or forward + backward)"),
            ("overhead", "Framework overhead on tiny tensors (per call)"))
TABLE_HEADER = ("| workload | what | minidl | PyTorch | ratio (min–max) | ratio vs fused "
                "| step memory MiB minidl / PyTorch |")
SWEEP_HEADER = ("| size | minidl | PyTorch | ratio (min–max) | ratio vs fused "
                "| step memory MiB minidl / PyTorch |")
FUSED_NOTE = ("ratio vs fused: minidl ÷ PyTorch with fused optimizers (`Adam(fused=True)`, "
              "`SGD(fused=True)`), PyTorch's fastest CPU setting; training rows only")
MEMORY_NOTE = ("step memory: RSS high-water mark during extra steps minus the RSS between steps "
               "(weights, gradients and optimizer state excluded), glibc mmap threshold fixed at "
               "64 KiB so freed arrays leave the RSS; MiB")


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _ratio(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def one_line(outcome: dict) -> str:
    """A progress line: the two medians and the ratio, or the status and its reason."""
    if outcome["status"] != "ok":
        return f"{outcome['status']}: {outcome['reason']}"
    minidl, torch = outcome["engines"]["minidl"], outcome["engines"]["torch"]
    fused = "" if outcome["ratio_fused"] is None else f", vs fused {_ratio(outcome['ratio_fused'])}"
    return (f"minidl {_number(minidl['median'])} {outcome['unit']}, PyTorch "
            f"{_number(torch['median'])} {outcome['unit']}, ratio {_ratio(outcome['ratio'])}{fused}")


def _memory(engine: dict) -> str:
    value = engine["step_memory_mib"]
    return "–" if value is None else f"{value:.1f}"


def _row(name: str, entry: dict) -> str:
    """A table row: the workload's name and title, or its size in a sweep table."""
    label = (f"{entry['sweep'][1]} {entry['sweep'][2]}" if entry["group"] == "sweep"
             else f"{name} | {entry['title']}")
    if entry["status"] != "ok":
        reason = entry["reason"].replace("|", "/").replace("\n", " ")
        return f"| {label} | {entry['status']}: {reason} | | | | |"
    minidl, torch, unit = entry["engines"]["minidl"], entry["engines"]["torch"], entry["unit"]
    fused = "–" if entry.get("ratio_fused") is None else f"**{_ratio(entry['ratio_fused'])}**"
    return (f"| {label} | {_number(minidl['median'])} {unit} | "
            f"{_number(torch['median'])} {unit} | **{_ratio(entry['ratio'])}** "
            f"({_ratio(entry['ratio_min'])}–{_ratio(entry['ratio_max'])}) | {fused} | "
            f"{_memory(minidl)} / {_memory(torch)} |")


def _section_of(entry: dict) -> str:
    return entry["kind"] if entry["group"] == "model" else entry["group"]  # "sweep": own tables


def _machine_lines(results: dict) -> list:
    m, s = results["machine"], results["settings"]
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, "
                     f"{b['threading_layer']})" for b in m["blas"]) or "unknown"
    environment = ", ".join(f"{k}={v}" for k, v in m["environment"].items()) or "none set"
    return [(f"- {m['date']} · {m['cpu']}, {m['cores']} cores · device {results['device']} · "
             f"{m['threads']} threads for both engines"),
            (f"- Python {m['python']} · NumPy {m['numpy']} · Numba {m['numba']} · "
             f"PyTorch {m['torch']} · minidl {m['minidl']}"),
            f"- NumPy BLAS: {blas} · float32 1024³ GEMM: {m['numpy_gemm_gflops']:.0f} GFLOP/s",
            f"- environment: {environment}",
            (f"- 1-minute load average {m['load_average_start']:.1f} at the start, "
             f"{m['load_average_end']:.1f} at the end{_load_warning(m)}"),
            (f"- {s['repeats']} alternating workers per engine × {s['steps']} timed steps after "
             f"{s['warmup']} warm-up steps{' (--quick: not a measurement)' if s['quick'] else ''}; "
             "time = median of the worker medians; ratio = minidl ÷ PyTorch (> 1: minidl slower), "
             "range = min–max over adjacent minidl/PyTorch worker pairs"),
            f"- {MEMORY_NOTE}",
            f"- {FUSED_NOTE}"]


def _load_warning(m: dict) -> str:
    if max(m["load_average_start"], m["load_average_end"]) <= m["cores"]:
        return ""
    return (f": **more runnable processes than the {m['cores']} cores, so the timings are not "
            "a measurement** (multi-threaded PyTorch ops wait for descheduled threads)")


def markdown(results: dict) -> str:
    """The machine summary and one table per section (the body of latest.md and the README block),
    or per sweep family (sweep.md)."""
    lines = _machine_lines(results)
    for section, heading in SECTIONS:
        rows = [_row(name, entry) for name, entry in results["workloads"].items()
                if _section_of(entry) == section]
        if rows:
            lines += ["", f"**{heading}**", "", TABLE_HEADER, "|---|---|---:|---:|---:|---:|---:|",
                      *rows]
    for family, entries in _families(results).items():
        lines += ["", f"**{family}**", "", SWEEP_HEADER, "|---|---:|---:|---:|---:|---:|",
                  *[_row(name, entry) for name, entry in entries]]
    return "\n".join(lines) + "\n"


def _families(results: dict) -> dict:
    """Sweep entries by family title, in run order: {family: [(name, entry), ...]}."""
    families = {}
    for name, entry in results["workloads"].items():
        if entry["group"] == "sweep":
            families.setdefault(entry["sweep"][0], []).append((name, entry))
    return families


def plot(results: dict, path: str) -> None:
    """Horizontal bars of the ratios (log scale) with their min–max range; 1 = as fast as PyTorch."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [(name, e) for name, e in results["workloads"].items() if e["status"] == "ok"]
    figure, axes = plt.subplots(figsize=(8, 0.35 * len(measured) + 1.5))
    names = [name for name, _ in measured][::-1]
    ratios = [e["ratio"] for _, e in measured][::-1]
    spans = [[e["ratio"] - e["ratio_min"] for _, e in measured][::-1],
             [e["ratio_max"] - e["ratio"] for _, e in measured][::-1]]
    colors = ["tab:green" if r <= 1 else "tab:red" for r in ratios]
    # bars grow from 1 (as fast as PyTorch): to the left when minidl is faster, right when slower
    axes.barh(names, [r - 1 for r in ratios], left=1, xerr=spans, color=colors, capsize=2)
    for row, ratio in enumerate(ratios):
        axes.annotate(f"{ratio:.2g}×", (ratio, row), xytext=(4 if ratio > 1 else -4, 0),
                      textcoords="offset points", va="center", ha="left" if ratio > 1 else "right",
                      fontsize=7)
    axes.axvline(1, color="black", linewidth=0.8)
    axes.set_xscale("log")
    low = min([1] + [e["ratio_min"] for _, e in measured])
    high = max([1] + [e["ratio_max"] for _, e in measured])
    axes.set_xlim(low / 2, high * 2)
    axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}×"))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("minidl time ÷ PyTorch time (lower is better)")
    machine = results["machine"]
    axes.set_title(f"minidl vs PyTorch {machine['torch']}, {results['device']}, "
                   f"{machine['threads']} threads ({machine['date']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_sweeps(results: dict, path: str) -> None:
    """One panel per sweep family: the ratio against size (log-log), vs PyTorch's default
    optimizers (solid) and its fused ones (dashed); below the line at 1 minidl is faster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = _families(results)
    columns = min(3, len(families))
    rows = -(-len(families) // columns)
    figure, panels = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axes, (family, entries) in zip(panels.flat, families.items()):
        measured = [entry for _, entry in entries if entry["status"] == "ok"]
        sizes = [entry["sweep"][2] for entry in measured]
        axes.plot(sizes, [e["ratio"] for e in measured], "o-", label="vs PyTorch")
        if any(e.get("ratio_fused") is not None for e in measured):
            axes.plot(sizes, [e["ratio_fused"] for e in measured], "s--", label="vs PyTorch fused")
        axes.axhline(1, color="black", linewidth=0.8)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(entries[0][1]["sweep"][1])
        axes.set_ylabel("minidl ÷ PyTorch time")
        axes.set_title(family, fontsize=8)
        axes.legend(fontsize=7)
    for axes in list(panels.flat)[len(families):]:
        axes.set_visible(False)
    figure.suptitle(f"minidl vs PyTorch {results['machine']['torch']} across sizes "
                    f"({results['machine']['date']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(results: dict, out: str, stem: str = "latest") -> list:
    """``stem``.json, .md and .png in ``out`` (the sweeps: stem "sweep"); returns their paths."""
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"{stem}.{ext}") for ext in ("json", "md", "png")]
    with open(paths[0], "w") as file:
        json.dump(results, file, indent=1, ensure_ascii=False)
    with open(paths[1], "w") as file:
        file.write("# minidl vs PyTorch\n\n" + markdown(results))
    (plot_sweeps if stem == "sweep" else plot)(results, paths[2])
    return paths
