"""The mean-curve sweep's committed results (resclaims/report/validation_sweep.py, validation_means.json): produced by
the code as it is (or the report says stale, and this test fails in one line), every cell there, the known-above
cells shown as above, and one cell recomputed to the same numbers."""

from __future__ import annotations

import json

import numpy
import pytest

from resclaims.decide.stats import ALPHA
from resclaims.report import validation_means as vm
from resclaims.report import validation_sweep as vs


@pytest.fixture(scope="module")
def table():
    return vs.load()


def test_the_committed_sweep_was_produced_by_the_code_as_it_is(table):
    if table["stale"]:
        pytest.fail(table["note"], pytrace=False)  # one line: which fingerprints, and the command that regenerates


def test_the_committed_sweep_holds_every_cell(table):
    cells = {(r["procedure"], r["world"], r["n"]) for r in table["rows"]}
    assert cells == {(c.name, w, n) for c in vm.CASES for n in (vm.SMALL_N, *vm.SIZES) for w in vm.WORLDS}
    assert all(r["sims"] == vs.sims_for(next(c for c in vm.CASES if c.name == r["procedure"])) for r in table["rows"])


def test_no_held_cell_is_above_its_limit_and_every_cell_above_one_point_says_so(table):
    assert not table["failures"], "\n".join(f"{r['procedure']} | {r['world']} | n={r['n']}: {r['status']}"
                                            for r in table["failures"])
    for row in table["rows"]:
        worst = max(row["false_supported"]["rate"], row["false_refuted"]["rate"])
        shown = "above alpha + 1 point" in row["status"] or row["status"].startswith("ABOVE")
        assert (worst > ALPHA + 0.01) == shown, row  # shown as above, held or not
        if (row["world"], row["n"]) in vm.KNOWN_ABOVE:
            assert not row["held"] and ("known above" in row["status"] or "KNOWN_ABOVE" in row["status"])


def test_a_cell_recomputed_gives_the_committed_numbers(table):
    if table.get("numpy") != numpy.__version__:
        pytest.skip(f"the sweep was drawn with numpy {table.get('numpy')}, this is {numpy.__version__}")
    row = next(r for r in table["rows"] if r["n"] == vm.SMALL_N and r["procedure"] == vm.CASES[0].name
               and r["world"] == "lognormal")
    again = vm.cell(vm.CASES[0], "lognormal", vm.SMALL_N, sims=row["sims"])
    assert (again["false_supported"], again["false_refuted"]) == (row["false_supported"], row["false_refuted"])


def test_a_table_from_other_code_is_marked_stale_and_a_missing_one_says_so(tmp_path):
    other = tmp_path / "validation_means.json"
    row = {"procedure": vm.CASES[0].name, "world": "normal", "n": 400, "sims": 2000, "held": True,
           "false_supported": {"rate": 0.05, "ci": [0.04, 0.06]}, "false_refuted": {"rate": 0.01, "ci": [0.0, 0.02]}}
    other.write_text(json.dumps({"alpha": ALPHA, "rows": [row], "fingerprint": "0123456789abcdef"}))
    loaded = vs.load(other)
    assert loaded["stale"] and loaded["note"].startswith("STALE: produced by code with fingerprint 0123456789abcdef")
    assert loaded["note"].endswith(f"regenerate with {vs.COMMAND}") and "\n" not in loaded["note"]
    assert loaded["rows"]  # still shown, labelled
    missing = vs.load(tmp_path / "nothing.json")
    assert missing["stale"] and missing["rows"] == [] and vs.COMMAND in missing["note"]


def test_the_fingerprint_follows_the_mean_tests_and_the_sweep(monkeypatch, tmp_path):
    before = vs.fingerprint()
    changed = tmp_path / "means.py"
    changed.write_text(vs.CODE[0].read_text() + "\n# a comment changes nothing\n")
    monkeypatch.setattr(vs, "CODE", (changed, vs.CODE[1]))
    assert vs.fingerprint() == before
    changed.write_text(vs.CODE[0].read_text() + "\nMIN_RUNS = 3\n")
    assert vs.fingerprint() != before


def test_standing_by_hand():
    row = {"world": "normal", "n": 400, "held": True, "sims": 2000, "false_supported": {"rate": 0.059},
           "false_refuted": {"rate": 0.02}}
    assert vs.status(row) == "ok"  # within 0.05 + margin (0.018 at 2,000) and within 1 point
    assert vs.status({**row, "false_supported": {"rate": 0.065}}) == "ok, above alpha + 1 point"
    assert vs.status({**row, "false_supported": {"rate": 0.07}}) == "ABOVE"
    assert vs.status({**row, "world": "lognormal", "held": False, "false_supported": {"rate": 0.066}}) == (
        "not held: known above, above alpha + 1 point")
    assert vs.status({**row, "world": "lognormal", "held": False}) == "ok (a KNOWN_ABOVE world and n: not held)"
    assert vs.status({**row, "n": 16, "held": False}) == "not held: small n"
    assert vs.status({**row, "world": vm.BEYOND_REACH[0], "held": False, "false_refuted": {"rate": 0.5}}) == (
        "not held: beyond reach, above alpha + 1 point")


def test_the_fingerprint_reads_code_not_comments_or_docstrings():
    source = '''"""A module."""
import numpy as np  # a comment


def f(x):
    """Its docstring,
    on two lines."""
    # a comment of its own
    return np.mean(x) * 2  # "#" in a comment


KEY = "a # in a string, and a \\"\\"\\" too"
'''
    reworded = (source.replace('"""A module."""', '"""A module, reworded."""').replace("# a comment of its own", "# other")
                .replace("on two lines.", "on two lines, and a third\n    line.") + "\n\n# the end\n")
    assert vs.code_only(reworded) == vs.code_only(source)
    assert vs.code_only(source).splitlines() == ["import numpy as np", "def f(x):", "    return np.mean(x) * 2",
                                                 'KEY = "a # in a string, and a \\"\\"\\" too"']
    assert vs.code_only(source.replace("* 2", "* 3")) != vs.code_only(source)
    assert vs.code_only(source.replace("a # in a string", "a # in another string")) != vs.code_only(source)
