"""Instruction data for the LLM selector (TES): MEL records -> (prompt, completion) pairs.

The same prompt (``prompts/i2cr/select_instruction.txt``) serves training and inference, so an
adapter trained here is queried exactly as it learnt: the completion is the gold candidate's
name, and at run time ``LLM.choose`` constrains the answer to the candidate names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from groundgraph.prompts import load_prompt

MAX_DESCRIPTION_CHARS = 240


def _cue_text(cues: Mapping[str, str]) -> str:
    parts = [f"{k.replace('_', ' ')}: {v.strip()}" for k, v in cues.items() if isinstance(v, str) and v.strip()]
    return "; ".join(parts) or "(nothing)"


def selection_prompt(mention: str, context: str, cues: Mapping[str, str],
                     candidates: Sequence[Mapping[str, Any]]) -> str:
    """The instruction prompt for choosing among ``candidates`` (names must be distinct)."""
    lines = [f"- {c['name']}: {(c.get('description') or '').strip()[:MAX_DESCRIPTION_CHARS]}" for c in candidates]
    return load_prompt("i2cr/select_instruction.txt").format(
        mention=mention, context=context or mention, cues=_cue_text(cues), candidates="\n".join(lines))


def instruction_examples(records: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One example per record whose gold entity is among its candidates (others teach nothing)."""
    out = []
    for r in records:
        gold = r["gold"]["id"]
        cands = r["candidates"]
        names = [c["name"] for c in cands]
        match = [c for c in cands if c["id"] == gold]
        if not match or len(set(names)) != len(names):
            continue
        prompt = selection_prompt(r["mention"], r.get("context", ""), r.get("visual_cues", {}), cands)
        out.append({"prompt": prompt, "completion": match[0]["name"]})
    return out
