"""`Encoded` payloads: encoded once, embedded unchanged by every serializer."""

from __future__ import annotations

import pytest

from alight.channels.message import Broadcast, Encoded, Message, Reply
from alight.channels.serializer import V1, V2

PAYLOAD = {"alice": {"metas": [{"device": "d1", "phx_ref": "F1"}]}, "n": [1, 2.5, None, "é"]}


@pytest.mark.parametrize("serializer", [V1, V2], ids=["v1", "v2"])
def test_an_encoded_payload_gives_the_same_frames_as_the_dict(serializer: object) -> None:
    encoded = Encoded(PAYLOAD)
    for plain, pre in [
        (
            Message("room:a", "presence_state", PAYLOAD, None, "1"),
            Message("room:a", "presence_state", encoded, None, "1"),
        ),
        (Reply("room:a", "ok", PAYLOAD, "2", "1"), Reply("room:a", "ok", encoded, "2", "1")),
        (Broadcast("room:a", "presence_diff", PAYLOAD), Broadcast("room:a", "presence_diff", encoded)),
    ]:
        assert serializer.encode(pre).data == serializer.encode(plain).data  # type: ignore[attr-defined]


def test_encoded_takes_only_objects_and_decodes_back() -> None:
    assert Encoded(PAYLOAD).decoded() == PAYLOAD
    with pytest.raises(TypeError):
        Encoded([1, 2])  # type: ignore[arg-type]
