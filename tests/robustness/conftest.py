"""The robustness suite: every test here carries the ``robustness`` marker, records its figures with
``robust_helpers.record``, and the session prints them as one table and writes reports/robustness.json.

Run it alone with ``make check-robustness`` (``pytest -m robustness -q -s``); plain ``pytest`` runs it too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
# the fakes of the graph and agent unit tests and the e2e helpers are reused, not copied
for folder in (HERE, TESTS / "unit" / "graphs", TESTS / "unit" / "agents", TESTS / "e2e"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from robust_helpers import FIGURES, REPORT, figures_table  # noqa: E402

_STARTED = time.monotonic()
_OUTCOMES: dict[str, str] = {}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.robustness)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if HERE.name not in report.nodeid.split("/"):
        return
    if report.when == "call" or report.outcome != "passed":
        _OUTCOMES[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures and write them to reports/robustness.json (only when robustness tests ran)."""
    if not _OUTCOMES:
        return
    seconds = round(time.monotonic() - _STARTED, 1)
    failed = sorted(k for k, v in _OUTCOMES.items() if v == "failed")
    summary = {"tests": len(_OUTCOMES), "passed": sum(v == "passed" for v in _OUTCOMES.values()),
               "failed": failed, "skipped": sum(v == "skipped" for v in _OUTCOMES.values()),
               "session_seconds": seconds}
    report = {"generated_by": "pytest -m robustness (tests/robustness)", "finished": time.strftime(
        "%Y-%m-%dT%H:%M:%S%z"), "summary": summary, "figures": FIGURES}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    terminalreporter.write_sep("=", "robustness figures")
    for line in figures_table(FIGURES):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"{summary['passed']}/{summary['tests']} robustness tests passed in "
                                f"{seconds} s; failed: {failed or 'none'}; written to {REPORT}")
