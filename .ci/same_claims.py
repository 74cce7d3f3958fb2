"""CI: a session that read its runs from an engine's fill (or the published run store) trained none, and its claims
equal the reference's: every verdict, estimate, interval, p-value and n, and the same claims incomplete for the same
missing runs (a --no-train session).

usage: python .ci/same_claims.py [--no-calibration] FILLED REFERENCE (two report folders)

--no-calibration: the filled session also computed no calibration (it read each from the calibrations it was given,
kept by content), as a session on runs already judged must.
"""

import json
import sys
from pathlib import Path

FIELDS = ("verdict", "estimate", "ci", "p_value", "p_refute", "n")


def main(*args: str) -> int:
    no_calibration = "--no-calibration" in args
    filled, reference = (arg for arg in args if arg != "--no-calibration")
    ours = json.loads((Path(filled) / "summary.json").read_text())
    reference = json.loads((Path(reference) / "summary.json").read_text())
    theirs = {c["id"]: c for c in reference["claims"]}
    trained = ours["provenance"].get("runs_trained")
    differ = [f"{c['id']}: {field} {c.get(field)!r} != {theirs.get(c['id'], {}).get(field)!r}"
              for c in ours["claims"] for field in FIELDS if c.get(field) != theirs.get(c["id"], {}).get(field)]
    incomplete = {i: (v["missing"], v["runs"]) for i, v in (ours.get("incomplete") or {}).items()}
    expected = {i: (v["missing"], v["runs"]) for i, v in (reference.get("incomplete") or {}).items()}
    differ += [f"{i}: incomplete {incomplete.get(i)} != {expected.get(i)}" for i in sorted(incomplete.keys() | expected.keys())
               if incomplete.get(i) != expected.get(i)]
    computed = ours["provenance"].get("calibrations_computed")
    print(f"{len(ours['claims'])} claims and {len(incomplete)} incomplete compared, {len(differ)} differences; "
          f"runs trained: {trained}; calibrations computed: {computed}, read: {ours['provenance'].get('calibrations_read')}")
    print("\n".join(differ))
    return 0 if (ours["claims"] or incomplete) and not differ and trained == 0 and (computed == 0 or not no_calibration) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
