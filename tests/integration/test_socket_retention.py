"""What a connected socket process keeps: nothing that only ``connect`` needed.

With thousands of idle connections per node every byte a socket process holds for its
life counts (``channels.connection_memory``). The request's ``connect_info`` (every
header), the query ``params`` and the transport's ``on_result`` callback (which holds
the HTTP connection's parser state) are for ``connect``; once connected they must be
garbage, not kept by the process's frames.
"""

from __future__ import annotations

import gc
import weakref

from testkit import UNIT, Runner

from alight.actors import Node, receive, self_pid, send
from alight.channels import Endpoint
from alight.channels._socket_server import run_socket
from alight.channels.testing import TestConn, TestSerializer, start_endpoint
from alight.examples.reference import UserSocket
from alight.transports.base import Accepted, ConnectInfo


class Params(dict[str, str]):
    """A dict that can be weakly referenced (the plain one cannot)."""


def test_a_connected_socket_keeps_neither_its_params_nor_the_transports_callback(run: Runner, node: Node) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        app.socket("/socket", UserSocket)
        await start_endpoint(app)
        me = self_pid()

        def on_result(outcome: Accepted | object) -> None:
            send(me, ("outcome", outcome))

        params = Params(user_id="ann")
        watched = (weakref.ref(on_result), weakref.ref(params))
        conn = TestConn(node, me)
        node.spawn_process(run_socket, (app, UserSocket, conn, TestSerializer(), params, ConnectInfo(), on_result))
        del on_result, params
        _, outcome = await receive(lambda m: isinstance(m, tuple) and m[0] == "outcome", timeout=5 * UNIT)
        assert isinstance(outcome, Accepted)
        assert node.lookup(outcome.pid) is not None  # the socket process lives on
        gc.collect()
        assert [ref() for ref in watched] == [None, None]

    run(main)
