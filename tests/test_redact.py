"""Keeping secrets out of what wsmon shows (wsmon.redact)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.redact import MASK, SecretRegistry, redact_url, url_secrets


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
    registry.add(["abcd", "abcdefgh"])
    assert registry.scrub("x abcdefgh y abcd z") == f"x {MASK} y {MASK} z"


def test_registry_ignores_short_secrets() -> None:
    registry = SecretRegistry()
    registry.add(["a", "ab", "abc", ""])
    assert registry.scrub("a ab abc") == "a ab abc"
    registry.add(["abcd"])
    assert registry.scrub("a ab abc abcd") == f"a ab abc {MASK}"


def test_registry_add_url() -> None:
    registry = SecretRegistry()
    registry.add_url("wss://node.example.com/0123456789abcdef?key=s3cr3tvalue")
    text = "GET /0123456789abcdef?key=s3cr3tvalue failed; token 0123456789abcdef, key s3cr3tvalue"
    scrubbed = registry.scrub(text)
    assert "0123456789abcdef" not in scrubbed
    assert "s3cr3tvalue" not in scrubbed


@given(st.lists(st.text(min_size=4), max_size=5), st.text())
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
