"""Keeping secrets out of what wsmon shows (wsmon.redact)."""

from __future__ import annotations

from typing import SupportsIndex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.redact import MASK, SecretRegistry, redact_text, redact_url, secrets, url_secrets
from wsmon.ws.url import parse_target


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("wss://node1.example.com/abc123", "wss://node1.example.com/****"),
        ("wss://node1.example.com/v3/abc123/ws", "wss://node1.example.com/****"),
        ("wss://user:pw@host:443/abc?key=v", "wss://user:****@host:443/****?key=****"),
        ("wss://u:p@h", "wss://u:****@h"),
        ("ws://host", "ws://host"),
        ("ws://host/", "ws://host/"),
        ("ws://HOST:8546/", "ws://host:8546/"),
        ("ws://[::1]:8080/x", "ws://[::1]:8080/****"),
        ("ws://host?apikey=x", "ws://host?apikey=****"),
        ("wss://h/a?k1=v1&k2=&k3=v3", "wss://h/****?k1=****&k2=****&k3=****"),
        ("wss://h/a%20b?q=%41", "wss://h/****?q=****"),
        ("ws://host/#fragment", "ws://host/"),
        ("wss://h/?a%20b=1", "wss://h/?a%20b=****"),
        # Nothing recognisable as a URL: nothing of it is shown.
        ("not a url", MASK),
        ("", MASK),
        ("ws://host:99999/", MASK),
        ("ws://[::1/", MASK),
        ("wss:///no-host", MASK),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "wss://h/ws?0123456789abcdef",  # a bare query: the key is the token
        "wss://0123456789abcdef@h/",  # userinfo without a password: the user is the token
        "wss://0123456789abcdef:@h/",  # "key:" as Stripe-style APIs take it
    ],
)
def test_token_like_query_keys_and_usernames_are_not_shown(url: str) -> None:
    token = "0123456789abcdef"
    assert token not in redact_url(url)
    assert token in url_secrets(url)


TOKENS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~", min_size=12, max_size=40)


@given(TOKENS, st.sampled_from(["/{t}", "/v1/{t}", "/{t}/ws", "/?apikey={t}", "/ws?a=1&token={t}", "u:{t}@"]))
def test_tokens_never_shown(token: str, where: str) -> None:
    suffix = where.format(t=token)
    url = f"wss://{suffix}example.com:8546/" if suffix.endswith("@") else f"wss://example.com:8546{suffix}"
    shown = redact_url(url)
    assert token not in shown
    assert shown.startswith("wss://") and "example.com:8546" in shown
    assert token in url_secrets(url)


@given(st.text())
def test_redact_url_and_url_secrets_on_any_text(url: str) -> None:
    shown = redact_url(url)
    assert redact_url(shown) == shown  # what is shown is redacted already: nothing more to mask
    found = url_secrets(url)
    assert len(set(found)) == len(found)
    assert [len(secret) for secret in found] == sorted(map(len, found), reverse=True)  # longest first


def test_url_secrets() -> None:
    found = url_secrets("wss://u:p%40ssword@h/abcdefghijklmnop/v1?key=val%20ue")
    for secret in [
        "p%40ssword",
        "p@ssword",  # percent-decoded too: error texts may quote either form
        "/abcdefghijklmnop/v1",
        "abcdefghijklmnop/v1",
        "abcdefghijklmnop",
        "val ue",
    ]:
        assert secret in found
    assert "v1" not in found  # a short path segment is a word, not a token
    assert "u" not in found and "h" not in found
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)  # longest first


@pytest.mark.parametrize(("url", "found"), [("ws://host/", []), ("ws://host", []), ("ws://[::1/", ["ws://[::1/"])])
def test_url_secrets_of_plain_and_broken_urls(url: str, found: list[str]) -> None:
    assert url_secrets(url) == found


def test_registry_scrubs_longest_first() -> None:
    registry = SecretRegistry()
    registry.add(["abcdefgh", "abcdefghijkl"])
    assert registry.scrub("x abcdefghijkl y abcdefgh z") == f"x {MASK} y {MASK} z"


def test_registry_ignores_short_secrets() -> None:
    # A port ("8546"), a chain ("eth"), a word ("failed"): registered, they would mask
    # themselves in every log line.
    registry = SecretRegistry()
    registry.add(["1", "eth", "8546", "failed", "warning", ""])
    assert registry.scrub("1 eth 8546 failed warning") == "1 eth 8546 failed warning"
    assert len(registry) == 0
    registry.add(["abcdefgh"])
    assert registry.scrub("eth abcdefgh") == f"eth {MASK}"


def test_registry_add_url() -> None:
    registry = SecretRegistry()
    registry.add_url("wss://node.example.com/0123456789abcdef?key=s3cr3tvalue")
    text = "GET /0123456789abcdef?key=s3cr3tvalue failed; token 0123456789abcdef, key s3cr3tvalue"
    scrubbed = registry.scrub(text)
    assert "0123456789abcdef" not in scrubbed
    assert "s3cr3tvalue" not in scrubbed


@given(st.lists(st.text(min_size=SecretRegistry.MIN_LEN), max_size=5), st.text())
def test_scrubbed_text_holds_no_registered_secret(secrets: list[str], text: str) -> None:
    registry = SecretRegistry()
    registry.add(secrets)
    scrubbed = registry.scrub(text + "".join(secrets))
    # A mask can combine with neighbouring text into a secret ("***" + "*x"); skip those.
    for secret in secrets:
        if MASK[0] not in secret:
            assert secret not in scrubbed


def test_registry_with_many_secrets_masks_each_where_it_stands() -> None:
    registry = SecretRegistry()
    tokens = [f"{i:04d}token{i:08x}" for i in range(20_000)]  # many secrets sharing prefixes
    for token in tokens:
        registry.add_url(f"wss://node.example.com/{token}?apikey=k{token}")
    line = f"GET /{tokens[123]}?apikey=k{tokens[4567]} from {tokens[19_999]}; 0123 stays"
    # The whole path is a secret too ("/<token>"), so the slash goes with it.
    assert registry.scrub(line) == f"GET {MASK}?apikey={MASK} from {MASK}; 0123 stays"


# --- what is registered, how much, and at what cost --------------------------------------


def test_urls_probed_are_not_registered() -> None:
    """/probe?target=ws://h/failed made every later "login failed" print "login ****"."""
    for path in ("failed", "warning-signs", "2026-12-0", "192.168.10.20"):
        parse_target(f"ws://h.example.com/{path}?level=warning-signs")
        parse_target(f"ws://user:{path}@h.example.com/")
    line = "login failed: warning-signs on 2026-12-01 from 192.168.10.20"
    assert secrets.scrub(line) == line
    before = len(secrets)
    for i in range(100):  # the review's 100 requests with 60 KB paths: +24 MB, never released
        parse_target(f"ws://h.example.com/{i:03d}{'x' * 60_000}")
    assert len(secrets) == before


def test_registry_is_bounded_oldest_forgotten_first() -> None:
    registry = SecretRegistry()
    registry.MAX_COUNT, registry.MAX_BYTES = 100, 1_000
    values = [f"secret-{i:06d}" for i in range(1_000)]  # 13 characters each
    registry.add(values)
    assert len(registry) <= 100 and registry.size <= 1_000
    assert registry.scrub(values[-1]) == MASK  # the newest are kept
    assert registry.scrub(values[0]) == values[0]  # the oldest forgotten
    registry.add([values[-76]])  # registered again: the newest now
    registry.add([f"other-{i:06d}" for i in range(75)])
    assert registry.scrub(values[-76]) == MASK
    registry.add(["z" * 2_000])  # larger than the whole registry: not registered
    assert registry.scrub("z" * 2_000) == "z" * 2_000


def test_registry_defaults_are_documented_bounds() -> None:
    assert SecretRegistry.MIN_LEN == 8
    assert SecretRegistry.MAX_COUNT == 100_000
    assert SecretRegistry.MAX_BYTES == 8 << 20


class _Counted(str):
    """A string that counts what a registry does with it (hashing, comparing, measuring)."""

    ops = 0

    def __hash__(self) -> int:
        _Counted.ops += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        _Counted.ops += 1
        return str.__eq__(self, other)

    def __lt__(self, other: str) -> bool:
        _Counted.ops += 1
        return str.__lt__(self, other)

    def __len__(self) -> int:
        _Counted.ops += 1
        return str.__len__(self)


def _ops_to_add(count: int) -> int:
    registry = SecretRegistry()
    # One shared prefix for all, as in "/v3/<token>" paths or JWTs ("eyJhbGciOi…"): the case
    # where re-sorting every value under a prefix at each add made 20,000 targets take 196 s.
    values = [_Counted(f"eyJhbGciOiJIUzI1NiJ9.{i:08d}") for i in range(count)]
    _Counted.ops = 0
    for value in values:
        registry.add([value])
    return _Counted.ops


def test_adding_secrets_is_linear() -> None:
    small, large = _ops_to_add(1_000), _ops_to_add(4_000)
    assert large <= 4.4 * small, (small, large)  # quadratic would be 16 times


class _Sliced(str):
    """A text that counts the slices a scrub takes of it."""

    slices = 0

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        _Sliced.slices += 1
        return str.__getitem__(self, key)


def _slices_to_scrub(registered: int) -> int:
    registry = SecretRegistry()
    registry.add(f"eyJhbGciOiJIUzI1NiJ9.{i:08d}" for i in range(registered))
    line = _Sliced("GET /v1 eyJhbGciOiJIUzI1NiJ9.00000012 and eyJhbGciOiJIUzI1NiJ9.99999999 " * 3)
    _Sliced.slices = 0
    assert registry.scrub(line) == f"GET /v1 {MASK} and eyJhbGciOiJIUzI1NiJ9.99999999 " * 3
    return _Sliced.slices


def test_scrub_cost_does_not_grow_with_the_number_of_secrets() -> None:
    few = _slices_to_scrub(20)
    assert few > 0 and _slices_to_scrub(20_000) == few


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('127.0.0.1:5 - "WebSocket /ws/echo/t0ken?apikey=k3y" 403', '127.0.0.1:5 - "WebSocket /****?apikey=****" 403'),
        ("< GET /t0ken HTTP/1.1", "< GET /**** HTTP/1.1"),
        (
            "HTTP Request: GET http://h:1/probe?target=ws%3A%2F%2Fu%3Apw%40h%2Ft0ken",
            "HTTP Request: GET http://h:1/****?target=****",
        ),
        ("connect to wss://u:pw@h:8546/t0ken failed", "connect to wss://u:****@h:8546/**** failed"),
        ("GET / HTTP/1.1 from 10.0.0.1", "GET / HTTP/1.1 from 10.0.0.1"),
        ("state file /var/lib/wsmon/state.json moved", "state file /var/lib/wsmon/state.json moved"),
        ("no url", "no url"),
        ("unsupported scheme http://: use ws:// or wss://", "unsupported scheme http://: use ws:// or wss://"),
    ],
)
def test_redact_text_redacts_urls_and_request_targets_by_structure(text: str, shown: str) -> None:
    assert redact_text(text) == shown
