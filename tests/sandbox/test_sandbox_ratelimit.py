"""The sandbox's tenant rate limit: one token bucket shared by every client, 429 with Retry-After when over."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import requests

from cxone_sandbox.faults import Faults


def api(sandbox, token, path="agents/1001"):
    return requests.get(f"{sandbox.api_base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def a_token(sandbox) -> str:
    conn = sandbox.connection()
    answer = requests.post(
        f"{sandbox.url}/auth/token",
        data={"grant_type": "password", "username": conn["login"], "password": conn["password"]},
        auth=(conn["extra"]["client_id"], conn["extra"]["client_secret"]),
        timeout=10,
    )
    return str(answer.json()["access_token"])


def test_over_the_budget_a_request_gets_429_with_whole_second_retry_after(cxone_sandbox):
    token = a_token(cxone_sandbox)
    # A bucket of 5 refilled once a minute: however slowly this machine sends, the sixth request finds it empty.
    cxone_sandbox.set_faults(rate_limit_rps=1 / 60, rate_limit_burst=5)
    answers = [api(cxone_sandbox, token) for _ in range(12)]
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 5 + [429] * 7  # the burst, then nothing until the bucket refills
    throttled = [a for a in answers if a.status_code == 429]
    for answer in throttled:
        # An Agent API error as NICE publishes it: the status and icStatusDescription, no body.
        assert (answer.headers["icStatusDescription"], answer.content) == ("TooManyRequests", b"")
        assert answer.headers["Retry-After"].isdigit()
        assert int(answer.headers["Retry-After"]) >= 1
    journal = [e for e in cxone_sandbox.journal() if e["path"].endswith("agents/1001")]
    assert [e["fault"] for e in journal].count("rate_limit") == len(throttled)
    assert all(e["status"] == 429 for e in journal if e["fault"] == "rate_limit")


def test_the_budget_is_shared_by_every_client(cxone_sandbox):
    tokens = [a_token(cxone_sandbox) for _ in range(2)]
    cxone_sandbox.set_faults(rate_limit_rps=1 / 60, rate_limit_burst=10)  # no refill within the test
    counts = {0: 0, 1: 0}

    def client(n: int) -> None:
        for _ in range(10):
            if api(cxone_sandbox, tokens[n]).status_code == 200:
                counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 20 requests against one bucket of 10: 10 get through, whichever client sends them.
    assert counts[0] + counts[1] == 10


def test_at_the_rate_nothing_is_throttled(cxone_sandbox):
    token = a_token(cxone_sandbox)
    cxone_sandbox.set_faults(rate_limit_rps=20, rate_limit_burst=2)
    statuses = []
    for _ in range(20):
        statuses.append(api(cxone_sandbox, token).status_code)
        time.sleep(0.06)  # about 16 a second: under 20
    assert statuses == [200] * 20


def test_auth_is_not_rate_limited(cxone_sandbox):
    cxone_sandbox.set_faults(rate_limit_rps=1, rate_limit_burst=1)
    assert all(a_token(cxone_sandbox) for _ in range(5))


def test_the_rate_limit_is_a_setting_of_the_command_line_and_the_json_endpoint():
    faults = Faults.from_mapping({"rate_limit_rps": "50", "rate_limit_burst": 10})
    assert (faults.rate_limit_rps, faults.rate_limit_burst) == (50.0, 10)
    help_text = subprocess.run(
        [sys.executable, "-m", "cxone_sandbox.cli", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "--rate-limit-rps" in help_text
    assert "--rate-limit-burst" in help_text
    assert json.dumps(Faults().to_dict()["rate_limit_rps"]) == "null"
