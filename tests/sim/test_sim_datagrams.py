"""Simulated UDP: loss, duplication, reordering, partitions, full queues, dead hosts."""

from __future__ import annotations

import pytest
import trio

from runtime.testing.sim import Sim, SimUdpSocket


async def _drain(sock: SimUdpSocket, wait: float = 5.0) -> list[bytes]:
    got = []
    with trio.move_on_after(wait):
        while True:
            data, _ = await sock.recv_from()
            got.append(data)
    return got


async def _send(sock: SimUdpSocket, address: tuple[str, int], count: int) -> None:
    for n in range(count):
        await sock.send_to(b"%d" % n, address)


async def test_a_datagram_arrives_with_its_senders_address(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    receiver, sender = b.udp_bind(port=53), a.udp_bind()
    await sender.send_to(b"query", ("b", 53))
    data, source = await receiver.recv_from()
    assert (data, source) == (b"query", sender.address)
    await receiver.send_to(b"answer", source)
    assert await sender.recv_from(3) == (b"ans", ("10.0.0.3", 53))  # truncated, as UDP does


async def test_loss_drops_datagrams_for_good(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.slow(a, b, loss=0.3)
    receiver, sender = b.udp_bind(port=9), a.udp_bind()
    await _send(sender, ("b", 9), 200)
    got = await _drain(receiver)
    assert 100 < len(got) < 180  # about 140 of 200; none sent again
    assert len(set(got)) == len(got)


async def test_duplication_and_reordering_apply_to_datagrams(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.slow(a, b, latency=0.01, duplicate=0.2, reorder=0.2)
    receiver, sender = b.udp_bind(port=9), a.udp_bind()
    for n in range(100):
        await sender.send_to(b"%d" % n, ("b", 9))
        await trio.sleep(0.001)
    got = [int(data) for data in await _drain(receiver)]
    assert len(got) > 100  # some twice
    assert set(got) == set(range(100))  # none lost
    assert got != sorted(got)  # some overtaken


async def test_a_partition_a_dead_host_and_a_closed_port_drop_silently(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    receiver, sender = b.udp_bind(port=9), a.udp_bind()
    sim.partition(a, b)
    await sender.send_to(b"lost in the partition", ("b", 9))
    await sender.send_to(b"nobody listens", ("b", 10))
    assert await _drain(receiver) == []
    sim.repair(a, b)
    sim.kill(b)
    await sender.send_to(b"to a dead host", ("b", 9))
    with pytest.raises(trio.ClosedResourceError):  # the kill closed b's socket
        await receiver.recv_from()
    await trio.sleep(1)  # simulated: the last datagram's flight
    assert sum("dropped" in line for line in sim.trace) == 3


async def test_a_full_receive_queue_drops_the_newest(sim: Sim) -> None:
    from runtime.testing.sim._datagram import RECEIVE_QUEUE

    a, b = sim.add_host("a"), sim.add_host("b")
    receiver, sender = b.udp_bind(port=9), a.udp_bind()
    await _send(sender, ("b", 9), RECEIVE_QUEUE + 10)
    await trio.sleep(1)
    got = await _drain(receiver, 0.1)
    assert [int(data) for data in got] == list(range(RECEIVE_QUEUE))
    assert receiver.dropped == 10


async def test_oversize_datagrams_and_busy_ports_are_refused(sim: Sim) -> None:
    a = sim.add_host("a")
    sock = a.udp_bind(port=9)
    with pytest.raises(OSError, match="too long"):
        await sock.send_to(b"x" * 70000, ("a", 9))
    with pytest.raises(OSError, match="in use"):
        a.udp_bind(port=9)
