"""WebSocket framing: client frames out, server frames in (wsmon.ws.frames)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.servers import server_frame
from wsmon.errors import ProtocolError
from wsmon.ws.frames import (
    MAX_FRAGMENTS,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    TOO_LARGE,
    FrameParser,
    close_payload,
    encode_frame,
    parse_close,
)

Event = tuple[int, bytes]


def unmask(frame: bytes) -> tuple[int, int, bool, bytes]:
    """(first byte, declared length, mask bit, unmasked payload) of a client frame."""
    b0, b1 = frame[0], frame[1]
    length, pos = b1 & 0x7F, 2
    if length == 126:
        (length,), pos = struct.unpack_from("!H", frame, 2), 4
    elif length == 127:
        (length,), pos = struct.unpack_from("!Q", frame, 2), 10
    key, payload = frame[pos : pos + 4], frame[pos + 4 :]
    return b0, length, bool(b1 & 0x80), bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# --- encode_frame -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "header_size"), [(0, 2), (1, 2), (4, 2), (5, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_PING, OP_CLOSE])
def test_encode_frame(opcode: int, length: int, header_size: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    frame = encode_frame(opcode, payload)
    assert len(frame) == header_size + 4 + length
    b0, declared, masked, unmasked = unmask(frame)
    assert (b0, declared, masked, unmasked) == (0x80 | opcode, length, True, payload)


@pytest.mark.parametrize("payload", [b"", b"ping", b"same payload"])
def test_encode_frame_uses_a_fresh_mask(payload: bytes) -> None:
    assert len({encode_frame(OP_PING, payload) for _ in range(8)}) > 1


@given(st.binary(max_size=300), st.sampled_from([OP_TEXT, OP_BINARY]))
def test_encode_frame_round_trip(payload: bytes, opcode: int) -> None:
    b0, declared, masked, unmasked = unmask(encode_frame(opcode, payload))
    assert (b0 & 0x0F, declared, masked, unmasked) == (opcode, len(payload), True, payload)


# --- close frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "payload"),
    [(1000, "", b"\x03\xe8"), (1001, "going away", b"\x03\xe9going away"), (4000, "é", b"\x0f\xa0\xc3\xa9")],
)
def test_close_payload(code: int, reason: str, payload: bytes) -> None:
    assert close_payload(code, reason) == payload
    assert parse_close(payload) == (code, reason)


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        (b"", (None, "")),
        (b"\x03", (None, "")),
        (b"\x03\xe8", (1000, "")),
        (b"\x03\xe8\xff", (1000, "\ufffd")),  # invalid UTF-8 in the reason is not an error here
    ],
)
def test_parse_close(payload: bytes, parsed: tuple[int | None, str]) -> None:
    assert parse_close(payload) == parsed


# --- FrameParser: tables --------------------------------------------------------------------


def feed_all(parser: FrameParser, *chunks: bytes) -> list[Event]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


def parser(keep_data: bool = False, max_size: int = 1 << 20) -> FrameParser:
    p = FrameParser(max_size)
    p.keep_data = keep_data
    return p


@pytest.mark.parametrize(
    ("keep_data", "max_size", "stream", "events"),
    [
        (False, 100, server_frame(OP_PING, b"hi"), [(OP_PING, b"hi")]),
        (False, 100, server_frame(OP_PONG), [(OP_PONG, b"")]),
        (False, 100, server_frame(OP_CLOSE, b"\x03\xe8"), [(OP_CLOSE, b"\x03\xe8")]),
        # Data is drained unless kept: the message is reported, its payload is not.
        (False, 100, server_frame(OP_TEXT, b"hello"), [(OP_TEXT, b"")]),
        (True, 100, server_frame(OP_TEXT, b"hello"), [(OP_TEXT, b"hello")]),
        (True, 100, server_frame(OP_BINARY, b""), [(OP_BINARY, b"")]),
        (True, 5, server_frame(OP_TEXT, b"hello"), [(OP_TEXT, b"hello")]),  # exactly the limit
        (True, 4, server_frame(OP_TEXT, b"hello"), [(TOO_LARGE, b"")]),
        # Fragments are joined; control frames may come between them.
        (
            True,
            100,
            server_frame(OP_TEXT, b"he", fin=False)
            + server_frame(OP_PING, b"p")
            + server_frame(OP_CONT, b"ll", fin=False)
            + server_frame(OP_CONT, b"o"),
            [(OP_PING, b"p"), (OP_TEXT, b"hello")],
        ),
        # The limit counts the whole message, not each fragment.
        (
            True,
            4,
            server_frame(OP_TEXT, b"hel", fin=False) + server_frame(OP_CONT, b"lo") + server_frame(OP_TEXT, b"ok"),
            [(TOO_LARGE, b""), (OP_TEXT, b"ok")],
        ),
        (True, 1 << 20, server_frame(OP_BINARY, bytes(70000)), [(OP_BINARY, bytes(70000))]),
        (False, 10, server_frame(OP_BINARY, bytes(70000)) + server_frame(OP_PING), [(OP_BINARY, b""), (OP_PING, b"")]),
    ],
)
def test_parser_events(keep_data: bool, max_size: int, stream: bytes, events: list[Event]) -> None:
    assert feed_all(parser(keep_data, max_size), stream) == events
    assert feed_all(parser(keep_data, max_size), *(stream[i : i + 1] for i in range(len(stream)))) == events


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (bytes((0x81, 0x85)) + b"\x00" * 9, "the server masked a frame"),
        (server_frame(OP_TEXT, b"x", rsv=1), "reserved bits set without a negotiated extension"),
        (server_frame(OP_TEXT, b"x", rsv=4), "reserved bits set without a negotiated extension"),
        (server_frame(OP_PING, bytes(126)), "control frame fragmented or longer than 125 bytes"),
        (server_frame(OP_PING, b"x", fin=False), "control frame fragmented or longer than 125 bytes"),
        (server_frame(0x3, b"x"), "unknown opcode 0x3"),
        (server_frame(0xB, b"x"), "unknown opcode 0xb"),
        (server_frame(OP_CONT, b"x"), "continuation frame out of sequence"),
        (server_frame(OP_TEXT, b"x", fin=False) + server_frame(OP_TEXT, b"y"), "continuation frame out of sequence"),
    ],
)
@pytest.mark.parametrize("keep_data", [False, True])
def test_parser_protocol_errors(stream: bytes, message: str, keep_data: bool) -> None:
    with pytest.raises(ProtocolError) as caught:
        feed_all(parser(keep_data), stream)
    assert str(caught.value) == message


def test_drained_payload_is_not_buffered() -> None:
    p = parser(keep_data=False)
    size = 4 << 20
    header = server_frame(OP_BINARY, bytes(size))[:10]
    assert p.feed(header) == []
    chunk = bytes(64 * 1024)
    for _ in range(size // len(chunk) - 1):
        assert p.feed(chunk) == []
        assert not p._buf  # skipped as it arrives, never kept
    assert p.feed(chunk + server_frame(OP_PONG, b"x")) == [(OP_BINARY, b""), (OP_PONG, b"x")]


def test_frames_that_come_whole_leave_nothing_buffered_and_a_split_one_is_kept_until_whole() -> None:
    p = parser(keep_data=True)
    pong, text = server_frame(OP_PONG, b"1234"), server_frame(OP_TEXT, b"hello")
    assert p.feed(pong + text) == [(OP_PONG, b"1234"), (OP_TEXT, b"hello")]
    assert p._buf is None and p._parts is None  # a connection whose frames come whole keeps none
    assert p.feed(pong[:3]) == []
    assert p._buf == pong[:3]
    assert p.feed(pong[3:] + text[:1]) == [(OP_PONG, b"1234")]
    assert p.feed(text[1:]) == [(OP_TEXT, b"hello")]
    assert p._buf is None


# --- FrameParser: properties ------------------------------------------------------------------

payloads = st.binary(max_size=300)
controls = st.tuples(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]), st.binary(max_size=125))


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes | list[bytes]]]]:
    """A server byte stream and what it holds: control frames and (fragmented) data messages."""
    stream = b""
    items: list[tuple[int, bytes | list[bytes]]] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            opcode, payload = draw(controls)
            stream += server_frame(opcode, payload)
            items.append((opcode, payload))
            continue
        opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
        if opcode == OP_TEXT:  # UTF-8, as text must be, cut anywhere (within a character too)
            text = draw(st.text(max_size=150)).encode()
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=3)))
            fragments = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
        else:
            fragments = draw(st.lists(payloads, min_size=1, max_size=4))
        interleaved: list[tuple[int, bytes]] = []
        for i, fragment in enumerate(fragments):
            last = i == len(fragments) - 1
            stream += server_frame(OP_CONT if i else opcode, fragment, fin=last)
            if not last and draw(st.booleans()):
                ping = draw(controls)
                stream += server_frame(*ping)
                interleaved.append(ping)
        items.extend(interleaved)
        items.append((opcode, fragments))
    return stream, items


def expected(items: list[tuple[int, bytes | list[bytes]]], keep_data: bool, max_size: int) -> list[Event]:
    events: list[Event] = []
    for opcode, content in items:
        if isinstance(content, bytes):
            events.append((opcode, content))
            continue
        data = b"".join(content)
        if not keep_data:
            events.append((opcode, b""))
        elif len(data) > max_size:
            events.append((TOO_LARGE, b""))
        else:
            events.append((opcode, data))
    return events


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@given(messages(), st.lists(st.integers(min_value=0), max_size=30), st.booleans(), st.integers(0, 700))
def test_any_split_yields_the_same_events(
    generated: tuple[bytes, list[tuple[int, bytes | list[bytes]]]], cuts: list[int], keep_data: bool, max_size: int
) -> None:
    stream, items = generated
    whole = feed_all(parser(keep_data, max_size), stream)
    assert whole == expected(items, keep_data, max_size)
    assert feed_all(parser(keep_data, max_size), *split(stream, cuts)) == whole


@given(messages(), st.lists(st.integers(min_value=0), max_size=30), st.booleans(), st.binary(max_size=200))
def test_a_masked_frame_is_a_protocol_error(
    generated: tuple[bytes, list[tuple[int, bytes | list[bytes]]]], cuts: list[int], keep_data: bool, payload: bytes
) -> None:
    stream, _ = generated
    frame = server_frame(OP_TEXT, payload)
    masked = bytes((frame[0], frame[1] | 0x80)) + frame[2:]
    p = parser(keep_data)
    with pytest.raises(ProtocolError, match="the server masked a frame"):
        feed_all(p, *split(stream + masked, cuts))


def test_endless_empty_fragments_are_not_kept() -> None:
    """A peer sending empty continuation frames forever must not grow the kept message."""
    p = parser(keep_data=True, max_size=1 << 20)
    stream = server_frame(OP_TEXT, b"x", fin=False) + server_frame(OP_CONT, b"", fin=False) * (3 * MAX_FRAGMENTS)
    assert p.feed(stream) == []
    assert p.feed(server_frame(OP_CONT, b"y")) == [(TOO_LARGE, b"")]
    # Up to the bound, fragments are joined as usual.
    p = parser(keep_data=True)
    stream = server_frame(OP_TEXT, b"a", fin=False) + server_frame(OP_CONT, b"", fin=False) * (MAX_FRAGMENTS - 2)
    assert p.feed(stream + server_frame(OP_CONT, b"b")) == [(OP_TEXT, b"ab")]


@pytest.mark.parametrize(
    ("payload", "valid"),
    [
        (b"plain", True),
        ("héllo wörld ✓".encode(), True),
        (b"\xff\xfe", False),
        (b"caf\xc3", False),  # cut in the middle of a character
        (b"\xed\xa0\x80", False),  # a UTF-16 surrogate encoded as UTF-8
    ],
)
def test_kept_text_must_be_utf8(payload: bytes, valid: bool) -> None:
    stream = server_frame(OP_TEXT, payload[:2], fin=False) + server_frame(OP_CONT, payload[2:])
    if valid:
        assert feed_all(parser(keep_data=True), stream) == [(OP_TEXT, payload)]
    else:
        with pytest.raises(ProtocolError) as caught:
            feed_all(parser(keep_data=True), stream)
        assert (str(caught.value), caught.value.code) == ("a text message is not valid UTF-8", 1007)
    # Binary messages carry any bytes; drained text is not read at all.
    assert feed_all(parser(keep_data=True), server_frame(OP_BINARY, payload)) == [(OP_BINARY, payload)]
    assert feed_all(parser(keep_data=False), server_frame(OP_TEXT, payload)) == [(OP_TEXT, b"")]


# --- the whole-pong shortcut ----------------------------------------------------------------

# What may have come before a read: nothing, a frame's start, a drained payload's start.
BEFORE = [b"", server_frame(OP_TEXT, b"hello")[:3], server_frame(OP_TEXT, b"x" * 10)[:5], server_frame(OP_PONG, b"ab")]


@pytest.mark.parametrize("payload", [b"", b"\x00\x00\x00\x07", b"p" * 125])
def test_a_whole_pong_read_between_frames_takes_the_shortcut(payload: bytes) -> None:
    assert parser().whole_pong(server_frame(OP_PONG, payload)) == payload


@pytest.mark.parametrize(
    ("before", "data"),
    [
        (BEFORE[1], server_frame(OP_PONG, b"1234")),  # the end of a frame is still awaited
        (BEFORE[2], server_frame(OP_PONG, b"1234")),  # payload bytes that look like a pong
        (b"", server_frame(OP_PONG, b"1234") + server_frame(OP_PING)),  # more than the pong
        (b"", server_frame(OP_PONG, b"1234")[:-1]),  # less
        (b"", server_frame(OP_PING, b"1234")),
        (b"", server_frame(OP_PONG, b"1234", fin=False)),
        (b"", server_frame(OP_PONG, b"1234", rsv=4)),  # a reserved bit
        (b"", server_frame(OP_PONG, b"p" * 126)),  # 16-bit length: not a valid pong, feed says so
        (b"", b""),
        (b"", b"\x8a"),
    ],
)
def test_anything_else_is_left_to_feed(before: bytes, data: bytes) -> None:
    p = parser()
    p.feed(before)
    assert p.whole_pong(data) is None


@given(
    st.one_of(st.binary(max_size=140), st.binary(max_size=130).map(lambda p: server_frame(OP_PONG, p))),
    st.sampled_from(BEFORE),
    st.booleans(),
)
def test_the_shortcut_agrees_with_feed(data: bytes, before: bytes, keep_data: bool) -> None:
    fast, slow = parser(keep_data), parser(keep_data)
    fast.feed(before)
    slow.feed(before)
    payload = fast.whole_pong(data)
    try:
        events: list[Event] | None = slow.feed(data)
    except ProtocolError:
        events = None
    if payload is not None:
        assert events == [(OP_PONG, payload)]
