"""The proxy over real links: three upstream hosts in network namespaces, a lossy link, a kill.

Each upstream host is a network namespace of its own (``ip netns add trt-upN-<run>``) joined
to the root namespace, where the proxy runs, by a veth pair: a point-to-point /30 inside
10.213.K.0/24, with K picked per run among the /24s that this machine does not use (nothing
here is routed off the machine). Each host runs ``examples/http_hello.py`` as a process of its
own (``ip netns exec``). Host 3's link drops 5% of its packets each way with an nftables rule
(``numgen random mod 100 < 5 drop``: this kernel has no netem), and host 1's server is
SIGKILLed a third of the way through a bounded load of GETs through ``python -m runtime
proxy``. The acceptance: no GET is lost (every one is answered 200) and p99 stays under 2 s.
The figures (p50, p99, requests per endpoint, retries from the access log, packets the rule
dropped) are printed and written to ``$TEST_ARTIFACTS/netns-report.json``.

It runs twice: ``process`` SIGKILLs the server (the kernel resets its connections and
refuses new ones at once) and ``host`` first drops every packet of host 1, as if it lost
power (no reset: tries in flight end at the per-try timeout, connects time out); that run
sets connect_timeout below per_try_timeout, the only way such a host is ejected (see Kill).

Needs root, iproute2 and nftables. A missing tool skips with its apt-get line, and fails
under CI=true; a kernel or sandbox that refuses namespaces, veth or nftables skips with the
reason, and says that it did not run under CI=true too. ``python
tests/proxy/test_proxy_netns.py`` prints what the probe finds (exit 0: the test can run).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
HELLO = ROOT / "examples" / "http_hello.py"
GUARD = 20.0  # seconds; a hang guard for one step, not a performance claim
PORT = 8000
HOSTS = 3
LOSSY = 3  # the host whose link drops LOSS_PERCENT of its packets, each way
LOSS_PERCENT = 5
KILLED = 1  # the host whose server is SIGKILLed at KILL_AT
REQUESTS = 1500
CLIENTS = 8  # concurrent GETs
KILL_AT = REQUESTS // 3
P99_LIMIT = 2.0
LOAD_LIMIT = 40.0  # seconds for the whole load
LISTENING = re.compile(r"^listening on http://([0-9.]+):(\d+)$")
ADMIN = re.compile(r"^admin on (http://[0-9.]+:\d+)")
ACCESS = "runtime.proxy.access: "
APT = "apt-get install -y iproute2 nftables"


# -- what this machine allows ----------------------------------------------------------------


@attrs.frozen
class Capability:
    """What :func:`probe` found: ``ok``, or why not and whether a package would fix it.

    Attributes:
        ok: Namespaces, veth pairs and an nftables ``numgen`` rule all work here.
        reason: What is missing and how to get it (empty when ``ok``).
        tool_missing: The reason is a missing Debian tool (under CI=true: a failure), not
            the kernel or the permissions (a skip that says so).
    """

    ok: bool
    reason: str = ""
    tool_missing: bool = False


def _run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=GUARD)


def _loss_rules(percent: int) -> str:
    """An nftables table dropping ``percent``% of the packets in and out of ``eth0``."""
    rule = f"numgen random mod 100 < {percent} counter drop"
    return f"""
table inet trt_loss {{
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "eth0" {rule}
    }}
    chain output {{
        type filter hook output priority 0; policy accept;
        oifname "eth0" {rule}
    }}
}}
"""


def probe() -> Capability:
    """Can this machine build the test's hosts? Tries each piece once and removes it again."""
    if sys.platform != "linux":
        return Capability(False, f"network namespaces are Linux only (this is {sys.platform})")
    if os.geteuid() != 0:
        return Capability(False, "needs root (CAP_NET_ADMIN) for namespaces, veth and nftables")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return Capability(False, f"{tool} is missing: apt-get install -y {package}", True)
    run = secrets.token_hex(3)
    netns, link = f"trt-probe-{run}", f"trtp{run}"
    steps = [
        ("ip netns add", ("ip", "netns", "add", netns), None),
        (
            "a veth pair",
            ("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns),
            None,
        ),
        ("nftables numgen", ("ip", "netns", "exec", netns, "nft", "-f", "-"), _loss_rules(5)),
    ]
    try:
        for what, argv, stdin in steps:
            result = _run(*argv, stdin=stdin)
            if result.returncode != 0:
                error = result.stderr.strip() or f"exit {result.returncode}"
                return Capability(False, f"the kernel refused {what}: {error}")
    finally:
        _run("ip", "link", "del", link)
        _run("ip", "netns", "del", netns)
    return Capability(True)


def require_netns() -> None:
    """Skip with the reason (fail under CI=true when a package is missing)."""
    found = probe()
    if found.ok:
        return
    ci = os.environ.get("CI") == "true"
    if found.tool_missing and ci:
        pytest.fail(f"the multi-host proxy test needs {APT}; {found.reason}")
    if ci:
        pytest.skip(
            "NOT RUN under CI=true: this kernel or sandbox cannot run the multi-host proxy "
            f"test ({found.reason})"
        )
    pytest.skip(f"the multi-host proxy test needs root and {APT}: {found.reason}")


# -- the hosts -------------------------------------------------------------------------------


@attrs.define(eq=False)
class Host:
    """One upstream host: its namespace, the root side of its veth pair, its server."""

    index: int
    netns: str
    link: str
    address: str
    server: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{PORT}"


def _ip(*argv: str) -> None:
    result = _run("ip", *argv)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {result.stderr.strip()}")


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no address or route of this machine touches."""
    used = (
        _run("ip", "-4", "-o", "addr").stdout
        + _run("ip", "-4", "route", "show", "table", "all").stdout
    )
    taken = {
        ipaddress.IPv4Network(m, strict=False)
        for m in re.findall(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", used)
    }
    for third in secrets.SystemRandom().sample(range(256), 256):
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise RuntimeError("every /24 of 10.213.0.0/16 is in use on this machine")  # pragma: no cover


def _read_lines(stream: IO[bytes] | None, count: int, what: str) -> list[str]:
    """The first ``count`` lines a process prints, read straight from the pipe (a buffered
    reader would hold the second line where ``select`` can't see it)."""
    assert stream is not None
    data = b""
    deadline = time.monotonic() + GUARD
    while data.count(b"\n") < count:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(stream.fileno(), 4096) if ready else b""
        assert chunk, f"no {what} line within {GUARD} s (got {data!r})"
        data += chunk
    return data.decode().splitlines()[:count]


def _add_host(host: Host, root_side: str) -> None:
    """Make ``host``'s namespace and the veth pair to it, and bring both ends up."""
    _ip("netns", "add", host.netns)
    _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
    _ip("addr", "add", f"{root_side}/30", "dev", host.link)
    _ip("link", "set", host.link, "up")
    _ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", "eth0")
    _ip("-n", host.netns, "link", "set", "eth0", "up")
    _ip("-n", host.netns, "link", "set", "lo", "up")


def _start_server(host: Host, log: Path) -> None:
    with log.open("w") as err:
        host.server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                sys.executable,
                "-u",
                str(HELLO),
                "--host",
                host.address,
                "--port",
                str(PORT),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    [line] = _read_lines(host.server.stdout, 1, f"{host.netns} listening")
    assert line == f"listening on http://{host.endpoint}", line


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait(timeout=GUARD)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    """Three upstream hosts, host LOSSY's link lossy; torn down to nothing we made."""
    require_netns()
    run, subnet = secrets.token_hex(3), _free_subnet()
    made: list[Host] = []
    try:
        for index in range(1, HOSTS + 1):
            root_side, host_side = list(subnet.subnets(new_prefix=30))[index].hosts()
            host = Host(index, f"trt-up{index}-{run}", f"trt{run}h{index}", str(host_side))
            made.append(host)  # before it exists: a half-made host is removed too
            _add_host(host, str(root_side))
        lossy = made[LOSSY - 1]
        result = _run(
            "ip", "netns", "exec", lossy.netns, "nft", "-f", "-", stdin=_loss_rules(LOSS_PERCENT)
        )
        assert result.returncode == 0, result.stderr
        for host in made:
            _start_server(host, tmp_path / f"{host.netns}.err")
        yield made
    finally:
        for host in made:
            _stop(host.server)
        for host in made:
            _run("ip", "link", "del", host.link)  # the pair goes with it
            _run("ip", "netns", "del", host.netns)


def _dropped(host: Host) -> int:
    """Packets the loss rule in ``host`` has dropped so far."""
    ruleset = _run("ip", "netns", "exec", host.netns, "nft", "list", "table", "inet", "trt_loss")
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", ruleset.stdout))


# -- the proxy -------------------------------------------------------------------------------


@attrs.frozen
class Kill:
    """How host KILLED dies (:func:`_kill`), and the upstream's connect_timeout for it.

    A per-try timeout cancels the try, and the circuit breaker counts no cancellation as a
    failure: only a connect that fails within the try counts. A silent host is ejected only
    if connect_timeout is below per_try_timeout (with the default 1 s it never is, its tries
    keep timing out, and about one run in five loses a GET as a 504: reported).
    """

    how: str
    connect_timeout: float


KILLS = [Kill("process", 1.0), Kill("host", 0.25)]


@pytest.fixture(params=KILLS, ids=lambda kill: kill.how)
def kill(request: pytest.FixtureRequest) -> Kill:
    return request.param  # type: ignore[no-any-return]


def _proxy_config(hosts: list[Host], connect_timeout: float) -> str:
    endpoints = ", ".join(f'"{h.endpoint}"' for h in hosts)
    return f"""
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "web"
listen = "127.0.0.1:0"

[[routes]]
listener = "web"
upstream = "hello"
timeout = 3.0
per_try_timeout = 0.5
retries = 2

[[upstreams]]
name = "hello"
endpoints = [{endpoints}]
connect_timeout = {connect_timeout}
"""


@attrs.frozen
class RunningProxy:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def access(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line.split(ACCESS, 1)[1]) for line in lines if ACCESS in line]


@pytest.fixture
def proxy(hosts: list[Host], kill: Kill, tmp_path: Path) -> Iterator[RunningProxy]:
    """``python -m runtime proxy`` in the root namespace, before the three hosts."""
    config = tmp_path / "proxy.toml"
    config.write_text(_proxy_config(hosts, kill.connect_timeout))
    log = tmp_path / "proxy.err"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime", "proxy", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,  # a file: the access log must never fill a pipe and stall the proxy
            cwd=ROOT,
        )
    try:
        listening, admin = _read_lines(process.stdout, 2, "proxy listening and admin")
        web = LISTENING.match(listening)
        assert web and ADMIN.match(admin), log.read_text()
        yield RunningProxy(f"http://{web[1]}:{web[2]}", process, log)
    finally:
        _stop(process)


# -- the load --------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_BLACKHOLE = """
table inet trt_down {
    chain input { type filter hook input priority -10; policy drop; }
    chain output { type filter hook output priority -10; policy drop; }
}
"""


def _kill(host: Host, how: str) -> None:
    """SIGKILL ``host``'s server, by the PID we started. ``how="host"`` first makes the whole
    host go silent (every packet dropped, as if it lost power): the proxy gets no RST for its
    connections and its connects time out. ``how="process"``: the kernel resets them."""
    if how == "host":
        result = _run("ip", "netns", "exec", host.netns, "nft", "-f", "-", stdin=_BLACKHOLE)
        assert result.returncode == 0, result.stderr
    assert host.server is not None
    host.server.kill()


async def _load(
    url: str, killed: Host, how: str
) -> tuple[dict[int, int | str], dict[int, float], float]:
    """REQUESTS GETs from CLIENTS concurrent clients; ``killed`` is killed (:func:`_kill`) at
    KILL_AT.

    Returns each request's status (or the client's error), its latency, and when the kill
    happened (``time.monotonic()``).
    """
    import httpx  # a client we did not write
    import trio

    statuses: dict[int, int | str] = {}
    latencies: dict[int, float] = {}
    killed_at = 0.0
    numbers = iter(range(REQUESTS))
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=GUARD, limits=limits) as client:

        async def worker() -> None:
            nonlocal killed_at
            for n in numbers:  # shared: each number is taken once
                if n == KILL_AT:
                    _kill(killed, how)
                    killed_at = time.monotonic()
                started = time.monotonic()
                try:
                    response = await client.get("/", headers={"x-request-id": f"n{n}"})
                    statuses[n] = response.status_code
                except httpx.HTTPError as exc:
                    statuses[n] = type(exc).__name__
                latencies[n] = time.monotonic() - started

        with trio.fail_after(LOAD_LIMIT):
            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(worker)
    return statuses, latencies, killed_at


def _report(report: dict[str, Any], how: str) -> None:
    """Print ``report``; add it, as ``how``, to ``$TEST_ARTIFACTS/netns-report.json``."""
    print(f"\nnetns proxy report ({how}):", json.dumps(report, indent=2))
    artifacts = os.environ.get("TEST_ARTIFACTS")
    if artifacts:
        path = Path(artifacts) / "netns-report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        reports = json.loads(path.read_text()) if path.exists() else {}
        reports[how] = report
        path.write_text(json.dumps(reports, indent=2) + "\n")


async def test_no_get_is_lost_across_a_lossy_link_and_a_killed_host(
    hosts: list[Host], proxy: RunningProxy, kill: Kill
) -> None:
    how = kill.how
    killed, lossy = hosts[KILLED - 1], hosts[LOSSY - 1]
    began = time.monotonic()
    statuses, latencies, killed_at = await _load(proxy.url, killed, how)
    elapsed = time.monotonic() - began
    assert killed.server is not None
    exit_status = killed.server.wait(timeout=GUARD)
    access = proxy.access()
    by_id = {a["request_id"]: a for a in access}
    times = list(latencies.values())
    after_kill = [by_id.get(f"n{n}") for n in range(KILL_AT + CLIENTS, REQUESTS)]
    report = {
        "requests": REQUESTS,
        "clients": CLIENTS,
        "seconds": round(elapsed, 2),
        "statuses": dict(Counter(str(s) for s in statuses.values())),
        "p50_ms": round(_percentile(times, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(times, 0.99) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "mean_ms": round(statistics.fmean(times) * 1000, 1),
        "per_endpoint": dict(Counter(a["endpoint"] for a in access)),
        "retried_requests": sum(1 for a in access if a["tries"] > 1),
        "retries": sum(a["tries"] - 1 for a in access),
        "tries_histogram": dict(Counter(str(a["tries"]) for a in access)),
        "killed": {
            "endpoint": killed.endpoint,
            "at_request": KILL_AT,
            "how": how,
            "connect_timeout": kill.connect_timeout,
            "exit": exit_status,
            "at_s": round(killed_at - began, 2),
        },
        "lossy": {
            "endpoint": lossy.endpoint,
            "percent_each_way": LOSS_PERCENT,
            "packets_dropped": _dropped(lossy),
        },
    }
    _report(report, how)

    assert len(statuses) == REQUESTS
    lost = {n: s for n, s in statuses.items() if s != 200}
    assert not lost, f"{len(lost)} GETs not answered 200: {dict(list(lost.items())[:10])}"
    assert report["p99_ms"] < P99_LIMIT * 1000, report
    # the faults happened: the kill (the kernel's SIGKILL), the loss, and the proxy saw both
    assert exit_status == -9
    assert report["lossy"]["packets_dropped"] > 0
    assert len(access) == REQUESTS and all(a["status"] == 200 for a in access)
    assert all(a is not None and a["endpoint"] != killed.endpoint for a in after_kill)
    assert set(report["per_endpoint"]) == {h.endpoint for h in hosts}
    assert report["retries"] > 0


if __name__ == "__main__":
    found = probe()
    print("netns: ok" if found.ok else f"netns: cannot run: {found.reason}")
    sys.exit(0 if found.ok else 1)
