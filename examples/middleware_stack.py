"""Your first middleware stack: one plain async function, wrapped in timeout, retry, limit.

The backend is a stand-in: every third call fails with a hiccup, and users whose name starts
with "slow" take five seconds. The stack retries the hiccups, gives up on the slow ones after a
second, lets two calls in at a time, and turns the answer into a sentence.

It runs on a mock clock, so the simulated seconds pass at once.

Run it: python examples/middleware_stack.py
"""

from __future__ import annotations

import random

import trio
import trio.testing

import runtime
from runtime.service import Elapsed, RetryOn, Service, ServiceBuilder


class Unavailable(Exception):
    """The backend had a hiccup; trying again may work."""


class Backend:
    """Counts calls, fails every third one, and is slow for some users."""

    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def fetch_profile(self, user: str) -> dict[str, str]:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(5.0 if user.startswith("slow") else 0.1)
            if self.calls % 3 == 0:
                raise Unavailable(f"hiccup on call {self.calls}")
            return {"user": user, "plan": "pro"}
        finally:
            self.in_flight -= 1


def build(backend: Backend) -> Service[str, str]:
    return (
        ServiceBuilder()
        .timeout(1.0)  # the whole request, retries included, gets one second
        .retry(RetryOn((Unavailable,), attempts=3), rng=random.Random(1))
        .concurrency_limit(2)  # at most two calls reach the backend at once
        .map_response(lambda profile: f"{profile['user']} is on the {profile['plan']} plan")
        .service_fn(backend.fetch_profile)
    )


async def main() -> None:
    backend = Backend()
    profiles = build(backend)

    # One at a time: the third call hiccups, and Retry sends it again.
    for user in ["ada", "grace", "linus"]:
        print(await profiles(user))
    print(f"3 answers took {backend.calls} backend calls")

    # Too slow: Timeout cancels the call after one second and raises Elapsed.
    try:
        await profiles("slow-sam")
    except Elapsed:
        print("slow-sam: gave up after 1 s")

    # Many at once: the limit lets two through at a time; the rest wait their turn.
    async with runtime.JoinSet[str]() as tasks:
        for user in ["ken", "dennis", "barbara", "margaret", "frances"]:
            tasks.spawn(profiles, user)
        answers = sorted([answer async for answer in tasks])
    print(f"{len(answers)} concurrent answers, at most {backend.most_in_flight} in flight")


if __name__ == "__main__":
    runtime.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
