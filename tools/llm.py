"""LLM: constrained choice among given options, and free generation.

``choose`` can only ever return one of the options it was given: backends score each option
(likelihood) or constrain decoding to the option list; they never parse free text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from groundgraph.tools.errors import InputError


class Choice(BaseModel):
    """The option an LLM chose, with a score per option (higher is better)."""

    index: int
    option: str
    scores: list[float]
    method: str = Field(description="how the choice was made, e.g. 'calibrated_loglik' or 'structured_choice'")


@runtime_checkable
class LLM(Protocol):
    name: str

    def choose(self, prompt: str, options: Sequence[str], *, calibration_prompt: str | None = None) -> Choice:
        """Pick one of ``options`` as the continuation of ``prompt``.

        ``calibration_prompt`` is a context-free version of the prompt; likelihood backends
        subtract each option's log-probability under it, so options that are merely
        likely in general do not win.
        """
        ...

    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> str: ...


def check_options(options: Sequence[str]) -> list[str]:
    """Validate an option list: non-empty, strings, not all blank."""
    if isinstance(options, str):
        raise InputError("options must be a list of strings, not one string")
    opts = list(options)
    if not opts:
        raise InputError("choose() needs at least one option")
    for i, o in enumerate(opts):
        if not isinstance(o, str) or not o.strip():
            raise InputError(f"option {i} must be a non-empty string")
    return opts


def pick(options: Sequence[str], scores: Sequence[float], method: str) -> Choice:
    """The Choice for the best score (first on ties), always one of ``options``."""
    best = max(range(len(options)), key=lambda i: (scores[i], -i))
    return Choice(index=best, option=options[best], scores=[float(s) for s in scores], method=method)


