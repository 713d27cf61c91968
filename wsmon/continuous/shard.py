"""``--shard=I/N`` (or ``I-of-N``, as a systemd instance name): N replicas split one target list,
each probing the targets of its shard.

Jump consistent hashing (Lamping & Veach, 2014) over a stable hash of the target name: every
replica agrees without talking to the others, and going from N to N+1 replicas moves only
about 1/(N+1) of the targets.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["parse_shard", "shard_of"]


def _jump(key: int, buckets: int) -> int:
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(name: str, shards: int) -> int:
    """The shard (0 … shards-1) a target name belongs to; the same on every machine and run."""
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    return _jump(key, shards)


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/3"`` or ``"1-of-3"`` → (1, 3): this replica is shard 1 of 3 (numbered from 0, like
    pod ordinals; ``I-of-N`` is what a ``wsmon@I-of-N`` systemd unit's instance name can say)."""
    match = re.fullmatch(r"([0-9]+)(?:/|-of-)([0-9]+)", text)
    if match is None or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"invalid shard {text!r}: use I/N (or I-of-N) with 0 <= I < N, e.g. 0/3")
    return int(match.group(1)), int(match.group(2))
