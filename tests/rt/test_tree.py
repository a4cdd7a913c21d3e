"""The task tree: spawned tasks under their spawner, JoinSet members under the set's owner,
plain Trio tasks under the task whose nursery runs them, connections under their server."""

from __future__ import annotations

import trio
import trio.testing

import runtime
from runtime.net import TcpListener, serve
from runtime.rt import TaskNode, open_runtime


def by_name(tree: list[TaskNode], name: str) -> list[TaskNode]:
    return [node for node in tree if node.name == name]


def check_shape(tree: list[TaskNode]) -> None:
    """Depth-first with parents first; ids unique; only the root has no parent."""
    seen = {tree[0].id}
    assert tree[0].kind == "root"
    assert tree[0].parent is None
    for node in tree[1:]:
        assert node.id not in seen
        assert node.parent in seen, node
        seen.add(node.id)
        assert node.state == "running"


async def test_spawned_joinset_and_nursery_tasks_hang_under_their_owners() -> None:
    started = trio.Event()

    async def member(n: int) -> None:
        await trio.sleep_forever()

    async def plain_child() -> None:
        await trio.sleep_forever()

    async def owner() -> None:
        async with runtime.JoinSet[None]() as members, trio.open_nursery() as nursery:
            members.spawn(member, 1, name="member")
            members.spawn(member, 2, name="member")
            nursery.start_soon(plain_child, name="plain-child")
            runtime.spawn(trio.sleep_forever, name="grandchild")
            started.set()
            await members.join_all()

    async with open_runtime() as rt:
        handle = runtime.spawn(owner, name="owner")
        await started.wait()
        await trio.testing.wait_all_tasks_blocked()
        tree = rt.task_tree()
        check_shape(tree)
        (own,) = by_name(tree, "owner")
        assert own.kind == "task"
        assert own.parent == tree[0].id
        assert own.id == handle.id
        members = by_name(tree, "member")
        assert [m.kind for m in members] == ["joinset", "joinset"]
        assert {m.parent for m in members} == {own.id}
        (plain,) = by_name(tree, "plain-child")
        assert (plain.kind, plain.parent, plain.age) == ("trio", own.id, None)
        (grandchild,) = by_name(tree, "grandchild")
        assert (grandchild.kind, grandchild.parent) == ("task", own.id)  # its spawner
        assert all(m.age is not None and m.age >= 0 for m in members)
        assert (members[0].waiting_in or "").endswith("<locals>.member")  # innermost, not Trio
        assert any(node.kind == "system" for node in tree)
        handle.abort()
        rt.cancel()  # the grandchild sleeps for ever: don't wait a grace for it


async def test_ids_are_stable_and_ended_tasks_leave() -> None:
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever, name="steady")
        await trio.testing.wait_all_tasks_blocked()
        first = {n.name: n.id for n in rt.task_tree()}
        second = {n.name: n.id for n in rt.task_tree()}
        assert first == second
        nursery.cancel_scope.cancel()
    # the runtime has ended: no tree at all once its root is gone is fine, but while it ran
    # the cancelled task was there and now the ids it had are not reused
    assert "steady" in first


async def test_a_server_shows_its_connections_with_their_peer() -> None:
    async def hold(connection: object) -> None:
        await trio.sleep_forever()

    async with open_runtime() as rt, trio.open_nursery() as nursery:
        listener = TcpListener.bind("127.0.0.1", 0)
        await nursery.start(serve, hold, [listener])
        clients = [await trio.open_tcp_stream("127.0.0.1", listener.port) for _ in range(2)]
        await trio.testing.wait_all_tasks_blocked()
        tree = rt.task_tree()
        check_shape(tree)
        connections = [n for n in tree if n.kind == "connection"]
        assert len(connections) == 2
        (server_task,) = {n.parent for n in connections}
        assert [n.name for n in tree if n.id == server_task] == ["runtime.net._server.serve"]
        ports = {c.socket.getsockname()[1] for c in clients}
        assert {int((n.detail or "").rsplit(":", 1)[1]) for n in connections} == ports
        stack = rt.task_stack(connections[0].id)
        assert stack is not None
        assert [f.function for f in stack][:2] == [
            "Server._connection",
            ("test_a_server_shows_its_connections_with_their_peer.<locals>.hold"),
        ]
        assert stack[1].code == "await trio.sleep_forever()"
        nursery.cancel_scope.cancel()
        for client in clients:
            await client.aclose()


async def test_the_stack_of_an_unknown_or_ended_task_is_none() -> None:
    async with open_runtime() as rt:
        handle = runtime.spawn(trio.sleep, 0)
        await handle
        assert rt.task_stack(handle.id) is None
        assert rt.task_stack(10**9) is None


async def test_a_failing_describer_shows_its_error_as_the_detail() -> None:
    async def odd() -> None:
        await trio.sleep_forever()

    def broken(frame: object) -> str:
        raise ValueError("no")

    runtime.rt.describe_task_kind(odd, "odd", broken)
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        nursery.start_soon(odd)
        await trio.testing.wait_all_tasks_blocked()
        (node,) = [n for n in rt.task_tree() if n.kind == "odd"]
        assert node.detail == "<detail failed: ValueError('no')>"
        nursery.cancel_scope.cancel()


async def test_a_task_spawned_from_a_plain_child_hangs_under_that_child() -> None:
    ready = trio.Event()

    async def plain() -> None:
        runtime.spawn(trio.sleep_forever, name="from-plain")
        async with runtime.JoinSet[None]() as members:
            members.spawn(trio.sleep_forever, name="member-of-plain")
            ready.set()
            await members.join_all()

    async def owner() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(plain, name="plain")

    async with open_runtime() as rt:
        handle = runtime.spawn(owner, name="owner")
        await ready.wait()
        await trio.testing.wait_all_tasks_blocked()
        tree = rt.task_tree()
        check_shape(tree)
        (plain_node,) = by_name(tree, "plain")
        assert plain_node.parent == handle.id
        # the spawn came from "plain", though the registry's context says "owner"
        assert [n.parent for n in by_name(tree, "from-plain")] == [plain_node.id]
        assert [n.parent for n in by_name(tree, "member-of-plain")] == [plain_node.id]
        rt.cancel()


async def test_a_task_of_the_wait_machinery_itself_still_says_where_it_waits() -> None:
    from runtime.net import TcpListener

    async with open_runtime() as rt:
        TcpListener.bind("127.0.0.1", 0).close()
        runtime.net.current_reactor()  # its driver is a system task, all of it "machinery"
        await trio.testing.wait_all_tasks_blocked()
        (driver,) = [n for n in rt.task_tree() if n.name == "runtime.net.reactor"]
        assert driver.waiting_in is not None and "Reactor" in driver.waiting_in  # not None
