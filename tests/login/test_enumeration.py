"""No account enumeration by timing: ``POST /login`` answers known and unknown addresses in
the same time, against a real server on loopback and a real SMTP server.

The one test that looks at the clock. It is built to fail only on a real difference: a
threshold is fitted on one set of interleaved requests and judged on a fresh set, whose
accuracy under "no difference" is Binomial(n, 1/2); the bound is that distribution's
99.9 % quantile, so noise (a busy 2-core machine) makes the classifier *more* random, never
less. A leak like the one this replaces (the mail sent inside the request, ~20 ms) classifies
every request.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from math import comb
from typing import Any

import pytest
import requests
from flask import Flask

from idp.orgs.roles import Role
from tests.builders import make_member, make_org
from tests.proxies import free_port, serve_app
from tests.test_mail import Inbox

ROUNDS = 60  # requests per set (half known, half unknown), one set to fit and one to judge
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(inbox: Inbox, port: int) -> dict[str, Any]:
    return {
        "ISSUER": f"http://127.0.0.1:{port}",
        "SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        "MAIL_DELIVERY": "background",  # as deployed: after the response, on its own thread
        # ~125 sign-in requests come from one address here; the per-IP mail limit is tested
        # in tests/test_ratelimit.py and counts every address alike, known or not.
        "RATE_LIMIT_LOGIN_MAILS_PER_IP": "1000 per 15 minutes",
    }


@pytest.fixture
def served(app: Flask, port: int) -> Iterator[str]:
    with serve_app(app, port):
        yield f"http://127.0.0.1:{port}"


def upper_bound(n: int, alpha: float = 0.001) -> int:
    """The smallest k with P(Binomial(n, 1/2) >= k) <= alpha: more correct than chance gives."""
    tail = 0.0
    for k in range(n, -1, -1):
        tail += comb(n, k) / 2**n
        if tail > alpha:
            return k + 1
    return 0


def best_threshold(samples: list[tuple[float, bool]]) -> tuple[float, bool]:
    """The cut (and its side: known above or below) that classifies ``samples`` best."""
    best = (0, 0.0, True)
    for cut, _known in samples:
        for known_is_slower in (True, False):
            right = sum((t >= cut) == (known == known_is_slower) for t, known in samples)
            best = max(best, (right, cut, known_is_slower))
    return best[1], best[2]


def accuracy(samples: list[tuple[float, bool]], cut: float, known_is_slower: bool) -> int:
    return sum((t >= cut) == (known == known_is_slower) for t, known in samples)


def test_known_and_unknown_addresses_cannot_be_told_apart_by_time(
    app: Flask, served: str, inbox: Inbox
) -> None:
    org = make_org("acme")
    known = [make_member(org, f"known{i}@acme.example", Role.MEMBER).email for i in range(ROUNDS)]
    unknown = [f"nobody{i}@acme.example" for i in range(ROUNDS)]
    browser = requests.Session()
    page = browser.get(f"{served}/login", timeout=10)
    found = CSRF.search(page.text)
    token = found.group(1) if found else ""
    courier = app.extensions["gatehouse.courier"]

    def ask(email: str) -> float:
        started = time.perf_counter()
        answer = browser.post(
            f"{served}/login",
            data={"email": email, "csrf_token": token},
            headers={"Origin": served},
            timeout=10,
        )
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200 and "Check your email" in answer.text
        return elapsed

    for i in range(5):  # warm up: connections, caches, the courier's thread
        ask(f"warmup{i}@acme.example")
    rng = random.Random(16)  # a fixed, interleaved order of known and unknown addresses
    order = [True] * ROUNDS + [False] * ROUNDS
    rng.shuffle(order)
    known_left, unknown_left = iter(known), iter(unknown)
    samples = [(ask(next(known_left) if k else next(unknown_left)), k) for k in order]
    fit, judged = samples[:ROUNDS], samples[ROUNDS:]

    cut, known_is_slower = best_threshold(fit)
    right = accuracy(judged, cut, known_is_slower)
    bound = upper_bound(len(judged))
    assert right < bound, f"{right}/{len(judged)} classified by time (chance stays below {bound})"
    # The response after a known address's must not tell either (the mail just went out).
    following = [(samples[i + 1][0], samples[i][1]) for i in range(len(samples) - 1)]
    cut, side = best_threshold(following[: len(following) // 2])
    later = following[len(following) // 2 :]
    assert accuracy(later, cut, side) < upper_bound(len(later))

    # Not vacuous: every known address was mailed its link, after the responses; no other.
    assert courier.drain(30)
    assert sorted(m.rcpt_tos[0] for m in inbox.messages) == sorted(known)
