"""Typed config of the insgenel graph (INSGENEL-R, arXiv 2311.03250): retriever, chunking and the
decision step's gates. The decision weights default to the set fitted by ``benchmarks/insgenel_fit.py``
(see ``graphs/insgenel/decide.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from groundgraph.graphs.insgenel.decide import DecideConfig


class InsgenelConfig(BaseModel):
    """Retriever K, chunking, and the decision step of INSGENEL-R."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(20, ge=0, le=200, description="dense retrieval: nearest KB entities per chunk (0: alias "
                   "matches only)")
    chunk_words: int = Field(60, ge=8, le=400, description="longest chunk (words) embedded for retrieval and "
                             "context; longer sentences are cut into overlapping windows")
    chunk_overlap: int = Field(10, ge=0, le=200, description="words two windows of one long sentence share")
    max_partial_frequency: int = Field(
        3, ge=0, le=100, description="a word of a non-person name is an alias alone when at most this many KB "
        "names contain it ('Stanford' yes, 'University' no); read when the alias table is built")
    use_llm: bool = Field(True, description="score ambiguous spans with the LLM (when the profile has one)")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="link a span's best option when P(link) >= "
                                    "this (default: the fitted threshold of the weight set in use)")
    llm_options: int = Field(8, ge=2, le=50, description="options shown to the LLM, best by the cheap features")
    llm_window: int = Field(400, ge=0, le=4000, description="characters of context on each side of the mention")
    llm_skip_supported: bool = Field(
        False, description="no LLM call when an option's entity is named in full elsewhere in the text")
    coherence_top: int = Field(3, ge=1, le=50, description="coherence = mean cosine to this many nearest anchors")
    link_pronouns: bool = Field(False, description="link he/she/his/her to the last linked person (OKE-2015 "
                                "annotates them; most benchmarks do not)")
    rank_weights: dict[str, float] | None = Field(None, description="step-1 weights (default: the fitted set)")
    link_weights: dict[str, float] | None = Field(None, description="step-2 weights (default: the fitted set)")

    @model_validator(mode="after")
    def _check(self) -> InsgenelConfig:
        if self.chunk_overlap >= self.chunk_words:
            raise ValueError("chunk_overlap must be smaller than chunk_words")
        return self

    def decide_config(self, *, llm_available: bool) -> DecideConfig:
        """The core's DecideConfig; ``use_llm`` is off when the profile gives no LLM."""
        return DecideConfig(
            rank_weights=self.rank_weights, link_weights=self.link_weights, threshold=self.threshold,
            use_llm=self.use_llm and llm_available, llm_options=self.llm_options, llm_window=self.llm_window,
            llm_skip_supported=self.llm_skip_supported, coherence_top=self.coherence_top,
            link_pronouns=self.link_pronouns)
