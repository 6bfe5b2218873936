"""Which partition Kafka's default partitioner gives a key: murmur2 of the key, as the Java client
and aiokafka's ``DefaultPartitioner`` compute it.

aiokafka's murmur2 is pure Python that masks after every operation and reads the key a byte at a
time: a quarter of the time an edge took to publish an event (cProfile, `make bench`). This one
reads it a word at a time and gives the same hash (tests/pipeline/test_partitioning.py).
"""

from __future__ import annotations

import struct
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` (unsigned 32 bits)."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length - words * 4
    if tail >= 3:
        h ^= data[words * 4 + 2] << 16
    if tail >= 2:
        h ^= data[words * 4 + 1] << 8
    if tail >= 1:
        h = ((h ^ data[words * 4]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` numbered from 0. Remembered: the events of
    one resident, one request or one card share a key and mostly follow each other."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
