"""The deadline of a ``/probe`` request, as blackbox_exporter computes it."""

from __future__ import annotations

__all__ = ["probe_timeout"]


def probe_timeout(flag: float, module: float | None, scrape_header: str | None, offset: float) -> float:
    """The smallest of the --timeout flag, the module's timeout and the scraper's own deadline.

    The scraper's ``X-Prometheus-Scrape-Timeout-Seconds`` (``"1.5"`` from Prometheus,
    ``"1.500"`` from vmagent) less ``offset`` leaves time to send the answer back; an offset
    that would eat the whole deadline is not applied. Raises ValueError for a bad header.
    """
    candidates = [flag]
    if module is not None:
        candidates.append(module)
    if scrape_header is not None:
        scrape = float(scrape_header)
        if not scrape > 0:  # also rejects NaN
            raise ValueError(f"scrape timeout header must be a positive number, not {scrape_header!r}")
        candidates.append(scrape - offset if scrape > offset else scrape)
    return min(candidates)
