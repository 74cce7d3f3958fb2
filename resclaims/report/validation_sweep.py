"""The mean-curve validation sweep's results, committed: ``validation_means.json`` beside this module.

The sweep (:mod:`resclaims.report.validation_means`: Z1's crossing and ratio procedures on written learning curves)
takes hours of one core, far too long for a session's report, so its results are generated once, by hand
(``python -m resclaims.report.validation_sweep``; ``--jobs N`` spreads the cells over N processes), committed, and
read by every report. The file carries the :func:`fingerprint` of the code that produced it: the mean tests
(``decide/means.py``), the sweep's worlds and cases (``report/validation_means.py``) and alpha, each module read
without its comments and docstrings (:func:`code_only`: a corrected sentence changes no rate). Where the code's
fingerprint differs, :func:`load` marks the table stale and the report says so in one line, with the command that
regenerates it (numpy's and scipy's versions are recorded, not fingerprinted: they are not pinned, and a changed
random stream does not change what a rate measures).

A crossing cell draws ``validation_means.SIMS`` (2,000) data sets. A ratio cell costs about 30 crossing cells (two
curves, a bisection over the split per data set, at both edges), so it draws ``RATIO_SIMS``: the ratio's tests are
conservative (each part at alpha / 2), and 300 data sets bound a rate near 0.01 below 0.035 (95% Clopper-Pearson).
Each row's limit is alpha plus the Monte Carlo margin at its own number of data sets.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import sys
import time
import tokenize
from pathlib import Path
from typing import Any

from resclaims.decide import means
from resclaims.decide.stats import ALPHA
from resclaims.report import validation_means as vm
from resclaims.report.validation import margin

PATH = Path(__file__).with_name("validation_means.json")
RATIO_SIMS = 300
CODE = (Path(means.__file__), Path(vm.__file__))
COMMAND = "python -m resclaims.report.validation_sweep"
ONE_POINT = 0.01  # the tolerance: both errors within alpha + 1 point


def code_only(source: str) -> str:
    """``source`` without its comments, docstrings and blank lines, each line right-stripped: what a module does,
    not what it says (the tokenizer finds the comments, the syntax tree the docstrings, so a ``#`` or a triple quote
    inside a string stays)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    comments = {t.start[0]: t.start[1] for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    lines = (line[:comments.get(i, len(line))].rstrip() for i, line in enumerate(source.splitlines(), 1)
             if i not in docstrings)
    return "\n".join(line for line in lines if line)


def fingerprint() -> str:
    """What the sweep's rates depend on: the code of the mean tests and of the sweep's own module, and alpha."""
    digest = hashlib.sha256(f"alpha={ALPHA!r}".encode())
    for path in CODE:
        digest.update(path.name.encode() + b"\0" + code_only(path.read_text()).encode())
    return digest.hexdigest()[:16]


def sims_for(case: vm.CurveCase) -> int:
    return RATIO_SIMS if case.name.startswith("ratio") else vm.SIMS


def cells(sizes: tuple[int, ...] = (vm.SMALL_N, *vm.SIZES)) -> list[tuple[int, str, int, int]]:
    """Every cell of the sweep as (case index, world, n, sims), cheapest first."""
    out = [(i, world, n, sims_for(case)) for i, case in enumerate(vm.CASES) for n in sizes for world in vm.WORLDS]
    return sorted(out, key=lambda c: (c[2] * c[3] * (30 if vm.CASES[c[0]].name.startswith("ratio") else 1), c))


def _cell(spec: tuple[int, str, int, int]) -> dict[str, Any]:
    i, world, n, sims = spec
    start = time.perf_counter()
    row = vm.cell(vm.CASES[i], world, n, sims=sims)
    return {**row, "seconds": round(time.perf_counter() - start, 1)}


def status(row: dict[str, Any], alpha: float = ALPHA) -> str:
    """A row's standing: "ok" (a held cell within alpha + the Monte Carlo margin at its sims), "ABOVE" (a held cell
    beyond it: the suite fails), or why it is not held ("not held: known above", "not held: beyond reach", "not
    held: small n"; "ok (... not held)" for a KNOWN_ABOVE world and n within alpha + 1 point); then ", above alpha + 1 point"
    wherever the rate itself exceeds alpha + 0.01, held or not."""
    rate = max(row["false_supported"]["rate"], row["false_refuted"]["rate"])
    if row["held"]:
        word = "ok" if rate <= alpha + margin(alpha, row["sims"]) else "ABOVE"
    elif (row["world"], row["n"]) in vm.KNOWN_ABOVE:  # known above for the crossing tests, not for every case
        word = "not held: known above" if rate > alpha + ONE_POINT else "ok (a KNOWN_ABOVE world and n: not held)"
    else:
        word = "not held: beyond reach" if row["world"] in vm.BEYOND_REACH else "not held: small n"
    return word + (", above alpha + 1 point" if rate > alpha + ONE_POINT and word != "ABOVE" else "")


def generate(path: Path = PATH, *, jobs: int = 1, sizes: tuple[int, ...] = (vm.SMALL_N, *vm.SIZES)) -> dict[str, Any]:
    """Run every cell (resuming from ``path``'s ``.partial`` lines written with the same fingerprint) and write the
    table to ``path``."""
    key, partial = fingerprint(), path.with_suffix(".partial")
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            row = json.loads(line)
            if row.pop("fingerprint", None) == key:
                done[(row["procedure"], row["world"], row["n"])] = row
    todo = [c for c in cells(sizes) if (vm.CASES[c[0]].name, c[1], c[2]) not in done]
    total = len(done) + len(todo)
    with partial.open("a") as out:
        def keep(row: dict[str, Any]) -> None:
            done[(row["procedure"], row["world"], row["n"])] = row
            out.write(json.dumps({**row, "fingerprint": key}) + "\n")
            out.flush()
            print(f"{len(done)}/{total} {row['procedure']} | {row['world']} | n={row['n']}: supported {row['false_supported']['rate']:.4f}"
                  f", refuted {row['false_refuted']['rate']:.4f} ({row['seconds']} s)", file=sys.stderr, flush=True)

        if jobs > 1:
            from multiprocessing import get_context

            with get_context("spawn").Pool(jobs) as pool:
                for row in pool.imap(_cell, todo):
                    keep(row)
        else:
            for spec in todo:
                keep(_cell(spec))
    order = {(vm.CASES[i].name, world, n): k for k, (i, world, n, _) in
             enumerate((i, w, n, 0) for i in range(len(vm.CASES)) for n in sizes for w in vm.WORLDS)}
    rows = sorted(done.values(), key=lambda r: order.get((r["procedure"], r["world"], r["n"]), len(order)))
    import numpy
    import scipy

    table = {"fingerprint": key, "alpha": ALPHA, "command": COMMAND, "numpy": numpy.__version__,
             "scipy": scipy.__version__, "sims": {"crossing": vm.SIMS, "ratio": RATIO_SIMS},
             "rows": rows, "seconds": round(sum(r.get("seconds", 0.0) for r in rows))}
    path.write_text(dump(table))
    partial.unlink(missing_ok=True)
    return table


def dump(table: dict[str, Any]) -> str:
    """The table as JSON, one row a line (a regenerated table's diff shows the cells that moved)."""
    head = json.dumps({k: v for k, v in table.items() if k != "rows"})[:-1]
    return head + ', "rows": [\n' + ",\n".join(json.dumps(r) for r in table["rows"]) + "\n]}\n"


def load(path: Path = PATH) -> dict[str, Any]:
    """The committed table with its standing: ``stale`` (the code's fingerprint differs from the one that produced
    it) and ``note`` (one line for the report); a missing or unreadable file gives rows [] and says so."""
    key = fingerprint()
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        return {"rows": [], "stale": True, "fingerprint": None, "code_fingerprint": key,
                "note": f"the mean-curve sweep's results are missing ({type(error).__name__}: {path.name}): "
                        f"regenerate with {COMMAND}"}
    stale = table.get("fingerprint") != key
    rows = [{**r, "status": status(r, table.get("alpha", ALPHA))} for r in table.get("rows", [])]
    note = (f"STALE: produced by code with fingerprint {table.get('fingerprint')}, the code's is now {key} "
            f"(decide/means.py or report/validation_means.py changed): regenerate with {COMMAND}" if stale else
            f"Produced by code with fingerprint {key} (the current code's; {COMMAND})")
    return {**table, "rows": rows, "stale": stale, "code_fingerprint": key, "note": note,
            "failures": [r for r in rows if r["status"].startswith("ABOVE")],
            "above_one_point": [r for r in rows if "above alpha + 1 point" in r["status"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--out", type=Path, default=PATH, help=f"the table (default {PATH.name} beside this module)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    table = generate(args.out, jobs=args.jobs)
    print(f"{len(table['rows'])} cells, {table['seconds']} s of cells, fingerprint {table['fingerprint']}: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
