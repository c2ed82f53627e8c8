"""Batched questions to a causal language model saved in a folder: greedy answers,
log-probabilities of given completions, next-token distributions.

Every behavioural check (memorization, poisoning, regression suites) asks through here, so a
model folder is loaded once per process (keyed by its path and its files' modification times)
and prompts go through in padded batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_CACHE: OrderedDict[tuple[str, tuple[int, ...]], tuple[Any, Any]] = OrderedDict()
_KEEP = 4


def load(folder: Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer with a pad token), cached while the folder is unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder).resolve()
    key = (str(folder), tuple(sorted(p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file())))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    _CACHE[key] = (AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False).eval(), tok)
    while len(_CACHE) > _KEEP:
        _CACHE.popitem(last=False)
    return _CACHE[key]


def _limit(model: Any) -> int:
    return int(getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024))


def generate(folder: Path, prompts: Sequence[str], max_new_tokens: int | Sequence[int] = 12,
             batch: int = 32, on_batch: Callable[[int], object] | None = None) -> list[str]:
    """Greedy continuations, left-padded batches; `max_new_tokens` may be given per prompt."""
    import torch

    model, tok = load(folder)
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    tok.padding_side = "left"
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch):
            new = max(budgets[i:i + batch])
            enc = tok(list(prompts[i:i + batch]), return_tensors="pt", padding=True, truncation=True,
                      max_length=max(8, _limit(model) - new))
            gen = model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            if on_batch:
                on_batch(len(enc["input_ids"]))
    return out


def _padded(tok: Any, rows: list[tuple[list[int], int]], limit: int) -> tuple[Any, Any, Any]:
    """(ids, attention mask, scored-token mask) for right-padded rows of (ids, prompt length)."""
    import torch

    rows = [(ids[-limit:], max(0, start - max(0, len(ids) - limit))) for ids, start in rows]
    width = max(len(ids) for ids, _ in rows)
    pad = tok.pad_token_id
    ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in rows])
    attn = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in rows])
    scored = torch.tensor([[0] * s + [1] * (len(x) - s) + [0] * (width - len(x)) for x, s in rows])
    return ids, attn, scored


def completion_logprobs(folder: Path, prompts: Sequence[str], completions: Sequence[str], batch: int = 32,
                        per_token: bool = False, on_batch: Callable[[int], object] | None = None) -> list[float]:
    """log p(completion | prompt) summed (or, with `per_token`, averaged) over the completion's
    tokens, tokenized as training does (prompt and completion apart, then joined). An empty
    prompt scores the whole text but its first token."""
    import torch

    model, tok = load(folder)
    limit = _limit(model)
    rows = []
    for p, c in zip(prompts, completions, strict=True):
        head = tok(p)["input_ids"] if p else []
        body = tok(c)["input_ids"]
        rows.append((head + body, max(1, len(head))))
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            ids, attn, scored = _padded(tok, rows[i:i + batch], limit)
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            total = (lp * scored[:, 1:]).sum(-1)
            out += (total / scored[:, 1:].sum(-1).clamp_min(1) if per_token else total).tolist()
            if on_batch:
                on_batch(len(ids))
    return out


def next_token_logprobs(folder: Path, prompts: Sequence[str], batch: int = 32) -> Any:
    """A (prompts x vocabulary) tensor of log-probabilities of the token after each prompt."""
    import torch

    model, tok = load(folder)
    rows = [(tok(p)["input_ids"] or [tok.eos_token_id], 0) for p in prompts]
    parts = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            ids, attn, _ = _padded(tok, rows[i:i + batch], _limit(model))
            last = attn.sum(-1) - 1
            logits = model(input_ids=ids, attention_mask=attn).logits.float()
            parts.append(torch.log_softmax(logits[torch.arange(len(last)), last], -1))
    return torch.cat(parts) if parts else torch.empty(0)


def kl_divergence(p_logprobs: Any, q_logprobs: Any) -> list[float]:
    """KL(p || q) per row, in nats, for two tensors from next_token_logprobs of the same tokenizer."""
    n = min(p_logprobs.shape[-1], q_logprobs.shape[-1])
    p, q = p_logprobs[:, :n], q_logprobs[:, :n]
    return (p.exp() * (p - q)).sum(-1).clamp_min(0).tolist()
