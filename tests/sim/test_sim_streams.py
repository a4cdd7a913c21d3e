"""The simulated TCP of runtime.testing.sim: stream semantics, faults, DNS and the trace."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
import trio.testing

from runtime.testing.sim import RTO, WINDOW, Host, LinkConfig, Sim, SimConnection


async def _pair(sim: Sim, a: Host, b: Host, port: int = 80) -> tuple[SimConnection, SimConnection]:
    listener = b._listeners.get(port) or b.bind("0.0.0.0", port)
    client = await a.connector().connect(b.name, port)
    (server,) = await listener.accept_batch(1)
    return client, server


async def test_simulated_streams_pass_trios_half_closeable_stream_checks(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")

    async def maker() -> tuple[SimConnection, SimConnection]:
        return await _pair(sim, a, b)

    await trio.testing.check_half_closeable_stream(maker, None)


async def test_bytes_arrive_in_order_after_the_links_latency(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.slow(a, b, latency=0.05, jitter=0.04)
    start = trio.current_time()
    client, server = await _pair(sim, a, b)
    assert 0.1 <= trio.current_time() - start < 0.1 + 0.08  # SYN and SYN-ACK: a round trip
    sent = trio.current_time()
    for n in range(50):
        await client.send_all(b"%03d," % n)
    got = b""
    while len(got) < 200:
        got += await server.receive_some()
    assert got == b"".join(b"%03d," % n for n in range(50))  # jitter never reorders a stream
    assert 0.05 <= trio.current_time() - sent <= 0.05 + 0.04 + 1e-6


async def test_bandwidth_paces_a_large_transfer(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.slow(a, b, latency=0.001, bandwidth=1_000_000)
    client, server = await _pair(sim, a, b)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"x" * 2_000_000)
        got = 0
        while got < 2_000_000:
            got += len(await server.receive_some())
    assert trio.current_time() - start == pytest.approx(2.0, rel=0.01)  # 2 MB at 1 MB/s


async def test_a_writer_that_outruns_its_reader_waits_for_the_window(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    client, _server = await _pair(sim, a, b)
    with trio.move_on_after(5) as scope:
        await client.send_all(b"x" * (WINDOW + 1))
    assert scope.cancelled_caught  # nobody reads: the sender cannot finish
    assert client._outbound.in_flight <= WINDOW


async def test_lost_segments_arrive_late_but_arrive(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.slow(a, b, latency=0.01, loss=0.5)
    start = trio.current_time()
    client, server = await _pair(sim, a, b)
    payload = bytes(range(256)) * 64
    await client.send_all(payload)
    await client.send_eof()
    got = b""
    while data := await server.receive_some():
        got += data
    assert got == payload
    assert trio.current_time() - start > RTO  # at least one retransmission at this loss


async def test_connect_to_a_port_nobody_listens_on_is_refused(sim: Sim) -> None:
    a, _ = sim.add_host("a"), sim.add_host("b")
    with pytest.raises(ConnectionRefusedError):
        await a.connector().connect("b", 81)
    assert any("refused" in line for line in sim.trace)


async def test_connect_through_a_partition_waits_for_the_repair_or_times_out(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    b.bind("0.0.0.0", 80)
    sim.partition(a, b)
    start = trio.current_time()
    with pytest.raises(TimeoutError):
        await a.connector(connect_timeout=3.0).connect("b", 80)
    assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)

    async def heal_later() -> None:
        await trio.sleep(2.5)
        sim.repair(a, b)  # SYNs left at +0, +1, +3 s (Linux's spacing)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heal_later)
        start = trio.current_time()
        connection = await a.connector().connect("b", 80)
    assert trio.current_time() - start == pytest.approx(3.0 + 0.001, abs=0.01)
    connection.close()


async def test_a_partition_holds_bytes_until_it_is_repaired(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    client, server = await _pair(sim, a, b)
    sim.partition(a, b)
    await client.send_all(b"held")
    with trio.move_on_after(30):
        assert await server.receive_some() is None  # never: nothing gets through
    sim.repair(a, b)
    assert await server.receive_some() == b"held"


async def test_a_killed_host_resets_its_peers_and_cancels_its_tasks(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    client, _server = await _pair(sim, a, b)
    cancelled = trio.Event()

    async def runs_on_b() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    b.start_soon(runs_on_b)
    await trio.testing.wait_all_tasks_blocked()
    await client.send_all(b"unread by b")
    sim.kill(b)
    await cancelled.wait()
    with pytest.raises(trio.BrokenResourceError, match="reset"):
        await client.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"more")
    with pytest.raises(TimeoutError):  # the host is down: no answer at all
        await a.connector(connect_timeout=2.0).connect("b", 80)


async def test_a_restarted_host_runs_its_main_again(sim: Sim) -> None:
    starts: list[float] = []

    async def main(host: Host, *, task_status: Any) -> None:
        listener = host.bind("0.0.0.0", 7)
        starts.append(trio.current_time())
        task_status.started(listener.port)
        while True:
            (conn,) = await listener.accept_batch(1)
            await conn.send_all(b"up %d" % len(starts))
            conn.close()

    a = sim.add_host("a")
    b = sim.add_host("b", main=main)
    await b.start(main, b)
    sim.kill(b)
    assert await sim.restart(b) == 7
    connection = await a.connector().connect("b", 7)
    assert await connection.receive_some() == b"up 2"


async def test_closing_with_unread_input_resets_and_drops_the_peers_unread_bytes(
    sim: Sim,
) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    client, server = await _pair(sim, a, b)
    await client.send_all(b"request the server never reads")
    await trio.sleep(1)  # it has arrived
    await server.send_all(b"the answer")
    server.close()  # unread input: the kernel sends RST, not FIN
    await trio.sleep(1)
    # Linux drops what had arrived unread when the RST comes: the answer is lost.
    with pytest.raises(trio.BrokenResourceError):
        await client.receive_some()


async def test_the_linger_of_aclose_gracefully_keeps_the_answer(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    client, server = await _pair(sim, a, b)
    await client.send_all(b"request the server never reads")
    await trio.sleep(1)
    await server.send_all(b"the answer")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.aclose_gracefully)
        assert await client.receive_some() == b"the answer"
        assert await client.receive_some() == b""
        await client.aclose()


async def test_getaddrinfo_answers_from_the_sims_dns(sim: Sim) -> None:
    web = sim.add_host("web")
    sim.dns["api.internal"] = [web.address]
    info = await trio.socket.getaddrinfo("api.internal", 443)
    assert info[0][4] == (web.address, 443)
    with pytest.raises(socket.gaierror):
        await trio.socket.getaddrinfo("nowhere.example", 80)


async def test_a_host_binds_only_its_own_addresses(sim: Sim) -> None:
    a, b = sim.add_host("a"), sim.add_host("b")
    a.bind(a.address, 80)
    with pytest.raises(OSError, match="already in use"):
        a.bind("0.0.0.0", 80)
    with pytest.raises(OSError, match="not an address"):
        a.bind(b.address, 80)


def _world(seed: int) -> list[str]:
    async def main() -> list[str]:
        async with Sim(seed=seed, link=LinkConfig(latency=0.002, jitter=0.003, loss=0.05)) as sim:
            hosts = [sim.add_host(f"h{n}") for n in range(4)]
            listener = hosts[0].bind("0.0.0.0", 80)

            async def echo() -> None:
                while True:
                    for conn in await listener.accept_batch():
                        hosts[0].start_soon(_echo_one, conn)

            hosts[0].start_soon(echo)

            async def talk(host: Host) -> None:
                conn = await host.connector().connect("h0", 80)
                for n in range(20):
                    await conn.send_all(b"%s %d" % (host.name.encode(), n))
                    await conn.receive_some()
                conn.close()

            async with trio.open_nursery() as nursery:
                for host in hosts[1:]:
                    nursery.start_soon(talk, host)
            return list(sim.trace)

    result: list[str] = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return result


async def _echo_one(conn: SimConnection) -> None:
    while data := await conn.receive_some():
        await conn.send_all(data)
    conn.close()


def test_one_seed_gives_one_trace_and_another_seed_another() -> None:
    first = _world(3)
    assert _world(3) == first
    assert _world(4) != first
    assert any(line.split()[1] == "data" for line in first)


async def test_faults_take_a_link_and_repair_with_no_arguments_heals_every_one(sim: Sim) -> None:
    a, b, c = sim.add_host("a"), sim.add_host("b"), sim.add_host("c")
    ab, ac = sim.link(a, b), sim.link("a", "c")
    sim.partition(ab)
    sim.partition(a, c)
    assert sim.partitioned(a, b) and sim.partitioned(c, a)
    assert sim.slow(ac, latency=0.25).latency == 0.25
    sim.repair()
    assert not ab.partitioned and not ac.partitioned
    with pytest.raises(TypeError):
        sim.partition(a)


async def test_restart_brings_the_host_back_at_once_awaited_or_not(sim: Sim) -> None:
    started: list[int] = []

    async def main(host: Host, *, task_status: Any) -> None:
        listener = host.bind("0.0.0.0", 7)
        started.append(listener.port)
        task_status.started(listener.port)
        await trio.sleep_forever()

    a = sim.add_host("a")
    b = sim.add_host("b", main=main)
    await b.start(main, b)
    sim.kill(b)
    sim.restart(b)  # not awaited: b is up, its main is starting
    assert b.up
    connection = await a.connector().connect("b", 7)  # its listener came back
    assert started == [7, 7]
    connection.close()
    sim.kill(b)
    assert await sim.restart(b) == 7
