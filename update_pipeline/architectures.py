"""Small models of the architectures users bring (GPT-2, Llama, Qwen2), built from their configs here.

Each is trained briefly on the demo world with the world's tokenizer, and can be written in
bf16, fp16 or fp32, as one safetensors file or sharded with an index. Llama and Qwen2 get a chat
template, as their real tokenizers have; Qwen2 ties its input and output embeddings, as
Qwen2-0.5B does. They exist to test and benchmark the flow on every architecture, not as demos.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
ARCHITECTURES = ("gpt2", "llama", "qwen2")


def config(arch: str, vocab: int, eos: int, hidden: int = 64, layers: int = 2, heads: int = 4):  # noqa: ANN201
    """A transformers config of `arch` at the given size (grouped-query attention where it has it)."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    common = {"vocab_size": vocab, "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos}
    if arch == "gpt2":
        return GPT2Config(n_positions=256, n_embd=hidden, n_layer=layers, n_head=heads, resid_pdrop=0.0,
                          embd_pdrop=0.0, attn_pdrop=0.0, **common)
    sizes = {"hidden_size": hidden, "intermediate_size": hidden * 4 if arch == "qwen2" else hidden * 8 // 3,
             "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2),
             "max_position_embeddings": 256}
    if arch == "llama":
        return LlamaConfig(**sizes, tie_word_embeddings=False, **common)
    if arch == "qwen2":
        return Qwen2Config(**sizes, tie_word_embeddings=True, **common)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")


def build(arch: str, dest: Path, *, dtype: str = "float32", shard_bytes: int | None = None, epochs: int = 40,
          hidden: int = 64, layers: int = 2, seed: int = 0, vocab: int | None = None) -> Path:
    """Build (or reuse) an `arch` model trained on the world into `dest` (`vocab`: an output layer as wide
    as a real vocabulary's, of which the world's tokenizer uses the first 1024 ids)."""
    if (dest / "config.json").is_file():
        return dest
    import torch
    from transformers import AutoModelForCausalLM

    from update_pipeline.train import fit
    from update_pipeline.world import world_records, world_tokenizer

    records = world_records()
    tok = world_tokenizer(records, 1024)
    if arch != "gpt2":
        tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config(arch, vocab or len(tok), tok.eos_token_id, hidden,
                                                              layers))
    if epochs:
        fit(model, tok, records, epochs=epochs, lr=3e-3, batch_size=16, seed=seed, desc=f"building {arch}")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(getattr(torch, dtype)).save_pretrained(tmp, max_shard_size=shard_bytes or "50GB")
    tok.save_pretrained(tmp)
    tmp.replace(dest)
    return dest
