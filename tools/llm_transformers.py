"""LLM backend on Hugging Face transformers (+ an optional PEFT LoRA adapter), in process.

For the causal LMs that ``groundgraph train selector`` fine-tunes: it loads a base model from a
local directory (or a hub id given explicitly) with the adapter on top and scores options by
likelihood, like the llama.cpp backend. On a GPU the vLLM backends serve the same adapter faster.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import Field

from groundgraph.tools.base import check_device, require_cuda
from groundgraph.tools.errors import ToolUnavailableError
from groundgraph.tools.llm import Choice, LikelihoodConfig, _LLMTool, combine_scores, continuation, pick


class TransformersLLMConfig(LikelihoodConfig):
    model: str = Field(description="base causal LM: a local directory, or a hub id (downloaded only when named here)")
    adapter: str | None = Field(None, description="a PEFT LoRA adapter directory applied on top")
    dtype: str = Field("float32", description="torch dtype of the weights")
    max_length: int = Field(2048, ge=16, description="prompt + option tokens kept (from the right)")


class TransformersLLM(_LLMTool):
    """choose() by (calibrated) option log-likelihood; generate() by greedy or sampled decoding."""

    backend = "transformers"
    Config = TransformersLLMConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._call_lock = threading.Lock()

    def _load(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_device(self.config.device)
        require_cuda(self.config.device, self.name)
        local = Path(self.config.model).is_dir()
        tokenizer = AutoTokenizer.from_pretrained(self.config.model, local_files_only=local)
        model: Any = AutoModelForCausalLM.from_pretrained(self.config.model, local_files_only=local,
                                                     dtype=getattr(torch, self.config.dtype))
        if self.config.adapter:
            if not Path(self.config.adapter).is_dir():
                raise ToolUnavailableError(f"LoRA adapter directory not found: {self.config.adapter}")
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.config.adapter)
        model.to(self.config.device).eval()
        return model, tokenizer

    def _option_logprobs(self, prompt: str, options: list[str]) -> list[list[float]]:
        import torch

        model, tok = self.model()
        rows = []
        for option in options:
            context, text = continuation(prompt, option)
            ctx_ids = tok(context, add_special_tokens=True)["input_ids"] if context else [tok.bos_token_id or 0]
            opt_ids = tok(text, add_special_tokens=False)["input_ids"]
            ids = (ctx_ids + opt_ids)[-self.config.max_length:]
            n_opt = min(len(opt_ids), len(ids) - 1)
            with torch.no_grad():
                logits = model(torch.tensor([ids], device=self.config.device)).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            targets = torch.tensor(ids[1:], device=logp.device)
            token_lp = logp.gather(1, targets[:, None])[:, 0]
            rows.append(token_lp[-n_opt:].tolist())
        return rows

    def _choose(self, prompt: str, options: list[str], calibration_prompt: str | None) -> Choice:
        with self._call_lock:
            lps = self._option_logprobs(prompt, options)
            cal = self._option_logprobs(calibration_prompt, options) if calibration_prompt else None
        scores, method = combine_scores(lps, cal, length_normalize=self.config.length_normalize)
        return pick(options, scores, method)

    def _generate(self, prompt: str, max_tokens: int, temperature: float, stop: list[str]) -> str:
        import torch

        model, tok = self.model()
        messages = [{"role": "user", "content": prompt}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) \
            if getattr(tok, "chat_template", None) else prompt
        ids = tok(text, return_tensors="pt").to(self.config.device)
        with self._call_lock, torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                 temperature=temperature if temperature > 0 else None,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        reply = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        for s in stop:
            reply = reply.split(s)[0]
        return reply
