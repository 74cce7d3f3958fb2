"""The report's calibration sections: the validation table of the procedures (procedure x world x both errors),
then each claim's calibration (its null, its rates, its power)."""

from __future__ import annotations

from typing import Any

from resclaims.report.layout import Section


def _rate(rate: dict[str, Any] | None) -> str:
    return "n/a" if rate is None else f"{rate['rate']:.3f} [{rate['ci'][0]:.3f}, {rate['ci'][1]:.3f}]"


def calibration_sections(document: dict[str, Any]) -> list[Section]:
    """The validation table (procedure x world x both errors), then each claim's calibration."""
    out = []
    if document.get("validation"):
        out.append(validation_section(document["validation"]))
        if document["validation"].get("sequential"):
            out.append(sequential_section(document["validation"]["sequential"]))
        if document["validation"].get("mean_curves"):
            out.append(mean_curve_section(document["validation"]["mean_curves"]))
    if document.get("calibration"):
        per_claim = calibration_section(document)
        if out:
            per_claim.title, per_claim.level = "Calibration per claim", 3
        out.append(per_claim)
    return out


def validation_section(validation: dict[str, Any]) -> Section:
    """Each procedure on simulated worlds at the claim's boundary: how often it wrongly says supported, and refuted."""
    alpha, margin = validation.get("alpha", 0.05), validation.get("margin")
    limit = alpha + (margin or 0)

    def rate(r: dict[str, Any] | None) -> str:
        above = r is not None and r["rate"] > limit
        return _rate(r) + (f" - above alpha + margin = {limit:.3g}" if above else "")

    sentence = (f"False supported: how often a procedure says supported when its claim is false, with the truth on "
                f"the claim's boundary. False refuted: how often it says refuted when its claim is true, on the "
                f"boundary (n/a where the claim is true inside its band: there only refuted is an error). "
                f"Both should be at most alpha = {alpha:g}"
                + (f" plus the Monte Carlo margin {margin:.3g}" if margin is not None else "")
                + "; intervals are 95% Clopper-Pearson"
                + (f"; simulated at commit {validation['commit']}." if validation.get("commit") else "."))
    return Section("Calibration", paragraphs=[sentence],
                   headers=["procedure", "world", "n", "false supported [95% CI]", "false refuted [95% CI]", "sims"],
                   rows=[[r["procedure"], r["world"], str(r["n"]), rate(r.get("false_supported")),
                          rate(r.get("false_refuted")), str(r.get("sims", ""))] for r in validation.get("rows", [])])


def _worst(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    row = max(rows, key=lambda r: max(x["rate"] for x in (r["false_supported"], r["false_refuted"]) if x is not None))
    rate = max(x["rate"] for x in (row["false_supported"], row["false_refuted"]) if x is not None)
    where = row.get("design") or f"n = {row.get('n')}"
    return f"{rate:.4f} ({row['procedure']}, {row['world']}, {where})"


def sequential_section(table: dict[str, Any]) -> Section:
    """The shared sign and binomial procedures decided at the looks of a ``--seeds auto`` design: both errors over
    all looks, exact by recursion or simulated (:mod:`resclaims.report.validation_sequential`)."""
    alpha, margin = table.get("alpha", 0.05), table.get("margin") or 0.0
    rows = table.get("rows", [])

    def rate(r: dict[str, Any] | None, exact: bool) -> str:
        if r is None:
            return "n/a"
        text = f"{r['rate']:.4f}" if exact else _rate(r)
        return text + (" - above alpha" + ("" if exact else " + margin") if r["rate"] > alpha + (0 if exact else margin)
                       else "")

    exact = [r for r in rows if r["method"] == "exact"]
    simulated = [r for r in rows if r["method"] != "exact"]
    designs = "; ".join(f"{name}: looks {', '.join(map(str, looks))}" for name, looks in table.get("designs", {}).items())
    sentence = (f"Sequential seeds (--seeds auto): each shared sign and binomial procedure decided at the looks of a "
                f"planned design ({designs}), alpha spent across the looks for both decisions, with the claim on its "
                f"boundary in each written world; a row's errors are over all looks, each decision's stop included. "
                f"Exact: a recursion over the counts (one count that supports, one that refutes); simulated: "
                f"{table.get('sims')} data sets decided as a claim is (a band's two edges), 95% Clopper-Pearson. "
                f"Worst exact {_worst(exact)}; worst simulated {_worst(simulated)}; {len(table.get('failures', []))} "
                f"of {len(rows)} above alpha (exact) or alpha + {margin:.3g} (simulated).")
    return Section("Validation: sequential designs", paragraphs=[sentence], level=3,
                   headers=["procedure", "world", "looks", "false supported", "false refuted", "method"],
                   rows=[[r["procedure"], r["world"], ", ".join(map(str, r["looks"])),
                          rate(r.get("false_supported"), r["method"] == "exact"),
                          rate(r.get("false_refuted"), r["method"] == "exact"),
                          "exact" if r["method"] == "exact" else f"{r['sims']} sims"] for r in rows])


def mean_curve_section(table: dict[str, Any]) -> Section:
    """Z1's mean-curve procedures (Hall's tests) on written learning curves, from the committed sweep
    (:mod:`resclaims.report.validation_sweep`), labelled with the fingerprint of the code that produced it."""
    alpha = table.get("alpha", 0.05)
    rows = table.get("rows", [])
    held = [r for r in rows if r.get("held")]
    above = table.get("above_one_point", [])
    sentence = (f"Z1's mean-curve procedures (crossing in a band, ratio of crossings; Hall's skew-corrected tests of "
                f"the mean loss) on learning curves whose mean curve crosses exactly on a band edge. "
                f"{table.get('note', '')}. Held to alpha + the Monte Carlo margin at each row's sims: the Z tiers' n "
                f"(400, 2,000) in the worlds within reach; reported, not held: n = 16, rare slow runs (a mean "
                f"carried by 2% of runs) and, known above, lognormal runs at n = 400. Worst held cell "
                f"{_worst(held)}; {len(above)} of {len(rows)} cells above alpha + 1 point = {alpha + 0.01:g}, "
                f"marked so; {len(table.get('failures', []))} held cells above their limit.")
    paragraphs = [sentence]
    items = [f"held, yet above alpha + 1 point: {r['procedure']}, {r['world']}, n = {r['n']}: false supported "
             f"{_rate(r['false_supported'])}, false refuted {_rate(r['false_refuted'])} ({r['sims']} sims)"
             for r in above if r.get("held")]
    if table.get("stale"):
        paragraphs.insert(0, str(table.get("note")))
    return Section("Validation: mean-curve procedures", paragraphs=paragraphs, level=3, items=items,
                   headers=["procedure", "world", "n", "false supported [95% CI]", "false refuted [95% CI]", "sims",
                            "standing"],
                   rows=[[r["procedure"], r["world"], str(r["n"]), _rate(r["false_supported"]),
                          _rate(r["false_refuted"]), str(r["sims"]), r.get("status", "")] for r in rows])


def _equivalence(details: dict[str, Any]) -> bool:
    """A claim decided inside a band (equivalence: :func:`resclaims.decide.procedures.inside` records the band and no null),
    not by a one-sided test against a null (exceeds_paired, exceeds, below_margin, share_in_band, increasing)."""
    return "band" in details and "null" not in details


def calibration_section(document: dict[str, Any]) -> Section:
    """Each claim's procedure under simulated nulls and at the source's stated effect; exact claims in one line."""
    rows, items, exact = [], [], []
    calibrated = {c["claim"] for c in document["calibration"]}
    details = {c["id"]: c.get("details") or {} for c in document["claims"]}
    for c in document["calibration"]:
        if c["type_one"] is None:
            exact.append(c["claim"])
            continue
        label = c.get("null_label") or "simulated"
        alpha, min_power = c["alpha"], c["min_power"]
        gate = c.get("gate") or {}
        type_one = _rate(c["type_one"])
        if c.get("construction"):  # known without simulation: the simulated rate checks the code, not the procedure
            type_one = f"exact by construction: <= {c['exact_rate']:.3g}; simulated {type_one}"
        if c["defective"]:
            type_one += (f" - credibly above {gate.get('rate', alpha + 0.01):g}"
                         + (f" (p = {gate['p']:.2g})" if gate.get("p") is not None else "") + ": defect")
        weak = c["power"] is not None and c["power"]["rate"] < min_power
        if c["stated_effect"] is None:
            power = "n/a: the source states no effect size"
        elif c["power"] is None:
            power = f"n/a: no simulated world has {c['stated_effect']:.4g} {c['unit']} (see below)"
        else:
            power = (_rate(c["power"]) + f" at {c['stated_effect']:.4g} {c['unit']}"
                     + (f" (< {min_power:g}: may not refute)" if weak else ""))
        if c["grid"]:
            detectable = (f"{c['detectable']:.3g} {c['unit']}" if c["detectable"] is not None
                          else f"> {c['grid'][-1]:.3g} {c['unit']}")
        elif _equivalence(details.get(c["claim"], {})):
            detectable = "n/a (equivalence test)"
        else:  # a one-sided test (exceeds_paired, exceeds, ...) whose claim declares no grid of effects to search
            detectable = "n/a (no grid declared)"
        sims = (f"{c['type_one']['n']} null, {c['n_sims']} effect" if c["type_one"]["n"] != c["n_sims"]
                else str(c["n_sims"]))
        rows.append([c["claim"], label, type_one, _rate(c["test_size"]), power, detectable, sims])
        items.append(f"{c['claim']}: null: {c['null']}" + (f"; effect: {c['effect']}" if c["effect"] else "")
                     + f" ({c['seconds']:.1f} s)")
    rows += [[c["id"], "not calibrated", "", "", "", "", ""] for c in document["claims"] if c["id"] not in calibrated]
    if exact:
        items.append(f"not simulated (exact, no sampling): {', '.join(exact)}")
    first = document["calibration"][0]
    gate = first.get("gate") or {}
    gate_text = (f"a rate credibly above {gate['rate']:g} is a defect: the one-sided exact binomial test of "
                 f"rate <= {gate['rate']:g} rejects at {gate['level']:g}, over {gate['null_sims']} nulls ("
                 + ", ".join(f"{n} where at most {f} of the first {n} say supported" for n, f in gate["looks"])
                 + f"), which flags a true rate of {gate['power_at']:g} "
                 f"with probability {gate['power']:.2f}" if gate else "a rate above alpha + 0.01 is a defect")
    items.append(f"Type-I error: how often the procedure says supported when the null holds (alpha = "
                 f"{first['alpha']:g}; {gate_text}). Exact by construction: a sign test in a world that flips the "
                 "runs' signs, or puts their median on the edge, has its rate from the binomial, at most alpha "
                 "whatever the data; no gate can flag it, and its simulated rate checks the code, not the "
                 "procedure. p < alpha: how often "
                 "its test alone rejects. Power: how often it says supported at the source's stated effect; below "
                 f"{first['min_power']:g} a refutation is reported as inconclusive. Smallest "
                 "detectable effect: the smallest effect on a coarse grid (ratio sqrt 2) with power >= 0.8 in "
                 f"{first.get('search_sims', 100)} simulations per grid point. Intervals: 95% "
                 "Clopper-Pearson.")
    return Section("Calibration", headers=["claim", "null", "type-I error [95% CI]", "p < alpha under the null",
                                           "power [95% CI] at the source's effect", "smallest detectable effect",
                                           "sims"],
                   rows=rows, items=items)
