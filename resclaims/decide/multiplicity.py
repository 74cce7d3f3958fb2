"""Multiplicity: Holm across each source's confirmatory claims.

A source asserts a handful of sentences; the suite tests each. Declared with
``confirmatory=True``, a claim joins its source's family (the first document its
``source`` names). Within a family, Holm's step-down procedure adjusts both
p-values of every claim: the one that supports it and the one that refutes it.
Holm controls the family-wise error under any dependence between the claims, so
claims that share runs (K1 and K3 share 003's arms) need no further care:

- the probability that any claim of a family is called "supported" after
  adjustment while it is false (at its boundary) is at most alpha, and
- the probability that any is called "refuted" while it is true is at most alpha.

A confirmatory claim measured at a reduced protocol has no verdict ("full tier
only") and stays out of its family. Exploratory claims (other readings of a sentence, the suite's own questions,
variants) keep their unadjusted verdicts, each with its own error bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from resclaims.decide.stats import ALPHA, holm
from resclaims.decide.verdict import FULL_TIER_ONLY, ClaimResult, two_tests

STATEMENT = ("Holm across each source's confirmatory claims, both ways: within a source, the chance that any "
             "confirmatory claim is called supported while false, or refuted while true, is at most {alpha:g} each, "
             "whatever the dependence between claims that share runs. Exploratory claims are unadjusted.")


def adjust(claims: Sequence[ClaimResult], alpha: float = ALPHA) -> tuple[list[ClaimResult], dict[str, Any]]:
    """``claims`` with ``p_adjusted``, ``p_refute_adjusted`` and ``verdict_adjusted`` set on the confirmatory ones,
    and the report's ``multiplicity`` entry (method, alpha, families, statement)."""
    families: dict[str, list[ClaimResult]] = {}
    for claim in claims:
        if claim.family == "confirmatory" and claim.verdict != FULL_TIER_ONLY:  # no verdict, nothing to adjust
            families.setdefault(claim.details.get("holm_family", claim.source), []).append(claim)
    adjusted: dict[str, ClaimResult] = {}
    for members in families.values():
        support = holm({c.id: 1.0 if c.p_value is None else c.p_value for c in members})
        refute = holm({c.id: 1.0 if c.p_refute is None else c.p_refute for c in members})
        for c in members:
            adjusted[c.id] = dataclasses.replace(c, p_adjusted=support[c.id], p_refute_adjusted=refute[c.id],
                                                 verdict_adjusted=two_tests(support[c.id], refute[c.id], alpha=alpha))
    summary = {"method": "Holm", "alpha": alpha,
               "families": {source: [c.id for c in members] for source, members in sorted(families.items())},
               "statement": STATEMENT.format(alpha=alpha)}
    return [adjusted.get(c.id, c) for c in claims], summary
