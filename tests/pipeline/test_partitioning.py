"""Our murmur2 gives every key the partition aiokafka's (and the Java client's) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline import partitioning


@given(st.binary(max_size=200))
def test_the_hash_is_kafkas(key: bytes) -> None:
    assert partitioning.murmur2(key) == murmur2(key)


@given(st.binary(max_size=80), st.integers(min_value=1, max_value=64))
def test_a_key_lands_where_the_default_partitioner_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))

    assert partitioning.partition_for(key, count) == DefaultPartitioner()(key, partitions, [])


def test_known_values_of_the_java_client() -> None:
    # From Kafka's own UtilsTest: murmur2 of these strings as signed Java ints.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, signed in cases.items():
        assert partitioning.murmur2(key) == signed & 0xFFFFFFFF
