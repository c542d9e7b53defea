"""Graphs for a `langgraph dev` test server: i2cr wrapped by server_graph, on fake tools.

Loaded by the server from a langgraph.json the test writes; GROUNDGRAPH_TEST_DB names a scratch
trace store for the fake agent (the server itself checkpoints the runs in memory).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "agents"))

from fake_agent import fake_agent  # noqa: E402

from groundgraph.agents.server_graphs import server_graph  # noqa: E402

i2cr = server_graph("i2cr", agent=fake_agent(Path(os.environ["GROUNDGRAPH_TEST_DB"]), order=["Q2", "Q1"],
                                                inter=[0.0, 50.0]))
