"""Inverted lists that keep a key's single value bare until a second value shares the key."""

from __future__ import annotations

from typing import Generic, Hashable, Iterator, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)


class Postings(Generic[K, V]):
    """key -> set of values, stored as the bare value while a key has only one.

    Most keys (LSH band keys, rare story features) are never shared: a set per key would
    dominate memory, a bare value costs one dict slot. Values must not be sets themselves.
    """

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map: dict[K, V | set[V]] = {}

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: K) -> bool:
        return key in self._map

    def add(self, key: K, value: V) -> None:
        cur = self._map.get(key)
        if cur is None:
            self._map[key] = value
        elif isinstance(cur, set):
            cur.add(value)
        elif cur != value:
            self._map[key] = {cur, value}

    def discard(self, key: K, value: V) -> None:
        cur = self._map.get(key)
        if cur is None:
            return
        if isinstance(cur, set):
            cur.discard(value)
            if len(cur) == 1:
                self._map[key] = next(iter(cur))
            elif not cur:
                del self._map[key]
        elif cur == value:
            del self._map[key]

    def collect(self, key: K, out: set[V]) -> None:
        """Add the values of `key` to `out`."""
        cur = self._map.get(key)
        if cur is None:
            return
        if isinstance(cur, set):
            out.update(cur)
        else:
            out.add(cur)

    def accumulate(self, keys: list[K], weights: list[float], out: dict[V, float]) -> None:
        """out[value] += weight for every value of every key (in key order, so sums are reproducible)."""
        m = self._map
        for k, w in zip(keys, weights):
            cur = m.get(k)
            if cur is None:
                continue
            if isinstance(cur, set):
                for v in cur:
                    out[v] = out.get(v, 0.0) + w
            else:
                out[cur] = out.get(cur, 0.0) + w

    def values_of(self, key: K) -> tuple[V, ...] | set[V]:
        cur = self._map.get(key)
        if cur is None:
            return ()
        return cur if isinstance(cur, set) else (cur,)

    def pairs(self) -> Iterator[tuple[K, V]]:
        """Every (key, value), one per value."""
        for k, cur in self._map.items():
            if isinstance(cur, set):
                for v in cur:
                    yield k, v
            else:
                yield k, cur

    def clear(self) -> None:
        self._map.clear()
