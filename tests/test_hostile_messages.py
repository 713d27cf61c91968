"""Hostile message streams against a real probe: text that is not UTF-8, endless fragments."""

from __future__ import annotations

import re

from tests import servers
from tests.servers import MS, Peer
from wsmon.probe.module import BUILTIN_MODULES, Step
from wsmon.probe.prober import probe
from wsmon.probe.reasons import Reason
from wsmon.ws.frames import MAX_FRAGMENTS, OP_CLOSE, OP_CONT, OP_TEXT

# Send a message and wait for the answer (any text matches): the answer is kept and read.
ASK = BUILTIN_MODULES["connect"].with_overrides(steps=(Step(send="hello", expect=re.compile("")),))


def answering(answer: bytes) -> servers.Handler:
    """Upgrades, answers every text message with ``answer``, leaves at the client's close frame."""

    async def handler(peer: Peer) -> None:
        await peer.upgrade()
        while (frame := await peer.read_frame()) is not None:
            opcode, _ = frame
            if opcode == OP_TEXT:
                await peer.send(answer)
            elif opcode == OP_CLOSE:
                return

    return handler


async def test_text_that_is_not_utf8_fails_the_probe() -> None:
    async with servers.raw_server(answering(servers.server_frame(OP_TEXT, b"caf\xc3"))) as server:
        result = await probe(server.url("/"), ASK, 2000 * MS)
    assert (result.success, result.reason) == (False, Reason.PROTOCOL)
    assert result.error == "protocol error during message: a text message is not valid UTF-8"
    # The close frame with 1007 goes out before the connection is dropped (tests/test_connection.py
    # sees it on a recording transport); over TCP the drop's RST may overtake it, so not asserted here.


async def test_endless_empty_fragments_end_as_too_large() -> None:
    empty = servers.server_frame(OP_CONT, b"", fin=False)
    answer = (
        servers.server_frame(OP_TEXT, b"x", fin=False) + empty * (2 * MAX_FRAGMENTS) + servers.server_frame(OP_CONT)
    )
    async with servers.raw_server(answering(answer)) as server:
        result = await probe(server.url("/"), ASK, 2000 * MS)
    assert (result.success, result.reason) == (False, Reason.MESSAGE_TOO_LARGE)
