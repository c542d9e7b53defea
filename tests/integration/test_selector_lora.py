"""LoRA selector training on CPU with a randomly initialised tiny Llama-style model.

No reachable package ships a causal LM in Hugging Face format, so the test builds one: a
byte-level BPE tokenizer trained on the records' own text and a 2-layer Llama config, saved to a
temp dir. The recipe, the data and the loading path are the ones used for Llama-3-8B on a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from groundgraph.graphs.i2cr.selector_data import instruction_examples, selection_prompt  # noqa: E402
from groundgraph.tools.llm_transformers import TransformersLLM  # noqa: E402
from groundgraph.tools.lora_training import Example, LoraTrainConfig, train_lora  # noqa: E402

pytestmark = pytest.mark.integration


def _records(fixtures_dir: Path) -> list[dict]:
    path = Path(__file__).parents[2] / "agents" / "data" / "demo_mel.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [ex["prompt"] + " " + ex["completion"] for ex in instruction_examples(_records(Path()))]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>",
                                                                                        "<pad>"]))
    from tokenizers import decoders

    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    d = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_instruction_examples_complete_with_the_gold_name() -> None:
    records = _records(Path())
    examples = instruction_examples(records)
    assert len(examples) == sum(r["gold_in_candidates"] for r in records)
    for ex, r in zip(examples, [r for r in records if r["gold_in_candidates"]], strict=True):
        assert ex["completion"] == r["gold"]["name"]
        assert r["mention"] in ex["prompt"]
        assert all(c["name"] in ex["prompt"] for c in r["candidates"])


def test_lora_training_lowers_the_loss_and_the_adapter_loads_back(tiny_llama: Path, tmp_path: Path) -> None:
    records = _records(Path())
    examples = [Example(**e) for e in instruction_examples(records)]
    config = LoraTrainConfig(rank=8, alpha=16, learning_rate=1e-2, max_steps=24, batch_size=2, grad_accumulation=1,
                             eval_fraction=0.2, eval_every=12, max_length=512)
    result = train_lora(str(tiny_llama), examples, tmp_path / "adapter", config)
    first, last = sum(result.train_loss[:4]) / 4, sum(result.train_loss[-4:]) / 4
    assert last < first - 0.25, result.train_loss  # nats per token, mean of 4 steps; seeded
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "checkpoint-12" / "adapter_config.json").is_file()

    llm = TransformersLLM(model=str(tiny_llama), adapter=str(tmp_path / "adapter"))
    r = records[0]
    names = [c["name"] for c in r["candidates"]]
    choice = llm.choose(selection_prompt(r["mention"], r["context"], r["visual_cues"], r["candidates"]), names)
    assert choice.option in names and len(choice.scores) == len(names)
    assert type(llm.model()[0]).__name__.startswith("Peft")
