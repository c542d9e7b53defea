"""What every visual cue source must do (the ``CueSource`` protocol of groundgraph.tools.captioner).

Use: subclass ``CueSourceConformance`` as ``class TestXxx(CueSourceConformance)`` and give it
fixtures ``cue_source`` (the backend), ``described_image`` (an ImageView it can describe) and
``produced_kinds`` (the kinds it must give text for on that image; may be empty).
"""

from __future__ import annotations

from typing import Any

import pytest

from groundgraph.tools.captioner import Cue, CueSource
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.images import CUE_KINDS, ImageView
from groundgraph.tools.registry import tool_class


class CueSourceConformance:
    registered = True

    def check_cues(self, source: Any, kinds: list[str], cues: list[Cue]) -> None:
        assert [c.kind for c in cues] == kinds
        for c in cues:
            assert isinstance(c, Cue)
            assert c.source == source.name
            if c.text is None:
                assert c.reason.strip(), f"{c.kind}: no text and no reason"
            else:
                assert c.text == c.text.strip() and c.text

    def test_satisfies_protocol(self, cue_source: Any) -> None:
        assert isinstance(cue_source, CueSource)
        assert cue_source.kind == "cues"
        assert cue_source.name == f"cues.{cue_source.backend}"
        if self.registered:
            assert tool_class(cue_source.name) is type(cue_source)

    def test_unknown_config_field_is_config_error(self, cue_source: Any) -> None:
        with pytest.raises(ConfigError, match="no_such_field"):
            type(cue_source)({**cue_source.config.model_dump(), "no_such_field": 1})

    def test_one_cue_per_kind_in_order(self, cue_source: Any, described_image: ImageView) -> None:
        kinds = [*reversed(CUE_KINDS), "caption"]  # any order, repeats allowed
        self.check_cues(cue_source, kinds, cue_source.describe(described_image, kinds))

    def test_produces_its_kinds(self, cue_source: Any, described_image: ImageView, produced_kinds: list[str]) -> None:
        cues = cue_source.describe(described_image, list(CUE_KINDS))
        with_text = {c.kind for c in cues if c.text is not None}
        assert set(produced_kinds) <= with_text

    def test_unknown_kind_is_a_cue_without_text(self, cue_source: Any, described_image: ImageView) -> None:
        [cue] = cue_source.describe(described_image, ["no_such_kind"])
        assert cue.kind == "no_such_kind" and cue.text is None and cue.reason

    def test_image_with_nothing_gives_reasons_not_errors(self, cue_source: Any) -> None:
        cues = cue_source.describe(ImageView(), list(CUE_KINDS))
        self.check_cues(cue_source, list(CUE_KINDS), cues)
        assert all(c.text is None for c in cues)

    def test_no_kinds_gives_no_cues(self, cue_source: Any, described_image: ImageView) -> None:
        assert cue_source.describe(described_image, []) == []

    @pytest.mark.parametrize("kinds", ["caption", [""], [None]])
    def test_malformed_kinds_are_input_errors(self, cue_source: Any, described_image: ImageView, kinds: Any) -> None:
        with pytest.raises(InputError):
            cue_source.describe(described_image, kinds)

    def test_langchain_tool(self, cue_source: Any, described_image: ImageView) -> None:
        tool = cue_source.as_langchain_tool()
        assert tool.name == "describe_image"
        assert set(tool.args) == {"image_path", "kinds"}
        if described_image.path is None:
            return  # a chat tool only knows paths
        out = tool.invoke({"image_path": described_image.path, "kinds": ["caption", "tags"]})
        assert [c["kind"] for c in out] == ["caption", "tags"]
        assert all(set(c) == {"kind", "text", "reason"} for c in out)
