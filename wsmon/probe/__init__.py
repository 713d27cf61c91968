"""One probe: its options (``Module``, ``Step``), phases and deadline, failure reasons, the
immutable ``ProbeResult`` it returns, and how ``wsmon check`` reports it. No Prometheus here."""
