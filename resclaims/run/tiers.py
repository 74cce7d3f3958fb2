"""A claim family's tiers: for each (``quick``, ``full``), its runs' configuration, its seeds per condition, its
fidelity and one line saying what it runs.

A benchmark module declares them once, as ``TIERS``, and every claim in it is measured and reported at the
session's tier (the plugin's ``tier`` fixture)::

    TIERS = {
        "quick": Tier(seeds=5, fidelity="reduced: 400 of 5,850 steps, width x0.25", protocol="003's protocol, ...",
                      config=...),
        "full": Tier(seeds=10, fidelity=SOURCE_PROTOCOL, protocol="003's protocol exactly", config=...),
    }

A tier is the one place its seeds are declared. A kernel with tier configs of its own may build its ``Tier`` objects
beside them (``resclaims.kernels.cifar.K_TIERS``, from ``KerasFamily(...).tier(seeds=5)``), so that library code
reads the same seeds (``gpu-check``'s projections); the module then declares ``TIERS = cifar.K_TIERS``.

The fidelity is part of the declaration, not a default: a module that declares no ``TIERS`` has its claims
stopped by the judge with one line, so no claim counts as measured at its source's protocol by omission.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resclaims.decide.claims import TIER_NAMES
from resclaims.decide.verdict import SOURCE_PROTOCOL

REDUCED = "reduced: "  # how the fidelity of a tier that is not the source's protocol begins


class TierError(ValueError):
    """A tier declaration the suite cannot use; the message says what to write instead."""


@dataclass(frozen=True)
class Tier:
    """One tier of a family: ``seeds`` per condition, its ``fidelity`` (``"source protocol"`` or ``"reduced: ..."``,
    what differs from the source), ``protocol`` (one line for the report; ``{seeds}`` is replaced by the session's
    seeds) and the family's own ``config`` (a kernel's tier configuration, or None)."""

    seeds: int
    fidelity: str
    protocol: str
    config: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise TierError(f"Tier(seeds={self.seeds!r}): give a positive whole number of seeds per condition")
        if self.fidelity != SOURCE_PROTOCOL and not str(self.fidelity).startswith(REDUCED):
            raise TierError(f"Tier(fidelity={self.fidelity!r}): say {SOURCE_PROTOCOL!r}, or {REDUCED!r} followed by "
                            "what differs from the source's protocol")

    @property
    def reduced(self) -> bool:
        return self.fidelity != SOURCE_PROTOCOL

    def at(self, seeds: int | None) -> Tier:
        """This tier with ``seeds`` per condition (``--seeds``), its protocol line saying how many."""
        n = seeds or self.seeds
        return dataclasses.replace(self, seeds=n, protocol=self.protocol.replace("{seeds}", str(n)))

    @staticmethod
    def everywhere(seeds: int, fidelity: str, protocol: str, config: Any = None) -> dict[str, Tier]:
        """The same tier at ``quick`` and ``full``: a family that has one scale (exact facts, a small own claim)."""
        tier = Tier(seeds, fidelity, protocol, config)
        return {name: tier for name in TIER_NAMES}


def declared(tiers: Any, where: str) -> Mapping[str, Tier]:
    """A module's ``TIERS``, checked: a mapping of tier names to :class:`Tier`; else a :class:`TierError`."""
    if tiers is None:
        raise TierError(f"{where} declares no TIERS: say at which seeds and fidelity its claims are measured, e.g. "
                        "TIERS = Tier.everywhere(seeds=20, fidelity='source protocol', protocol='...') "
                        "(resclaims.run.tiers)")
    if not isinstance(tiers, Mapping) or not tiers or any(not isinstance(t, Tier) for t in tiers.values()):
        raise TierError(f"{where}: TIERS must map tier names ({', '.join(TIER_NAMES)}) to Tier(...) declarations")
    unknown = sorted(set(tiers) - set(TIER_NAMES))
    if unknown:
        raise TierError(f"{where}: TIERS names unknown tiers {unknown}: use {', '.join(TIER_NAMES)}")
    return tiers
