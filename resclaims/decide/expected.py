"""Expected outcomes: what a claim module's claims gave at each tier where that was not "supported".

A module ``benchmarks/test_x.py`` keeps them beside it, in ``benchmarks/expected/test_x.toml``: one table per
tier, one line per claim id, the verdict first, then the numbers that showed it::

    [quick]
    "Z1.magnitude.per_run" = "refuted: median per-run ratio 1.56 [1.41, 1.67], n = 400; band [2.375, 3.5]"

The judge reads the session's tier (:class:`resclaims.decide.claims.Judge`): a claim listed there is
``xfail(strict=True)`` with that text and this session's numbers as its reason, so it turns red if the claim starts
to hold, and (at the tier's own seeds and base seed) fails if the verdict listed is no longer the one measured; a
claim not listed must be supported. ``defective`` marks a procedure whose calibration fails on that tier's runs.
A file that names a tier other than ``quick`` and ``full``, a claim its module does not declare (a variant,
``<id>@<suffix>``, counts as its claim's), or an outcome that does not start with a verdict stops the session at
collection with one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from resclaims.decide.claims import DEFECTIVE, TIER_NAMES, recorded_verdict
from resclaims.decide.verdict import INCONCLUSIVE, REFUTED

FOLDER = "expected"  # beside the claim modules
VERDICTS = (REFUTED, INCONCLUSIVE, DEFECTIVE)


class ExpectedError(ValueError):
    """An expected-outcomes file the suite cannot use; the message names the file and what to change."""


def path_of(module: Path | str) -> Path:
    """The expected-outcomes file of the claim module at ``module``: ``expected/<its stem>.toml`` beside it."""
    module = Path(module)
    return module.parent / FOLDER / f"{module.stem}.toml"


def load(module: Path | str) -> dict[str, dict[str, str]]:
    """The expected outcomes of the claim module at ``module``, by tier and claim id ({} where it has no file);
    :class:`ExpectedError` for a file that cannot be read, an unknown tier or an outcome without a verdict."""
    path = path_of(module)
    if not path.is_file():
        return {}
    where = _shown(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ExpectedError(f"{where}: cannot read it: {error}") from None
    for tier, outcomes in document.items():
        if tier not in TIER_NAMES:
            raise ExpectedError(f"{where}: unknown tier [{tier}]: use {' or '.join(f'[{t}]' for t in TIER_NAMES)}")
        if not isinstance(outcomes, dict):
            raise ExpectedError(f"{where}: [{tier}] must be a table of claim ids, e.g. \"U1\" = \"refuted: ...\"")
        for claim_id, reason in outcomes.items():
            if not isinstance(reason, str) or recorded_verdict(reason) not in VERDICTS:
                raise ExpectedError(f"{where}: [{tier}] {claim_id}: an expected outcome starts with "
                                    f"{', '.join(repr(v) for v in VERDICTS)}, then the numbers, got {str(reason)[:40]!r} "
                                    "(a supported claim is not listed)")
    return document


def check(expected: Mapping[str, Mapping[str, str]], declared: Iterable[str], module: Path | str) -> None:
    """:class:`ExpectedError` naming the first claim id in ``expected`` that the module does not declare."""
    declared = list(declared)
    for tier, outcomes in expected.items():
        for claim_id in outcomes:
            if claim_id.split("@")[0] not in declared:
                raise ExpectedError(f"{_shown(path_of(module))}: [{tier}] names claim {claim_id!r}, which "
                                    f"{Path(module).name} does not declare (it declares {', '.join(declared) or 'none'})")


def _shown(path: Path) -> str:
    """``path`` as a user reads it: relative to the working folder where it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
