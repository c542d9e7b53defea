"""What every image-text scorer must do (``ImageTextScorer`` of groundgraph.tools.image_text).

Use: subclass ``ImageTextConformance`` as ``class TestXxx(ImageTextConformance)`` and give it
fixtures ``scorer`` (the backend) and ``scorable_image`` (an ImageView it can score: a file for
CLIP, cue texts for the proxy). Bad-file checks attach the bad path to that view's cues.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from conformance.images import bad_image_files
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.image_text import ImageTextScorer
from groundgraph.tools.images import ImageView
from groundgraph.tools.registry import tool_class

TEXTS = ["a red stop sign on a street corner", "a bowl of fruit", "HELLO WORLD"]


class ImageTextConformance:
    registered = True

    @pytest.fixture(scope="class")
    @classmethod
    def bad_files(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        return bad_image_files(tmp_path_factory.mktemp("image_text_spec"))

    def test_satisfies_protocol(self, scorer: Any) -> None:
        assert isinstance(scorer, ImageTextScorer)
        assert scorer.kind == "image_text"
        assert scorer.name == f"image_text.{scorer.backend}"
        assert isinstance(scorer.scale, str) and scorer.scale.endswith("100cos")
        if self.registered:
            assert tool_class(scorer.name) is type(scorer)

    def test_unknown_config_field_is_config_error(self, scorer: Any) -> None:
        with pytest.raises(ConfigError, match="no_such_field"):
            type(scorer)({**scorer.config.model_dump(), "no_such_field": 1})

    def test_one_score_per_text_on_the_100cos_scale(self, scorer: Any, scorable_image: ImageView) -> None:
        scores = scorer.score(scorable_image, TEXTS)
        assert len(scores) == len(TEXTS)
        for s in scores:
            assert isinstance(s, float) and math.isfinite(s) and -100.0 - 1e-3 <= s <= 100.0 + 1e-3

    def test_scores_do_not_depend_on_the_batch(self, scorer: Any, scorable_image: ImageView) -> None:
        together = scorer.score(scorable_image, TEXTS)
        alone = [scorer.score(scorable_image, [t])[0] for t in TEXTS]
        assert together == pytest.approx(alone, abs=1e-2)
        assert scorer.score(scorable_image, TEXTS) == pytest.approx(together, abs=1e-4)

    def test_no_texts_no_scores(self, scorer: Any, scorable_image: ImageView) -> None:
        assert scorer.score(scorable_image, []) == []

    def test_blank_text_scores_none(self, scorer: Any, scorable_image: ImageView) -> None:
        scores = scorer.score(scorable_image, [TEXTS[0], "  ", TEXTS[1]])
        assert scores[1] is None and scores[0] is not None and scores[2] is not None

    def test_image_with_nothing_scores_none(self, scorer: Any) -> None:
        assert scorer.score(ImageView(), TEXTS) == [None] * len(TEXTS)

    @pytest.mark.parametrize("texts", ["a single string", ["ok", 3]])
    def test_malformed_texts_are_input_errors(self, scorer: Any, scorable_image: ImageView, texts: Any) -> None:
        with pytest.raises(InputError):
            scorer.score(scorable_image, texts)

    @pytest.mark.parametrize("bad", ["missing", "empty", "textfile", "garbage", "truncated", "directory"])
    def test_bad_image_file_is_input_error(
        self, scorer: Any, scorable_image: ImageView, bad_files: dict[str, Path], bad: str
    ) -> None:
        view = ImageView(path=str(bad_files[bad]), cues=scorable_image.cues)
        with pytest.raises(InputError):
            scorer.score(view, TEXTS)

    def test_langchain_tool(self, scorer: Any, scorable_image: ImageView) -> None:
        tool = scorer.as_langchain_tool()
        assert tool.name == "score_image_text"
        assert set(tool.args) == {"image_path", "texts"}
        if scorable_image.path is None:
            return  # a chat tool only knows paths
        out = tool.invoke({"image_path": scorable_image.path, "texts": TEXTS[:2]})
        assert out["scale"] == scorer.scale
        assert [s["text"] for s in out["scores"]] == TEXTS[:2]
        assert all(isinstance(s["score"], float) for s in out["scores"])
