"""The netted diff batch (`channels/presence/_diffs.py`): whatever happens in a batch and
whenever clients read the state, a client applying the diffs with phoenix.js's exact
semantics ends with the server's presences, and no diff holds a ref on both sides."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alight.channels.presence._diffs import DiffBatch
from alight.channels.presence.simulation import PresenceView, group

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def meta(ref: str) -> dict[str, Any]:
    return {"phx_ref": ref}


def test_a_leave_and_a_join_of_one_ref_nobody_saw_cancel_out() -> None:
    # A replica taken for down and up again within one batch: no diff at all.
    batch = DiffBatch()
    batch.leave("t", "ann", meta("r1"))
    batch.join("t", "ann", meta("r1"))
    assert batch.take() == []


def test_a_join_then_a_leave_nobody_saw_cancel_out() -> None:
    batch = DiffBatch()
    batch.join("t", "ann", meta("r1"))
    batch.leave("t", "ann", meta("r1"))
    assert batch.take() == []


def test_a_reader_in_between_gets_both_in_two_diffs() -> None:
    batch = DiffBatch()
    batch.leave("t", "ann", meta("r1"))
    batch.join("t", "bob", meta("r2"))
    batch.observe("t")  # a presence_state is read: r1 absent
    batch.join("t", "ann", meta("r1"))
    assert batch.take() == [
        {"t": ([("bob", meta("r2"))], [("ann", meta("r1"))])},
        {"t": ([("ann", meta("r1"))], [])},
    ]


def test_an_update_is_one_diff_with_both_refs() -> None:
    batch = DiffBatch()
    batch.leave("t", "ann", meta("r1"))
    batch.join("t", "ann", meta("r2"))
    assert batch.take() == [{"t": ([("ann", meta("r2"))], [("ann", meta("r1"))])}]


# -- the property --------------------------------------------------------------------------

REFS = [f"r{i}" for i in range(6)]
KEY_OF = {ref: f"user{int(ref[1:]) % 3}" for ref in REFS}

# An operation: toggle a ref (join if absent, leave if present: what a State reports),
# or a client reading the state now (subscribed some time before: it also gets every
# diff handed out after its subscription).
operations = st.lists(
    st.one_of(st.tuples(st.just("toggle"), st.sampled_from(REFS)), st.tuples(st.just("read"), st.none())),
    max_size=40,
)
batches = st.lists(operations, min_size=1, max_size=4)


def present(state: set[str]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for ref in state:
        out.setdefault(KEY_OF[ref], set()).add(ref)
    return {key: frozenset(refs) for key, refs in out.items()}


@PROPERTY
@given(initial=st.sets(st.sampled_from(REFS)), rounds=batches)
def test_every_client_ends_with_the_servers_presences(initial: set[str], rounds: list[list[Any]]) -> None:
    state = set(initial)
    batch = DiffBatch()
    # A client there from the start, synced on the initial state.
    first = PresenceView()
    first.on_state(group((KEY_OF[r], meta(r)) for r in sorted(state)))
    clients = [first]
    for operations_of_batch in rounds:
        for op, ref in operations_of_batch:
            if op == "toggle":
                if ref in state:
                    state.discard(ref)
                    batch.leave("t", KEY_OF[ref], meta(ref))
                else:
                    state.add(ref)
                    batch.join("t", KEY_OF[ref], meta(ref))
            else:
                batch.observe("t")
                client = PresenceView()
                client.on_state(group((KEY_OF[r], meta(r)) for r in sorted(state)))
                clients.append(client)
        for diffs in batch.take():
            joins, leaves = diffs["t"]
            assert not {m["phx_ref"] for _, m in joins} & {m["phx_ref"] for _, m in leaves}
            payload = {"joins": group(joins), "leaves": group(leaves)}
            for client in clients:
                client.on_diff(payload)
        for client in clients:
            assert client.refs() == present(state)
