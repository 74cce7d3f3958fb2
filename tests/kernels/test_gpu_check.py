"""``python -m resclaims gpu-check``: its measurements, projections, JSON and table, exercised on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from resclaims.__main__ import main
from resclaims.kernels.cifar import gpucheck
from resclaims.kernels.cifar.config import HE2015, TrainConfig


def test_projections_follow_the_protocols_arithmetic():
    """Every net at 1,000 images/s: each projection is images (trained, plus evaluated at a third) / 1,000."""
    measured = gpucheck.nets(reduced=False)
    rows = [{"net": n.name, "group": g, "images_per_s": 1000.0} for n in measured for g in (1, 5, 10)]
    p = gpucheck.projections(rows, measured)
    keras = TrainConfig()
    per_arm = lambda cfg, seeds, evaluated: seeds * (cfg.steps * cfg.batch_size + cfg.steps // cfg.log_every * evaluated / 3) / 1000  # noqa: E731
    k_arm = per_arm(keras, 10, 10_000)
    # 003's net at 5, 10 and 20 blocks (resnet and plain), and the order pair at 10: cost by convolutions, 2b + 3
    assert p["K full"]["seconds"] == pytest.approx(2 * k_arm * (13 + 23 + 43 + 23) / 23)
    assert p["H1 (issue 14)"]["seconds"] == pytest.approx(5 * per_arm(HE2015, 5, 15_000))
    d_arm = per_arm(HE2015, 8, 10_000 + 5_000 + 5_000)  # test, validation and D2's 5,000 training images
    assert p["D full (H1 and D1, D2 as the suite runs them)"]["seconds"] == pytest.approx(7 * d_arm)
    assert p["CIFAR full tier (K + D)"]["seconds"] == pytest.approx(p["K full"]["seconds"] + 7 * d_arm)


def test_deeper_resnets_are_projected_from_the_measured_depths():
    measured = gpucheck.nets(reduced=False)
    rate = {"ResNet-20": 2000.0, "ResNet-56": 2000.0 * 20 / 56, "ResNet-110": 2000.0 * 20 / 110}  # time ~ depth
    rows = [{"net": n, "group": g, "images_per_s": r} for n, r in rate.items() for g in (1, 5, 10)]
    rows += [{"net": measured[0].name, "group": g, "images_per_s": 1.0} for g in (1, 5, 10)]
    one = gpucheck._resnet_per_image(rows, 44, 5, {20: "ResNet-20", 56: "ResNet-56", 110: "ResNet-110"})
    assert one == pytest.approx(44 / 20 / 2000.0)


def test_the_check_writes_json_and_a_table_and_records_failures(tmp_path, monkeypatch):
    """The full check's code on the CPU, with small nets named as the full check's: eager, and graph (a row
    with the error: no CUDA); the layouts; the projections."""
    small = gpucheck.nets(reduced=True)
    names = ["003 (10 blocks)", "ResNet-20", "ResNet-56", "ResNet-110"]
    monkeypatch.setattr(gpucheck, "nets", lambda reduced: [
        gpucheck.Net(name, small[i > 0].arm, small[i > 0].train) for i, name in enumerate(names)])
    monkeypatch.setattr(gpucheck, "SHARING", (2,))  # two processes at once: the sharing path; one more costs ~5 s
    lines = []
    out = tmp_path / "check" / "gpu-check.json"
    document = gpucheck.check(torch.device("cpu"), budget=300, out=out, reduced=False, modes=("eager", "graph"),
                              seconds=0.02, say=lines.append)  # fmt: skip
    assert json.loads(out.read_text())["steps"] == json.loads(json.dumps(document["steps"]))
    eager = [r for r in document["steps"] if r["asked"] == "eager"]
    assert len(eager) == 12 and all(r["images_per_s"] > 0 for r in eager)
    graph = [r for r in document["steps"] if r["asked"] == "graph"]
    assert len(graph) == 12 and all("captures a CUDA graph" in r["error"] for r in graph)
    assert [r["layout"] for r in document["layouts"]] == ["grouped", "grouped, channels_last", "one after another"]
    assert all(p["seconds"] > 0 for name, p in document["projections"].items() if "goal" not in name)
    assert [r["processes"] for r in document["sharing"]] == [2]
    assert all(r["images_per_s"] > 0 and r["mode"] == "eager" for r in document["sharing"])
    table = lines[-1]
    assert "| ResNet-110 | 10 |" in table and "| K full |" in table and "min |" in table


def test_the_reduced_check_compiles_one_net(tmp_path, monkeypatch):
    """The CPU check: eager everywhere, one compiled step (here a fake compiler that runs eagerly)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    out = tmp_path / "gpu-check.json"
    assert main(["gpu-check", "--device", "cpu", "--out", str(out), "--budget", "60"]) == 0
    steps = json.loads(out.read_text())["steps"]
    assert [r["asked"] for r in steps].count("compile") == 1 and all(r["images_per_s"] > 0 for r in steps)


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "cuda"], "sees no CUDA device"),
    (["--k-full"], "give --data-dir"),
    (["--budget", "0"], "--budget must be a positive"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_4(args, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check", *args]) == 4
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
