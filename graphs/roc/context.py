"""Run-time dependencies of the roc graph (LangGraph ``context_schema``): the encoder, the relation index,
the None rule and the input format, resolved once from the config, the trained encoder's ``roc.json`` and
the profile's tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundgraph.graphs.base import Tools
from groundgraph.graphs.roc.config import DEFAULT_ENCODER_DIR, ZERO_SHOT_RULE, RocConfig
from groundgraph.graphs.roc.decide import NoneRule
from groundgraph.graphs.roc.descriptions import build_description_index, label_name_targets, load_descriptions
from groundgraph.graphs.roc.encoding import NONE_LABEL, EntityTypeClassifier, MarkerStyle
from groundgraph.graphs.roc.training import ROC_FILE, TYPES_FILE
from groundgraph.tools.errors import ConfigError

#: scales on which image-description scores mean something (a real image-text model, not a text proxy)
IMAGE_SCALES = {"clip_100cos": 100.0}


@dataclass
class RocContext:
    config: RocConfig
    encoder: Any  # TextEmbedder: the (trained) pair encoder; also embeds the retrieval targets
    encoder_source: str  # what the encoder is, for traces and answers
    targets: dict[str, str]  # label -> the text retrieved (description or bare label name)
    descriptions: dict[str, str]  # label -> description (for answers, whatever the targets are)
    index: Any  # VectorIndex over the targets' vectors, ids = labels
    rule: NoneRule
    rule_source: str = "config"  # "roc.json", "config" or "zero-shot default"
    marker_style: MarkerStyle = "brackets"
    pair_suffix: bool = True
    use_types: bool = False
    type_classifier: EntityTypeClassifier | None = None
    type_embedder: Any = None  # TextEmbedder the type classifier's features come from
    image_text: Any = None  # ImageTextScorer: image vs target texts, fused when the scale allows
    notes: list[str] = field(default_factory=list)  # how the settings were resolved

    @property
    def labels(self) -> list[str]:
        return list(self.targets)


def _trained_meta(directory: Path) -> dict[str, Any] | None:
    path = directory / ROC_FILE
    if not path.is_file():
        return None
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None
    return meta


def resolve_encoder(config: RocConfig, tools: Tools) -> tuple[Any, str, Path | None, dict[str, Any] | None]:
    """(embedder, what it is, its directory, its roc.json) from ``config.encoder``."""
    if config.encoder == "auto":
        default = Path(DEFAULT_ENCODER_DIR)
        directory = default if (default / ROC_FILE).is_file() else None
    elif config.encoder == "embedder":
        directory = None
    else:
        directory = Path(config.encoder).expanduser()
        if not directory.is_dir():
            raise ConfigError(f"graphs.roc.encoder: {directory} is not a directory (train one with "
                              "`groundgraph train roc`, or set encoder = 'embedder' for zero-shot)")
    if directory is None:
        embedder = tools.get("embedder")
        if embedder is None:
            raise ConfigError("roc has no trained encoder and the profile configures no 'embedder' tool")
        return embedder, f"zero-shot {getattr(embedder, 'name', 'embedder')} (untrained)", None, None
    from groundgraph.tools.embedder import SentenceTransformerEmbedder

    device = getattr(tools.get("embedder"), "device", "cpu")
    meta = _trained_meta(directory)
    kind = "trained ROC encoder" if meta else "sentence-transformers encoder (no roc.json: zero-shot)"
    return SentenceTransformerEmbedder(model=str(directory), device=device), f"{kind} {directory}", directory, meta


def _descriptions(config: RocConfig, meta: dict[str, Any] | None) -> dict[str, str]:
    if config.descriptions:
        return load_descriptions(config.descriptions)
    if meta and meta.get("descriptions"):
        return dict(meta["descriptions"])
    from groundgraph.prompts import load_json

    try:
        data = load_json(f"roc/{config.relation_set}_descriptions.json")
    except ConfigError:
        raise ConfigError(f"unknown relation set {config.relation_set!r}: no prompts/roc/"
                          f"{config.relation_set}_descriptions.json (shipped: 'mnre'); give graphs.roc."
                          "descriptions = a JSON file {label: description} for another set") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"relation set {config.relation_set!r} has no descriptions")
    return {str(k): str(v) for k, v in data.items()}


def _type_classifier(config: RocConfig, directory: Path | None) -> EntityTypeClassifier:
    if config.type_classifier:
        return EntityTypeClassifier.load(config.type_classifier)
    if directory is not None and (directory / TYPES_FILE).is_file():
        return EntityTypeClassifier.load(directory / TYPES_FILE)
    from importlib import resources

    with resources.as_file(resources.files("groundgraph.prompts") / "roc" / "mnre_type_classifier.json") as p:
        return EntityTypeClassifier.load(p)


def make_context(tools: Tools, config: RocConfig) -> RocContext:
    """Resolve encoder, targets, None rule and input format; a setting the tools cannot serve fails here."""
    encoder, source, directory, meta = resolve_encoder(config, tools)
    notes = [f"encoder: {source}"]
    descriptions = _descriptions(config, meta)
    if NONE_LABEL not in descriptions:
        raise ConfigError(f"the relation set has no {NONE_LABEL!r} label; ROC's None rule needs its description")
    targets = label_name_targets(list(descriptions)) if config.targets == "label_names" else descriptions
    if config.targets == "label_names":
        targets[NONE_LABEL] = "no relation"
    if config.none_rule is not None:
        rule, rule_source = config.none_rule, "config"
    elif meta and config.targets == "descriptions":
        rule, rule_source = NoneRule(**meta["none_rule"]), "roc.json"
    else:
        rule, rule_source = ZERO_SHOT_RULE, "zero-shot default"
    notes.append(f"None rule ({rule_source}): threshold {rule.threshold:.4f}, margin {rule.margin:.4f}")
    pick = {k: getattr(config, k) if getattr(config, k) is not None else (meta or {}).get(k)
            for k in ("marker_style", "pair_suffix", "use_types")}
    use_types = bool(pick["use_types"])
    clf = type_embedder = None
    if use_types:
        type_embedder = tools.get("embedder")
        if type_embedder is None:
            raise ConfigError("roc use_types needs the profile's 'embedder' (the type classifier's features)")
        clf = _type_classifier(config, directory)
        if clf.weights.shape[0] != 2 * type_embedder.dim:
            raise ConfigError(f"the type classifier expects {clf.weights.shape[0] // 2}-d features but the "
                              f"profile's embedder gives {type_embedder.dim}-d")
    image_text = tools.get("image_text")
    return RocContext(
        config=config, encoder=encoder, encoder_source=source, targets=targets, descriptions=descriptions,
        index=build_description_index(targets, encoder), rule=rule, rule_source=rule_source,
        marker_style=pick["marker_style"] or "brackets",
        pair_suffix=True if pick["pair_suffix"] is None else bool(pick["pair_suffix"]),
        use_types=use_types, type_classifier=clf, type_embedder=type_embedder, image_text=image_text, notes=notes)
