"""The unattended supervision scenario (``alight demo supervision --script``).

Each step does one thing to the tree, waits for the restarts it should cause as
events (`Started` from the new processes, `Down` from the old ones; every wait is
bounded), then compares `which_children` before and after with what the strategy
prescribes. The expected outcome comes from OTP's rules, written out here
independently of the runtime:

- a crash under ``one_for_one`` restarts that worker; under ``one_for_all`` all
  three; under ``rest_for_one`` that worker and the ones started after it;
- the restart that makes more than ``MAX_RESTARTS`` in ``MAX_SECONDS`` is refused:
  the supervisor exits with ``shutdown`` and its parent (``demo``) restarts it with
  fresh workers;
- a killed supervisor exits ``killed`` and its parent restarts it likewise;
- every crash gives exactly one crash report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..actors import KILL, SHUTDOWN, Down, Pid, cast, current_node, self_pid, start_child
from ..actors import exit as exit_signal
from ._supervision_tree import (
    MAX_RESTARTS,
    MAX_SECONDS,
    STRATEGIES,
    TOP,
    TOP_PATH,
    WORKERS,
    Crash,
    Event,
    Observer,
    Path,
    label,
    restarted_by,
    top_spec,
    tree_pids,
)

WAIT = 2.0
"""Seconds any one wait may take for the restarts it expects (a run that matches
takes well under a second in all)."""

Pids = dict[Path, Pid | None]


@dataclass(frozen=True, slots=True)
class Observation:
    before: Pids
    after: Pids
    changed: set[Path]
    arrived: bool
    """Whether every expected restart was announced within `WAIT`."""
    downs: list[Down]
    crash_reports: int


class Script:
    """Runs the scenario inside the controller process; `run` returns the exit status."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.quiet = True
        self.observer = Observer(on_event=self._event)
        self.top: Pid | None = None
        self.steps: list[tuple[str, bool]] = []
        # The oracle's memory: when each sub-supervisor restarted a child.
        self.restart_times: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}

    def _event(self, event: Event) -> None:
        if not self.quiet:
            self.out(f"    | {event.text}")

    async def run(self) -> int:
        if not await self.setup():
            return 2
        await self.crash_step("one_for_one", "w2")
        await self.crash_step("one_for_all", "w2")
        await self.crash_step("rest_for_one", "w2")
        await self.burst_step("one_for_all", "w1")
        await self.kill_step("rest_for_one")
        failed = [title for title, ok in self.steps if not ok]
        if failed:
            self.out(f"FAILED: {len(failed)} of {len(self.steps)} steps did not match: {'; '.join(failed)}")
            return 1
        self.out(f"ok: all {len(self.steps)} steps matched their strategies")
        return 0

    async def setup(self) -> bool:
        node = current_node()
        await start_child(node.root, top_spec(self_pid()))
        everything = [TOP_PATH, *((s,) for s in STRATEGIES), *((s, w) for s in STRATEGIES for w in WORKERS)]
        observer = self.observer
        started = await observer.wait_until(lambda: all(path in observer.latest for path in everything), WAIT)
        if not started:
            missing = [label(path) for path in everything if path not in observer.latest]
            self.out(f"FAILED: the tree did not start within {WAIT} s; missing {' '.join(missing)}")
            return False
        self.top = observer.latest[TOP_PATH]
        self.out(f"tree: {TOP} {self.top!r} (one_for_one) under the node's root supervisor")
        for strategy in STRATEGIES:
            workers = " ".join(f"{w} {observer.latest[(strategy, w)]!r}" for w in WORKERS)
            sup = observer.latest[(strategy,)]
            self.out(f"  {strategy} {sup!r} (max {MAX_RESTARTS} restarts in {MAX_SECONDS:g} s): {workers}")
        self.quiet = False
        return True

    # -- the oracle ------------------------------------------------------------------

    def _in_window(self, strategy: str) -> int:
        now = current_node().loop.time()
        return sum(1 for t in self.restart_times[strategy] if t > now - MAX_SECONDS)

    def _expect_crash(self, strategy: str, worker: str) -> tuple[set[Path], bool]:
        """The paths a crash of ``strategy/worker`` should change, and whether it
        should breach the intensity."""
        if self._in_window(strategy) + 1 > MAX_RESTARTS:
            return _whole_subtree(strategy), True
        return {(strategy, w) for w in restarted_by(strategy, worker)}, False

    # -- observing -------------------------------------------------------------------

    async def observe(self, act: Callable[[Pids], None], expected: set[Path]) -> Observation:
        observer = self.observer
        before = await tree_pids(self.top)
        marks = len(observer.downs), len(observer.logs)
        act(before)

        def announced() -> bool:
            return all(observer.latest.get(path) not in (None, before.get(path)) for path in expected)

        arrived = await observer.wait_until(announced, WAIT)
        after = await tree_pids(self.top)
        changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
        crash_reports = sum(1 for log in observer.logs[marks[1] :] if log.logger == "alight.actors.crash")
        return Observation(before, after, changed, arrived, observer.downs[marks[0] :], crash_reports)

    def _verdict(self, obs: Observation, expected: set[Path], strategy: str) -> tuple[bool, str]:
        problems = []
        if not obs.arrived:
            problems.append(f"timed out after {WAIT} s waiting for {_names(expected, strategy)} to restart")
        if obs.changed != expected:
            problems.append(f"expected {_names(expected, strategy)} to change")
        if problems:
            return False, "MISMATCH: " + "; ".join(problems)
        return True, f"expected {_names(expected, strategy)}: ok"

    # -- steps -----------------------------------------------------------------------

    async def crash_step(self, strategy: str, worker: str) -> bool:
        self.out(f"step {len(self.steps) + 1}: crash {strategy}/{worker}")
        ok = await self._crash(strategy, worker)
        self.steps.append((f"crash {strategy}/{worker}", ok))
        return ok

    async def _crash(self, strategy: str, worker: str) -> bool:
        expected, breach = self._expect_crash(strategy, worker)
        path = (strategy, worker)

        def act(before: Pids) -> None:
            pid = before.get(path)
            if pid is not None:
                cast(pid, Crash())

        obs = await self.observe(act, expected)
        ok, verdict = self._verdict(obs, expected, strategy)
        if obs.crash_reports != 1:
            ok, verdict = False, f"{verdict}; MISMATCH: {obs.crash_reports} crash reports for one crash, expected 1"
        if breach:
            self.restart_times[strategy] = []
            sup_ok, seen = self._supervisor_replaced(obs, strategy, SHUTDOWN)
            self.out(
                f"  {strategy}: crashed {worker} -> supervisor exited ({seen}): more than {MAX_RESTARTS} restarts "
                f"in {MAX_SECONDS:g} s; {TOP} restarted {strategy} {_pid(obs.before, (strategy,))} -> "
                f"{_pid(obs.after, (strategy,))} with {_names(obs.changed, strategy, workers_only=True)} "
                f"(pids changed); {verdict}"
            )
            return ok and sup_ok
        self.restart_times[strategy].append(current_node().loop.time())
        kept = [w for w in WORKERS if (strategy, w) not in obs.changed]
        kept_text = f", kept {' '.join(kept)}" if kept else ""
        self.out(
            f"  {strategy}: crashed {worker} -> restarted {_names(obs.changed, strategy)} (pids changed){kept_text}; "
            f"{verdict}"
        )
        return ok

    async def burst_step(self, strategy: str, worker: str) -> bool:
        already = self._in_window(strategy)
        self.out(
            f"step {len(self.steps) + 1}: burst-crash {strategy}/{worker} until its supervisor gives up "
            f"(max {MAX_RESTARTS} restarts in {MAX_SECONDS:g} s, {already} already in the window)"
        )
        ok = True
        escalated = False
        for attempt in range(1, MAX_RESTARTS + 2):
            breach = self._expect_crash(strategy, worker)[1]
            self.out(f"  crash {attempt}{' (should breach the intensity)' if breach else ''}")
            crashed_ok = await self._crash(strategy, worker)
            ok = ok and crashed_ok
            if breach or not crashed_ok:
                escalated = breach
                break
        if ok and not escalated:
            self.out(f"  MISMATCH: {MAX_RESTARTS + 1} crashes and the supervisor never gave up")
        elif not ok:
            self.out("  burst stopped at the first mismatch")
        self.steps.append((f"burst-crash {strategy}/{worker}", ok and escalated))
        return ok and escalated

    async def kill_step(self, strategy: str) -> bool:
        self.out(f"step {len(self.steps) + 1}: kill the {strategy} supervisor")
        expected = _whole_subtree(strategy)

        def act(before: Pids) -> None:
            pid = before.get((strategy,))
            if pid is not None:
                exit_signal(pid, KILL)

        obs = await self.observe(act, expected)
        ok, verdict = self._verdict(obs, expected, strategy)
        sup_ok, seen = self._supervisor_replaced(obs, strategy, "killed")
        self.restart_times[strategy] = []
        self.out(
            f"  {strategy}: killed supervisor {_pid(obs.before, (strategy,))} (exited {seen}) -> {TOP} restarted it "
            f"as {_pid(obs.after, (strategy,))} with {_names(obs.changed, strategy, workers_only=True)} "
            f"(pids changed); {verdict}"
        )
        ok = ok and sup_ok
        self.steps.append((f"kill {strategy}", ok))
        return ok

    def _supervisor_replaced(self, obs: Observation, strategy: str, reason: str) -> tuple[bool, str]:
        """Did the old supervisor go down with ``reason``? Returns (ok, what was seen)."""
        old = obs.before.get((strategy,))
        down = next((d for d in obs.downs if d.pid == old), None)
        if down is None:
            return False, "no Down seen: MISMATCH"
        if down.reason != reason:
            return False, f"{down.reason!r}: MISMATCH, expected {reason}"
        return True, str(down.reason)


def _whole_subtree(strategy: str) -> set[Path]:
    return {(strategy,), *((strategy, w) for w in WORKERS)}


def _pid(pids: Pids, path: Path) -> str:
    return repr(pids.get(path))


def _names(paths: set[Path], strategy: str, *, workers_only: bool = False) -> str:
    """``w1 w2 w3`` for the workers of ``strategy``; other paths in full."""
    own = [path[1] for path in paths if len(path) == 2 and path[0] == strategy]
    others = [label(path) for path in paths if path[0] != strategy]
    names = sorted(own) + sorted(others)
    text = " ".join(names) if names else "nothing"
    if (strategy,) in paths and not workers_only:
        text = f"supervisor and {text}"
    return text
