from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.broker import PROCESS_NAME, BrokerHandle, start_broker, stop_broker
from infra.processes import pid_alive


@pytest.fixture
def broker(scratch: Path) -> Iterator[BrokerHandle]:
    handle = start_broker(scratch / "broker")
    try:
        yield handle
    finally:
        stop_broker(handle.pid)


def listening_ips(pid: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


async def test_round_trip_through_the_embedded_broker(broker: BrokerHandle) -> None:
    assert pid_alive(broker.pid, name=PROCESS_NAME)
    assert listening_ips(broker.pid) == {"127.0.0.1"}

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("round.trip", num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    # tansu serves neither the idempotent nor the transactional producer.
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        sent = await producer.send_and_wait("round.trip", b"hello", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition("round.trip", 0)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.offset) == (b"k", b"hello", sent.offset)


def test_stopping_the_broker_ends_the_process_and_closes_the_port(scratch: Path) -> None:
    handle = start_broker(scratch / "broker")
    port = int(handle.bootstrap.rsplit(":", 1)[1])
    assert stop_broker(handle.pid)
    assert not pid_alive(handle.pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not stop_broker(handle.pid), "stopping a stopped broker is a no-op"
    assert "listening on" in handle.log_path.read_text()
