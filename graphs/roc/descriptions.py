"""Relation descriptions: ROC's retrieval targets, one natural-language description per label.

The shipped MNRE descriptions (``prompts/roc/mnre_descriptions.json``) were written by hand
from real training examples of each label and reviewed. :func:`regenerate_descriptions` writes
a new set with any configured LLM from the prompt ``prompts/roc/describe_relation.txt``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from groundgraph.graphs.roc.encoding import (
    NONE_LABEL,
    TYPE_WORDS,
    instance_from_record,
    mark_text,
    types_from_label,
)
from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import ConfigError, InputError, ToolError
from groundgraph.tools.llm import LLM
from groundgraph.tools.vector_index import FaissIndex

DESCRIPTIONS_RESOURCE = "roc/mnre_descriptions.json"
PROMPT_RESOURCE = "roc/describe_relation.txt"
#: the "no relation" description is fixed: an LLM has no positive examples to define it from
NONE_DESCRIPTION = (
    "No relation: the sentence expresses no relation between the head entity and "
    "the tail entity; they are only mentioned in the same text."
)


def _resource_text(name: str) -> str:
    return (resources.files("groundgraph.prompts") / name).read_text(encoding="utf-8")


def load_descriptions(path: str | Path | None = None, labels: Sequence[str] | None = None) -> dict[str, str]:
    """{label: description} from ``path`` (default: the shipped MNRE file).

    With ``labels``, the file must describe exactly that label set (a missing or an extra
    label would silently change what retrieval can answer).
    """
    try:
        raw = Path(path).read_text(encoding="utf-8") if path else _resource_text(DESCRIPTIONS_RESOURCE)
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"relation descriptions {path or DESCRIPTIONS_RESOURCE} are unreadable: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError("relation descriptions must be a non-empty JSON object {label: description}")
    for label, text in data.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"relation {label!r} has an empty description")
    if labels is not None:
        check_coverage(data, labels)
    return dict(data)


def check_coverage(descriptions: Mapping[str, str], labels: Iterable[str]) -> None:
    """Raise :class:`ConfigError` unless the descriptions cover exactly ``labels``."""
    wanted = set(labels)
    missing, extra = sorted(wanted - set(descriptions)), sorted(set(descriptions) - wanted)
    if missing or extra:
        raise ConfigError(f"relation descriptions do not match the label set: missing {missing}, extra {extra}")


def label_name_targets(labels: Sequence[str]) -> dict[str, str]:
    """Bare label names as targets (``/per/org/member_of`` -> "per org member of"): the paper's
    ablation against descriptions."""
    return {lab: lab.strip("/").replace("/", " ").replace("_", " ") for lab in labels}


def build_description_index(descriptions: Mapping[str, str], embedder: TextEmbedder) -> FaissIndex:
    """A flat inner-product FAISS index of the description vectors, ids = labels."""
    if not descriptions:
        raise InputError("no descriptions to index")
    labels = list(descriptions)
    index = FaissIndex(dim=embedder.dim)
    index.add(labels, embedder.embed([descriptions[lab] for lab in labels]))
    return index


def describe_prompt(label: str, examples: Sequence[str], template: str | None = None) -> str:
    """The prompt that asks an LLM to describe ``label``, given a few annotated examples."""
    types = types_from_label(label)
    if types is None:
        raise InputError(f"label {label!r} is not of the form /head_type/tail_type/relation")
    text = template if template is not None else _resource_text(PROMPT_RESOURCE)
    shown = "\n".join(f"- {e}" for e in examples) or "- (none)"
    return text.format(label=label, head_type=TYPE_WORDS[types[0]], tail_type=TYPE_WORDS[types[1]], examples=shown)


def _clean(generated: str) -> str:
    # a small LLM often runs on into a second definition or a list: keep the first paragraph
    first = generated.strip().split("\n\n")[0].strip().strip('"').strip()
    return " ".join(first.split())


def regenerate_descriptions(
    llm: LLM,
    labels: Sequence[str],
    records: Sequence[Mapping[str, Any]] = (),
    *,
    examples_per_label: int = 5,
    seed: int = 0,
    max_tokens: int = 96,
) -> dict[str, str]:
    """Describe every label with ``llm``, showing it a few training records of that label.

    ``records`` are MNRE-style records (tokens, head, tail, relation). "None" keeps the fixed
    :data:`NONE_DESCRIPTION`. Raises :class:`ToolError` when the LLM returns nothing usable.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    for rec in records:
        by_label.setdefault(str(rec.get("relation")), []).append(_bracketed(rec))
    template = _resource_text(PROMPT_RESOURCE)
    out: dict[str, str] = {}
    for label in labels:
        if label == NONE_LABEL:
            out[label] = NONE_DESCRIPTION
            continue
        pool = by_label.get(label, [])
        shown = rng.sample(pool, min(examples_per_label, len(pool)))
        text = _clean(llm.generate(describe_prompt(label, shown, template), max_tokens=max_tokens))
        if len(text) < 10:
            raise ToolError(f"{llm.name} gave no usable description for {label!r}: {text!r}")
        out[label] = text
    return out


def _bracketed(record: Mapping[str, Any]) -> str:
    return mark_text(instance_from_record(record), pair_suffix=False)


def save_descriptions(descriptions: Mapping[str, str], path: str | Path) -> None:
    Path(path).write_text(json.dumps(dict(descriptions), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
