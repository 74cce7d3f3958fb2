"""The committed claims catalogue is the one the declarations generate; the README's own claim runs as written."""

import json
import re
import sys
from pathlib import Path

from resclaims.report import catalogue

PROJECT = Path(__file__).resolve().parents[2]


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
    # a process of its own, as for the plan below: torch modules that training imports cannot be imported twice
    result = pytester.runpytest_subprocess("-p", "resclaims.plugin", "-p", "resclaims.plugin.engine",
                                           "-p", "no:cacheprovider", "--report-dir", "r", "--baseline", "none")
    result.assert_outcomes(passed=1)
    document = json.loads((pytester.path / "r" / "summary.json").read_text())
    claims = {c["id"]: c for c in document["claims"]}
    assert claims["U1"]["verdict"] == "supported" and claims["U1"]["n"] == 20 and claims["U1"]["source"] == "mine"
    # the estimate line before the first training counts every run the session trains (it said 20 of these 40)
    assert document["provenance"]["runs_trained"] == 40
    result.stdout.fnmatch_lines(["resclaims: U quick: 40 runs to train, *"])


def test_the_plan_of_the_readme_claim_counts_both_learning_rates(pytester, monkeypatch, tmp_path, capsys):
    """U1 asks for one learning rate's runs, then the other's: planning stopped the test at its first missing
    request, so the estimate line said 20 runs to train for a session that trains 40."""
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makeconftest('pytest_plugins = ("resclaims.plugin",)\n')
    pytester.makepyfile(test_my_claim=readme_example())
    # a process of its own: pytester restores sys.modules after a test, and some torch modules that training or
    # planning import (torch._inductor's test operators) register themselves once per process: a second import fails
    result = pytester.run(sys.executable, "-m", "resclaims", "plan", "test_my_claim.py")
    assert result.ret == 0, result.stderr.str()
    lines = [line for line in result.outlines if line.strip()]
    assert lines[-1].startswith("U quick: 40 runs to train, "), lines
    assert [line.split()[2:4] for line in lines[1:-1]] == [["identity", "(lr=0.0001)"], ["identity", "20"]]
    assert not (tmp_path / "cache" / "runs" / "resclaims.kernels.zero_identity").exists()  # nothing trained


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
