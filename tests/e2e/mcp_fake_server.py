"""An MCP server process over streamable HTTP whose i2cr tool runs on fake tools (for the e2e test).

    python tests/e2e/mcp_fake_server.py PORT TRACE_DB
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "agents"))

from fake_agent import fake_agent  # noqa: E402

from groundgraph.agents.chat import ChatHost  # noqa: E402
from groundgraph.agents.mcp_server import build_server, serve  # noqa: E402

if __name__ == "__main__":
    port, db = int(sys.argv[1]), Path(sys.argv[2])
    agent = fake_agent(db, order=["Q2", "Q1"], inter=[0.0, 50.0])
    serve(build_server(ChatHost(agent.settings, agents={"i2cr": agent})), "http", port=port)
