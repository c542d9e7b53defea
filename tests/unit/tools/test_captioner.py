"""Cue sources: precomputed cues, and the transformers captioner when no model is configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conformance.cues_spec import CueSourceConformance
from conformance.images import bad_image_files, render_text_image

from groundgraph.tools.captioner import PrecomputedCues, TransformersCaptioner
from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.images import ImageView

AZURE_CUES = {
    "caption": "a man standing in front of a building",
    "tags": "person, outdoor, building",
    "ocr": "",
    "dense_captions": "a man wearing a suit; a brick wall",
}


class TestPrecomputedConformance(CueSourceConformance):
    @pytest.fixture
    def cue_source(self) -> PrecomputedCues:
        return PrecomputedCues()

    @pytest.fixture
    def described_image(self) -> ImageView:
        return ImageView(cues=AZURE_CUES)

    @pytest.fixture
    def produced_kinds(self) -> list[str]:
        return ["caption", "tags", "dense_captions"]


class TestUnconfiguredCaptionerConformance(CueSourceConformance):
    @pytest.fixture
    def cue_source(self) -> TransformersCaptioner:
        return TransformersCaptioner()

    @pytest.fixture
    def described_image(self, tmp_path: Path) -> ImageView:
        return ImageView(path=str(render_text_image(tmp_path / "img.png")))

    @pytest.fixture
    def produced_kinds(self) -> list[str]:
        return []


# --- precomputed -----------------------------------------------------------------------------
def test_precomputed_serves_the_cues_that_came_with_the_image() -> None:
    cues = PrecomputedCues().describe(ImageView(cues=AZURE_CUES), ["tags", "caption"])
    assert [(c.kind, c.text) for c in cues] == [("tags", AZURE_CUES["tags"]), ("caption", AZURE_CUES["caption"])]
    assert all(c.source == "cues.precomputed" and c.reason == "" for c in cues)


def test_precomputed_empty_and_missing_kinds_say_why() -> None:
    ocr, objects = PrecomputedCues().describe(ImageView(cues=AZURE_CUES), ["ocr", "objects"])
    assert ocr.text is None and "empty" in ocr.reason
    assert objects.text is None and "not among" in objects.reason


def test_precomputed_strips_whitespace_only_cues_to_none() -> None:
    [cue] = PrecomputedCues().describe(ImageView(cues={"caption": "  \n "}), ["caption"])
    assert cue.text is None


def _cues_file(tmp_path: Path, records: list[dict[str, object]]) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    return path


def test_precomputed_looks_up_cues_by_image_file_name(tmp_path: Path) -> None:
    path = _cues_file(
        tmp_path,
        [
            {"id": "r1", "image": "123.jpg", "visual_cues": {"caption": "a tiger", "tags": "animal"}},
            {"id": "r2", "image": "456.jpg", "visual_cues": {"caption": "a car"}},
        ],
    )
    source = PrecomputedCues(cues_file=str(path))
    cap, tags = source.describe(ImageView(path="/data/images/123.jpg"), ["caption", "tags"])
    assert (cap.text, tags.text) == ("a tiger", "animal")
    # cues that came with the input win over the file's
    [cap] = source.describe(ImageView(path="123.jpg", cues={"caption": "a big cat"}), ["caption"])
    assert cap.text == "a big cat"
    [cap] = source.describe(ImageView(path="789.jpg"), ["caption"])
    assert cap.text is None


def test_precomputed_bad_cues_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        PrecomputedCues(cues_file=str(tmp_path / "nope.jsonl")).describe(ImageView(path="a.jpg"), ["caption"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "visual_cues": {}}\nnot json\n')
    with pytest.raises(ConfigError, match="line 2"):
        PrecomputedCues(cues_file=str(bad)).load()


def test_precomputed_reads_the_real_mel_record_format(tmp_path: Path) -> None:
    record = {
        "id": "x",
        "dataset": "wikimel",
        "mention": "Obama",
        "context": "Obama",
        "image": "1.jpg",
        "visual_cues": {"ocr": "", "caption": "a man", "dense_captions": "a man", "tags": "person"},
        "candidates": [],
        "gold": {"id": "Q76", "name": "Barack Obama"},
        "gold_in_candidates": True,
    }
    source = PrecomputedCues(cues_file=str(_cues_file(tmp_path, [record])))
    assert source.describe(ImageView(path="1.jpg"), ["tags"])[0].text == "person"


# --- transformers, unconfigured ----------------------------------------------------------------
def test_unconfigured_captioner_describes_with_reasons_instead_of_failing() -> None:
    captioner = TransformersCaptioner()
    cap, tags = captioner.describe(ImageView(path="whatever.jpg"), ["caption", "tags"])
    assert cap.text is None and "no captioner configured" in cap.reason
    assert tags.text is None and "only ['caption']" in tags.reason
    assert not captioner.loaded


def test_unconfigured_captioner_refuses_to_load_or_caption(tmp_path: Path) -> None:
    image = render_text_image(tmp_path / "img.png")
    with pytest.raises(ToolUnavailableError, match="no captioner configured"):
        TransformersCaptioner().load()
    with pytest.raises(ToolUnavailableError, match="no captioner configured"):
        TransformersCaptioner().caption([image])


@pytest.mark.parametrize(
    "config, match",
    [
        ({"model": "/no/such/captioner"}, "model dir not found"),
        ({"model": "./missing"}, "model dir not found"),
        ({"model": " "}, "model is empty"),
        ({"device": "gpu"}, "device"),
        ({"no_such_field": 1}, "no_such_field"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_captioner_bad_configs_are_config_errors(config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TransformersCaptioner(config)


def test_a_hub_id_is_accepted_only_as_an_explicit_setting() -> None:
    assert TransformersCaptioner(model="Salesforce/blip-image-captioning-base").config.model == (
        "Salesforce/blip-image-captioning-base"
    )
    assert TransformersCaptioner().config.model is None


def test_a_dir_that_holds_no_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ToolUnavailableError, match="holds no model"):
        TransformersCaptioner(model=str(tmp_path)).load()


@pytest.mark.parametrize("bad", ["missing", "textfile", "truncated"])
def test_caption_refuses_bad_images_before_loading(tmp_path: Path, bad: str) -> None:
    captioner = TransformersCaptioner(model=str(tmp_path))  # no model there: loading would fail
    with pytest.raises(InputError, match="image 0"):
        captioner.caption([bad_image_files(tmp_path / "bad")[bad]])
    with pytest.raises(InputError):
        captioner.describe(ImageView(path=str(bad_image_files(tmp_path / "bad")[bad])), ["caption"])
    assert not captioner.loaded


def test_configured_captioner_without_image_file_says_so(tmp_path: Path) -> None:
    [cue] = TransformersCaptioner(model=str(tmp_path)).describe(ImageView(cues=AZURE_CUES), ["caption"])
    assert cue.text is None and "no image file" in cue.reason
