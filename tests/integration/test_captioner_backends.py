"""The transformers captioner on tiny randomly initialised BLIP and GIT models saved to a temporary
dir with save_pretrained, each with a processor built offline (a WordPiece vocabulary written here).

No captioner weights ship in any reachable package. To make the output checkable, each model's
output layer is set to always predict one word, so the expected caption is known exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conformance.cues_spec import CueSourceConformance
from conformance.images import render_text_image
from PIL import Image

from groundgraph.tools.captioner import TransformersCaptioner
from groundgraph.tools.errors import ToolUnavailableError
from groundgraph.tools.images import ImageView

pytestmark = pytest.mark.integration

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "cat", "dog", "red", "sign"]
VOCAB = {w: i for i, w in enumerate(WORDS)}
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 16,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 64,
}


def _tokenizer() -> Any:
    from transformers import BertTokenizer

    return BertTokenizer(vocab=VOCAB, bos_token="[DEC]")  # BLIP's decoder starts from [DEC]


def save_tiny_blip(folder: Path, word: str) -> Path:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    torch.manual_seed(0)
    config = BlipConfig(
        vision_config=TINY_VISION,
        text_config={
            **TINY_TEXT,
            "vocab_size": len(VOCAB),
            "bos_token_id": VOCAB["[DEC]"],
            "pad_token_id": VOCAB["[PAD]"],
            "sep_token_id": VOCAB["[SEP]"],
            "eos_token_id": VOCAB["[SEP]"],
        },
        projection_dim=16,
    )
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():
        head = model.text_decoder.cls.predictions.decoder
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[VOCAB[word]] = 10.0
    model.save_pretrained(folder)
    BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=_tokenizer()
    ).save_pretrained(folder)
    return folder


def save_tiny_git(folder: Path, word: str) -> Path:
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    torch.manual_seed(0)
    config = GitConfig(
        vision_config=TINY_VISION,
        vocab_size=len(VOCAB),
        bos_token_id=VOCAB["[CLS]"],
        eos_token_id=VOCAB["[SEP]"],
        pad_token_id=VOCAB["[PAD]"],
        **TINY_TEXT,
    )
    model = GitForCausalLM(config)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.fill_(-10.0)
        model.output.bias[VOCAB[word]] = 10.0
    model.save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(image_processor=image_processor, tokenizer=_tokenizer()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("captioners")
    return {"blip": save_tiny_blip(root / "blip", "cat"), "git": save_tiny_git(root / "git", "dog")}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_text_image(tmp_path_factory.mktemp("caption_images") / "img.png")


@pytest.fixture(scope="module", params=["blip", "git"])
def captioner(request: pytest.FixtureRequest, models: dict[str, Path]) -> TransformersCaptioner:
    return TransformersCaptioner(model=str(models[request.param]), max_new_tokens=3).load()


class TestTransformersCaptionerConformance(CueSourceConformance):
    @pytest.fixture
    def cue_source(self, captioner: TransformersCaptioner) -> TransformersCaptioner:
        return captioner

    @pytest.fixture
    def described_image(self, image: Path) -> ImageView:
        return ImageView(path=str(image))

    @pytest.fixture
    def produced_kinds(self) -> list[str]:
        return ["caption"]


@pytest.mark.parametrize("name, caption", [("blip", "cat cat cat"), ("git", "dog dog dog")])
def test_captions_come_from_the_saved_model(models: dict[str, Path], image: Path, name: str, caption: str) -> None:
    captioner = TransformersCaptioner(model=str(models[name]), max_new_tokens=3)
    [cue, tags] = captioner.describe(ImageView(path=str(image)), ["caption", "tags"])
    assert cue.text == caption and cue.source == "cues.transformers"
    assert tags.text is None and "only ['caption']" in tags.reason


def test_a_batch_gives_one_caption_per_image_whatever_the_batch_size(models: dict[str, Path], image: Path) -> None:
    pil = Image.open(image).convert("RGB")
    batch = [image, pil, np.asarray(pil), Image.new("RGB", (10, 300), "blue"), str(image)]
    for batch_size in (1, 2, 8):
        captions = TransformersCaptioner(model=str(models["blip"]), max_new_tokens=2, batch_size=batch_size).caption(
            batch
        )
        assert captions == ["cat cat"] * len(batch)


def test_a_prompt_is_continued(models: dict[str, Path], image: Path) -> None:
    captioner = TransformersCaptioner(model=str(models["blip"]), max_new_tokens=2, prompt="a photo of")
    assert captioner.caption([image]) == ["a photo of cat cat"]


def test_beam_search_runs(models: dict[str, Path], image: Path) -> None:
    captioner = TransformersCaptioner(model=str(models["git"]), max_new_tokens=2, num_beams=2)
    assert captioner.caption([image]) == ["dog dog"]


def test_damaged_weights_are_unavailable(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["blip"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ToolUnavailableError, match="could not load"):
        TransformersCaptioner(model=str(broken)).load()


def test_an_explicit_hub_id_is_not_downloaded_while_offline() -> None:
    captioner = TransformersCaptioner(model="Salesforce/blip-image-captioning-base")
    with pytest.raises(ToolUnavailableError, match="blip-image-captioning-base"):
        captioner.load()
