"""Command line: ``python -m resclaims`` (also installed as ``resclaims``).

- ``report FOLDER``: re-render ``summary.md`` and ``summary.html`` from ``summary.json``, without retraining.
- ``compare A B``: what changed from report A (the baseline) to report B; exit 1 with ``--fail-on-change``.
- ``baseline update [FOLDER]``: make a report (default ``reports/latest``) the committed baseline.
- ``fetch-data [NAME ...]``: download data sets into the cache, verified.
- ``list [--markdown]``: the claim tests with their tiers, or the claims catalogue (``benchmarks/CLAIMS.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import shutil
import sys
from pathlib import Path

from resclaims import compare
from resclaims.datasets import FETCHERS, DataError, DataUnavailable, cache_dir
from resclaims.download import DownloadError

PROJECT = Path(__file__).resolve().parents[1]
REPORTS = PROJECT / "reports"


def fail(message: str) -> int:
    print(f"resclaims: {message}", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace) -> int:
    from resclaims.render import render_html, render_markdown

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
    return 1 if changes and args.fail_on_change else 0


def cmd_baseline_update(args: argparse.Namespace) -> int:
    import json

    from resclaims.render import render_markdown
    from resclaims.report import _replace_folder

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

    if args.markdown:
        from resclaims import catalogue

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
            print(f"\n{item.path.name}: {(item.module.__doc__ or '').strip().splitlines()[0]}")
        tiers = sorted(m.name for m in item.iter_markers() if m.name in ("quick", "full", "gpu"))
        print(f"  {item.name:70s} {', '.join(tiers)}")
    return 0


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
    p.add_argument("--slowdown", default=compare.DEFAULT_SLOWDOWN, help=f"timing threshold, pytest-benchmark's compare-fail syntax (default: {compare.DEFAULT_SLOWDOWN.replace('%', '%%')})")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except compare.ReportError as error:
        return fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
