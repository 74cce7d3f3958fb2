"""Command line: ``python -m resclaims`` (also installed as ``resclaims``).

- ``report FOLDER``: re-render ``summary.md`` and ``summary.html`` from ``summary.json``, without retraining.
- ``compare A B``: what changed from report A (the baseline) to report B; exit 1 with ``--fail-on-change``.
- ``baseline update [FOLDER]``: make a report (default ``reports/latest``) the committed baseline.
- ``fetch-data [NAME ...]``: download data sets into the cache, verified.
- ``list [--markdown]``: the claim tests with their tiers, or the claims catalogue (``benchmarks/CLAIMS.md``).
- ``plan [--estimate-only] [SELECTION]``: the runs the selected claims need, which are cached, and the cost of the rest
  (trains nothing), and each confirmatory claim's reach after Holm beside its planned n (a warning where n is below
  it); ``--estimate-only``: the one line of the cost.
- ``fill --engine local|ray|slurm [--publish] [--budget 150m] [SELECTION]``: train the runs the selected claims need
  into the run cache (``--publish``: and into the published run store, ``results/runs/``).
- ``sequential --seeds-budget N [--report-dir DIR] [SELECTION]``: ``--seeds auto``'s stages one session after another
  (``DIR/stage-<k>/``) until every claim is decided or the budget is reached, a line per stage; the last stage's
  report is ``DIR``'s (:func:`resclaims.plugin.sequential.drive`).
- ``gpu-check [--device cuda|cpu] [--k-full --data-dir DIR]``: images/s of eager, compiled and captured training
  steps, the projected full-tier wall times, one JSON file and a table (:mod:`resclaims.kernels.cifar.gpucheck`); reduced on a CPU.

A SELECTION is pytest's: paths, ``-m``, ``-k``, ``--full``, ``--seeds``, ``--data-dir``, ... (default: ``benchmarks``).
Bad input to ``plan`` and ``fill`` (an unknown engine, a missing library, an unreachable cluster, a
cache folder that cannot be written) is one line on stderr and exit 4, before anything trains.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import shutil
import signal
import sys
import time
from pathlib import Path

from resclaims.datasets import FETCHERS, DataError, DataUnavailable, cache_dir
from resclaims.datasets.download import DownloadError
from resclaims.plugin.settings import names_a_path
from resclaims.report import compare

PROJECT = Path(__file__).resolve().parents[1]
REPORTS = PROJECT / "reports"


def fail(message: str) -> int:
    print(f"resclaims: {message}", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace) -> int:
    from resclaims.report.html import render_html
    from resclaims.report.render import render_markdown

    document, _ = compare.load(args.folder)
    (args.folder / "summary.md").write_text(render_markdown(document), encoding="utf-8")
    (args.folder / "summary.html").write_text(render_html(document, args.folder), encoding="utf-8")
    print(f"re-rendered {args.folder / 'summary.md'} and summary.html")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    changes = compare.compare(args.current, args.baseline, args.slowdown)
    for change in changes:
        print(f"  {change.kind}: {change.message}")
    print(compare.summary_line(changes, args.baseline))
    return 1 if compare.counted(changes) and args.fail_on_change else 0


def slowdown(text: str) -> str:
    """``--slowdown``, checked: a percentage of a same-session ratio (:func:`resclaims.report.compare.slowdown_check`)."""
    try:
        compare.slowdown_check(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def cmd_baseline_update(args: argparse.Namespace) -> int:
    import json

    from resclaims.report.render import render_markdown
    from resclaims.report.report import _replace_folder

    source = args.folder.resolve()
    document, _ = compare.load(source)  # refuse to make a broken report the baseline
    document["comparison"] = None  # the source run's own comparison says nothing about later runs
    target = REPORTS / "baseline"
    staging = REPORTS / ".baseline.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # what comparisons read; per-run data and figures stay out of git
    (staging / "summary.json").write_text(json.dumps(document, indent=2, allow_nan=False))
    (staging / "summary.md").write_text(render_markdown(document), encoding="utf-8")
    if (source / "benchmarks.json").is_file():
        shutil.copy2(source / "benchmarks.json", staging / "benchmarks.json")
    _replace_folder(staging, target)
    print(f"baseline updated from {source}; commit {target} to keep it")
    return 0


def cmd_fetch_data(args: argparse.Namespace) -> int:
    for name in args.names or sorted(FETCHERS):
        module, function = FETCHERS[name].split(":")
        try:
            path = getattr(importlib.import_module(module), function)(cache_dir())
        except (DownloadError, DataError, DataUnavailable) as error:
            return fail(f"{name}: {error}")
        print(f"{name}: {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import pytest

    from resclaims.report import catalogue

    if args.markdown:
        print(catalogue.markdown(catalogue.load_modules(PROJECT / "benchmarks")), end="")
        return 0

    class Collector:
        def __init__(self) -> None:
            self.items = []

        def pytest_collection_modifyitems(self, items) -> None:
            self.items = list(items)

    collector = Collector()
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(["--collect-only", "-q", str(PROJECT / "benchmarks")], plugins=[collector])
    if code not in (0, 5):
        return fail("could not collect the benchmarks (run `pytest benchmarks --collect-only` to see why)")
    module = None
    for item in collector.items:
        if item.module.__name__ != module:
            module = item.module.__name__
            doc = catalogue.summary(item.module)  # "" for a module without a docstring (the README's example)
            print(f"\n{item.path.name}:" + (f" {doc}" if doc else ""))
        tiers = sorted(m.name for m in item.iter_markers() if m.name in ("quick", "full", "gpu"))
        print(f"  {item.name:70s} {', '.join(tiers)}")
    return 0


def selection(args: list[str]) -> list[str]:
    """pytest arguments for plan and fill: ``benchmarks`` unless they name a path."""
    return args if names_a_path(args) else [*args, str(PROJECT / "benchmarks")]


def usage_error(message: str) -> int:
    print(f"resclaims: ERROR: {message}", file=sys.stderr)
    return 4


def cmd_plan(args: argparse.Namespace) -> int:
    from resclaims.plugin.plan import plan, reach_table
    from resclaims.run.engines import EngineError

    try:
        found = plan(selection(args.pytest_args))
    except EngineError as error:
        return usage_error(str(error))
    if not args.estimate_only:
        print(found.table())
        for reason in found.other_skips:
            print(f"skipped, not planned: {reason}")
        if found.reaches:
            print(reach_table(found.reaches))
        if found.stages:
            from resclaims.plugin.sequential import stage_lines

            print(stage_lines(found.stages))
    print(found.estimate())
    return 0


def cmd_fill(args: argparse.Namespace) -> int:
    from resclaims.plugin.fill import fill, parse_budget
    from resclaims.run.engines import EngineError, EngineOptions, parse_options

    started = time.perf_counter()
    try:
        options = EngineOptions(args.engine, args.engine_address, args.workers, parse_options(args.engine_option),
                                args.seeds_per_job)
        budget = None if args.budget is None else parse_budget(args.budget)
        trained = fill(selection(args.pytest_args), options, publish=args.publish, budget=budget)
    except EngineError as error:
        return usage_error(str(error))
    print(f"resclaims: fill ({args.engine}): {trained} runs trained in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_sequential(args: argparse.Namespace) -> int:
    from resclaims.plugin.sequential import drive

    for option in ("--seeds", "--seeds-after"):
        if any(a == option or a.startswith(option + "=") for a in args.pytest_args):
            return usage_error(f"{option}: the sequential command sets it for each stage; leave it out")
    return drive(selection(args.pytest_args), args.seeds_budget, args.report_dir)


def cmd_gpu_check(args: argparse.Namespace) -> int:
    import torch

    from resclaims.kernels.cifar.gpucheck import check

    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return usage_error(f"--device {device}: this torch ({torch.__version__}) sees no CUDA device; "
                           "run on a GPU machine, or leave --device out for the reduced CPU check")
    if args.k_full and args.data_dir is None:
        return usage_error("--k-full trains K's full tier on CIFAR-10: give --data-dir DIR")
    if args.budget <= 0:
        return usage_error(f"--budget must be a positive number of seconds, got {args.budget:g}")
    check(torch.device(device), budget=args.budget, out=args.out, data_dir=args.data_dir, k_full=args.k_full)
    print(f"resclaims: gpu-check wrote {args.out}")
    return 0


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine, --engine-address, --workers and --engine-option (also the pytest options of the same names)."""
    parser.add_argument("--engine", default="local", help="local (default: worker processes), ray or slurm")
    parser.add_argument("--engine-address", default=None, metavar="HOST:PORT",
                        help="ray: the cluster to connect to (default: start a local one)")
    parser.add_argument("--workers", "--engine-workers", dest="workers", type=int, default=None, metavar="N",
                        help="workers (local, ray) or array parallelism (slurm) (default: one per GPU, else per CPU core)")
    parser.add_argument("--seeds-per-job", type=int, default=None, metavar="N",
                        help="each job trains at most N seeds of a condition (default: all its missing seeds)")
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                        help="slurm: a submitit parameter (slurm_partition=gpu, timeout_min=600, cluster=local, folder=PATH)")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand included (help texts are %-formatted: write ``%%`` for a ``%``)."""
    parser = argparse.ArgumentParser(prog="resclaims", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("report", help="re-render a report from its summary.json, without retraining")
    p.add_argument("folder", type=Path, nargs="?", default=REPORTS / "latest", help="report folder (default: reports/latest)")
    p.set_defaults(run=cmd_report)
    p = commands.add_parser("compare", help="what changed from a baseline report to another report")
    p.add_argument("baseline", type=Path, help="the earlier report folder (e.g. reports/baseline)")
    p.add_argument("current", type=Path, help="the later report folder (e.g. reports/latest)")
    p.add_argument("--slowdown", default=compare.DEFAULT_SLOWDOWN, type=slowdown, help=f"how much a same-session timing ratio may grow over the baseline's, pytest-benchmark's compare-fail syntax with a percentage (default: {compare.DEFAULT_SLOWDOWN.replace('%', '%%')})")
    p.add_argument("--fail-on-change", action="store_true", help="exit 1 if anything changed")
    p.set_defaults(run=cmd_compare)
    p = commands.add_parser("baseline", help="manage the committed baseline (reports/baseline)")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("update", help="make a report the baseline (deliberately; runs never do this)")
    q.add_argument("folder", type=Path, nargs="?", default=REPORTS / "latest", help="report folder (default: reports/latest)")
    q.set_defaults(run=cmd_baseline_update)
    p = commands.add_parser("fetch-data", help="download data sets into the cache (data/), verified")
    p.add_argument("names", nargs="*", choices=sorted(FETCHERS), help="data sets (default: all)")
    p.set_defaults(run=cmd_fetch_data)
    p = commands.add_parser("list", help="the claim tests with their tiers, or the claims catalogue (--markdown)")
    p.add_argument("--markdown", action="store_true",
                   help="print the claims catalogue generated from the declarations (benchmarks/CLAIMS.md)")
    p.set_defaults(run=cmd_list)
    selection_text = ("The other arguments select the claims as pytest does (paths, -m, -k, --full, --seeds, "
                      "--data-dir, ...; default: benchmarks). Trains nothing.")
    # allow_abbrev=False: the selection's own options (--seeds) must reach pytest, not match --seeds-per-job
    p = commands.add_parser("plan", help="the runs the selected claims need, which are cached, the cost of the rest",
                            usage="resclaims plan [--estimate-only] [SELECTION ...]", description=selection_text,
                            allow_abbrev=False)
    p.add_argument("--estimate-only", action="store_true",
                   help="print only the estimate line (what a session prints before it trains)")
    p.set_defaults(run=cmd_plan)
    p = commands.add_parser("fill", help="train the runs the selected claims need into the run cache, with an engine",
                            usage="resclaims fill [--engine NAME] [engine options] [SELECTION ...]",
                            description=selection_text.replace(" Trains nothing.", ""), allow_abbrev=False)
    add_engine_options(p)
    p.add_argument("--publish", action="store_true",
                   help="publish every finished run into the published run store (results/runs/), one seed per job")
    p.add_argument("--budget", default=None, metavar="DURATION",
                   help="start no job that cannot finish within this time at the measured rate, e.g. 150m or 2.5h "
                        "(default: no limit)")
    p.set_defaults(run=cmd_fill)
    p = commands.add_parser("sequential", help="--seeds auto's stages one session after another, until every claim "
                            "is decided or the budget is reached",
                            usage="resclaims sequential --seeds-budget N [--report-dir DIR] [SELECTION ...]",
                            description=selection_text.replace(" Trains nothing.", ""), allow_abbrev=False)
    p.add_argument("--seeds-budget", required=True, metavar="N",
                   help="the most seeds per arm a claim may train (each stage session checks it)")
    p.add_argument("--report-dir", type=Path, default=REPORTS / "sequential", metavar="DIR",
                   help="the stages' reports go to DIR/stage-<k>/, the last one's also to DIR (default: "
                        "reports/sequential)")
    p.set_defaults(run=cmd_sequential)
    p = commands.add_parser("gpu-check", help="eager, compiled and captured training steps measured, full-tier times "
                            "projected (reduced on a CPU)")
    p.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda if there is one, else cpu)")
    p.add_argument("--budget", type=float, default=480.0, metavar="SECONDS",
                   help="stop measuring (and skip K full) when this much time is spent (default: 480)")
    p.add_argument("--out", type=Path, default=REPORTS / "gpu-check" / "gpu-check.json", metavar="FILE",
                   help="the JSON file to write (default: reports/gpu-check/gpu-check.json)")
    p.add_argument("--k-full", action="store_true", help="also run K's full tier if it fits the budget left")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="where CIFAR-10 is (for --k-full)")
    p.set_defaults(run=cmd_gpu_check)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit) as an interrupt: the fill stops its workers as on SIGINT,
    rather than end alone and leave them training."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command in ("plan", "fill", "sequential"):
        args.pytest_args = rest  # the selection is pytest's
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in ("fill", "sequential"):  # they start workers or sessions: stop those on SIGTERM too
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.run(args)
    except compare.ReportError as error:
        return fail(str(error))
    except KeyboardInterrupt as stop:  # a fill stopped by hand: every finished run is already cached (and published)
        how = "terminated" if isinstance(stop, Terminated) else "interrupted"
        print(f"resclaims: {args.command} {how}; runs that finished are kept, the ones in progress resume from "
              "their checkpoints: run the same command again to go on", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
