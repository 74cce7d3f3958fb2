"""``python -m resclaims gpu-check``: one prepared device check of the training steps, and what they project.

It measures, on one device:

- **steps**: images per second of one training step of a group of seeds, in every
  mode of :data:`resclaims.kernels.cifar.steps.STEP_MODES` the device has (eager and
  compiled everywhere; CUDA-graph capture on CUDA), for source 003's network,
  ResNet-20, ResNet-56 and ResNet-110 at groups of 1, 5 and 10 seeds, with each
  mode's compile or capture time;
- **sharing**: 1, 2 and 4 processes training an arm each on the device at once (the
  local engine's ``--engine-workers`` above the GPU count), in the mode ``auto`` picks;
- **layouts** (CUDA): the ways to lay out the seeds of one arm, eager: grouped
  convolutions with and without channels_last, one model after the other, and one
  model per CUDA stream (``torch.func.vmap`` is not among them: it cannot update
  BatchNorm's running statistics in place, which every one of these nets trains with);
- **projections**: the wall time of K full, of H1 as issue 14 sizes it (5 depths x
  5 seeds) and as the suite runs it (D full: 7 arms x 8 seeds), and of the CIFAR
  full tier, from the fastest mode measured for each net;
- **K full itself** (``--k-full``, with ``--data-dir``), when it fits the time left:
  ``pytest benchmarks/test_cifar_resnet_vs_plain.py --full``, its verdicts and wall time.

It writes one JSON file and prints a table. Steps train on fixed random batches
already on the device: the data pipeline (augmentation on the device) is not in
these figures. Evaluation is projected at a third of a training image's cost (a
forward pass of the three). A measurement that does not fit the budget is
recorded as skipped, with the reason. On a CPU (``--device cpu``, or no GPU) it
runs a reduced check in under a minute (small nets, groups of 1 and 3, one
compiled net), so CI and a session without a GPU exercise the same code.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resclaims.kernels.cifar import steps as step_modes
from resclaims.kernels.cifar.config import (
    D_TIERS,
    HE2015,
    K_TIERS,
    Arm,
    TrainConfig,
    he_arms,
    keras_arms,
)
from resclaims.kernels.cifar.optim import make_optimizer
from resclaims.kernels.cifar.stack import build
from resclaims.kernels.cifar.timing import cpu_threads, fixed_batches_step

EVAL_COST = 1 / 3  # an evaluated image's cost, as a fraction of a trained one's (forward only)
SHARING = (1, 2, 4)  # processes training an arm each on one device at once


@dataclass(frozen=True)
class Net:
    """One network the check measures: its arm, and its recipe (batch size, optimizer, input size)."""

    name: str
    arm: Arm
    train: TrainConfig


def nets(reduced: bool) -> list[Net]:
    """The full check's nets, or (CPU) small ones of the same code."""
    keras = TrainConfig()
    if reduced:
        return [Net("003 x0.125, 2 blocks", keras_arms([2], width=0.125)[0], replace(keras, batch_size=32)),
                Net("ResNet-8 4-8-8, 16x16", he_arms([8], True, (4, 8, 8))[0],
                    replace(HE2015, batch_size=32, downsample=2))]
    return [Net("003 (10 blocks)", keras_arms([10])[0], keras),
            *(Net(f"ResNet-{d}", he_arms([d], True)[0], HE2015) for d in (20, 56, 110))]


def _step(net: Net, group: int, mode: str, device: torch.device, *, grouped: bool = True,
          channels_last: bool | None = None) -> tuple[step_modes.GroupStep, list, list]:
    return fixed_batches_step(net.train, net.arm, group, device, stack="grouped" if grouped else "loop", mode=mode,
                              channels_last=channels_last)  # fmt: skip


def _synchronize(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def measure_step(net: Net, group: int, mode: str, device: torch.device, seconds: float) -> dict[str, Any]:
    """One row: images/s of ``mode``'s step (after its compile or capture, which is timed separately)."""
    step, xs, ys = _step(net, group, mode, device)
    sync = _synchronize(device)
    started = time.perf_counter()
    step(xs, ys)
    sync()
    first = time.perf_counter() - started
    rate = step_modes.images_per_second(lambda: step(xs, ys), group * net.train.batch_size, seconds=seconds,
                                        synchronize=sync)  # fmt: skip
    return {"net": net.name, "group": group, "mode": step.mode, "asked": mode, "images_per_s": rate,
            "setup_s": step.setup_seconds, "first_step_s": first}  # fmt: skip


def measure_layout(net: Net, group: int, layout: str, device: torch.device, seconds: float) -> dict[str, Any]:
    """Eager images/s of one way to lay out ``group`` seeds (module docstring)."""
    sync = _synchronize(device)
    images = group * net.train.batch_size
    if layout == "streams":
        models = [build(net.arm, seed).to(device, memory_format=torch.channels_last) for seed in range(group)]
        optimizer = make_optimizer(net.train, [p for m in models for p in m.parameters()])
        _, xs, ys = _step(net, group, "eager", device)
        streams = [torch.cuda.Stream(device) for _ in models]

        def step() -> None:
            main = torch.cuda.current_stream(device)
            losses = []
            for model, stream, x, y in zip(models, streams, xs, ys):
                stream.wait_stream(main)
                with torch.cuda.stream(stream), torch.autocast("cuda", dtype=torch.bfloat16):
                    losses.append(torch.nn.functional.cross_entropy(model(x).float(), y))
            for stream in streams:
                main.wait_stream(stream)
            optimizer.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            optimizer.step()
    else:
        grouped, channels_last = {"grouped": (True, False), "grouped, channels_last": (True, True),
                                  "one after another": (False, device.type == "cuda")}[layout]  # fmt: skip
        group_step, xs, ys = _step(net, group, "eager", device, grouped=grouped, channels_last=channels_last)

        def step() -> None:
            group_step(xs, ys)

    step()
    return {"net": net.name, "group": group, "layout": layout,
            "images_per_s": step_modes.images_per_second(step, images, seconds=seconds, synchronize=sync)}


def _sharing_worker(net: Net, group: int, mode: str, device: str, seconds: float, barrier, results) -> None:
    """One of several processes on one device: set up, wait for the others, then measure at the same time."""
    step, xs, ys = _step(net, group, mode, torch.device(device))
    sync = _synchronize(torch.device(device))
    step(xs, ys)
    sync()
    barrier.wait()
    results.put(step_modes.images_per_second(lambda: step(xs, ys), group * net.train.batch_size, seconds=seconds,
                                             synchronize=sync))  # fmt: skip


def measure_sharing(net: Net, group: int, mode: str, device: torch.device, seconds: float, processes: int,
                    timeout: float = 300) -> dict[str, Any]:
    """Images/s of ``processes`` processes training an arm each on one device at once (the local engine's
    ``--engine-workers N`` with more workers than GPUs): whether several small arms at once fill the device."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_sharing_worker, args=(net, group, mode, str(device), seconds, barrier, results))
               for _ in range(processes)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        rates = [results.get(timeout=timeout) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    return {"net": net.name, "group": group, "mode": mode, "processes": processes, "images_per_s": sum(rates)}


# -- projections ----------------------------------------------------------------------------------------
def _per_image(rows: list[dict], net: str, group: int) -> float | None:
    """Seconds per trained image of ``net`` in groups of ``group``: the fastest mode, interpolated in the group size."""
    best: dict[int, float] = {}
    for row in rows:
        if row["net"] == net and row.get("images_per_s"):
            best[row["group"]] = max(best.get(row["group"], 0.0), row["images_per_s"])
    if not best:
        return None
    sizes = sorted(best)
    return float(np.interp(group, sizes, [1 / best[g] for g in sizes]))


def _resnet_per_image(rows: list[dict], depth: int, group: int, depths: dict[int, str]) -> float | None:
    """A ResNet's seconds per image, interpolated (or extrapolated) linearly in depth from the measured depths."""
    known = {d: _per_image(rows, name, group) for d, name in depths.items()}
    known = {d: t for d, t in known.items() if t is not None}
    if len(known) < 2:
        return next(iter(known.values()), None)
    ds = sorted(known)
    slope, intercept = np.polyfit(ds, [known[d] for d in ds], 1)
    return float(intercept + slope * depth)


def _arm_seconds(per_image: float | None, cfg: TrainConfig, seeds: int) -> float | None:
    if per_image is None:
        return None
    evaluated = (cfg.test_size or 10_000) + (cfg.val_size if cfg.eval_val else 0) + cfg.train_eval_size
    images = seeds * (cfg.steps * cfg.batch_size + cfg.steps // cfg.log_every * evaluated * EVAL_COST)
    return images * per_image


def projections(rows: list[dict], measured: list[Net]) -> dict[str, Any]:
    """Projected wall times (seconds; None where a net was not measured), arms one after another on the device."""
    names = [net.name for net in measured]
    keras, depths = names[0], {int(n.split("-")[1].split()[0]): n for n in names[1:]}
    k, d = K_TIERS["full"].config, D_TIERS["full"].config
    k_seeds, d_seeds = K_TIERS["full"].seeds, D_TIERS["full"].seeds
    blocks = sorted({k.blocks, *k.depth_blocks})
    k10 = _per_image(rows, keras, k_seeds)
    k_arms = [(b, 2) for b in blocks] + [(k.blocks, 2)] * k.order_effect  # (blocks, arms: resnet and plain)
    k_full = None if k10 is None else sum(
        n * _arm_seconds(k10 * (2 * b + 3) / (2 * k.blocks + 3), k.train, k_seeds) for b, n in k_arms)  # convs: 2b+3

    def he(depth: int, seeds: int, cfg: TrainConfig) -> float | None:
        return _arm_seconds(_resnet_per_image(rows, depth, seeds, depths), cfg, seeds)

    h1_issue = [he(depth, 5, HE2015) for depth in (20, 32, 44, 56, 110)]
    d_depths = [*(("plain", x) for x in d.depths), *(("resnet", x) for x in sorted({*d.depths, *d.table_depths}))]
    d_full = [he(depth, d_seeds, d.train) for _, depth in d_depths]
    total = lambda parts: None if any(p is None for p in parts) else float(sum(parts))  # noqa: E731
    cifar = total([k_full, total(d_full)])
    return {
        "K full": {"seconds": k_full, "what": f"{sum(n for _, n in k_arms)} arms x {k_seeds} seeds x {k.train.steps} "
                   "steps (003's net at 5, 10, 20 blocks and the order arms), groups of 10", "goal_seconds": 180},
        "H1 (issue 14)": {"seconds": total(h1_issue), "what": "ResNet-20/32/44/56/110 x 5 seeds x 64k iterations",
                          "goal_seconds": 45 * 60},
        "D full (H1 and D1, D2 as the suite runs them)": {
            "seconds": total(d_full), "what": f"{len(d_depths)} arms x {d_seeds} seeds x {d.train.steps} iterations"},
        "CIFAR full tier (K + D)": {"seconds": cifar, "what": "D3's gradient runs, Z and M not included "
                                    "(python -m resclaims plan --full gives their measured costs)"},
        "whole full tier goal": {"seconds": None, "goal_seconds": 90 * 60},
    }


# -- the check ------------------------------------------------------------------------------------------
def run_k_full(data_dir: Path, seconds_left: float, out: Path) -> dict[str, Any]:
    """K's full tier as a pytest session (its own report folder), within ``seconds_left``."""
    folder = out.parent / "k-full"
    command = [sys.executable, "-m", "pytest", "benchmarks/test_cifar_resnet_vs_plain.py", "--full", "--device", "cuda",
               "--data-dir", str(data_dir), "--report-dir", str(folder), "--baseline", "none", "-q",
               "-p", "no:cacheprovider", "--benchmark-skip"]  # fmt: skip
    started = time.perf_counter()
    try:
        done = subprocess.run(command, timeout=seconds_left, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        return {"ran": False, "reason": f"did not finish in the {seconds_left:.0f} s left", "command": " ".join(command)}
    result = {"ran": True, "exit": done.returncode, "wall_s": time.perf_counter() - started,
              "command": " ".join(command), "tail": done.stdout[-2000:]}  # fmt: skip
    summary = folder / "summary.json"
    if summary.is_file():
        claims = json.loads(summary.read_text())["claims"]
        result["verdicts"] = {c["id"]: {"verdict": c["verdict"], "estimate": c["estimate"], "ci": c["ci"]} for c in claims}
    return result


def check(device: torch.device, *, budget: float, out: Path, data_dir: Path | None = None, k_full: bool = False,
          reduced: bool | None = None, modes: Sequence[str] | None = None, seconds: float | None = None,
          say=print) -> dict[str, Any]:
    """Measure, project, and (``k_full``) run K full; write ``out`` (JSON) and return the document.

    ``reduced`` (default: on a CPU) measures the small nets; ``modes`` and ``seconds`` (per measurement) default
    to every mode for the full check (eager and compile reduced) and 1 s (0.3 s reduced).
    """
    started = time.perf_counter()
    reduced = device.type != "cuda" if reduced is None else reduced
    measured = nets(reduced)
    groups = (1, 3) if reduced else (1, 5, 10)
    # the cheap modes first, so that a budget spent on compiles still leaves eager against graph; compile+graph
    # after compile, whose graphs it finds in inductor's cache
    modes = list(modes or (("eager", "compile") if reduced else ("eager", "graph", "compile", "compile+graph")))
    seconds = seconds or (0.3 if reduced else 1.0)
    left = lambda: budget - (time.perf_counter() - started)  # noqa: E731
    plan = [(net, g, m) for m in modes for net in measured for g in groups
            if not (reduced and m != "eager" and (net is not measured[-1] or g != groups[-1]))]  # CPU: one compile
    rows: list[dict[str, Any]] = []
    threads = cpu_threads(1) if reduced else nullcontext()
    with threads:
        for net, group, mode in plan:
            if left() < (30 if mode != "eager" and not reduced else 2):
                rows.append({"net": net.name, "group": group, "asked": mode, "skipped": "the budget was spent"})
                continue
            try:
                rows.append(measure_step(net, group, mode, device, seconds))
            except Exception as error:  # noqa: BLE001 - one failed measurement is a row, not the end of the check
                rows.append({"net": net.name, "group": group, "asked": mode,
                             "error": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"})
            say(_row_line(rows[-1]))
        layouts = []
        if not reduced:
            for layout in ("grouped", "grouped, channels_last", "one after another", "streams"):
                if left() > 20 and (layout != "streams" or device.type == "cuda"):
                    layouts.append(measure_layout(measured[1], 5, layout, device, seconds))
                    say(f"layout {layout:24s} ResNet-20 x5 eager: {layouts[-1]['images_per_s']:,.0f} img/s")
        sharing = []
        if not reduced:  # several arms at once on one device, each its own process, in the mode "auto" picks
            auto = step_modes.resolve_mode("auto", device)
            for processes in SHARING:
                if left() > 60:
                    sharing.append(measure_sharing(measured[1], 5, auto, device, seconds, processes))
                    say(f"sharing: {processes} process(es), ResNet-20 x5 {auto} each: "
                        f"{sharing[-1]['images_per_s']:,.0f} img/s together")
    document = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "reduced": reduced, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": _commit(), "steps": rows, "layouts": layouts, "sharing": sharing,
        "layouts_not_measured": {"vmap": "torch.func.vmap cannot update BatchNorm's running statistics in place"},
        "projections": projections(rows, measured) if not reduced else {},
    }
    if k_full and data_dir is not None and not reduced:
        document["k_full"] = run_k_full(data_dir, left(), out)
    document["wall_s"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))
    say(table(document))
    return document


def _row_line(row: dict) -> str:
    head = f"{row['net']:24s} x{row['group']:<3d} {row.get('mode', row['asked']):14s}"
    if "images_per_s" in row:
        return head + f"{row['images_per_s']:>10,.0f} img/s  setup {row['setup_s']:.1f} s"
    return head + f"  {row.get('skipped') or row.get('error')}"


def table(document: dict) -> str:
    """The check as a Markdown table: images/s per net, group and mode; then the projections."""
    rows = [r for r in document["steps"] if "images_per_s" in r]
    modes = list(dict.fromkeys(r["asked"] for r in document["steps"]))
    lines = [f"gpu-check on {document['device']} (torch {document['torch']}{', reduced: CPU' if document['reduced'] else ''})",
             "", "| net | seeds | " + " | ".join(f"{m} img/s" for m in modes) + " | best setup (s) |",
             "|---|---:|" + "---:|" * len(modes) + "---:|"]  # fmt: skip
    for net, group in dict.fromkeys((r["net"], r["group"]) for r in document["steps"]):
        cells = []
        for mode in modes:
            row = next((r for r in rows if (r["net"], r["group"], r["asked"]) == (net, group, mode)), None)
            fell_back = row is not None and row["mode"] != mode
            cells.append("-" if row is None else f"{row['images_per_s']:,.0f}" + (" (eager: fell back)" if fell_back else ""))
        setups = [r["setup_s"] for r in rows if (r["net"], r["group"]) == (net, group) and r["setup_s"]]
        lines.append(f"| {net} | {group} | " + " | ".join(cells) + f" | {max(setups) if setups else 0:.1f} |")
    if document["projections"]:
        lines += ["", "| projection | wall time | goal | what |", "|---|---:|---:|---|"]
        for name, p in document["projections"].items():
            wall = "-" if p.get("seconds") is None else f"{p['seconds'] / 60:.1f} min"
            goal = f"{p['goal_seconds'] / 60:.0f} min" if p.get("goal_seconds") else ""
            lines.append(f"| {name} | {wall} | {goal} | {p.get('what', '')} |")
    if document.get("sharing"):
        lines += ["", "| arms at once on the device (processes) | img/s together |", "|---:|---:|"]
        lines += [f"| {r['processes']} | {r['images_per_s']:,.0f} |" for r in document["sharing"]]
    if "k_full" in document:
        k = document["k_full"]
        lines += ["", f"K full: {'ran in %.1f min, exit %s' % (k['wall_s'] / 60, k['exit']) if k['ran'] else k['reason']}"]
        for claim, v in k.get("verdicts", {}).items():
            lines.append(f"  {claim}: {v['verdict']}, estimate {v['estimate']}, CI {v['ci']}")
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[3]).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
