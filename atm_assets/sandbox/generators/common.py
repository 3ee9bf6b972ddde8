"""Stateless pseudo-randomness shared by the generators: one digest per row, splitmix per day."""

from __future__ import annotations

import hashlib


class Bits:
    """Draws small integers from one big hash so each row costs a single digest."""

    __slots__ = ("v",)

    def __init__(self, digest: bytes) -> None:
        self.v = int.from_bytes(digest, "big")

    def take(self, n: int) -> int:
        self.v, r = divmod(self.v, n)
        return r

    def unit(self) -> float:
        return self.take(1_000_000) / 1_000_000


def digest(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=32).digest()


M64 = (1 << 64) - 1


def mix(key: int, i: int) -> int:
    """splitmix64 finaliser: cheap per-(stock, day) pseudo-randomness without state."""
    z = (key + 0x9E3779B97F4A7C15 * (i + 1)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)
