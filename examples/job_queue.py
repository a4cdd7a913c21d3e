"""A job queue over HTTP, with the admin endpoint beside it: watch it work.

Run it:
    python examples/job_queue.py --port 8000 --admin-port 9901

It prints two lines when ready: ``listening on http://HOST:PORT`` (the API) and then
``listening on http://HOST:PORT`` (the admin endpoint). The API:

* ``POST /jobs`` with a JSON body ``{"seconds": 0.5}`` queues a job that takes that long
  (at most 10 s) and answers 202 with its id; when the queue is full, 503 with Retry-After.
* ``GET /jobs/{id}`` says ``queued``, ``running`` or ``done``.

Jobs wait in a bounded channel named ``jobs``; the pool runs at most four at once, each a
member of the pool's JoinSet. The admin endpoint shows all of it: ``/metrics`` has the
queue's depth (``runtime_channel_buffered{channel="jobs"}``), the API's request counts and
latencies by route, and the ``MetricsLayer`` figures of the jobs; ``/tasks`` shows the running jobs
under their pool; ``python -m runtime top --admin HOST:PORT`` and the page at ``/`` show it
live. SIGINT or SIGTERM drains: the API stops taking jobs, the pool finishes the queue
within the grace, the admin endpoint answers ``/ready`` with 503 meanwhile, and the process
exits 0.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import sys

import attrs
import trio

import runtime
from runtime.admin import serve_admin
from runtime.http import HttpConfig, Request, Response, Router, serve
from runtime.metrics import MetricsLayer
from runtime.net import TcpListener
from runtime.service import ServiceBuilder, service_fn
from runtime.sync import EndOfChannel, WouldBlock, mpsc

WORKERS = 4
QUEUE = 100
MAX_SECONDS = 10.0


@attrs.define
class Job:
    id: int
    seconds: float
    state: str = "queued"


class JobQueue:
    """The jobs, the channel they wait in, and the workers that run them."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.ids = itertools.count(1)
        self.sender, self.receiver = mpsc.channel[Job](QUEUE, name="jobs")

    def submit(self, seconds: float) -> Job | None:
        """Queue a job; None when the queue is full (the caller says 503)."""
        job = Job(next(self.ids), seconds)
        try:
            self.sender.try_send(job)
        except WouldBlock:
            return None
        self.jobs[job.id] = job
        return job

    async def run(self, job: Job) -> None:
        job.state = "running"
        await runtime.time.sleep(job.seconds)
        job.state = "done"

    async def work(self) -> None:
        """Run the queued jobs, WORKERS at a time, until the queue is closed and empty."""
        # The job as a Service, so that a MetricsLayer counts and times every run.
        run = ServiceBuilder().layer(MetricsLayer("jobs")).service(service_fn(self.run))
        async with runtime.JoinSet[None]() as running:
            while True:
                while len(running) >= WORKERS:  # all busy: the next job waits in the queue
                    await self.reap(running)
                try:
                    job = await self.receiver.recv()
                except EndOfChannel:  # closed at shutdown, and empty
                    break
                running.spawn(run, job, name=f"job {job.id}")
            while not running.is_empty():
                await self.reap(running)

    async def reap(self, running: runtime.JoinSet[None]) -> None:
        try:
            await running.join_next()
        except Exception:  # one job's failure is logged; the queue goes on
            logging.exception("a job failed")


def api(queue: JobQueue) -> Router:
    router = Router()

    @router.post("/jobs")
    async def submit(request: Request) -> Response:
        body = await request.json(max_bytes=1024)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SECONDS:
            return Response.json({"error": f"seconds: a number from 0 to {MAX_SECONDS}"}, 422)
        job = queue.submit(float(seconds))
        if job is None:
            return Response.json(
                {"error": "the queue is full"}, 503, headers=[("retry-after", "1")]
            )
        return Response.json({"id": job.id, "state": job.state}, 202)

    @router.get("/jobs/{id:int}")
    async def status(request: Request) -> Response:
        job = queue.jobs.get(request.extensions["path_params"]["id"])
        if job is None:
            return Response.json({"error": "no such job"}, 404)
        return Response.json({"id": job.id, "state": job.state})

    return router


async def main(args: argparse.Namespace) -> None:
    queue = JobQueue()
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    async with trio.open_nursery() as nursery:
        runtime.spawn(queue.work, name="job pool")
        await nursery.start(
            functools.partial(serve, config=HttpConfig(name="jobs-api")), api(queue), [listener]
        )
        print(f"listening on http://{host}:{listener.port}", flush=True)
        admin = await nursery.start(serve_admin, args.host, args.admin_port)
        print(f"listening on http://{host}:{admin.port}", flush=True)
        admin.set_ready()
        await runtime.current().shutdown_requested()
        queue.sender.close()  # no new jobs: the pool finishes the queue, then ends


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="A job queue with an admin endpoint.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="API port; 0 picks a free one (default)")
    p.add_argument("--admin-port", type=int, default=0, help="admin port; 0 picks one")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to drain on shutdown")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}: {exc}", file=sys.stderr)
        sys.exit(1)
