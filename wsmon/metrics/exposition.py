"""Serialising metric families for scrapers: text 0.0.4 or OpenMetrics, by ``Accept``.

Text is always format 0.0.4, which every scraper reads. ``prometheus_client``'s own
``choose_encoder`` takes the first type listed in ``Accept`` and ignores ``q``; scrapers list
several with weights, so wsmon honours the weights.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import exposition
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

__all__ = ["choose_format", "render"]

Encoder = Callable[[Collector], bytes]


def _media_ranges(accept: str) -> list[tuple[float, int, str]]:
    """(q, position, media type) for each entry of an Accept header."""
    ranges = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((q, position, media.lower()))
    return ranges


def choose_format(accept: str | None) -> tuple[str, Encoder]:
    """(content type, encoder): OpenMetrics when the scraper prefers it, else text 0.0.4."""
    best: tuple[float, int] | None = None
    for q, position, media in _media_ranges(accept or ""):
        if media == "application/openmetrics-text" and q > 0:
            best = (q, -position) if best is None else max(best, (q, -position))
    text_q = max(
        ((q, -pos) for q, pos, media in _media_ranges(accept or "") if media in ("text/plain", "*/*")),
        default=(0.0, 0),
    )
    if best is not None and best >= text_q:
        return openmetrics.CONTENT_TYPE_LATEST, openmetrics.generate_latest
    return exposition.CONTENT_TYPE_PLAIN_0_0_4, exposition.generate_latest


def render(collector: Collector, accept: str | None) -> tuple[bytes, str]:
    content_type, encode = choose_format(accept)
    return encode(collector), content_type
