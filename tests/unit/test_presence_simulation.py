"""The deterministic simulation of presence under faults (issue 11): thousands of seeds
over the real shard cores, every seed that ever failed kept as a regression, and proof
that the checker fails when the code is wrong.

A failing seed prints its trace; replay it with
``python -m alight.channels.presence.simulation --seed N [--pauses-only | --drains]``.
The soak: ``python -m alight.channels.presence.simulation --seeds 10000``.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from alight.channels.presence import _diffs, _shard
from alight.channels.presence.simulation import DOWN_PERIOD, Faults, Result, run_seed

SEEDS = int(os.environ.get("ALIGHT_SIM_SEEDS", "1500"))
"""Seeds of the general schedule in the test command (the soak runs more)."""
PAUSE_SEEDS = int(os.environ.get("ALIGHT_SIM_PAUSE_SEEDS", "500"))

DRAIN_SEEDS = int(os.environ.get("ALIGHT_SIM_DRAIN_SEEDS", "500"))

PAUSES = {"faults": Faults.pauses_only(DOWN_PERIOD * 0.8), "check_no_spurious": True}
DRAINS = {"faults": Faults().with_drains()}

# Seeds that failed once, with what they caught (issue 11). Kept for ever.
REGRESSIONS: list[tuple[int, dict[str, Any], str]] = [
    (0, {}, "a replica down and up within one batch: one diff with a ref on both sides"),
    (4, {}, "a presence_state read between a leave and a join of one ref, netted away"),
    (8, {}, "the same, on another topic"),
    (27, {}, "drops in the settle phase took the checker's own end state for divergence"),
    (5, PAUSES, "a presence_state read mid-batch (pauses only)"),
    (7, PAUSES, "a 2.35 s pause, shorter than down_period, took a node down: silence counted from the last heartbeat"),
    (12, PAUSES, "the same, with the paused node's queued heartbeats read after its tick"),
    (16, PAUSES, "the same"),
]


def _check(seed: int, options: dict[str, Any]) -> tuple[int, str | None]:
    result = run_seed(seed, **options)
    if result.ok:
        return seed, None
    return seed, _report(result)


def _report(result: Result) -> str:
    violations = "\n".join(f"  invariant {v.invariant} at {v.at:.3f} s: {v.what}" for v in result.violations[:5])
    trace = "\n".join(result.trace[-60:])
    return f"seed {result.seed} failed:\n{violations}\nthe end of its trace:\n{trace}"


def _run_many(seeds: range, options: dict[str, Any]) -> list[str]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        outcomes = pool.map(_check, seeds, [options] * len(seeds), chunksize=50)
        return [report for _, report in outcomes if report is not None]


@pytest.mark.slow  # thousands of seeds, in worker processes
def test_general_schedules_keep_every_invariant() -> None:
    failures = _run_many(range(10_000, 10_000 + SEEDS), {})
    assert not failures, f"{len(failures)} of {SEEDS} seeds failed; the first:\n{failures[0]}"


@pytest.mark.slow  # thousands of seeds, in worker processes
def test_pauses_shorter_than_down_period_produce_no_leave() -> None:
    failures = _run_many(range(20_000, 20_000 + PAUSE_SEEDS), PAUSES)
    assert not failures, f"{len(failures)} of {PAUSE_SEEDS} seeds failed; the first:\n{failures[0]}"


@pytest.mark.slow  # hundreds of seeds, in worker processes
def test_drains_among_every_fault_keep_every_invariant() -> None:
    failures = _run_many(range(30_000, 30_000 + DRAIN_SEEDS), DRAINS)
    assert not failures, f"{len(failures)} of {DRAIN_SEEDS} seeds failed; the first:\n{failures[0]}"


def test_the_checker_fails_when_a_drained_replica_keeps_talking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutation: a replica that announces its permdown but goes on heartbeating comes
    back on the other nodes (invariant 4)."""
    leave = _shard.ShardCore.leave

    def talkative(self: _shard.ShardCore) -> list[_shard.Effect]:
        effects = leave(self)
        self.left = False
        return effects

    monkeypatch.setattr(_shard.ShardCore, "leave", talkative)
    caught = [run_seed(seed, **DRAINS) for seed in (15, 21, 28)]
    assert all(any(v.invariant == 4 for v in result.violations) for result in caught)


@pytest.mark.parametrize(("seed", "options", "caught"), REGRESSIONS, ids=[f"seed{s}" for s, _, _ in REGRESSIONS])
def test_regression_seeds(seed: int, options: dict[str, Any], caught: str) -> None:
    _, report = _check(seed, options)
    assert report is None, f"{caught}\n{report}"


def test_the_checker_fails_when_diffs_are_not_netted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutation: the batch without netting (what shipped before issue 11) must fail."""

    def record(self: _diffs.DiffBatch, topic: str, key: str, meta: Any, joined: bool) -> None:
        pending = self._topics.get(topic) or self._topics.setdefault(topic, _diffs._Topic())
        pending.diffs[-1][meta["phx_ref"] + ("+" if joined else "-")] = _diffs._Entry(key, meta, joined, 0)

    monkeypatch.setattr(_diffs.DiffBatch, "_record", record)
    failed = [seed for seed in range(20) if not run_seed(seed).ok]
    assert len(failed) > 10


def test_the_checker_fails_when_a_reader_mid_batch_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_diffs.DiffBatch, "observe", lambda self, topic: None)
    assert any(not run_seed(seed).ok for seed in (4, 8, 24, 33, 34))


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(31), run_seed(31)
    assert first.trace == second.trace
    assert len(first.trace) > 100
