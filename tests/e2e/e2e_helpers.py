"""Helpers for end-to-end tests: free loopback ports, waiting for servers, the repository root."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
# fake_agent (an i2cr Agent on fake tools) lives with the agents unit tests
sys.path.insert(0, str(REPO / "tests" / "unit" / "agents"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path,
               limit_s: float = 180.0) -> None:
    """Poll ``check`` until it holds; fail with the server's log if the process dies or time runs out."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not come up in {limit_s:.0f} s:\n{log.read_text()[-3000:]}")


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=5).status_code == 200
