"""make bench: throughput and memory of the pipeline's hot loops, each against a peer measured in
the same run on the same machine, printed as one table and written to <out>/bench.json.

  figure                     ours                               peer
  SFT tokens/s, peak memory  stage 02 (warm-up SFT)             TRL SFTTrainer, same model/data/LoRA
  SFT GFLOP/s                stage 02, FLOPs counted as below   bf16 matmul rate measured here
  DPO pairs/s, peak memory   stage 06 (DPO)                     TRL DPOTrainer, same model/pairs/LoRA
  replay buffer samples/s    stage 03                           stage 03 --naive (batch 1, full logits)
  MCTS simulations/s, tok/s  stage 05 (samples in lockstep)     stage 05 --batch-samples 1 (one tree at a time)
  eval items/s               eval/bfcl.py (generation.greedy)   eval/bfcl.py --generator reference
                                                                (model.generate, adapter unmerged)
  prefill GFLOP/s            generation.Rows.extend, in process bf16 matmul rate measured here

    python eval/bench.py --out eval/results/bench                  Gemma 3 270M, ~15 min on 2 CPU cores
    python eval/bench.py --quick --out /tmp/bench                  tiny model, ~1 min smoke
    python eval/bench.py --random-init llama-3.1-8b --only sft,gflops   random 8B weights (a GPU job)

Every run is its own process, so its peak memory (max RSS on a CPU, max allocated on CUDA) is its
own. The stages run as scripts with their own flags: what is measured is the code `make` runs.
Ours and the peer alternate, --rounds times each (ours first in odd rounds, the peer first in even
ones); the table shows each side's best throughput (the run least disturbed by other processes)
and its highest peak memory. Identical runs on a shared machine differ by up to ~25 %: compare
only figures from one run. With other jobs on the machine, OMP_NUM_THREADS=1 keeps two OpenMP
threads from waiting on each other.

Throughput. SFT and DPO take --batch-size samples or pairs per optimizer step on both sides (1 by
default: on a CPU the figures then compare the per-token work; on a GPU a step of one sample is
bound by launching kernels, so run the stages' own 8 there too). SFT tokens/s counts every token of
a sample (prompt and answer) per second of step time, steps after the first. TRL's steps include
its reference forward, so our DPO pairs/s adds stage 06's one reference pass spread over the pairs:
1 / (step seconds per pair + reference seconds / pairs). MCTS: both sides search the same samples
with the same budget and seeds; a sample's tree does not depend on its batch (up to bf16 rounding),
so they do the same work, one tree at a time or --batch-samples together. Eval: both sides generate
greedily for the same BFCL items (--eval-items per category of --eval-categories), timed over
generation only; the table also gives the share of items on which the two wrote the same text (bf16
rounding of a merged adapter may flip a rare near-tie). --adapter gives the policy for both (a
warm-up adapter stops at the end of its answers, as in real use; without one the base model writes
to the token budget).

Prefill: the generators' cost on long prompts is the prefill. --prefill-rows prompts of
--prefill-tokens ± 16 tokens each go through generation.Rows.extend on the bf16 base model in this
process (no shared prefix: every token computed), best of three; FLOPs per prompt are the forward's,
2 per weight per token, 4 × attention width per attended key, and the LM head at the last position.

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

--random-init CONFIG builds the model from a transformers config (a JSON path, or a name from
eval/configs/: llama-3.1-8b, llama-mini) with random weights, cached under checkpoints/base/, so
large-model throughput needs no download. Its tokenizer is the tiny model's (1,024 byte-level
BPE tokens, same chat template) padded with placeholder tokens <unused_N> up to the config's
vocabulary, so the LM head keeps its real size and every id the model samples decodes.
--qlora 1 trains both ours and TRL on a 4-bit NF4 base (default: bf16 LoRA for both).
TRL (requirements-bench.txt) is needed only here.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from itool import distributed, modeling, records, synthetic, training
from itool.files import atomic_write_json, read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parents[1]

CONFIGS = REPO / "eval" / "configs"
BENCHMARKS = ("sft", "gflops", "dpo", "buffer", "mcts", "eval", "prefill")
LORA_R, LORA_ALPHA = 8, 16  # the defaults of stages 02 and 06


# --- inputs: synthetic samples and pairs of controlled length --------------------------------------

def synthetic_samples(n_records, seed):
    """Samples (records.record_samples) of n_records synthetic conversations, in order."""
    return [s for i, r in enumerate(synthetic.generate(n_records, seed=seed))
            for s in records.record_samples(r, f"bench{seed}-{i:05d}")]


def samples_of_length(tokenizer, n, tokens, tolerance=16, seed=0):
    """n samples whose prompt + answer is tokens ± tolerance tokens long."""
    eot = modeling.end_of_turn_id(tokenizer)
    chosen = [s for s in synthetic_samples(600, seed)
              if abs(sum(map(len, modeling.encode_sample(tokenizer, s, eot))) - tokens) <= tolerance]
    if len(chosen) < n:
        raise RuntimeError(f"only {len(chosen)} synthetic samples of {tokens} ± {tolerance} tokens; ask for fewer")
    return chosen[:n]


def preference_pairs(tokenizer, n, prompt_tokens, completion_tokens, seed=0):
    """n pairs in stage 05's schema: prompts of prompt_tokens ± 16 tokens, chosen and rejected cut
    from other samples' gold answers to completion_tokens (end-of-turn included)."""
    samples = synthetic_samples(400, seed)
    answer_ids = tokenizer(" ".join(s["answer"] for s in samples), add_special_tokens=False).input_ids
    pairs = []
    for s in samples:
        if abs(len(modeling.encode_prompt(tokenizer, s["system"], s["messages"])) - prompt_tokens) > 16:
            continue
        start = 2 * len(pairs) * completion_tokens
        chosen = tokenizer.decode(answer_ids[start:start + completion_tokens - 1])
        rejected = tokenizer.decode(answer_ids[start + completion_tokens:start + 2 * completion_tokens - 1])
        pairs.append({"id": f"{s['id']}:0", "sample_id": s["id"], "depth": 0, "system": s["system"],
                      "messages": s["messages"], "prefix": "", "chosen": chosen, "rejected": rejected,
                      "chosen_ends": True, "rejected_ends": True, "q_chosen": 1.0, "q_rejected": -1.0})
        if len(pairs) == n:
            return pairs
    raise RuntimeError(f"only {len(pairs)} synthetic prompts of {prompt_tokens} ± 16 tokens; ask for fewer")


# --- the model: a named checkpoint, or random weights from a config ------------------------------------

def config_file(name):
    """A config JSON path, or the file in eval/configs/ that a short name stands for."""
    path = Path(name) if name.endswith(".json") else CONFIGS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.json")))
        raise SystemExit(f"error: --random-init {name}: no such config file (known names: {known})")
    return path


def random_model(name):
    """Directory of a randomly initialised checkpoint of config `name`, built once and cached
    beside the base models (the directory name carries a hash of the config text)."""
    path = config_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return str(modeling.cached(modeling.BASE_DIR / f"random-{path.stem}-{digest}",
                                lambda out_dir: build_random_model(path, out_dir)))


def build_random_model(path, out_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer_dir = Path(modeling.resolve_model("tiny"))
    tokenizer = modeling.load_tokenizer(tokenizer_dir)
    settings = json.loads(path.read_text())
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    if config.vocab_size < len(tokenizer):
        raise SystemExit(f"error: {path}: vocab_size {config.vocab_size} is below the tokenizer's {len(tokenizer)}")
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, modeling.end_of_turn_id(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    device = distributed.local_device()
    print(f"building {path.stem} with random weights on {device} -> {out_dir.parent} (once)", flush=True)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it will run: seconds on a GPU even for 8B
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir)
    padded_tokenizer(tokenizer_dir, config.vocab_size, out_dir)


def padded_tokenizer(source_dir, vocab_size, out_dir):
    """Copy the tokenizer in source_dir to out_dir with placeholder tokens <unused_N> filling its
    vocabulary up to vocab_size. No merge produces them, so encoding is unchanged; they only make
    every id a random model can sample decodable."""
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if (Path(source_dir) / name).is_file():
            shutil.copy(Path(source_dir) / name, Path(out_dir) / name)
    data = json.loads((Path(source_dir) / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab.update({f"<unused_{i}>": i for i in range(max(vocab.values()) + 1, vocab_size)})
    (Path(out_dir) / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))


# --- FLOP count (see the docstring) -----------------------------------------------------------------

def model_shape(model_dir, lora_r=LORA_R):
    """The sizes the FLOP formula needs, read off the model built on the meta device (no weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

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


# --- running scripts -----------------------------------------------------------------------------

def run_script(script, flags, log_file):
    """`python script flags...` in its own process, output to log_file; on failure its tail."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        result = subprocess.run([sys.executable, str(script), *map(str, flags)], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO)
    if result.returncode:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"{Path(script).name} {' '.join(map(str, flags))} failed (log: {log_file}):\n{tail}")


def alternate(name, sides, rounds):
    """Run the two sides {label: run(round) -> result dict} `rounds` times each, alternating which goes
    first; {label: [results]}."""
    results = {label: [] for label in sides}
    for r in range(rounds):
        for label in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            started = time.perf_counter()
            result = sides[label](r)
            results[label].append(result)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, (int, float)))
            print(f"  {name} round {r + 1} {label}: {shown} ({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def best(results, key):
    return max(r[key] for r in results)


def figure(name, vs, ours, peer, target=None):
    """One row of the table; ratio = ours / peer, met when it reaches target (None: no target)."""
    ratio = ours / peer
    return {"figure": name, "vs": vs, "ours": round(ours, 3), "peer": round(peer, 3), "ratio": round(ratio, 3),
            "target": target, "met": None if target is None else ratio >= target}


# --- SFT: stage 02 vs TRL SFTTrainer, and its GFLOP/s ---------------------------------------------

def bench_sft(args, model_dir, tokenizer, workdir, with_trl, with_gflops, matmul):
    samples = samples_of_length(tokenizer, args.sft_steps * args.batch_size, args.sft_tokens)
    eot = modeling.end_of_turn_id(tokenizer)
    encoded = [modeling.encode_sample(tokenizer, s, eot) for s in samples]
    samples_file = workdir / "sft_samples.jsonl"
    write_jsonl(samples_file, samples)
    # stage 02 reads three splits: a third of the steps each, --batch-size samples per step
    third = args.sft_steps // 3 * args.batch_size
    for k, level in enumerate(("easy", "medium", "hard")):
        write_jsonl(workdir / "sft_splits" / f"{level}.jsonl", samples[k * third:(k + 1) * third if k < 2 else None])

    def ours(r):
        out = workdir / f"sft_ours_{r}"
        run_script(REPO / "stages/02_sft.py", ["--model", model_dir, "--qlora", args.qlora, "--splits-dir",
                                               workdir / "sft_splits", "--out", out, "--batch-size", args.batch_size,
                                               "--log-every", 1, "--save-every", 10 ** 6],
                   args.logs / f"sft_ours_{r}.log")
        summary = json.loads((out / "summary.json").read_text())
        return {key: summary[key] for key in ("tokens_per_s", "decoder_tokens_per_s", "peak_memory_mib")}

    def trl(r):
        result = workdir / f"sft_trl_{r}.json"
        run_script(__file__, ["--worker", "trl-sft", "--model", model_dir, "--qlora", args.qlora, "--inputs",
                              samples_file, "--result", result, *trl_flags(args)], args.logs / f"sft_trl_{r}.log")
        return json.loads(result.read_text())

    runs = alternate("sft", {"ours": ours, "trl": trl} if with_trl else {"ours": ours}, args.rounds)
    figures = []
    if with_trl:
        figures += [figure("SFT tokens/s", "TRL SFTTrainer", best(runs["ours"], "tokens_per_s"),
                           best(runs["trl"], "tokens_per_s"), target=1.5),
                    figure("SFT peak memory MiB (lower is better)", "TRL SFTTrainer",
                           best(runs["ours"], "peak_memory_mib"), best(runs["trl"], "peak_memory_mib"))]
    shape = model_shape(model_dir)
    flops_per_token = (sum(sft_flops(shape, len(p) + len(c), len(c)) for p, c in encoded) /
                       sum(len(p) + len(c) for p, c in encoded))
    if with_gflops:
        achieved = best(runs["ours"], "decoder_tokens_per_s") * flops_per_token / 1e9
        figures.append(figure("SFT GFLOP/s", "bf16 matmul", achieved, matmul, target=0.35))
    details = {"runs": runs, "steps": args.sft_steps, "batch_size": args.batch_size,
               "mean_tokens": statistics.mean(len(p) + len(c) for p, c in encoded),
               "mean_answer_tokens": statistics.mean(len(c) for _, c in encoded), "shape": shape,
               "gflop_per_token": round(flops_per_token / 1e9, 6)}
    return figures, details


def trl_sft_worker(args):
    """In its own process: TRL's SFTTrainer as a user would set it up, --batch-size samples per step."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = modeling.load_tokenizer(args.model)
    samples = read_jsonl(args.inputs)
    data = Dataset.from_list([{"prompt": prompt_text(tokenizer, s), "completion": s["answer"]} for s in samples])
    clock, step_ends = step_clock()
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                           max_steps=len(samples) // args.batch_size, learning_rate=5e-5,
                           weight_decay=0.01, bf16=True, use_cpu=not torch.cuda.is_available(), logging_steps=1,
                           report_to=[], save_strategy="no", max_length=None, dataloader_num_workers=0,
                           eos_token=tokenizer.convert_ids_to_tokens(modeling.end_of_turn_id(tokenizer)),
                           gradient_checkpointing=not args.trl_no_gradient_checkpointing)
        trainer = SFTTrainer(model=trl_base_model(args.model, args.qlora), args=config, train_dataset=data,
                             processing_class=tokenizer, callbacks=[clock], peft_config=trl_lora())
        mean_tokens = statistics.mean(len(e["input_ids"]) for e in trainer.train_dataset)
        trainer.train()
    result = {"tokens_per_s": mean_tokens * args.batch_size * (len(step_ends) - 1) / (step_ends[-1] - step_ends[0]),
              "peak_memory_mib": training.peak_memory_mib(distributed.local_device()), "mean_tokens": mean_tokens}
    atomic_write_json(args.result, result)


def step_clock():
    """A trainer callback that appends the time at the end of every step to a list; both."""
    from transformers import TrainerCallback

    ends = []

    class StepEnds(TrainerCallback):
        def on_step_end(self, *_, **__):
            ends.append(time.perf_counter())

    return StepEnds(), ends


def prompt_text(tokenizer, row):
    """The stage's exact prompt text, without the BOS: TRL's tokenizer call adds it."""
    text = tokenizer.apply_chat_template(modeling.chat_messages(row["system"], row["messages"]), tokenize=False,
                                         add_generation_prompt=True)
    return text.removeprefix(tokenizer.bos_token or "")


def trl_flags(args):
    """The settings a TRL worker process shares with ours: the batch, and TRL's checkpointing."""
    return ["--batch-size", args.batch_size] + (["--trl-no-gradient-checkpointing"]
                                                if args.trl_no_gradient_checkpointing else [])


def trl_base_model(model_dir, qlora):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16) if qlora == "1" else None
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quantization,
                                                device_map={"": distributed.local_device()})


def trl_lora():
    from peft import LoraConfig

    return LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")


# --- DPO: stage 06 vs TRL DPOTrainer -------------------------------------------------------------

def seconds_per_pair(step_seconds, step_pairs):
    """Over the steps after the first (which pays one-off allocations)."""
    return sum(step_seconds[1:]) / sum(step_pairs[1:])


def bench_dpo(args, model_dir, tokenizer, workdir):
    pairs_file = workdir / "dpo_pairs.jsonl"
    write_jsonl(pairs_file, preference_pairs(tokenizer, args.dpo_pairs * args.batch_size, args.dpo_prompt_tokens,
                                             args.dpo_completion_tokens))

    def ours(r):
        out = workdir / f"dpo_ours_{r}"
        run_script(REPO / "stages/06_dpo.py", ["--model", model_dir, "--qlora", args.qlora, "--pairs", pairs_file,
                                               "--out", out, "--batch-size", args.batch_size, "--epochs", 1,
                                               "--lr", 5e-5, "--save-every", 10 ** 6], args.logs / f"dpo_ours_{r}.log")
        summary = json.loads((out / "summary.json").read_text())
        metrics = read_jsonl(out / "metrics.jsonl")
        # pairs_per_s in metrics.jsonl is cumulative since training began: turn it into step times
        ends = [sum(m["pairs"] for m in metrics[:k + 1]) / m["pairs_per_s"] for k, m in enumerate(metrics)]
        step_seconds = [b - a for a, b in zip([0.0] + ends, ends)]
        per_pair = seconds_per_pair(step_seconds, [m["pairs"] for m in metrics])
        return {"pairs_per_s": 1 / (per_pair + summary["reference_seconds"] / summary["pairs"]),
                "steps_only_pairs_per_s": 1 / per_pair, "reference_seconds": summary["reference_seconds"],
                "peak_memory_mib": summary["peak_memory_mib"]}

    def trl(r):
        result = workdir / f"dpo_trl_{r}.json"
        run_script(__file__, ["--worker", "trl-dpo", "--model", model_dir, "--qlora", args.qlora, "--inputs",
                              pairs_file, "--result", result, *trl_flags(args)], args.logs / f"dpo_trl_{r}.log")
        return json.loads(result.read_text())

    runs = alternate("dpo", {"ours": ours, "trl": trl}, args.rounds)
    figures = [figure("DPO pairs/s", "TRL DPOTrainer", best(runs["ours"], "pairs_per_s"),
                      best(runs["trl"], "pairs_per_s"), target=1.5),
               figure("DPO peak memory MiB (lower is better)", "TRL DPOTrainer",
                      best(runs["ours"], "peak_memory_mib"), best(runs["trl"], "peak_memory_mib"))]
    return figures, {"runs": runs, "steps": args.dpo_pairs, "batch_size": args.batch_size}


def trl_dpo_worker(args):
    """In its own process: TRL's DPOTrainer as a user would set it up, --batch-size pairs per step; its
    reference is the same model with the adapter disabled (a no-grad forward inside each step)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = modeling.load_tokenizer(args.model)
    rows = read_jsonl(args.inputs)
    data = Dataset.from_list([{"prompt": prompt_text(tokenizer, r), "chosen": r["chosen"], "rejected": r["rejected"]}
                              for r in rows])
    clock, step_ends = step_clock()
    with tempfile.TemporaryDirectory() as tmp:
        config = DPOConfig(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                           max_steps=len(rows) // args.batch_size, learning_rate=5e-5,
                           beta=0.1, bf16=True, use_cpu=not torch.cuda.is_available(), logging_steps=1, report_to=[],
                           save_strategy="no", max_length=None, dataloader_num_workers=0,
                           gradient_checkpointing=not args.trl_no_gradient_checkpointing)
        trainer = DPOTrainer(model=trl_base_model(args.model, args.qlora), args=config, train_dataset=data,
                             processing_class=tokenizer, peft_config=trl_lora(), callbacks=[clock])
        started = time.perf_counter()
        trainer.train()
    step_seconds = [b - a for a, b in zip([started] + step_ends, step_ends)]
    result = {"pairs_per_s": 1 / seconds_per_pair(step_seconds, [args.batch_size] * len(step_seconds)),
              "peak_memory_mib": training.peak_memory_mib(distributed.local_device())}
    atomic_write_json(args.result, result)


# --- replay buffer: stage 03 vs --naive; MCTS: lockstep vs one tree at a time; eval: fast vs generate ---

def bench_buffer(args, model_dir, workdir):
    samples_file = workdir / "rl.jsonl"
    write_jsonl(samples_file, synthetic_samples(args.buffer_samples, seed=1)[:args.buffer_samples])

    def side(flags, label):
        def run(r):
            out = workdir / f"buffer_{label}_{r}" / "buffer.jsonl"
            run_script(REPO / "stages/03_perplexity.py", ["--model", model_dir, "--qlora", args.qlora, "--samples",
                                                          samples_file, "--out", out, *flags],
                       args.logs / f"buffer_{label}_{r}.log")
            stats = json.loads(out.with_name("buffer_stats.json").read_text())
            return {"samples_per_s": stats["samples_per_s"], "tokens_per_s": stats["tokens_per_s"]}
        return run

    runs = alternate("buffer", {"ours": side([], "ours"), "naive": side(["--naive"], "naive")}, args.rounds)
    figures = [figure("replay buffer samples/s", "batch 1, full logits", best(runs["ours"], "samples_per_s"),
                      best(runs["naive"], "samples_per_s"), target=2.0)]
    return figures, {"runs": runs, "samples": args.buffer_samples}


def adapter_flags(args):
    return ["--adapter", str(Path(args.adapter).resolve())] if args.adapter else []


def bench_mcts(args, model_dir, workdir):
    samples_file = workdir / "hard.jsonl"
    write_jsonl(samples_file, synthetic_samples(args.mcts_samples, seed=2)[:args.mcts_samples])

    def side(flags, label):
        def run(r):
            out = workdir / f"mcts_{label}_{r}" / "pairs.jsonl"
            run_script(REPO / "stages/05_mcts.py", ["--model", model_dir, "--qlora", args.qlora, "--samples",
                                                    samples_file, "--out", out, "--trees-dir", out.parent / "trees",
                                                    "--max-samples", 0, "--simulations", args.mcts_simulations,
                                                    *adapter_flags(args), *args.mcts_flags, *flags],
                       args.logs / f"mcts_{label}_{r}.log")
            stats = json.loads(out.with_name("mcts_stats.json").read_text())
            return {"simulations_per_s": stats["simulations_per_s"],
                    "generated_tokens_per_s": stats["generated_tokens_per_s"], "pairs": stats["pairs"]}
        return run

    runs = alternate("mcts", {"ours": side([], "ours"), "one_tree": side(["--batch-samples", 1], "one_tree")},
                     args.rounds)
    figures = [figure("MCTS simulations/s", "one tree at a time", best(runs["ours"], "simulations_per_s"),
                      best(runs["one_tree"], "simulations_per_s"), target=5.0),
               figure("MCTS generated tokens/s", "one tree at a time", best(runs["ours"], "generated_tokens_per_s"),
                      best(runs["one_tree"], "generated_tokens_per_s"))]
    return figures, {"runs": runs, "samples": args.mcts_samples, "simulations": args.mcts_simulations}


def bench_eval(args, model_dir, workdir):
    def side(flags, label):
        def run(r):
            out = workdir / f"eval_{label}_{r}"
            run_script(REPO / "eval/bfcl.py", ["--model", model_dir, "--qlora", args.qlora, "--out", out,
                                               "--categories", args.eval_categories, "--limit", args.eval_items,
                                               *adapter_flags(args), *flags], args.logs / f"eval_{label}_{r}.log")
            scores = json.loads((out / "bfcl_scores.json").read_text())["categories"].values()
            outputs = {row["id"]: row["output"] for row in read_jsonl(out / "bfcl_generations.jsonl")}
            seconds = sum(c["generation_seconds"] for c in scores)
            return {"items_per_s": sum(c["generated"] for c in scores) / seconds, "outputs": outputs}
        return run

    runs = alternate("eval", {"ours": side([], "ours"), "generate": side(["--generator", "reference"], "generate")},
                     args.rounds)
    ours, peer = runs["ours"][0]["outputs"], runs["generate"][0]["outputs"]
    same = sum(ours[i] == peer[i] for i in ours) / len(ours)
    for side_runs in runs.values():
        for run in side_runs:
            del run["outputs"]
    figures = [figure("eval BFCL items/s", "model.generate, adapter unmerged", best(runs["ours"], "items_per_s"),
                      best(runs["generate"], "items_per_s"), target=4.0)]
    return figures, {"runs": runs, "items": len(ours), "same_text_share": round(same, 4),
                     "categories": args.eval_categories}


def prefill_flops(shape, tokens, causal=True):
    """FLOPs of a forward over a prompt of `tokens` tokens, the LM head at its last position only."""
    attention = 4 * shape["attention_width"] * sum(attended_keys(tokens, w, causal) for w in shape["windows"])
    return 2 * shape["frozen"] * tokens + attention + 2 * shape["vocab"] * shape["hidden"]


def bench_prefill(args, model_dir, tokenizer, matmul):
    from itool import generation

    device = distributed.local_device()
    model = modeling.load_model(model_dir, device=device, qlora=modeling.use_qlora(args.qlora, device))
    generation.use_grouped_attention(model)
    eot = modeling.end_of_turn_id(tokenizer)
    prompts = [sum(modeling.encode_sample(tokenizer, s, eot), [])  # prompt and answer: a whole sample's tokens
               for s in samples_of_length(tokenizer, args.prefill_rows, args.prefill_tokens)]
    shape = model_shape(model_dir)
    flops = sum(prefill_flops(shape, len(p)) for p in prompts)

    def timed():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            generation.Rows.empty(model, len(prompts)).extend(prompts, tokenizer.pad_token_id or 0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()  # warm-up
    seconds = min(timed() for _ in range(3))
    tokens = sum(map(len, prompts))
    figures = [figure("prefill GFLOP/s", "bf16 matmul", flops / seconds / 1e9, matmul)]
    return figures, {"rows": len(prompts), "tokens": tokens, "seconds": round(seconds, 3),
                     "tokens_per_s": round(tokens / seconds, 1), "gflop_per_token": round(flops / tokens / 1e9, 4)}


# --- the table -----------------------------------------------------------------------------------

def number(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def table(figures):
    """The figures as a fixed-width text table."""
    header = ("figure", "vs", "ours", "peer", "ratio", "target", "met")
    rows = [(f["figure"], f["vs"], number(f["ours"]), number(f["peer"]), f"{f['ratio']:.2f}×",
             "—" if f["target"] is None else f"≥ {f['target']:g}×",
             "—" if f["met"] is None else ("yes" if f["met"] else "NO")) for f in figures]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


# --- main ----------------------------------------------------------------------------------------

QUICK = {"model": "tiny", "rounds": 1, "sft_steps": 3, "dpo_pairs": 3, "buffer_samples": 12, "mcts_samples": 2,
         "prefill_rows": 2, "prefill_tokens": 400,
         "mcts_simulations": 2, "mcts_args": "--k 2 --max-step-tokens 12 --max-depth 3", "matmul_trials": 2,
         "eval_items": 2, "eval_categories": "simple"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="eval/results/bench", help="folder for bench.json and the runs' logs")
    parser.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m | tiny | local dir | hub id")
    parser.add_argument("--random-init", metavar="CONFIG",
                        help="random weights from a config JSON path or a name in eval/configs/ (replaces --model)")
    parser.add_argument("--qlora", choices=("0", "1"), default="0", help="1: ours and TRL both on a 4-bit NF4 base")
    parser.add_argument("--adapter", help="policy adapter for the MCTS and eval runs (e.g. checkpoints/default/warmup)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated subset of " + ",".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="~1-minute smoke run: tiny model, one round, small sizes")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    sizes = parser.add_argument_group("sizes")
    sizes.add_argument("--batch-size", type=int, default=1,
                       help="samples (SFT) and pairs (DPO) per optimizer step, ours and TRL alike "
                            "(the stages' default is 8; one sample per step on a GPU measures kernel launches)")
    sizes.add_argument("--sft-steps", type=int, default=8, help="steps per SFT run")
    sizes.add_argument("--sft-tokens", type=int, default=512, help="tokens per SFT sample (prompt + answer, ± 16)")
    sizes.add_argument("--dpo-pairs", type=int, default=6, help="steps per DPO run")
    sizes.add_argument("--dpo-prompt-tokens", type=int, default=384, help="tokens per DPO prompt (± 16)")
    sizes.add_argument("--dpo-completion-tokens", type=int, default=64, help="tokens of chosen and of rejected")
    sizes.add_argument("--buffer-samples", type=int, default=64, help="samples scored per replay-buffer run")
    sizes.add_argument("--mcts-samples", type=int, default=16, help="samples searched per MCTS run")
    sizes.add_argument("--mcts-simulations", type=int, default=4, help="simulations per sample")
    sizes.add_argument("--mcts-args", default="", help="more flags for stages/05_mcts.py (e.g. '--k 4')")
    sizes.add_argument("--eval-items", type=int, default=40, help="BFCL items per category per eval run")
    sizes.add_argument("--eval-categories", default="simple,multiple",
                       help="BFCL categories of the eval runs")
    sizes.add_argument("--prefill-rows", type=int, default=16, help="prompts per prefill")
    sizes.add_argument("--prefill-tokens", type=int, default=480, help="tokens per prefill prompt (± 16)")
    sizes.add_argument("--matmul-size", type=int, default=0, help="matmul side (0: 2048 on CPU, 8192 on CUDA)")
    sizes.add_argument("--matmul-trials", type=int, default=5, help="timed matmul runs; the best counts")
    parser.add_argument("--trl-no-gradient-checkpointing", action="store_true",
                        help="TRL without its default gradient checkpointing")
    parser.add_argument("--worker", choices=("trl-sft", "trl-dpo"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:  # the quick sizes, except where a flag was given explicitly
        defaults = {key: parser.get_default(key) for key in QUICK}
        for key, value in QUICK.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown or not args.only:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    args.mcts_flags = args.mcts_args.split()
    if args.rounds < 1 or args.sft_steps < 3 or args.dpo_pairs < 2 or args.batch_size < 1:
        parser.error("need --rounds ≥ 1, --sft-steps ≥ 3 (a step for each third of the curriculum), "
                     "--dpo-pairs ≥ 2 (the first step is not timed) and --batch-size ≥ 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return (trl_sft_worker if args.worker == "trl-sft" else trl_dpo_worker)(args)

    out = Path(args.out)
    args.logs = out / "logs"
    model_dir = random_model(args.random_init) if args.random_init else modeling.resolve_model(args.model)
    if Path(model_dir).exists():  # the runs start in the repository root
        model_dir = str(Path(model_dir).resolve())
    tokenizer = modeling.load_tokenizer(model_dir)
    device = distributed.local_device()
    started = time.perf_counter()
    matmul = None
    if "gflops" in args.only or "prefill" in args.only:
        size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
        matmul = matmul_gflops(device, size, args.matmul_trials)
        print(f"bf16 matmul {size}²: {matmul:,.0f} GFLOP/s on {device}", flush=True)

    figures, details = [], {}
    with tempfile.TemporaryDirectory(prefix="bench.") as tmp:
        workdir = Path(tmp)
        if "sft" in args.only or "gflops" in args.only:
            found, details["sft"] = bench_sft(args, model_dir, tokenizer, workdir, "sft" in args.only,
                                              "gflops" in args.only, matmul)
            figures += found
        for name, run in (("dpo", lambda: bench_dpo(args, model_dir, tokenizer, workdir)),
                          ("buffer", lambda: bench_buffer(args, model_dir, workdir)),
                          ("mcts", lambda: bench_mcts(args, model_dir, workdir)),
                          ("eval", lambda: bench_eval(args, model_dir, workdir)),
                          ("prefill", lambda: bench_prefill(args, model_dir, tokenizer, matmul))):
            if name in args.only:
                found, details[name] = run()
                figures += found

    model_name = f"random-init {args.random_init}" if args.random_init else args.model
    report = {"model": model_name, "model_dir": model_dir,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
              "matmul_gflops": matmul, "seconds": round(time.perf_counter() - started, 1), "figures": figures,
              "details": details,
              "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "inputs", "result", "logs")}}
    report["settings"]["out"] = str(out)
    atomic_write_json(out / "bench.json", report)
    print(f"\n{report['model']} on {report['device']}, {report['seconds']:.0f} s\n{table(figures)}\n"
          f"-> {out / 'bench.json'}")


if __name__ == "__main__":
    main()
