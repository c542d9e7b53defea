"""OpenAICompatibleLLM against a real OpenAI-compatible server: llama-cpp-python's, on Gemma.

The server is started with ``--model_alias mel-lora`` so the model name plays the part a vLLM
LoRA adapter's name plays. llama-cpp-python's server ignores vLLM's ``structured_outputs``;
the structured path is checked on what the client sends. Its echoed log-probabilities are
slow (it sorts the whole 262k vocabulary in Python per token), so prompts here are short.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from groundgraph.tools.errors import ToolError
from groundgraph.tools.llm import LlamaCppLLM, OpenAICompatibleLLM, packaged_gemma_gguf

pytestmark = pytest.mark.integration

ALIAS = "mel-lora"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", packaged_gemma_gguf(), "--model_alias", ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--n_threads", "1",
           "--chat_format", "gemma"]  # the base GGUF names no chat template
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up in 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _recording_client(sent: list[dict[str, Any]]) -> httpx.Client:
    def record(request: httpx.Request) -> None:
        sent.append({"path": request.url.path,
                     "body": json.loads(request.content) if request.content else None})

    return httpx.Client(event_hooks={"request": [record]})


@pytest.fixture(scope="module")
def in_process() -> LlamaCppLLM:
    return LlamaCppLLM().load()


def test_model_name_routing(server: str) -> None:
    sent: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(base_url=server, choice_mode="logprobs", http_client=_recording_client(sent))
    assert llm.model_name() == ALIAS  # discovered from /v1/models
    llm.choose("Paris is in", ["France", "Peru"])
    assert [s["body"]["model"] for s in sent if s["body"]] == [ALIAS, ALIAS]


def test_logprobs_choice_matches_in_process_scores(server: str, in_process: LlamaCppLLM) -> None:
    llm = OpenAICompatibleLLM(base_url=server, model=ALIAS, choice_mode="logprobs", timeout=300)
    prompt, options = "Paris is in", ["France", "Peru"]
    remote = llm.choose(prompt, options)
    local = in_process.choose(prompt, options)
    assert remote.option == local.option == "France"
    assert remote.method == "loglik"
    # the same model and tokens; the server's batches differ from ours, so allow numeric noise
    assert remote.scores == pytest.approx(local.scores, abs=0.05)

    calibrated = llm.choose(prompt, options, calibration_prompt="It is in")
    local_cal = in_process.choose(prompt, options, calibration_prompt="It is in")
    assert calibrated.method == "calibrated_loglik"
    assert calibrated.option in options
    assert calibrated.scores == pytest.approx(local_cal.scores, abs=0.05)


def test_generate_returns_text(server: str) -> None:
    llm = OpenAICompatibleLLM(base_url=server, model=ALIAS, timeout=300)
    text = llm.generate("Name one colour.", max_tokens=8)
    assert isinstance(text, str) and text.strip()


def test_structured_request_carries_the_choice(server: str) -> None:
    sent: list[dict[str, Any]] = []
    llm = OpenAICompatibleLLM(base_url=server, model=ALIAS, timeout=300, http_client=_recording_client(sent))
    options = ["France", "Peru"]
    try:
        outcome: Any = llm.choose("Paris is in", options)
    except ToolError as exc:  # this server ignores structured_outputs and may say anything
        outcome = exc
    body = sent[-1]["body"]
    assert sent[-1]["path"] == "/v1/completions"
    assert body["model"] == ALIAS
    assert body["structured_outputs"] == {"choice": [" France", " Peru"]}
    assert body["temperature"] == 0.0 and body["prompt"] == "Paris is in"
    if isinstance(outcome, ToolError):
        assert "none of the options" in str(outcome)
    else:
        assert outcome.option in options and outcome.method == "structured_choice"

