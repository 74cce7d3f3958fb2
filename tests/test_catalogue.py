"""The committed claims catalogue is the one the declarations generate; the README's own claim runs as written."""

import json
import re
from pathlib import Path

from resclaims import catalogue

PROJECT = Path(__file__).resolve().parents[1]


def test_the_committed_catalogue_is_up_to_date():
    generated = catalogue.markdown(catalogue.load_modules(PROJECT / "benchmarks"))
    committed = (PROJECT / "benchmarks" / "CLAIMS.md").read_text(encoding="utf-8")
    assert committed == generated, "benchmarks/CLAIMS.md is out of date: python -m resclaims list --markdown > benchmarks/CLAIMS.md"


def readme_example() -> str:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- example: my claim -->\n```python\n(.*?)```", readme, re.S).group(1)


def test_the_readme_claim_is_20_lines_or_fewer_and_runs_into_the_report(pytester, monkeypatch, tmp_path):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makepyfile(test_my_claim=code)
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--report-dir", "r",
                                "--baseline", "none")
    result.assert_outcomes(passed=1)
    claims = {c["id"]: c for c in json.loads((pytester.path / "r" / "summary.json").read_text())["claims"]}
    assert claims["U1"]["verdict"] == "supported" and claims["U1"]["n"] == 20 and claims["U1"]["source"] == "mine"
