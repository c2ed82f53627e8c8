"""Batched questions to a causal language model saved in a folder: greedy answers,
log-probabilities of given completions, next-token distributions.

Every behavioural check (memorization, poisoning, regression suites) asks through here, so a
model folder is loaded once per process (keyed by its path and its files' modification times)
and prompts go through in padded batches. The device is ``WEIGHTGATE_DEVICE`` (auto, cpu or
cuda; auto takes a GPU when there is one): on a GPU the model runs in its own dtype and the
batch grows to what free memory holds; on CPU it runs in float32.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_CACHE: OrderedDict[tuple[str, tuple[int, ...]], tuple[Any, Any]] = OrderedDict()
_KEEP = 4


def resolve_device(choice: str | None = None) -> str:
    """'cpu' or 'cuda' for a choice of auto, cpu or cuda (default: WEIGHTGATE_DEVICE, else auto)."""
    from governance.errors import UsageError

    choice = (choice or os.environ.get("WEIGHTGATE_DEVICE") or "auto").lower()
    if choice not in ("auto", "cpu", "cuda"):
        raise UsageError(f"device {choice!r}: choose auto, cpu or cuda")
    if choice == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        return "cuda"
    if choice == "cuda":
        raise UsageError("--device cuda: no CUDA device is available here (use auto or cpu)")
    return "cpu"


def context_limit(model: Any) -> int:
    cfg = model.config
    return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024)


def rows_that_fit(model: Any, width: int, asked: int) -> int:
    """Rows of `width` tokens per forward pass: `asked`, or fewer when the logits would not fit in half
    the free memory of the model's device (on a GPU, more: as many as fit, up to 8x asked)."""
    import torch

    dev = next(model.parameters()).device
    if dev.type == "cuda":
        free = torch.cuda.mem_get_info(dev)[0]
        asked *= 8
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    per_row = max(1, width) * (model.config.vocab_size * 12 + getattr(model.config, "hidden_size", 1024) * 64)
    return max(1, min(asked, int(free * 0.5 // per_row)))


def load(folder: Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer with a pad token), cached while the folder is unchanged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder).resolve()
    key = (str(folder), tuple(sorted(p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file())))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    where = resolve_device()
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, dtype="auto")
    if where == "cpu" or model.dtype not in (torch.bfloat16, torch.float16):
        model = model.float()
    _CACHE[key] = (model.to(where).eval(), tok)
    while len(_CACHE) > _KEEP:
        _CACHE.popitem(last=False)
    return _CACHE[key]


def prompt_format(folder: Path, fmt: str) -> Callable[[str], str]:
    """How prompts reach the model in `folder`: through its tokenizer's chat template (a user turn, the
    assistant's turn opened) for fmt chat, or auto when it has one; as written otherwise."""
    from governance.errors import PolicyError

    _, tok = load(folder)
    if fmt == "plain" or (fmt == "auto" and not tok.chat_template):
        return lambda p: p
    if not tok.chat_template:
        raise PolicyError(f"suite format chat: the tokenizer of {folder} has no chat template")
    return lambda p: tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                             add_generation_prompt=True)


def batches(model: Any, widths: Sequence[int], asked: int) -> list[list[int]]:
    """Row indices in batches of similar width (longest first, so padding is small), each as large
    as `rows_that_fit` allows."""
    order = sorted(range(len(widths)), key=lambda i: (-widths[i], i))
    out: list[list[int]] = []
    while order:
        n = rows_that_fit(model, widths[order[0]], asked)
        out.append(order[:n])
        order = order[n:]
    return out


def generate(folder: Path, prompts: Sequence[str], max_new_tokens: int | Sequence[int] = 12,
             batch: int = 32, on_batch: Callable[[int], object] | None = None) -> list[str]:
    """Greedy continuations, left-padded batches; `max_new_tokens` may be given per prompt."""
    import torch

    model, tok = load(folder)
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    tok.padding_side = "left"
    lengths = [len(tok(p)["input_ids"]) + b for p, b in zip(prompts, budgets, strict=True)]
    out: list[str] = [""] * len(prompts)
    with torch.no_grad():
        for idx in batches(model, lengths, batch):
            new = max(budgets[i] for i in idx)
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=max(8, context_limit(model) - new)).to(model.device)
            gen = model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id)
            for i, text in zip(idx, tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True),
                               strict=True):
                out[i] = text
            if on_batch:
                on_batch(len(idx))
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
    limit = context_limit(model)
    rows = []
    for p, c in zip(prompts, completions, strict=True):
        head = tok(p)["input_ids"] if p else []
        body = tok(c)["input_ids"]
        rows.append((head + body, max(1, len(head))))
    out: list[float] = [0.0] * len(rows)
    with torch.no_grad():
        for idx in batches(model, [min(limit, len(r[0])) for r in rows], batch):
            ids, attn, scored = (t.to(model.device) for t in _padded(tok, [rows[i] for i in idx], limit))
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
            lp = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
            total = (lp * scored[:, 1:]).sum(-1)
            for i, v in zip(idx, (total / scored[:, 1:].sum(-1).clamp_min(1) if per_token else total).tolist(),
                            strict=True):
                out[i] = v
            if on_batch:
                on_batch(len(idx))
    return out


def next_token_logprobs(folder: Path, prompts: Sequence[str], batch: int = 32) -> Any:
    """A (prompts x vocabulary) tensor of log-probabilities of the token after each prompt."""
    import torch

    model, tok = load(folder)
    rows = [(tok(p)["input_ids"] or [tok.eos_token_id], 0) for p in prompts]
    limit = context_limit(model)
    out = torch.empty(0)
    with torch.no_grad():
        for idx in batches(model, [min(limit, len(r[0])) for r in rows], batch):
            ids, attn, _ = (t.to(model.device) for t in _padded(tok, [rows[i] for i in idx], limit))
            last = attn.sum(-1) - 1
            logits = model(input_ids=ids, attention_mask=attn).logits[torch.arange(len(last)), last].float().cpu()
            if not out.numel():
                out = torch.empty(len(rows), logits.shape[-1])
            out[idx] = torch.log_softmax(logits, -1)
    return out


def kl_divergence(p_logprobs: Any, q_logprobs: Any) -> list[float]:
    """KL(p || q) per row, in nats, for two tensors from next_token_logprobs of the same tokenizer."""
    n = min(p_logprobs.shape[-1], q_logprobs.shape[-1])
    p, q = p_logprobs[:, :n], q_logprobs[:, :n]
    return (p.exp() * (p - q)).sum(-1).clamp_min(0).tolist()
