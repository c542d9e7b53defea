"""Typed config of the roc graph (ROC, arXiv 2509.21151).

The encoder is a graph setting, not a toolbox role: a trained ROC encoder is specific to one relation set
and input format, so it must not replace the profile's general-purpose ``embedder`` that other graphs use.
``encoder`` names it:

- ``"auto"`` (default): ``models/roc-mnre`` (relative to the working directory) when it holds a trained
  encoder, else the profile's ``embedder`` zero-shot (the packaged MiniLM: about 15 micro-F1 on MNRE,
  unusable; train one with ``groundgraph train roc``);
- ``"embedder"``: always the profile's ``embedder``, zero-shot;
- a directory: a trained encoder (with ``roc.json``: descriptions, None rule and input format come from
  it) or any sentence-transformers directory (zero-shot, formats from this config).

Settings left at None here come from the trained encoder's ``roc.json`` when there is one, else from the
zero-shot defaults below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from groundgraph.graphs.roc.decide import NoneRule
from groundgraph.graphs.roc.encoding import MarkerStyle

DEFAULT_ENCODER_DIR = "models/roc-mnre"
#: None rule of the packaged MiniLM zero-shot over the shipped MNRE descriptions (no types), calibrated on
#: MNRE val by ``groundgraph eval roc --val``; used only when the encoder brings no roc.json
ZERO_SHOT_RULE = NoneRule(threshold=0.2233, margin=0.0619)


class RocConfig(BaseModel):
    """Encoder, retrieval targets, None rule and input format of ROC."""

    model_config = ConfigDict(extra="forbid")

    encoder: str = Field("auto", description="'auto', 'embedder' (the profile's, zero-shot) or a trained "
                         "encoder directory (see the module docstring)")
    relation_set: str = Field("mnre", description="shipped relation set: prompts/roc/<name>_descriptions.json "
                              "(ignored when the trained encoder or `descriptions` brings its own)")
    descriptions: str | None = Field(None, description="a JSON file {label: description} instead of the set's")
    targets: Literal["descriptions", "label_names"] = Field(
        "descriptions", description="retrieve over descriptions (ROC) or bare label names (the paper's ablation)")
    none_rule: NoneRule | None = Field(None, description="default: the trained encoder's, else the zero-shot one")
    use_types: bool | None = Field(None, description="write entity types into the input; missing types are "
                                   "predicted (default: as the encoder was trained, else off)")
    type_classifier: str | None = Field(None, description="entity type classifier JSON (default: the trained "
                                        "encoder's, else the shipped MNRE one over the packaged MiniLM)")
    marker_style: MarkerStyle | None = Field(None, description="default: the trained encoder's, else brackets")
    pair_suffix: bool | None = Field(None, description="default: the trained encoder's, else on")
    top_k: int = Field(5, ge=1, le=100, description="relations listed in the answer")
    image_weight: float = Field(
        0.0, ge=0.0, le=10.0, description="fusion weight of image-description similarity (an image-text model "
        "on CLIP's scale is needed; 0: the image is not used). Uncalibrated: no MNRE images here")
