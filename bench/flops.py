"""make bench's FLOP model: what the matmul units must do in a LoRA SFT step and in a prefill, and
the bf16 matmul rate they are compared with (the GFLOP/s figures of bench/bench.py).

FLOPs of a LoRA SFT step (what the matmul units must do; recomputation by gradient checkpointing or
by the chunked LM head is not counted), for a sample of T tokens of which A are answer targets:

    FLOP = T · (4·N_frozen + 6·N_lora)           frozen linear weights: forward + activation gradient
                                                 (2 + 2); LoRA weights also their weight gradient (+2)
         + A · 4·V·d                             LM head (V × d) only where an answer token is predicted
         + 12 · H·d_head · Σ_layers Σ_t ctx(t)   attention scores and mixing: forward 4, backward 8,
                                                 ctx(t) = min(t, sliding window) keys for token t (causal)

N_frozen counts the weights of the decoder's linear layers (not the embedding or head), N_lora the
adapter's r·(d_in + d_out) per layer. Gemma 3 270M: N_frozen 100M, N_lora 1.9M, V·d 168M, ~0.52 GFLOP
per token of a 512-token sample with a 40-token answer; Llama-3.1-8B: N_frozen 7.0B, ~29 GFLOP per token.
tests/test_bench.py checks the formula against PyTorch's FLOP counter on a real LoRA step.
Achieved GFLOP/s = FLOP per token × stage 02's decoder tokens/s (the tokens it ran: at --batch-size
above 1, the prompt head a micro-batch's samples share runs once); the peer is the best of --matmul-trials
timed runs of a bf16 matmul (2048² on CPU, 8192² on CUDA) in this process.

Prefill: a forward over the prompt, 2 FLOPs per weight per token, 4 × attention width per
attended key, and the LM head at the last position only.
"""
import time

import torch

from peers import lora_defaults  # bench/'s own module: the script's folder is on sys.path


def model_shape(model_dir, lora_r=None):
    """The sizes the FLOP formula needs, read off the model built on the meta device (no weights);
    N_lora for rank `lora_r` (default: the stages' own)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    lora_r = lora_r or lora_defaults()[0]
    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linears = [m for m in model.get_decoder().modules() if isinstance(m, torch.nn.Linear)]
    head = model.get_output_embeddings().weight
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    window = getattr(config, "sliding_window", None)
    return {"frozen": sum(m.weight.numel() for m in linears),
            "lora": sum(lora_r * (m.in_features + m.out_features) for m in linears),
            "vocab": head.shape[0], "hidden": head.shape[1], "attention_width": heads * head_dim,
            "windows": [window if kind == "sliding_attention" else None for kind in layer_types]}


def attended_keys(tokens, window, causal=True):
    """Σ_t ctx(t): keys attended by all tokens of a sequence. causal=False counts the full T × T
    square that an unmasked kernel (and PyTorch's FLOP counter) computes."""
    if not causal:
        return tokens * tokens
    w = min(window or tokens, tokens)
    return w * (w + 1) // 2 + (tokens - w) * w


def sft_flops(shape, tokens, targets, causal=True):
    """FLOPs of one LoRA SFT forward + backward on a sample of `tokens` tokens, `targets` of them answer."""
    linear = tokens * (4 * shape["frozen"] + 6 * shape["lora"])
    head = targets * 4 * shape["vocab"] * shape["hidden"]
    attention = 12 * shape["attention_width"] * sum(attended_keys(tokens, w, causal) for w in shape["windows"])
    return linear + head + attention


def prefill_flops(shape, tokens, causal=True):
    """FLOPs of a forward over a prompt of `tokens` tokens, the LM head at its last position only."""
    attention = 4 * shape["attention_width"] * sum(attended_keys(tokens, w, causal) for w in shape["windows"])
    return 2 * shape["frozen"] * tokens + attention + 2 * shape["vocab"] * shape["hidden"]


def matmul_gflops(device, size, trials=5, seconds=0.5):
    """The best rate of repeated size × size bf16 matmuls over `trials` timed runs of ~`seconds`."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)

    def timed(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed(2)  # warm-up: kernel selection, page faults
    repeats = max(1, round(seconds / max(timed(1), 1e-6)))
    best = min(timed(repeats) / repeats for _ in range(trials))
    return 2 * size ** 3 / best / 1e9

