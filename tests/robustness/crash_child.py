"""A process for the kill -9 tests: an i2cr agent on fake tools whose image-text scorer is slow and notes
each call in a marker file, so the parent can kill it at a known point.

    python crash_child.py run DB RUN_ID MARKER           # one multi-round run, stored in DB
    python crash_child.py jsonl DB INPUT OUTPUT MARKER   # `groundgraph run --input/--output` on a JSONL file
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "unit" / "graphs", HERE.parent / "unit" / "agents"):
    sys.path.insert(0, str(folder))

from robust_agents import i2cr_agent  # noqa: E402


class SlowNotingImageText:
    """Never passes the inter-modal gate (so every cue round runs), slowly, noting each call. With
    ``hold_at`` the call of that number never returns, so the parent kills the child inside it, at a point
    that does not depend on how busy the machine is."""

    name = "image_text.slow"
    scale = "clip_100cos"

    def __init__(self, marker: Path, delay: float, hold_at: int | None = None) -> None:
        self.marker = marker
        self.delay = delay
        self.hold_at = hold_at
        self.calls = 0

    def score(self, image: Any, texts: list[str]) -> list[float | None]:
        self.calls += 1
        with self.marker.open("a") as f:
            f.write("call\n")
        time.sleep(3600 if self.calls == self.hold_at else self.delay)
        return [0.0 for _ in texts]


def main() -> None:
    mode, db = sys.argv[1], Path(sys.argv[2])
    agent = i2cr_agent(db, trace=True)
    if mode == "run":
        run_id, marker = sys.argv[3], Path(sys.argv[4])
        agent.context.image_text = SlowNotingImageText(marker, 0.05, hold_at=2)
        from fake_agent import RECORD

        agent.invoke(RECORD, run_id=run_id)
    elif mode == "jsonl":
        from groundgraph.agents.cli_common import run_file

        source, output, marker = Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
        agent.context.image_text = SlowNotingImageText(marker, 0.05)
        run_file(agent, source, output)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
