"""Bad input, swept: each case gives one clear line and a non-zero exit (or a skip with its reason).

The bad-input table (docs/options.md) lists every case and its test. Covered elsewhere:
option values (``tests/plugin/test_plugin.py::test_bad_options_stop_with_one_line``),
interrupted and corrupt downloads (``tests/datasets/test_download.py``, and per data set
``tests/datasets/test_membrane_data.py``), corrupt baselines (``tests/report/test_reports.py``).
Here: unknown options, CUDA asked for without CUDA in the full tier, data
directories that are empty, wrongly laid out, or hold corrupt or altered images
(through a whole pytest session and the data sets' real loaders), and a report
folder that cannot be written.
"""

import errno
import fnmatch
import json
import os
import shutil
import subprocess
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resclaims.datasets import cifar10, membrane
from resclaims.datasets.download import DownloadError
from resclaims.decide.verdict import ClaimResult
from resclaims.report.report import Report, ReportWriteError

CLAIM = """
from resclaims.decide.verdict import ClaimResult
def test_claim(report, run_cache):
    report.record(ClaimResult(id="T1", claim="c", source="s", verdict="supported", estimate=2.0, ci=(1.0, 3.0),
                              p_value=0.01, n=3, statistic="s", test="t", tier="quick", protocol="p"))
"""


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.lines if line.strip()]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return lines


def test_an_unknown_option_is_named(pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "resclaims.plugin", "--sedes", "3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --sedes" in result.stderr.str()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_full_tier_on_cuda_without_cuda_stops_before_training(pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "resclaims.plugin", "--full", "--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = one_error_line(result)
    assert len(lines) == 1 and "--device cuda: CUDA is not available" in lines[0] and "--device cpu" in lines[0]


@pytest.mark.parametrize(("value", "message"), [("fast", "step mode must be auto or one of eager, compile, graph"),
                                                ("graph", "step mode 'graph' captures a CUDA graph; it needs --device cuda")])
def test_a_bad_step_mode_stops_before_training(pytester, monkeypatch, value, message):
    pytester.makepyfile(test_x="def test_x(): pass")
    monkeypatch.setenv("RESCLAIMS_STEP", value)
    result = pytester.runpytest("-p", "resclaims.plugin", "--device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = one_error_line(result)
    assert len(lines) == 1 and message in lines[0], lines


# -- data directories ---------------------------------------------------------------------
# A session whose one test needs a data set, through the `dataset` fixture and the data set's real loader.
NEEDS = """
from resclaims.datasets.{name} import load
def test_needs_{name}(dataset):
    dataset(load)
"""


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty download cache: a data set not in the data dir cannot be fetched."""
    def unreachable(url, dest, **kwargs):
        raise DownloadError(f"{url}: unreachable") from urllib.error.URLError("offline")

    for module in (membrane, cifar10):
        monkeypatch.setattr(module, "download", unreachable)
    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "empty-cache"))


def session_with_data(pytester, name: str, data_dir: Path):
    pytester.makepyfile(test_data=NEEDS.format(name=name))
    return pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "-rfs", "--data-dir", str(data_dir))


def png(path: Path, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size, size), np.uint8), mode="L").save(path)


@pytest.mark.parametrize("name", ["membrane", "cifar10"])
def test_an_empty_data_dir_skips_with_what_to_do(pytester, offline, tmp_path, name):
    (tmp_path / "empty").mkdir()
    result = session_with_data(pytester, name, tmp_path / "empty")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"SKIPPED * {name} data not found (*): pass --data-dir PATH or set RESCLAIMS_DATA *"
                                 f"python -m resclaims fetch-data {name}`"])


def write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


BROKEN = {  # (data set, case): (how the data dir is broken, the line that must name it)
    ("membrane", "wrongly laid out"): (lambda d: png(d / membrane.LABELS / "image-0.png"),
                                       "0.png: missing; * must hold the 30 label PNGs of zhixuhao/unet"),
    ("membrane", "corrupt image"): (lambda d: write(d / membrane.LABELS / "0.png", b"\x89PNG truncated"),
                                    "0.png: SHA-256 * does not match the pinned *; replace it with the file from *"),
    ("membrane", "wrong checksum"): (lambda d: png(d / membrane.LABELS / "0.png"),  # a valid PNG, not the pinned one
                                     "0.png: SHA-256 * does not match the pinned *"),
    ("cifar10", "wrongly laid out"): (lambda d: png(d / "cifar10" / "train" / "kitten" / "0.png", 32),
                                      "*train/kitten/0.png: unknown class folder 'kitten'; expected one of airplane, *"),
    ("cifar10", "corrupt image"): (lambda d: write(d / "cifar10" / "train" / "cat" / "0.png", b"not an image"),
                                   "*train/cat/0.png: not a readable image (*)"),
    ("cifar10", "wrong checksum"): (lambda d: write(d / "cifar10-jpeg.tar.gz", b"not the copy"),
                                    "*cifar10-jpeg.tar.gz: sha256 * does not match the expected *; * run `python -m "
                                    "resclaims fetch-data cifar10`"),
}


@pytest.mark.parametrize("name,case", sorted(BROKEN))
def test_broken_data_fails_in_one_line_naming_the_file(pytester, offline, tmp_path, name, case):
    breaking, message = BROKEN[name, case]
    breaking(tmp_path / "data")
    result = session_with_data(pytester, name, tmp_path / "data")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = result.stdout.lines
    header = next(i for i, line in enumerate(lines) if f"_ test_needs_{name} _" in line)
    assert fnmatch.fnmatch(lines[header + 1], f"*{message}"), lines[header + 1]
    assert lines[header + 2].startswith("====")  # one line, no traceback
    assert "Traceback" not in result.stdout.str()


# -- the report folder --------------------------------------------------------------------
@pytest.fixture
def read_only(tmp_path):
    """A folder nobody can write in: permission bits, or for root (who ignores them) the immutable attribute."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "earlier").mkdir()
    (folder / "earlier" / "summary.json").write_text('{"schema": 1}')
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    if _writable(folder):
        folder.chmod(0o755)
        pytest.skip("cannot make a read-only folder here (root, and no chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").mkdir()
    except OSError:
        return False
    (folder / ".probe").rmdir()
    return True


@pytest.mark.parametrize("where", ["inside", "itself"])
def test_a_read_only_report_folder_stops_at_start_up_and_loses_nothing(pytester, read_only, monkeypatch, tmp_path, where):
    cache = tmp_path / "cache"
    (cache / "runs").mkdir(parents=True)
    (cache / "runs" / "entry.pkl").write_bytes(b"cached run")
    monkeypatch.setenv("RESCLAIMS_CACHE", str(cache))
    pytester.makepyfile(test_claim=CLAIM)
    target = read_only / "new-report" if where == "inside" else read_only / "earlier"
    result = pytester.runpytest("-p", "resclaims.plugin", "--report-dir", str(target))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = one_error_line(result)
    assert len(lines) == 1 and f"--report-dir {target}: cannot write in" in lines[0], lines
    assert "pass --report-dir with a folder you can write to" in lines[0]
    assert sorted(p.name for p in read_only.iterdir()) == ["earlier"]
    assert (read_only / "earlier" / "summary.json").read_text() == '{"schema": 1}'
    assert (cache / "runs" / "entry.pkl").read_bytes() == b"cached run"


def claim(estimate):
    return ClaimResult(id="T1", claim="c", source="s", verdict="supported", estimate=estimate, ci=(0.0, 9.0),
                       p_value=0.01, n=3, statistic="s", test="t", tier="quick", protocol="p")


def test_a_report_that_cannot_be_written_at_the_end_keeps_the_earlier_one(tmp_path, monkeypatch):
    destination = tmp_path / "report"
    first = Report(destination, tier="quick", device="cpu", base_seed=1)
    first.record(claim(1.0))
    first.write()
    second = Report(destination, tier="quick", device="cpu", base_seed=1)
    second.record(claim(2.0))
    real_replace = os.replace

    def failing_replace(src, dst):  # the disk turns read-only between moving the old report aside and the new one in
        if Path(src) == second.directory:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ReportWriteError, match=r"could not write the report to .*report \(Permission denied\); an "
                                               r"earlier report there is unchanged"):
        second.write()
    assert json.loads((destination / "summary.json").read_text())["claims"][0]["estimate"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder, no aside copy


@pytest.mark.usefixtures("validation_tables")
def test_the_session_says_so_in_one_line_and_fails(pytester, monkeypatch, tmp_path):
    def read_only_disk(self):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setenv("RESCLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(Report, "_write", read_only_disk)  # pytester runs the session in this process
    pytester.makepyfile(test_claim=CLAIM)
    result = pytester.runpytest("-p", "resclaims.plugin", "--report-dir", "out")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["resclaims: could not write the report to *out (Read-only file system); an earlier "
                                 "report there is unchanged"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("where", ["a file", "read-only"])
def test_a_run_cache_that_cannot_be_used_is_one_line_before_anything(pytester, monkeypatch, tmp_path, where):
    """RESCLAIMS_CACHE at a file, or at a folder that cannot be written: one line and exit 4, before any test runs
    or any cost is announced (it used to be a setup error of hundreds of lines per test)."""
    target = tmp_path / "cache"
    if where == "a file":
        target.write_text("not a folder")
    else:
        target.mkdir()
        monkeypatch.setattr("tempfile.NamedTemporaryFile", _refuse)
    monkeypatch.setenv("RESCLAIMS_CACHE", str(target))
    pytester.makepyfile(test_x="def test_x(run_cache): raise AssertionError('ran')")
    result = pytester.runpytest_inprocess("-p", "resclaims.plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = one_error_line(result)
    assert len(lines) == 1 and f"run cache {target / 'runs'}: cannot write in it" in lines[0], lines
    assert "RESCLAIMS_CACHE" in lines[0] and "--no-run-cache" in lines[0] and "ran" not in result.stdout.str()


def _refuse(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def test_an_absurd_seed_count_is_refused_in_one_line_unless_allowed(pytester):
    pytester.makepyfile(test_x="def test_x(settings): assert settings.seeds == 20000")
    result = pytester.runpytest_inprocess("-p", "resclaims.plugin", "--seeds", "100000000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert one_error_line(result) == ["ERROR: --seeds 100000000: more than 10,000 seeds per condition; check the "
                                      "number, or pass --max-seeds 100000000 to allow it"]
    assert pytester.runpytest_inprocess("-p", "resclaims.plugin", "--seeds", "20000", "--max-seeds", "20000").ret == 0


def test_plan_reads_a_data_dir_value_as_the_option_s_not_as_the_selection(tmp_path, monkeypatch):
    """`plan --full --data-dir D` with no path selects benchmarks/, D being --data-dir's value (it used to be
    taken for the selection and fail with a bare pytest usage line)."""
    from resclaims.__main__ import PROJECT, selection

    (tmp_path / "D").mkdir()
    monkeypatch.chdir(tmp_path)
    assert selection(["--full", "--data-dir", "D"]) == ["--full", "--data-dir", "D", str(PROJECT / "benchmarks")]
    assert selection(["--data-dir=D", "D"]) == ["--data-dir=D", "D"]  # a path of its own: the selection's


def test_a_session_run_with_xdist_off_still_plans_its_cost(pytester):
    """`pytest -p no:xdist ...` (xdist installed but not loaded): the planner must not pass -n, which pytest would
    then reject, and the session's estimate line said "the selection cannot be planned: usage: ..."."""
    from resclaims.plugin.plan import plan

    pytester.makepyfile(test_x="def test_x(settings): pass")
    assert plan(["-p", "no:xdist", "-p", "resclaims.plugin", str(pytester.path)]).needs == []
    assert plan(["-pno:xdist", "-p", "resclaims.plugin", str(pytester.path)]).needs == []


def test_a_command_stopped_by_hand_says_so_in_one_line(monkeypatch, capsys):
    """Ctrl-C in a fill used to end in a 30-line KeyboardInterrupt traceback from the engine's wait."""
    from resclaims import __main__ as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_fill", interrupted)
    monkeypatch.setattr(cli, "build_parser", lambda original=cli.build_parser: _rewired(original(), interrupted))
    assert cli.main(["fill", "-m", "quick"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["resclaims: fill interrupted; runs that finished are kept, the ones in progress resume from their "
                   "checkpoints: run the same command again to go on"]


def _rewired(parser, run):
    for action in parser._subparsers._group_actions:
        action.choices["fill"].set_defaults(run=run)
    return parser
