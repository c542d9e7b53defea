"""One writer process of the concurrency test: i2cr runs on fake tools (the shared real KB for records
without candidates) stored in a shared trace store, answers written as JSON.

    python concurrency_child.py DB KB_JSONL KB_CACHE RECORDS_JSON OUT_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "unit" / "graphs", HERE.parent / "unit" / "agents"):
    sys.path.insert(0, str(folder))

from robust_agents import i2cr_agent  # noqa: E402

from groundgraph.tools.embedder import HashingEmbedder  # noqa: E402
from groundgraph.tools.kb import KnowledgeBase  # noqa: E402


def shared_kb(source: str, cache: str) -> KnowledgeBase:
    """The KB built once by the parent; reopened read-only here (the cache is keyed by the source)."""
    kb = KnowledgeBase(source=source, cache_dir=cache, embedder=HashingEmbedder())
    kb.build()
    return kb


def main() -> None:
    db, source, cache, records, out = sys.argv[1:6]
    agent = i2cr_agent(Path(db), trace=True)
    agent.context.kb = shared_kb(source, cache)
    answers = {}
    for rec in json.loads(Path(records).read_text()):
        result = agent.invoke(rec)
        answers[result.run_id] = {"id": rec["id"], "entity": result.entity.id if result.entity else None,
                                  "rounds": result.rounds}
    Path(out).write_text(json.dumps(answers))


if __name__ == "__main__":
    main()
