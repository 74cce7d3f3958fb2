"""The claims catalogue, generated from the claim declarations in ``benchmarks/``.

``python -m resclaims list --markdown`` writes it; the committed copy is
``benchmarks/CLAIMS.md``, and ``tests/report/test_catalogue.py`` fails when it is out of
date. For each family module it lists the module's summary and protocol (its
docstring's first line and "Protocol" paragraph), then every claim: id,
source, the source's words, the claim as tested, the statistic, the procedure
that decides it and the outcomes recorded per tier (``benchmarks/expected/<module>.toml``,
:mod:`resclaims.decide.expected`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from resclaims.decide import expected
from resclaims.decide.claims import Claim

HEADER = ("# Claims catalogue\n\nGenerated from the claim declarations in `benchmarks/` by "
          "`python -m resclaims list --markdown > benchmarks/CLAIMS.md`; do not edit by hand. Each row is one "
          "claim as the suite decides it. A recorded outcome is the verdict a tier gave at its own seeds "
          "(base seed 20190403); the test is then `xfail(strict=True)` with those numbers. Role: a confirmatory "
          "claim is a sentence its source asserts, adjusted with Holm across that source's confirmatory claims; an "
          "exploratory one (another reading, a variant, the suite's own question) is not; \"source protocol only\": "
          "its number holds only at the source's protocol, so a tier at a reduced one (the quick tiers of K, D and M) "
          "reports it \"full tier only\", without a verdict; Z's tiers both train the source's protocol.\n")


def declared_claims(module: ModuleType) -> list[Claim]:
    """A module's claims: its module-level ``Claim`` objects and those in its module-level dicts, lists and tuples
    (claims generated from a table), each object once, in declaration order."""
    found: dict[int, Claim] = {}
    for value in vars(module).values():
        members = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else (value,)
        found.update((id(v), v) for v in members if isinstance(v, Claim))
    return list(found.values())


def unique_ids(modules) -> None:
    """Raise ``ValueError`` naming the first claim id declared twice, in one module or across ``modules``."""
    declared: dict[str, str] = {}
    for module in sorted(modules, key=lambda m: m.__name__):
        claims = declared_claims(module)
        ids = [c.id for c in claims]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"claim {twice[0]}: duplicate id, declared twice in {module.__name__}")
        for claim in claims:
            where = declared.setdefault(claim.id, module.__name__)
            if where != module.__name__:
                raise ValueError(f"claim {claim.id}: duplicate id, declared in {where} and {module.__name__}")


def load_modules(folder: Path) -> list[ModuleType]:
    """The family modules ``folder/test_*.py``, imported by path (in sorted order)."""
    modules = []
    for path in sorted(Path(folder).glob("test_*.py")):
        name = f"benchmarks.{path.stem}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        modules.append(module)
    return modules


def summary(module: ModuleType) -> str:
    """A module's summary: its docstring's first line ("" for a module without a docstring)."""
    lines = (module.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _protocol(doc: str) -> str:
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
    return next((p for p in paragraphs if p.startswith("Protocol")), "")


def _role(claim: Claim) -> str:
    """Confirmatory (in its source's Holm family) or exploratory, and whether only the source's protocol judges it."""
    if claim.procedure.name == "exact":
        return "exact"
    role = f"confirmatory ({claim.source_family})" if claim.confirmatory else "exploratory"
    return role + (", source protocol only" if claim.protocol_bound else "")


def markdown(modules: list[ModuleType]) -> str:
    """The catalogue of ``modules`` as markdown."""
    parts = [HEADER]
    for module in modules:
        claims = declared_claims(module)
        if not claims:
            continue
        parts.append(f"\n## `benchmarks/{Path(module.__file__).name}`\n")
        if summary(module):
            parts.append(f"\n{_cell(summary(module))}\n")
        protocol = _protocol(module.__doc__ or "")
        if protocol:
            parts.append(f"\n{protocol}\n")
        parts.append("\n| id | source | role | source's words | claim as tested | statistic | procedure | "
                     "recorded outcomes |\n|---|---|---|---|---|---|---|---|\n")
        outcomes = expected.load(module.__file__)
        for c in claims:
            known = "; ".join(f"{tier}: {_cell(by_id[c.id])}" for tier, by_id in outcomes.items() if c.id in by_id) or "-"
            statistic = f"{c.statistic} ({c.unit})" if c.unit and c.unit not in c.statistic else c.statistic
            statistic += f"; {c.reading}" if c.reading else ""
            parts.append(f"| {c.id} | {c.source} | {_role(c)} | {_cell(c.quote) or '-'} | {_cell(c.claim)} | "
                         f"{_cell(statistic)} | "
                         f"{_cell(c.procedure.name)}: {_cell(c.procedure.test)} | {known} |\n")
    return "".join(parts)
