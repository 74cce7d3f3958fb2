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


def test_list_shows_a_module_without_a_docstring(pytester, monkeypatch, capsys, tmp_path):
    """The README's own claim module has no docstring: `list` and `list --markdown` show its claims (an IndexError
    once); a module's summary line is then left out."""
    import resclaims.__main__ as cli

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "test_my_claim.py").write_text(readme_example(), encoding="utf-8")
    monkeypatch.setattr(cli, "PROJECT", pytester.path)
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "test_my_claim.py:" in lines and any(line.split() == ["test_U1", "quick"] for line in lines), lines
    assert cli.main(["list", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert "## `benchmarks/test_my_claim.py`\n\n| id |" in text and "| U1 | mine |" in text
