"""The committed claims catalogue is the one the declarations generate; the README's own claim runs as written."""

import json
import re
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from resclaims.datasets import cifar10
from resclaims.report import catalogue

PROJECT = Path(__file__).resolve().parents[2]


def test_the_committed_catalogue_is_up_to_date():
    generated = catalogue.markdown(catalogue.load_modules(PROJECT / "benchmarks"))
    committed = (PROJECT / "benchmarks" / "CLAIMS.md").read_text(encoding="utf-8")
    assert committed == generated, "benchmarks/CLAIMS.md is out of date: python -m resclaims list --markdown > benchmarks/CLAIMS.md"


def readme_example(name: str = "my claim") -> str:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    return re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", readme, re.S).group(1)


def code_lines(code: str) -> int:
    return len([line for line in code.splitlines() if line.strip()])


@pytest.mark.usefixtures("validation_tables")
def test_the_readme_claim_is_20_lines_or_fewer_and_runs_into_the_report(pytester, monkeypatch, tmp_path):
    code = readme_example()
    assert code_lines(code) <= 20
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


@pytest.mark.usefixtures("validation_tables")
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


@pytest.mark.usefixtures("validation_tables")
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


@pytest.mark.usefixtures("validation_tables")
def test_the_readme_cifar_claim_is_planned(pytester, monkeypatch, tmp_path):
    """The README's claim on the CIFAR kernel (20 lines or fewer) collects, declares its tier and asks for the runs of
    both arms at 10 blocks; training them takes minutes, so CI plans it on a folder of 20 tiny images, training none."""
    code = readme_example("cifar claim")
    assert code_lines(code) <= 20
    for split in ("train", "test"):
        for label, name in enumerate(cifar10.CLASSES):
            (tmp_path / "data" / "cifar10" / split / name).mkdir(parents=True)
            Image.new("RGB", (32, 32), (20 * label, 0, 0)).save(tmp_path / "data" / "cifar10" / split / name / "0.png")
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    pytester.makeconftest('pytest_plugins = ("resclaims.plugin",)\n')
    pytester.makepyfile(test_my_cifar_claim=code)
    result = pytester.run(sys.executable, "-m", "resclaims", "plan", "test_my_cifar_claim.py",
                          f"--data-dir={tmp_path / 'data'}")  # a process of its own, as above
    assert result.ret == 0, result.stderr.str() + result.stdout.str()
    lines = [line for line in result.outlines if line.strip()]
    assert lines[-1].startswith("U quick: 12 runs to train, "), lines
    assert [line.split()[1:4] for line in lines[1:-1]] == [["U2", "resnet-10", "6"], ["U2", "plain-10", "6"]], lines
    assert not (tmp_path / "cache" / "runs" / "resclaims.kernels.cifar.kernel").exists()  # nothing trained


@pytest.mark.usefixtures("validation_tables")
def test_the_readme_kernel_and_its_claim_run_into_the_report(pytester, monkeypatch, tmp_path):
    """The README's new kernel (under 40 lines, saved as mykernels/momentum.py on PYTHONPATH) and its claim (20 lines
    or fewer, benchmarks/test_momentum.py), as written: a real session trains both settings and reports U3."""
    kernel, claim = readme_example("momentum kernel"), readme_example("momentum claim")
    assert code_lines(kernel) < 40 and code_lines(claim) <= 20
    (pytester.path / "mykernels").mkdir()
    (pytester.path / "mykernels" / "momentum.py").write_text(kernel, encoding="utf-8")
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "test_momentum.py").write_text(claim, encoding="utf-8")
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("benchmarks/test_momentum.py", "-p", "resclaims.plugin",
                                           "-p", "no:cacheprovider", "--report-dir", "r", "--baseline", "none")
    result.assert_outcomes(passed=1)
    claims = {c["id"]: c for c in json.loads((pytester.path / "r" / "summary.json").read_text())["claims"]}
    assert claims["U3"]["verdict"] == "supported" and claims["U3"]["n"] == 20 and claims["U3"]["source"] == "mine"
    assert (tmp_path / "cache" / "runs" / "mykernels.momentum").is_dir()  # cached under the kernel's name
