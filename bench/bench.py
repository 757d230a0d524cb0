"""make bench: throughput and memory of the pipeline's hot loops, each against a peer measured in
the same run on the same machine, printed as one table and written to <out>/bench.json.

  figure                     ours                               peer
  SFT tokens/s, peak memory  stage 02 (warm-up SFT)             bench/trl_sft.py: TRL SFTTrainer, same
                                                                model/data/LoRA
  SFT GFLOP/s                stage 02, FLOPs of bench/flops.py  bf16 matmul rate measured here
  DPO pairs/s, peak memory   stage 06 (DPO)                     bench/trl_dpo.py: TRL DPOTrainer, same
                                                                model/pairs/LoRA
  replay buffer samples/s    stage 03                           stage 03 --naive (batch 1, full logits)
  MCTS simulations/s, tok/s  stage 05 (samples in lockstep)     stage 05 --batch-samples 1 (one tree at a time)
  eval items/s               eval/bfcl.py (generation.greedy)   eval/bfcl.py --generator reference
                                                                (model.generate, adapter unmerged)
  prefill GFLOP/s            generation.Rows.extend, in process bf16 matmul rate measured here

    python bench/bench.py --out eval/results/bench                  Gemma 3 270M, ~15 min on 2 CPU cores
    python bench/bench.py --quick --out /tmp/bench                  tiny model, ~1 min smoke
    python bench/bench.py --random-init llama-3.1-8b --only sft,gflops   random 8B weights (a GPU job)

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

The FLOP formula of a LoRA SFT step is in bench/flops.py (tests/test_bench.py checks it against
PyTorch's FLOP counter). --random-init CONFIG builds the model from a transformers config (a JSON
path, or a name in bench/configs/) with random weights, so large-model throughput needs no download
(bench/inputs.py). --qlora 1 trains both ours and TRL on a 4-bit NF4 base (default: bf16 LoRA for
both). The TRL peers are plain scripts run in their own processes, bench/trl_sft.py and
bench/trl_dpo.py, with the stages' own LoRA r and alpha (bench/peers.py); TRL
(requirements-bench.txt) is needed only by them.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from itool import distributed, modeling
from itool.files import atomic_write_json, read_jsonl, write_jsonl

# bench/'s own modules: the script's folder is on sys.path
import flops
import inputs
import peers

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BENCHMARKS = ("sft", "gflops", "dpo", "buffer", "mcts", "eval", "prefill")


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
    samples = inputs.samples_of_length(tokenizer, args.sft_steps * args.batch_size, args.sft_tokens)
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
        run_script(BENCH / "trl_sft.py", ["--model", model_dir, "--qlora", args.qlora, "--samples", samples_file,
                                          "--result", result, *trl_flags(args)], args.logs / f"sft_trl_{r}.log")
        return json.loads(result.read_text())

    runs = alternate("sft", {"ours": ours, "trl": trl} if with_trl else {"ours": ours}, args.rounds)
    figures = []
    if with_trl:
        figures += [figure("SFT tokens/s", "TRL SFTTrainer", best(runs["ours"], "tokens_per_s"),
                           best(runs["trl"], "tokens_per_s"), target=1.5),
                    figure("SFT peak memory MiB (lower is better)", "TRL SFTTrainer",
                           best(runs["ours"], "peak_memory_mib"), best(runs["trl"], "peak_memory_mib"))]
    shape = flops.model_shape(model_dir)
    flops_per_token = (sum(flops.sft_flops(shape, len(p) + len(c), len(c)) for p, c in encoded) /
                       sum(len(p) + len(c) for p, c in encoded))
    if with_gflops:
        achieved = best(runs["ours"], "decoder_tokens_per_s") * flops_per_token / 1e9
        figures.append(figure("SFT GFLOP/s", "bf16 matmul", achieved, matmul, target=0.35))
    details = {"runs": runs, "steps": args.sft_steps, "batch_size": args.batch_size,
               "mean_tokens": statistics.mean(len(p) + len(c) for p, c in encoded),
               "mean_answer_tokens": statistics.mean(len(c) for _, c in encoded), "shape": shape,
               "gflop_per_token": round(flops_per_token / 1e9, 6)}
    return figures, details


def trl_flags(args):
    """The settings a TRL peer shares with ours: the batch, and TRL's checkpointing."""
    return ["--batch-size", args.batch_size] + (["--no-gradient-checkpointing"]
                                                if args.trl_no_gradient_checkpointing else [])


# --- DPO: stage 06 vs TRL DPOTrainer -------------------------------------------------------------

def bench_dpo(args, model_dir, tokenizer, workdir):
    pairs_file = workdir / "dpo_pairs.jsonl"
    write_jsonl(pairs_file, inputs.preference_pairs(tokenizer, args.dpo_pairs * args.batch_size,
                                                    args.dpo_prompt_tokens, args.dpo_completion_tokens))

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
        per_pair = peers.seconds_per_pair(step_seconds, [m["pairs"] for m in metrics])
        return {"pairs_per_s": 1 / (per_pair + summary["reference_seconds"] / summary["pairs"]),
                "steps_only_pairs_per_s": 1 / per_pair, "reference_seconds": summary["reference_seconds"],
                "peak_memory_mib": summary["peak_memory_mib"]}

    def trl(r):
        result = workdir / f"dpo_trl_{r}.json"
        run_script(BENCH / "trl_dpo.py", ["--model", model_dir, "--qlora", args.qlora, "--pairs", pairs_file,
                                          "--result", result, *trl_flags(args)], args.logs / f"dpo_trl_{r}.log")
        return json.loads(result.read_text())

    runs = alternate("dpo", {"ours": ours, "trl": trl}, args.rounds)
    figures = [figure("DPO pairs/s", "TRL DPOTrainer", best(runs["ours"], "pairs_per_s"),
                      best(runs["trl"], "pairs_per_s"), target=1.5),
               figure("DPO peak memory MiB (lower is better)", "TRL DPOTrainer",
                      best(runs["ours"], "peak_memory_mib"), best(runs["trl"], "peak_memory_mib"))]
    return figures, {"runs": runs, "steps": args.dpo_pairs, "batch_size": args.batch_size}


# --- replay buffer: stage 03 vs --naive; MCTS: lockstep vs one tree at a time; eval: fast vs generate ---

def bench_buffer(args, model_dir, workdir):
    samples_file = workdir / "rl.jsonl"
    write_jsonl(samples_file, inputs.synthetic_samples(args.buffer_samples, seed=1)[:args.buffer_samples])

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
    write_jsonl(samples_file, inputs.synthetic_samples(args.mcts_samples, seed=2)[:args.mcts_samples])

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


def bench_prefill(args, model_dir, tokenizer, matmul):
    from itool import generation

    device = distributed.local_device()
    model = modeling.load_model(model_dir, device=device, qlora=modeling.use_qlora(args.qlora, device))
    generation.use_grouped_attention(model)
    eot = modeling.end_of_turn_id(tokenizer)
    prompts = [sum(modeling.encode_sample(tokenizer, s, eot), [])  # prompt and answer: a whole sample's tokens
               for s in inputs.samples_of_length(tokenizer, args.prefill_rows, args.prefill_tokens)]
    shape = flops.model_shape(model_dir)
    total = sum(flops.prefill_flops(shape, len(p)) for p in prompts)

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
    figures = [figure("prefill GFLOP/s", "bf16 matmul", total / seconds / 1e9, matmul)]
    return figures, {"rows": len(prompts), "tokens": tokens, "seconds": round(seconds, 3),
                     "tokens_per_s": round(tokens / seconds, 1), "gflop_per_token": round(total / tokens / 1e9, 4)}


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
                        help="random weights from a config JSON path or a name in bench/configs/ (replaces --model)")
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
    out = Path(args.out)
    args.logs = out / "logs"
    model_dir = inputs.random_model(args.random_init) if args.random_init else modeling.resolve_model(args.model)
    if Path(model_dir).exists():  # the runs start in the repository root
        model_dir = str(Path(model_dir).resolve())
    tokenizer = modeling.load_tokenizer(model_dir)
    device = distributed.local_device()
    started = time.perf_counter()
    matmul = None
    if "gflops" in args.only or "prefill" in args.only:
        size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
        matmul = flops.matmul_gflops(device, size, args.matmul_trials)
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
              "settings": {k: v for k, v in vars(args).items() if k != "logs"}}
    report["settings"]["out"] = str(out)
    atomic_write_json(out / "bench.json", report)
    print(f"\n{report['model']} on {report['device']}, {report['seconds']:.0f} s\n{table(figures)}\n"
          f"-> {out / 'bench.json'}")


if __name__ == "__main__":
    main()
