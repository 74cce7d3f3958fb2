"""CI: a session that read its runs from an engine's fill trained none, and its claims equal the quick session's.

usage: python .ci/same_claims.py FILLED REFERENCE (two report folders)
"""

import json
import sys
from pathlib import Path

FIELDS = ("verdict", "estimate", "ci", "p_value", "p_refute", "n")


def main(filled: str, reference: str) -> int:
    ours = json.loads((Path(filled) / "summary.json").read_text())
    theirs = {c["id"]: c for c in json.loads((Path(reference) / "summary.json").read_text())["claims"]}
    trained = ours["provenance"].get("runs_trained")
    differ = [f"{c['id']}: {field} {c.get(field)!r} != {theirs[c['id']].get(field)!r}"
              for c in ours["claims"] for field in FIELDS if c.get(field) != theirs.get(c["id"], {}).get(field)]
    print(f"{len(ours['claims'])} claims compared, {len(differ)} differences; runs trained: {trained}")
    print("\n".join(differ))
    return 0 if ours["claims"] and not differ and trained == 0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
