"""End-to-end fixtures: servers started by a test are always shut down."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import e2e_helpers  # noqa: F401  (puts the agents test fakes on sys.path)
import pytest


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a server process (own process group, output to a log file); every one is stopped after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], *, log_name: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = tmp_path / log_name
        proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=cwd or tmp_path,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
