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

**Reach after Holm.** Holm tests a family's smallest p at alpha / m, the next at
alpha / (m - 1), ..., the last at alpha. A claim can be any step, so a claim whose
procedure can reach "supported" only at a level above alpha / m relies on the other
claims being rejected first: with no other claim of its family supported, it is never
supported, whatever its runs. The reach of a confirmatory claim is therefore taken at
alpha / m, m the claims of its family (:func:`reach_levels`; ``plan`` prints both the
reach at alpha / m and at alpha). :class:`Families` knows m before the claims are
decided: the confirmatory claims the session's selected tests name, less those that get
no verdict in it (full tier only at a reduced protocol, or their test skipped).

**Sequential seeds** (``--seeds auto``, :mod:`resclaims.decide.sequential`): a confirmatory claim's group-sequential
tests are designed at alpha / m, Holm's first step, and its p-values are the stage-wise ones at its deciding look.
A claim decided "supported" (or "refuted") there has p <= alpha / m, so Holm's adjusted p is at most alpha and its
adjusted verdict is the same (``tests/decide/test_sequential.py`` checks this on families of sign tests); Holm may
add verdicts at its later steps for claims the design left inconclusive at their last look. A claim still to
continue (an interim look that decided nothing) has no final p: its adjusted verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resclaims.decide.stats import ALPHA, holm
from resclaims.decide.verdict import FULL_TIER_ONLY, INCONCLUSIVE, ClaimResult, two_tests

if TYPE_CHECKING:
    from resclaims.decide.claims import Claim

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
            verdict = two_tests(support[c.id], refute[c.id], alpha=alpha)
            if ((c.details or {}).get("sequential") or {}).get("continue"):
                verdict = INCONCLUSIVE  # --seeds auto, an interim look that decided nothing: its p is no final one
            adjusted[c.id] = dataclasses.replace(c, p_adjusted=support[c.id], p_refute_adjusted=refute[c.id],
                                                 verdict_adjusted=verdict)
    summary = {"method": "Holm", "alpha": alpha,
               "families": {source: [c.id for c in members] for source, members in sorted(families.items())},
               "statement": STATEMENT.format(alpha=alpha)}
    return [adjusted.get(c.id, c) for c in claims], summary


def reach_levels(m: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The levels a claim's reach is taken at in a Holm family of ``m``: alpha / m (what it must meet as the family's
    first step, the conservative reach) and alpha (its last step, reached only if every other claim is rejected)."""
    return alpha / max(m, 1), alpha


@dataclass
class Families:
    """A session's Holm families, known before its claims are decided: each source's confirmatory claims.

    The plugin adds the confirmatory claims every selected test names (in its code or its parameters) at
    collection, with their module; a claim that gets no verdict in the session leaves (``exclude``: its test
    skipped; ``protocol``: the protocol-bound claims of a module whose judge says its protocol is reduced), and a
    claim named by no test's code joins at its first decision (``decided``).
    Before every claim of a family has been decided or excluded, :meth:`size` counts the undecided ones: an upper
    bound on the family the report's Holm adjusts, so a reach taken at alpha / size is conservative."""

    claims: dict[str, "Claim"] = field(default_factory=dict)
    out: dict[str, str] = field(default_factory=dict)  # claim id -> why it gets no verdict in this session
    judged: set[str] = field(default_factory=set)
    modules: dict[str, str] = field(default_factory=dict)  # claim id -> the module whose tests name it

    def add(self, claim: "Claim", module: str | None = None) -> None:
        if claim.confirmatory:
            self.claims.setdefault(claim.id, claim)
            if module is not None:
                self.modules.setdefault(claim.id, module)

    def protocol(self, module: str, source_protocol: bool) -> None:
        """``module``'s protocol is known (its judge's fidelity): at a reduced one, its protocol-bound claims get no
        verdict ("full tier only")."""
        if not source_protocol:
            for claim in [c for i, c in self.claims.items() if self.modules.get(i) == module and c.protocol_bound]:
                self.exclude(claim, FULL_TIER_ONLY)

    def decided(self, claim: "Claim") -> None:
        """``claim`` gets a verdict in this session: a member of its family for good."""
        if claim.confirmatory:
            self.add(claim)
            self.judged.add(claim.id)
            self.out.pop(claim.id, None)

    def exclude(self, claim: "Claim", why: str) -> None:
        """``claim`` gets no verdict in this session (``why``), unless it already got one."""
        if claim.confirmatory and claim.id not in self.judged:
            self.add(claim)
            self.out[claim.id] = why

    def members(self, source: str) -> list["Claim"]:
        """The claims of ``source``'s family: every confirmatory claim of it that is not excluded."""
        return [c for c in self.claims.values() if c.source_family == source and c.id not in self.out]

    def size(self, claim: "Claim") -> int:
        """m for ``claim``: the members of its source's family, itself included."""
        return len({c.id for c in self.members(claim.source_family)} | {claim.id})
