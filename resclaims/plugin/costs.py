"""What a plan's runs cost and in which order a fill trains them: :class:`Need` (one condition's runs a claim asks
for), :class:`Plan` (the needs of a session, their order, jobs and estimates) and the line a ``--no-train`` session
gives a claim whose runs are missing (:func:`incomplete`).

The cost of what is missing comes from the cache's own measurements: each entry records the wall time of the batch
that trained it, its seeds and its steps (:func:`resclaims.run.cache.entry_info`); a condition trained before is
estimated from its own time per seed, another from its kernel's time per seed-step on the same kind of device. A
CIFAR condition the cache has not measured itself, whose network and recipe the suite's train-step benchmarks time,
is estimated from the committed baseline report's timing of that step times the condition's training steps. Nothing
else is guessed: a condition with none of these is counted as runs of unknown cost.
"""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resclaims.run.cache import RunCache, measurements
from resclaims.run.contract import Kernel, RunProtocol
from resclaims.run.engines import EngineError, FillJob, make_job
from resclaims.run.runs import condition_name, steps

PLANNING = "plan: "  # how the reasons of tests skipped by planning begin
INCOMPLETE = "incomplete: "  # how the reasons of tests skipped for lack of runs begin (--no-train)


@dataclass(frozen=True)
class Need:
    """One condition's runs that a claim asks for: its seeds, and those of them the cache lacks."""

    family: str
    label: str  # the seed name
    kernel: str
    condition: RunProtocol
    seeds: tuple[int, ...]
    missing: tuple[int, ...]
    steps: int
    device: str  # cpu | cuda: where its jobs train
    data_key: str | None
    device_kind: str = ""  # what the cache keys its runs by (resclaims.run.runs.device_kind): "cuda, graph steps", say
    published: int = 0  # of its seeds, those the published run store holds (resclaims.run.store)
    request: int = 0  # which request of the session asked for it: a fill trains requests in this order
    published_seeds: tuple[int, ...] = ()  # those seeds (a run two requests hold is counted once)

    @property
    def name(self) -> str:
        """The condition in a few words: its name, or its arms' names."""
        return condition_name(self.condition)

    @property
    def runs_of(self) -> tuple:
        """What tells its runs from another condition's: two requests of one condition share the runs of the seeds
        both ask for."""
        return self.kernel, repr(self.condition), self.data_key, self.device, self.device_kind


@dataclass
class Plan:
    """What :func:`plan` found: the needs (cached or not), the data they train on, and the session's tier and device."""

    needs: list[Need]
    data: dict[str | None, Any]
    cache_dir: Path | None
    tier: str
    device: str
    other_skips: list[str] = field(default_factory=list)
    store_dir: Path | None = None  # the published run store the session read (None: --no-store)
    reaches: list[Any] = field(default_factory=list)  # the selection's confirmatory claims (resclaims.plugin.plan.Reach)
    stages: dict[str, Any] | None = None  # --seeds auto: the budget and each module's looks (resclaims.plugin.sequential)

    @property
    def missing(self) -> list[Need]:
        return [need for need in self.needs if need.missing]

    @property
    def runs_to_train(self) -> int:
        return len(self.schedule())

    def schedule(self) -> list[tuple[tuple[bool, int, int, int], Need, int]]:
        """Every missing run once, in the order a fill trains them: (its place, the need that trains it, its seed).

        Runs come in the order the session asks for them; within a request seed by seed (a claim on paired arms
        gets whole pairs first), the conditions of a seed in the request's order. A run two requests ask for (one
        condition, one seed) is trained once, by the earlier request. A request that asks for more seeds of a
        condition than another (K1.consistency's 44 of the K1 pair, against K1's 10) extends it: its runs beyond
        the seeds of the condition's smallest request come after every other request's runs, so that a design
        larger than the rest never delays them."""
        fewest: dict[tuple, int] = {}
        for need in self.needs:
            fewest[need.runs_of] = min(fewest.get(need.runs_of, len(need.seeds)), len(need.seeds))
        first: dict[tuple, set[int]] = {}  # per condition, the seeds of its smallest requests
        for need in self.needs:
            if len(need.seeds) == fewest[need.runs_of]:
                first.setdefault(need.runs_of, set()).update(need.seeds)
        runs: dict[tuple, tuple[tuple[bool, int, int, int], Need, int]] = {}
        for k, need in enumerate(self.needs):
            for seed in need.missing:
                place = (seed not in first[need.runs_of], need.request, need.seeds.index(seed), k)
                run = (need.runs_of, seed)
                if run not in runs or place < runs[run][0]:
                    runs[run] = (place, need, seed)
        return sorted(runs.values(), key=lambda run: run[0])

    def own(self, need: Need) -> Need:
        """``need`` with only the missing runs it trains itself (none that an earlier request trains)."""
        seeds = {seed for _, owner, seed in self.schedule() if owner is need}
        return replace(need, missing=tuple(seed for seed in need.missing if seed in seeds))

    def jobs(self, seeds_per_job: int | None = None) -> list[FillJob]:
        """One job per condition and group of missing seeds: all of a request's missing seeds together, as a
        session trains them, or groups of at most ``seeds_per_job`` (more jobs for more workers); in the order of
        :meth:`schedule` (a request's extension beyond the condition's other requests in jobs of its own)."""
        if self.cache_dir is None:
            raise EngineError("--no-run-cache: a fill trains into the run cache; leave the option out")
        groups: dict[tuple[int, bool], list[tuple[tuple, Need, int]]] = {}
        for place, need, seed in self.schedule():
            groups.setdefault((id(need), place[0]), []).append((place, need, seed))
        if not groups:
            return []
        size = seeds_per_job or max(map(len, groups.values()))
        chunks = [runs[i:i + size] for runs in groups.values() for i in range(0, len(runs), size)]
        return [make_job(need.condition, tuple(seed for *_, seed in chunk), device=need.device,
                         cache_dir=self.cache_dir, label=need.label, family=need.family, data_key=need.data_key,
                         store_dir=self.store_dir)
                for chunk in sorted(chunks, key=lambda c: c[0][0]) for need in (chunk[0][1],)]

    def seconds(self, need: Need) -> float | None:
        """The estimated training time of ``need``'s missing runs (None: nothing measured to estimate from)."""
        return self.cost(need)[0]

    def cost(self, need: Need) -> tuple[float | None, str | None]:
        """The estimated training time of ``need``'s missing runs and where it comes from, the most specific first:
        ``cache`` (the condition's own entries' wall times), ``baseline`` (the baseline report's timing of its
        training step), ``cache`` (its kernel's time per seed-step on this kind of device, from entries of as many
        steps: the quick tier's tiny runs say nothing of the full tier's, nor its runs of the quick tier's), or None
        (nothing)."""
        entries = [e for e in _measured(self.cache_dir, need.kernel)
                   if e.get("device_kind") == (need.device_kind or need.device) and e.get("seeds_in_batch")]
        same = [e["wall_seconds"] / e["seeds_in_batch"] for e in entries if e.get("condition") == repr(need.condition)]
        if same:
            return len(need.missing) * statistics.fmean(same), "cache"
        step = baseline_step_seconds(need.condition, need.device)  # this very network and recipe, timed
        if step is not None:
            return len(need.missing) * need.condition.train.steps * step, "baseline"
        alike = [e for e in entries if e.get("steps") == need.steps]  # another tier's runs say nothing of this one's
        per_step = [e["wall_seconds"] / e["seeds_in_batch"] / e["steps"] for e in alike if e.get("steps")]
        if per_step:
            return len(need.missing) * need.steps * statistics.fmean(per_step), "cache"
        return None, None

    def estimate(self) -> str:
        """One line: ``Z, M quick: 1600 runs to train, about 0.02 device-hours on cpu`` (or nothing to train)."""
        families = ", ".join(dict.fromkeys(need.family for need in self.needs)) or "nothing selected"
        published = self.published
        held = f" ({published} of them published)" if published else ""
        if not self.runs_to_train:
            return f"{families} {self.tier}: every run is in the cache or the store{held}, nothing to train"
        costs = [(need, *self.cost(need)) for need in map(self.own, self.missing) if need.missing]
        known = sum(s for _, s, _ in costs if s is not None)
        unknown = [need for need, s, _ in costs if s is None]
        kernels = ", ".join(sorted({need.kernel for need in unknown}))
        line = f"{families} {self.tier}: {self.runs_to_train} runs to train" + (f" ({published} published)" if published else "") + ", "
        if len(unknown) == len(costs):
            return line + f"cost unknown on {self.device} (no measured runs of {kernels} in the cache)"
        line += f"about {_hours(known)} device-hours on {self.device}"
        baseline = sum(len(need.missing) for need, _, source in costs if source == "baseline")
        if baseline:
            line += (f" ({baseline} runs from the baseline's train-step times, measured on {_baseline()['machine']}; "
                     "training steps only)")
        if unknown:
            line += f" (plus {sum(len(need.missing) for need in unknown)} runs of {kernels}: nothing measured to estimate from)"
        return line

    @property
    def published(self) -> int:
        """The published runs the selection holds, each once (two requests of one condition share theirs)."""
        seeds = {(need.runs_of, seed) for need in self.needs for seed in need.published_seeds}
        return len(seeds) + sum(need.published for need in self.needs if not need.published_seeds)

    def table(self) -> str:
        """Every need, one line each: family, seed name, condition, seeds, steps, cached, estimate; "to train" and
        "time left" count the runs it trains itself (a run an earlier row also asks for is that row's)."""
        # as wide as the longest name: a condition's settings (the end of its name) tell two protocols apart
        width = max([34, *(len(need.name) for need in self.needs)])
        lines = [f"{'family':8s} {'seeds of':14s} {'condition':{width}s} {'seeds':>6s} {'steps':>7s} {'held':>5s} "
                 f"{'published':>9s} {'to train':>9s} {'time left':>10s}"]
        for need in self.needs:
            own = self.own(need)
            s = self.seconds(own) if own.missing else 0.0
            shared = len(need.missing) - len(own.missing)
            lines.append(f"{need.family:8s} {need.label:14s} {need.name:{width}s} {len(need.seeds):6d} "
                         f"{need.steps:7d} {len(need.seeds) - len(need.missing):5d} {need.published:9d} "
                         f"{len(own.missing):9d} {'unknown' if s is None else _duration(s):>10s}"
                         + (f"  (and {shared} to train above)" if shared else ""))
        return "\n".join(lines)


_MEASURED: dict[tuple, list[dict[str, Any]]] = {}


def _measured(directory: Path | None, kernel: str) -> list[dict[str, Any]]:
    """:func:`resclaims.run.cache.measurements` and the provenance of the published runs trained on this machine, read
    once per plan: the time left is at this machine's measured rate."""
    if (directory, kernel) not in _MEASURED:
        _MEASURED[directory, kernel] = measurements(directory, kernel) + published_measurements(kernel)
    return _MEASURED[directory, kernel]


def published_measurements(kernel: str) -> list[dict[str, Any]]:
    """The provenance of every published run of ``kernel`` (a module name) that trained on this machine's device."""
    import importlib

    from resclaims.run import store
    from resclaims.run.provenance import device_name

    module = importlib.import_module(kernel)
    if not store.publishable(module):
        return []
    found = []
    for path in store.RunStore(store.default_directory()).entries():
        with contextlib.suppress(store.StoreError):
            meta = store.entry_metadata(path)
            if meta["key"]["kernel"] == module.NAME and \
                    meta["provenance"].get("device_name") == device_name(meta["provenance"].get("device_kind", "")):
                found.append(meta["provenance"])
    return found


def incomplete(cache: RunCache, kernel: Kernel, parts: Sequence[RunProtocol], seeds: Sequence[int],
               lacking: Sequence[Sequence[int]], *, device: Any, device_kind: str, label: str) -> str:
    """Why a session that trains nothing (``--no-train``) decides no claim of a request: ``incomplete: K: 14 of 20
    runs missing (resnet-10 x7, plain-10 x7), about 4.9 h on cpu at this machine's measured rate``."""
    needs = [Need(label, label, kernel.__name__, part, tuple(seeds), tuple(missing), steps(kernel, part),
                  device.type, None, device_kind) for part, missing in zip(parts, lacking)]
    plan = Plan(needs, {}, cache.directory, "", device.type)
    costs = [plan.cost(need) for need in plan.missing]
    n, total = plan.runs_to_train, len(parts) * len(seeds)
    which = ", ".join(f"{need.name} x{len(need.missing)}" for need in plan.missing)
    sources = {source for _, source in costs}
    cost = ("cost unknown (nothing measured to estimate from)" if None in sources
            else f"about {_duration(sum(s for s, _ in costs))} on {device.type} " + (
                "from the baseline's train-step times (training steps only)" if "baseline" in sources
                else "at this machine's measured rate"))
    return f"{INCOMPLETE}{label}: {n} of {total} runs missing ({which}), {cost}; no verdict on partial data"


BASELINE = Path(__file__).resolve().parents[2] / "reports" / "baseline" / "summary.json"


@functools.cache
def _baseline() -> dict[str, Any]:
    """The committed baseline's timings (name -> seconds per call) and the machine they were measured on."""
    try:
        document = json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return {"timings": {}, "machine": ""}
    provenance = document.get("provenance", {})
    return {"timings": {t["name"]: t["seconds_per_experiment"] for t in document.get("timings", [])},
            "machine": provenance.get("device_name") or provenance.get("device", "")}


def _timed_steps() -> dict[tuple[str, str], str]:
    """(what shapes a training step: recipe, batch, input scale; the arm) -> the baseline timing of that step, as the
    suite's train-step benchmarks name it (benchmarks/test_cifar_resnet_vs_plain.py, benchmarks/test_degradation.py)."""
    from resclaims.kernels import cifar

    timed = {}
    for arm in cifar.keras_arms([10]):
        timed[_step_key(cifar.TrainConfig(), arm)] = f"train step keras003 {arm.name}, batch 64, {{device}}"
    for depth in (20, 56):
        for arm in cifar.he_arms([depth], residual=True) + cifar.he_arms([depth], residual=False):
            timed[_step_key(cifar.HE2015, arm)] = f"train step {arm.name}, batch 128, {{device}}"
    return timed


def _step_key(train: Any, arm: Any) -> tuple[str, str]:
    return repr((train.recipe, train.batch_size, train.downsample, train.order)), repr(arm)


def baseline_step_seconds(condition: RunProtocol, device: str) -> float | None:
    """Seconds of one training step of ``condition`` (one CIFAR arm) on ``device``, as the baseline report timed it;
    None when the suite's benchmarks do not time that step (another network, recipe or input size)."""
    train, arms = getattr(condition, "train", None), getattr(condition, "arms", ())
    if train is None or len(arms) != 1 or not hasattr(train, "recipe"):
        return None
    name = _timed_steps().get(_step_key(train, arms[0]))
    return None if name is None else _baseline()["timings"].get(name.format(device=device))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2g}" if seconds < 100 * 3600 else f"{seconds / 3600:.0f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


