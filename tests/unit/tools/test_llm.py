"""LLM tools without models: option checks, scoring arithmetic, request construction, errors."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conformance.llm_spec import LLMConformance

from groundgraph.tools.errors import ConfigError, InputError, ToolError, ToolUnavailableError
from groundgraph.tools.llm import (
    LLM,
    LlamaCppLLM,
    OpenAICompatibleLLM,
    VllmConfig,
    VllmLLM,
    check_options,
    combine_scores,
    continuation,
    continuation_logprobs,
    echo_logprobs_body,
    match_choice,
    max_choice_tokens,
    pick,
    plan_rounds,
    structured_choice_body,
    vllm_choice_request,
    vllm_generate_request,
    vllm_llm_kwargs,
    vllm_lora_args,
)
from groundgraph.tools.registry import tool_class

# --- options and pick -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[], ["Paris", ""], ["  "], ["Paris", 3], "Paris"])
def test_check_options_rejects(bad: Any) -> None:
    with pytest.raises(InputError):
        check_options(bad)


def test_check_options_keeps_order_and_duplicates() -> None:
    assert check_options(("b", "a", "b")) == ["b", "a", "b"]


def test_pick_takes_best_and_first_on_ties() -> None:
    assert pick(["a", "b", "c"], [0.1, 0.5, 0.2], "m").option == "b"
    tie = pick(["a", "b", "c"], [0.3, 0.7, 0.7], "m")
    assert (tie.index, tie.option, tie.scores, tie.method) == (1, "b", [0.3, 0.7, 0.7], "m")
    assert pick(["x", "y"], [float("-inf"), float("-inf")], "m").index == 0


@pytest.mark.parametrize(
    ("prompt", "option", "expected"),
    [
        ("The capital of France is", "Paris", ("The capital of France is", " Paris")),
        ("The capital of France is  ", " Paris ", ("The capital of France is", " Paris")),
        ("Answer:\n", "Paris", ("Answer:\n", "Paris")),
        ("", "Paris", ("", "Paris")),
    ],
)
def test_continuation_rule(prompt: str, option: str, expected: tuple[str, str]) -> None:
    assert continuation(prompt, option) == expected


# --- likelihood arithmetic ------------------------------------------------------------------


def test_combine_scores_variants() -> None:
    main = [[-1.0, -1.0], [-3.0]]  # option 0: two tokens; option 1: one token
    calib = [[-0.5, -0.5], [-4.0]]
    assert combine_scores(main) == ([-2.0, -3.0], "loglik")
    assert combine_scores(main, length_normalize=True) == ([-1.0, -3.0], "mean_loglik")
    # calibrated: log P(option | prompt) - log P(option | calibration prompt)
    assert combine_scores(main, calib) == ([-1.0, 1.0], "calibrated_loglik")
    assert combine_scores(main, calib, length_normalize=True) == ([-0.5, 1.0], "calibrated_mean_loglik")
    with pytest.raises(ValueError):
        combine_scores(main, calib[:1])
    with pytest.raises(ValueError):
        combine_scores([[]])


def test_plan_rounds_shares_prefixes_and_respects_limits() -> None:
    # two prefixes of 10 and 4 tokens; continuations of 3, 1, 2 tokens under each
    pairs = [(0, 3), (0, 1), (0, 2), (1, 3), (1, 1), (1, 2)]
    assert plan_rounds([10, 4], pairs, n_ctx=100, max_seqs=64) == [[0, 1, 2, 3, 4, 5]]
    # cells: 10 + 2 + 0 + 1 = 13 for prefix 0; prefix 1 would need 4 + 2 more -> a new round
    assert plan_rounds([10, 4], pairs, n_ctx=14, max_seqs=64) == [[0, 1, 2], [3, 4, 5]]
    assert plan_rounds([10, 4], pairs, n_ctx=100, max_seqs=2) == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(InputError, match="n_ctx"):
        plan_rounds([10], [(0, 5)], n_ctx=12, max_seqs=4)


class FakeScorer:
    """Stands in for the llama.cpp scorer: characters are tokens; log-probs come from a table."""

    def __init__(self, table: dict[tuple[str, str], list[float]]) -> None:
        self.table = table
        self.calls: list[tuple[list[str], list[tuple[int, str]]]] = []

    def prefix_tokens(self, context: str) -> list[int]:
        return [ord(c) for c in context] or [0]

    def continuation_tokens(self, context: str, prefix: list[int], text: str) -> list[int]:
        return [ord(c) for c in text]

    def logprobs(self, prefixes: list[list[int]], pairs: list[tuple[int, list[int]]]) -> list[list[float]]:
        texts = ["".join(map(chr, p)) for p in prefixes]
        self.calls.append((texts, [(p, "".join(map(chr, t))) for p, t in pairs]))
        return [self.table[(texts[p], "".join(map(chr, t)))] for p, t in pairs]


def _fake_llama(table: dict[tuple[str, str], list[float]], **config: Any) -> tuple[LlamaCppLLM, FakeScorer]:
    llm = LlamaCppLLM(**config)
    scorer = FakeScorer(table)
    llm._model = scorer  # the loaded model slot: no GGUF is read
    return llm, scorer


def test_calibrated_choice_with_a_fake_scorer() -> None:
    table = {
        ("Q: capital of France? A:", " Paris"): [-2.0, -1.0],
        ("Q: capital of France? A:", " Lyon"): [-1.5],
        ("A:", " Paris"): [-4.0, -2.0],
        ("A:", " Lyon"): [-0.5],
    }
    llm, scorer = _fake_llama(table)
    plain = llm.choose("Q: capital of France? A:", ["Paris", "Lyon"])
    assert (plain.option, plain.scores, plain.method) == ("Lyon", [-3.0, -1.5], "loglik")
    calibrated = llm.choose("Q: capital of France? A: ", ["Paris", "Lyon"], calibration_prompt="A:")
    # Paris: -3 - (-6) = 3; Lyon: -1.5 - (-0.5) = -1
    assert (calibrated.option, calibrated.scores, calibrated.method) == ("Paris", [3.0, -1.0], "calibrated_loglik")
    # one scorer call holds both prefixes, and the calibration scores the same option tokens
    prefixes, pairs = scorer.calls[-1]
    assert prefixes == ["Q: capital of France? A:", "A:"]
    assert pairs == [(0, " Paris"), (0, " Lyon"), (1, " Paris"), (1, " Lyon")]


def test_calibration_log_probs_are_cached() -> None:
    table = {("Q1", " Paris"): [-1.0], ("Q1", " Lyon"): [-2.0], ("Q2", " Paris"): [-3.0],
             ("Q2", " Nice"): [-0.1], ("A:", " Paris"): [-4.0], ("A:", " Lyon"): [-0.5], ("A:", " Nice"): [-1.0]}
    llm, scorer = _fake_llama(table)
    first = llm.choose("Q1", ["Paris", "Lyon"], calibration_prompt="A:")
    second = llm.choose("Q2", ["Paris", "Nice"], calibration_prompt="A:")
    # the second call scores only the calibration pair it has not seen
    assert scorer.calls[-1] == (["Q2", "A:"], [(0, " Paris"), (0, " Nice"), (1, " Nice")])
    assert (first.scores, second.scores) == ([3.0, -1.5], [1.0, 0.9])
    llm.choose("Q1", ["Lyon"], calibration_prompt="A:")
    assert scorer.calls[-1] == (["Q1"], [(0, " Lyon")])
    uncached, scorer2 = _fake_llama(table, calibration_cache_size=0)
    uncached.choose("Q1", ["Lyon"], calibration_prompt="A:")
    uncached.choose("Q1", ["Lyon"], calibration_prompt="A:")
    assert scorer2.calls[-1] == (["Q1", "A:"], [(0, " Lyon"), (1, " Lyon")])


def test_length_normalised_choice_with_a_fake_scorer() -> None:
    table = {("p", " long option"): [-1.0, -1.0, -1.0], ("p", " short"): [-2.5]}
    llm, _ = _fake_llama(table, length_normalize=True)
    c = llm.choose("p", ["long option", "short"])
    assert (c.option, c.scores, c.method) == ("long option", [-1.0, -2.5], "mean_loglik")


def test_fake_scorer_errors_become_tool_errors() -> None:
    llm, _ = _fake_llama({})
    with pytest.raises(ToolError, match="score options"):
        llm.choose("p", ["not in the table"])


# --- conformance of the llama_cpp backend's plumbing over a fake scorer ----------------------


class _FakeChat:
    def create_chat_completion(self, messages: list[dict[str, str]], **kw: Any) -> dict[str, Any]:
        return {"choices": [{"message": {"content": "echo: " + messages[-1]["content"][:10]}}]}


class _AnyTableScorer(FakeScorer):
    """Scores any option: earlier options score higher, longer ones have more tokens."""

    def __init__(self) -> None:
        super().__init__({})

    def logprobs(self, prefixes: list[list[int]], pairs: list[tuple[int, list[int]]]) -> list[list[float]]:
        return [[-0.1 * (i + 1)] * max(1, len(t) // 3) for i, (_, t) in enumerate(pairs)]


class TestFakeLlamaCppConformance(LLMConformance):
    registered = True
    can_generate = True

    @pytest.fixture
    def llm(self) -> Any:
        llm = LlamaCppLLM()
        llm._model = _AnyTableScorer()
        llm._chat._value = _FakeChat()
        return llm


# --- OpenAI-compatible server: request bodies and error mapping -----------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, sent: list[dict[str, Any]]) -> httpx.Client:
    def record(request: httpx.Request) -> httpx.Response:
        sent.append({"path": request.url.path, "body": json.loads(request.content) if request.content else None,
                     "auth": request.headers.get("authorization")})
        return handler(request)

    return httpx.Client(transport=httpx.MockTransport(record))


def _completion(texts: list[str], logprobs: list[dict[str, Any] | None] | None = None) -> httpx.Response:
    logprobs = logprobs or [None] * len(texts)
    return httpx.Response(200, json={
        "id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
        "choices": [{"index": i, "text": t, "finish_reason": "stop", "logprobs": lp}
                    for i, (t, lp) in enumerate(zip(texts, logprobs, strict=True))]})


def test_structured_choice_request_body_routes_to_the_adapter() -> None:
    sent: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(base_url="http://vllm.test/v1", model="mel-lora", api_key="sk-secret",
                              http_client=_client(lambda r: _completion([" Berlin"]), sent))
    choice = llm.choose("The capital of Germany is ", ["Paris", "Berlin", "Rome"])
    assert (choice.index, choice.option, choice.scores, choice.method) == (
        1, "Berlin", [0.0, 1.0, 0.0], "structured_choice")
    assert len(sent) == 1
    assert sent[0]["path"] == "/v1/completions"
    assert sent[0]["auth"] == "Bearer sk-secret"
    assert sent[0]["body"] == {
        "model": "mel-lora",  # vLLM picks the LoRA adapter by this name
        "prompt": "The capital of Germany is",
        "temperature": 0.0,
        "max_tokens": len(" Berlin") + 4,
        "structured_outputs": {"choice": [" Paris", " Berlin", " Rome"]},
    }


def test_structured_choice_body_helper_matches() -> None:
    body = structured_choice_body("a", "Q:\n", ["x", "yy"])
    assert body == {"model": "a", "prompt": "Q:\n", "temperature": 0.0, "max_tokens": 6,
                    "extra_body": {"structured_outputs": {"choice": ["x", "yy"]}}}
    assert max_choice_tokens(["é"]) == 2 + 4  # two UTF-8 bytes


def test_structured_choice_outside_the_options_is_a_tool_error() -> None:
    sent: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(model="m", http_client=_client(lambda r: _completion(["Ignore that. Z"]), sent))
    with pytest.raises(ToolError, match="none of the options.*logprobs"):
        llm.choose("Pick one:", ["A", "B"])


def test_match_choice_exact_then_whitespace() -> None:
    assert match_choice(" B", [" A", " B"]) == 1
    assert match_choice("B", [" A", " B"]) == 1
    assert match_choice("B!", [" A", " B"]) is None


def _echo_server(logprob_of: Callable[[str, str], float]) -> Handler:
    """A /completions fake that echoes a prompt word by word with log-probabilities."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        out = []
        for prompt in prompts:
            tokens, offsets, lps, pos = [], [], [], 0
            for word in prompt.split(" "):
                tok = word if pos == 0 else " " + word
                tokens.append(tok)
                offsets.append(pos)
                lps.append(logprob_of(prompt[:pos], tok))
                pos += len(tok)
            tokens.append("!")  # the one generated token, which must be ignored
            offsets.append(pos)
            lps.append(-99.0)
            lps[0] = None  # as OpenAI servers do
            out.append({"tokens": tokens, "text_offset": offsets, "token_logprobs": lps, "top_logprobs": None})
        return _completion(["x"] * len(prompts), out)

    return handle


def _logprob_of(context: str, token: str) -> float:
    table = {(" Paris", True): -1.0, (" Lyon", True): -0.5, (" Paris", False): -3.0, (" Lyon", False): -0.2}
    return table.get((token, "France" in context), -0.01)


@pytest.mark.parametrize("batch_prompts", [False, True])
def test_logprobs_choice_is_calibrated(batch_prompts: bool) -> None:
    sent: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(model="base", choice_mode="logprobs", batch_prompts=batch_prompts,
                              http_client=_client(_echo_server(_logprob_of), sent))
    plain = llm.choose("The biggest city in France is", ["Paris", "Lyon"])
    assert (plain.option, plain.scores, plain.method) == ("Lyon", [-1.0, -0.5], "loglik")
    calibrated = llm.choose("The biggest city in France is", ["Paris", "Lyon"], calibration_prompt="It is")
    assert calibrated.method == "calibrated_loglik"
    assert calibrated.scores == pytest.approx([2.0, -0.3])
    assert calibrated.option == "Paris"
    prompts = [p for s in sent[-(1 if batch_prompts else 4):] for p in (
        s["body"]["prompt"] if isinstance(s["body"]["prompt"], list) else [s["body"]["prompt"]])]
    assert prompts == ["The biggest city in France is Paris", "The biggest city in France is Lyon",
                       "It is Paris", "It is Lyon"]
    assert all(s["body"]["model"] == "base" and "structured_outputs" not in s["body"] for s in sent)


def _fake_server(request: httpx.Request) -> httpx.Response:
    """An OpenAI-compatible fake: chat, echo log-probabilities, and vLLM's structured choice."""
    body = json.loads(request.content)
    if request.url.path.endswith("/chat/completions"):
        return httpx.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Blue."}}]})
    if "structured_outputs" in body:  # decode under the constraint: here, the last choice
        return _completion([body["structured_outputs"]["choice"][-1]])
    return _echo_server(_logprob_of)(request)


class TestFakeOpenAIServerConformance(LLMConformance):
    @pytest.fixture(params=["structured", "logprobs"])
    def llm(self, request: pytest.FixtureRequest) -> Any:
        return OpenAICompatibleLLM(model="m", choice_mode=request.param, http_client=_client(_fake_server, []))


def test_continuation_logprobs_by_offsets() -> None:
    # "ab cd": tokens "ab" (0), " c" (2), "d" (4), generated "!" (5); option text is [2, 5)
    assert continuation_logprobs([None, -1.0, -2.0, -9.0], [0, 2, 4, 5], 2, 5) == [-1.0, -2.0]
    with pytest.raises(ToolError):
        continuation_logprobs([None, -1.0], [0, 2], 5, 6)


def test_echo_body() -> None:
    assert echo_logprobs_body("m", ["a"]) == {"model": "m", "prompt": "a", "max_tokens": 1, "temperature": 0.0,
                                              "echo": True, "logprobs": 1}
    assert echo_logprobs_body("m", ["a", "b"])["prompt"] == ["a", "b"]


def test_generate_uses_chat_endpoint() -> None:
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi."}}]})

    llm = OpenAICompatibleLLM(model="chat-lora", http_client=_client(handle, sent))
    assert llm.generate("Say hi", max_tokens=8, stop="\n") == "Hi."
    assert sent[0]["path"] == "/v1/chat/completions"
    assert sent[0]["body"] == {"model": "chat-lora", "messages": [{"role": "user", "content": "Say hi"}],
                               "max_tokens": 8, "temperature": 0.0, "stop": ["\n"]}


def test_model_name_defaults_to_the_first_listed() -> None:
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "served-base", "object": "model", "created": 0, "owned_by": "me"}]})
        return _completion([" B"])

    llm = OpenAICompatibleLLM(http_client=_client(handle, sent))
    assert llm.choose("x", ["A", "B"]).option == "B"
    assert llm.model_name() == "served-base"
    assert [s["path"] for s in sent] == ["/v1/models", "/v1/completions"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_refusing_connections_is_a_tool_error() -> None:
    llm = OpenAICompatibleLLM(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", max_retries=1,
                              timeout=5)
    with pytest.raises(ToolError, match=r"cannot reach the server at http://127\.0\.0\.1:\d+/v1 after 1 retries"):
        llm.choose("x", ["A", "B"])
    with pytest.raises(ToolError, match="cannot reach"):
        llm.generate("x")


def test_timeout_and_http_errors_are_tool_errors() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    llm = OpenAICompatibleLLM(model="m", max_retries=0, timeout=1, http_client=_client(slow, []))
    with pytest.raises(ToolError, match="did not answer within 1.0 s"):
        llm.choose("x", ["A", "B"])

    calls: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(model="missing-lora", max_retries=0, http_client=_client(
        lambda r: httpx.Response(404, json={"error": {"message": "The model `missing-lora` does not exist."}}),
        calls))
    with pytest.raises(ToolError, match="HTTP 404.*missing-lora"):
        llm.choose("x", ["A", "B"])


def test_api_key_is_never_shown() -> None:
    llm = OpenAICompatibleLLM(model="m", api_key="sk-very-secret")
    assert "sk-very-secret" not in json.dumps(llm.describe())
    assert "sk-very-secret" not in repr(llm.config)


# --- vLLM in process: request construction without vLLM ---------------------------------------


def test_vllm_request_construction() -> None:
    cfg = VllmConfig(model="/models/base", lora_path="/adapters/mel", lora_name="mel", max_lora_rank=32)
    assert vllm_llm_kwargs(cfg) == {
        "model": "/models/base", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.85, "dtype": "auto",
        "seed": 0, "enforce_eager": False, "enable_lora": True, "max_lora_rank": 32, "max_loras": 1}
    assert vllm_lora_args(cfg) == ("mel", 1, "/adapters/mel")
    prompts, sampling, structured = vllm_choice_request("Entity:", ["Paris (city)", "Paris Hilton"])
    assert prompts == ["Entity:"]
    assert sampling == {"temperature": 0.0, "max_tokens": len(" Paris Hilton") + 4}
    assert structured == {"choice": [" Paris (city)", " Paris Hilton"]}
    messages, gen = vllm_generate_request("hi", 16, 0.0, ["\n"])
    assert messages == [{"role": "user", "content": "hi"}]
    assert gen == {"temperature": 0.0, "max_tokens": 16, "stop": ["\n"]}


def test_vllm_without_lora_or_vllm() -> None:
    cfg = VllmConfig(model="/models/base", max_model_len=4096)
    assert "enable_lora" not in vllm_llm_kwargs(cfg) and vllm_llm_kwargs(cfg)["max_model_len"] == 4096
    assert vllm_lora_args(cfg) is None
    with pytest.raises(ConfigError, match="model"):
        VllmLLM()
    if "vllm" in sys.modules or _importable("vllm"):
        pytest.skip("vLLM is installed here; the missing-package path cannot be shown")
    with pytest.raises(ToolUnavailableError, match=r"groundgraph\[gpu\]"):
        VllmLLM(model="/models/base").choose("x", ["A", "B"])


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_importing_the_module_does_not_import_vllm_or_load_models() -> None:
    assert "vllm" not in sys.modules
    llm = LlamaCppLLM()
    assert not llm.loaded and not llm.chat_loaded


# --- input errors, registry, LangChain faces ---------------------------------------------------


@pytest.mark.parametrize("cls", [LlamaCppLLM, OpenAICompatibleLLM])
def test_input_errors_before_any_model(cls: type) -> None:
    llm = cls()
    with pytest.raises(InputError, match="prompt is empty"):
        llm.choose("  ", ["A"])
    with pytest.raises(InputError, match="at least one option"):
        llm.choose("x", [])
    with pytest.raises(InputError, match="prompt is empty"):
        llm.generate("")
    with pytest.raises(InputError, match="max_tokens"):
        llm.generate("x", max_tokens=0)
    assert not llm.loaded


def test_registered_and_protocol() -> None:
    for name, cls in [("llm.llama_cpp", LlamaCppLLM), ("llm.openai", OpenAICompatibleLLM), ("llm.vllm", VllmLLM)]:
        assert tool_class(name) is cls
    assert isinstance(LlamaCppLLM(), LLM) and isinstance(OpenAICompatibleLLM(), LLM)
    with pytest.raises(ConfigError, match="choice_mode"):
        OpenAICompatibleLLM(choice_mode="guided")
    with pytest.raises(ConfigError, match="n_ctx"):
        LlamaCppLLM(n_ctx=1)


def test_langchain_tools_call_through() -> None:
    llm, _ = _fake_llama({("Pick:", " A"): [-1.0], ("Pick:", " B"): [-0.5]})
    llm._chat._value = _FakeChat()
    choose_tool, gen_tool = llm.as_langchain_tools()
    assert choose_tool.name == "choose_option" and gen_tool.name == "generate_text"
    out = choose_tool.invoke({"prompt": "Pick:", "options": ["A", "B"]})
    assert out["option"] == "B" and out["scores"] == [-1.0, -0.5]
    assert gen_tool.invoke({"prompt": "hello"}) == "echo: hello"
