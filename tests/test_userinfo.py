"""URL userinfo → Basic credentials (wsmon.ws.url), for target URLs and proxy URLs alike."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest

from wsmon.redact import MASK, secrets
from wsmon.ws.proxy import parse_proxy
from wsmon.ws.url import basic_credentials, parse_target, userinfo_credentials


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("username", "password", "credentials"),
    [
        ("alice", "pw", b64("alice:pw")),
        ("alice", "", b64("alice:")),
        ("", "pw", b64(":pw")),
        ("al:ice", "p:w", b64("al:ice:p:w")),  # as sent: the server splits at the first colon
        ("élodie", "mot-de-passe", b64("élodie:mot-de-passe")),  # UTF-8
    ],
)
def test_basic_credentials(username: str, password: str, credentials: str) -> None:
    assert basic_credentials(username, password) == credentials


def test_basic_credentials_are_secrets() -> None:
    credentials = basic_credentials("alice", "userinfo-pw-8c1d")
    assert secrets.scrub(f"Authorization: Basic {credentials}") == f"Authorization: Basic {MASK}"


# host part, userinfo part → credentials (None: no userinfo)
USERINFO: list[tuple[str, str | None]] = [
    ("", None),
    ("alice@", b64("alice:")),
    ("alice:@", b64("alice:")),
    ("alice:pw@", b64("alice:pw")),
    (":pw@", b64(":pw")),
    ("al%40ice:p%3Aw%2F@", b64("al@ice:p:w/")),  # percent-decoded
    ("%C3%A9lodie:pw@", b64("élodie:pw")),
]


@pytest.mark.parametrize(("userinfo", "credentials"), USERINFO)
def test_userinfo_credentials(userinfo: str, credentials: str | None) -> None:
    assert userinfo_credentials(urlsplit(f"ws://{userinfo}host:1/")) == credentials


@pytest.mark.parametrize(("userinfo", "credentials"), USERINFO)
def test_target_and_proxy_urls_agree(userinfo: str, credentials: str | None) -> None:
    target = parse_target(f"wss://{userinfo}node.example:8546/ws")
    proxy = parse_proxy(f"http://{userinfo}proxy.example:3128")
    assert proxy is not None
    assert target.basic_auth == credentials
    assert proxy.authorization == (None if credentials is None else f"Basic {credentials}")
