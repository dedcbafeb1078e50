"""NICE's own agent SDK (``@nice-devone/*`` on npm, pinned) as the sandbox's contract test.

The harness in ``tests/sandbox/sdk_contract/`` drives a fresh sandbox through the SDK's public functions only
(the SDK's code is never patched; only the browser around it is shimmed) and prints a table of steps.
Where the sandbox and the SDK disagree, the sandbox changes. See docs/sdk-contract.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import endpoint_table
import pytest

from cxone_provider.testing import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

HARNESS = Path(__file__).resolve().parent / "sdk_contract"
MODULES = HARNESS / "node_modules"
# Written after a complete install: the hash of the package-lock.json it installed.
STAMP = MODULES / ".cxone-lock-sha256"
INSTALL_HINT = (
    "NICE's SDK contract test needs Node.js 18+ and npm: install Debian's packages "
    "(`apt-get install nodejs npm`; .ci/run does it in CI)"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH. {INSTALL_HINT}", pytrace=False)
    return path


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=HARNESS, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def harness() -> Path:
    """The SDK installed at the pinned versions (reused while package-lock.json is unchanged), bundled."""
    node, npm = _tool("node"), _tool("npm")
    version = _run([node, "--version"], timeout=30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"node {version} is too old (fetch, Blob URLs). {INSTALL_HINT}", pytrace=False)
    lock = hashlib.sha256((HARNESS / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != lock:
        _npm_ci(npm)
    bundle = HARNESS / "build" / "driver.cjs"
    built = _bundle(bundle)
    if built.returncode != 0:
        # An install whose stamp matches but that cannot be bundled (seen once: a node_modules copied
        # without its packages' dist/ and build/ folders) is redone from scratch; a second failure
        # fails the test with both answers.
        first = built.stderr
        shutil.rmtree(MODULES, ignore_errors=True)
        _npm_ci(npm)
        built = _bundle(bundle)
        if built.returncode != 0:
            pytest.fail(
                f"esbuild could not bundle the harness, after a fresh npm ci too:\n{built.stderr}\n"
                f"(first attempt:\n{first})",
                pytrace=False,
            )
        print(f"esbuild failed on the first install and worked after a fresh npm ci:\n{first}")
    # Only a bundle that worked marks the install as reusable.
    STAMP.write_text(lock + "\n")
    return bundle


def _npm_ci(npm: str) -> None:
    STAMP.unlink(missing_ok=True)
    done = _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=600)
    if done.returncode != 0:
        pytest.fail(f"npm ci failed in {HARNESS}:\n{done.stdout}\n{done.stderr}", pytrace=False)


def _bundle(bundle: Path) -> subprocess.CompletedProcess[str]:
    esbuild = MODULES / ".bin" / "esbuild"
    args = ["driver.mjs", "--bundle", "--platform=node", "--format=cjs", f"--outfile={bundle}", "--log-level=error"]
    return _run([str(esbuild), *args], timeout=120)


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def _config(server: SandboxServer, report: Path) -> dict[str, Any]:
    seed = server.seed
    users = {user["agent_id"]: user for user in seed["users"]}
    impersonator = next(u for u in seed["users"] if u["can_impersonate"] and u["agent_id"] == 1001)
    refused = next(u for u in seed["users"] if not u["can_impersonate"])
    app = seed["applications"][0]
    assert users[1001] is impersonator
    return {
        "authHost": server.url,
        "clientId": app["client_id"],
        "clientSecret": app["client_secret"],
        "qaKey": {
            "id": impersonator["access_key_id"],
            "secret": impersonator["access_key_secret"],
            "agentId": impersonator["agent_id"],
        },
        "noImpKey": {"id": refused["access_key_id"], "secret": refused["access_key_secret"]},
        "otherAgentId": 2001,  # a live session in the default seed
        "stationPhoneNumber": "4155550100",
        "pollWaitSeconds": float(os.environ.get("SDK_CONTRACT_POLL_WAIT", "75")),
        # A worker's messages reach the page this late, as on a loaded machine: the steps must not
        # depend on the SDK handling an answer before the sandbox's next one (session-end-event failed
        # once under load that way; at 300 ms it failed every run).
        "workerHopMs": 300,
        "reportFile": str(report),
    }


@pytest.mark.timeout(1200)
def test_nice_sdk_drives_the_sandbox_through_a_session_s_life(
    harness: Path, fresh_sandbox: SandboxServer, tmp_path: Path
) -> None:
    report = tmp_path / "sdk-contract.json"
    env = {**os.environ, "SDK_CONTRACT_CONFIG": json.dumps(_config(fresh_sandbox, report))}
    if fresh_sandbox.ca_file:
        env["NODE_EXTRA_CA_CERTS"] = fresh_sandbox.ca_file
    done = _run([_tool("node"), str(harness)], timeout=1100, env=env)
    print(f"\nNICE's SDK against the sandbox:\n{done.stdout}")
    assert report.is_file(), f"the harness wrote no report:\n{done.stdout}\n{done.stderr}"
    ran = json.loads(report.read_text())
    rows = ran["rows"]
    failed = [row for row in rows if row["result"] != "ok"]
    assert rows, "the harness ran no step"
    if failed:
        lines = "\n".join(f"- {row['step']} ({row['call']}): {row['detail']}" for row in failed)
        pytest.fail(f"NICE's SDK rejected the sandbox at {len(failed)} of {len(rows)} steps:\n{lines}", pytrace=False)
    assert done.returncode == 0, done.stderr
    # docs/endpoints.md lists every endpoint NICE's SDK used here.
    table = endpoint_table.rows()
    called = {(e["method"], urlsplit(e["url"]).path) for e in ran["journal"]}
    undocumented = sorted(f"{m} {p}" for m, p in called if not any(r.matches(m, p) for r in table))
    assert undocumented == [], f"docs/endpoints.md has no row for these calls of NICE's SDK: {undocumented}"


def test_the_installed_sdk_is_never_part_of_the_repository():
    """NICE's SDK is installed from npm by the test, never committed (it is third-party code)."""
    tracked = subprocess.run(
        ["git", "ls-files", str(MODULES)], cwd=HARNESS, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert tracked == ""
