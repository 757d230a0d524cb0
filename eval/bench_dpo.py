"""DPO throughput and peak memory: stage 06 versus TRL's DPOTrainer, on the same pairs, model and
LoRA configuration (r 8, alpha 16, all linear layers, bf16), one pair per step, alternating runs.

    python eval/bench_dpo.py --model gemma-3-270m --pairs 6 --rounds 2 --out eval/results/bench/dpo.json

Every run is its own process, so that its peak memory (max RSS on a CPU) is its own. Both start
from a fresh LoRA on the base model; TRL's reference is that model with the adapter disabled (one
no-grad forward per step), stage 06's is its precomputed pass, counted in its end-to-end time.
Reported per run: steady pairs/s (steps after the first), the fastest step's pairs/s, end-to-end
pairs/s (everything from the first step, and for stage 06 the reference pass too), peak memory.
On a machine shared with other jobs, run it with OMP_NUM_THREADS=1: two OpenMP threads competing
with other processes for two cores wait on each other and runs slow down up to tenfold, at random.
Needs `pip install -r requirements-bench.txt` (trl).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "stages"))

import modeling  # noqa: E402
import records  # noqa: E402
import synthetic  # noqa: E402
from records import write_jsonl  # noqa: E402


def benchmark_pairs(tokenizer, n, prompt_tokens=384, completion_tokens=64, seed=0):
    """n pair rows in stage 05's schema: synthetic dialogues whose prompt is prompt_tokens long (±16),
    chosen and rejected cut from other gold answers to completion_tokens (with end-of-turn)."""
    samples = [s for i, r in enumerate(synthetic.generate(400, seed=seed)) for s in records.record_samples(r, f"b{i}")]
    answers = " ".join(s["answer"] for s in samples)
    answer_ids = tokenizer(answers, add_special_tokens=False).input_ids
    rows = []
    for s in samples:
        if abs(len(modeling.encode_prompt(tokenizer, s["system"], s["messages"])) - prompt_tokens) > 16:
            continue
        k = len(rows)
        start = 2 * k * completion_tokens
        chosen = tokenizer.decode(answer_ids[start:start + completion_tokens - 1])
        rejected = tokenizer.decode(answer_ids[start + completion_tokens:start + 2 * completion_tokens - 1])
        rows.append({"id": f"{s['id']}:0", "sample_id": s["id"], "depth": 0, "system": s["system"],
                     "messages": s["messages"], "prefix": "", "chosen": chosen, "rejected": rejected,
                     "chosen_ends": True, "rejected_ends": True, "q_chosen": 1.0, "q_rejected": -1.0})
        if len(rows) == n:
            return rows
    raise RuntimeError(f"only {len(rows)} synthetic prompts of {prompt_tokens} ± 16 tokens")


def rates(times, pairs):
    """Pairs/s over the steps after the first, and of the fastest step (the least disturbed by other
    processes on a shared machine); times[k] = seconds from the start to the end of step k."""
    steps = [(n, t1 - t0) for n, t0, t1 in zip(pairs[1:], times, times[1:])]
    return {"steady_pairs_per_s": sum(n for n, _ in steps) / sum(t for _, t in steps),
            "best_step_pairs_per_s": max(n / t for n, t in steps)}


def run_ours(model, pairs_file, workdir):
    out = Path(workdir) / "ours"
    subprocess.run([sys.executable, str(REPO / "stages/06_dpo.py"), "--model", model, "--pairs", str(pairs_file),
                    "--out", str(out), "--batch-size", "1", "--micro-batch", "1", "--epochs", "1",
                    "--lr", "5e-5", "--save-every", "1000000"], check=True, stderr=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    pairs = [m["pairs"] for m in metrics]
    times = [sum(pairs[:k + 1]) / m["pairs_per_s"] for k, m in enumerate(metrics)]  # pairs_per_s is cumulative
    return {**rates(times, pairs),
            "end_to_end_pairs_per_s": sum(pairs) / (summary["train_seconds"] + summary["reference_seconds"]),
            "peak_memory_mib": summary["peak_memory_mib"]}


def trl_worker(model, pairs_file, result_file, gradient_checkpointing):
    """Runs in its own process: TRL's DPOTrainer as a user would set it up, one pair per step."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    import training

    model_dir = modeling.resolve_model(model)
    tokenizer = modeling.load_tokenizer(model_dir)
    rows = records.read_jsonl(pairs_file)
    bos = tokenizer.bos_token or ""
    data = Dataset.from_list([{  # the stage's exact prompt text; TRL's tokenizer adds the BOS itself
        "prompt": tokenizer.apply_chat_template(modeling.chat_messages(r["system"], r["messages"]), tokenize=False,
                                                add_generation_prompt=True).removeprefix(bos),
        "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    step_ends = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            step_ends.append(time.time())

    with tempfile.TemporaryDirectory() as tmp:
        config = DPOConfig(output_dir=tmp, per_device_train_batch_size=1, max_steps=len(rows), learning_rate=5e-5,
                           beta=0.1, bf16=True, use_cpu=True, logging_steps=1, report_to=[], save_strategy="no",
                           max_length=None, gradient_checkpointing=gradient_checkpointing, dataloader_num_workers=0)
        trainer = DPOTrainer(model=policy, args=config, train_dataset=data, processing_class=tokenizer,
                             peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                    task_type="CAUSAL_LM"), callbacks=[StepTimes()])
        lengths = [(len(e["prompt_ids"]), len(e["chosen_ids"]), len(e["rejected_ids"])) for e in trainer.train_dataset]
        started = time.time()
        trainer.train()
    times = [t - started for t in step_ends]
    result = {**rates(times, [1] * len(times)), "end_to_end_pairs_per_s": len(rows) / times[-1],
              "peak_memory_mib": round(training.peak_memory_mib(torch.device("cpu"))),
              "mean_tokens": [round(statistics.mean(x), 1) for x in zip(*lengths)]}
    Path(result_file).write_text(json.dumps(result))


def run_trl(model, pairs_file, workdir, gradient_checkpointing=True):
    result_file = Path(workdir) / "trl.json"
    subprocess.run([sys.executable, __file__, "--trl-worker", str(result_file), "--model", model,
                    "--pairs-file", str(pairs_file)] + (["--no-gradient-checkpointing"] if not gradient_checkpointing else []),
                   check=True, stderr=subprocess.DEVNULL)
    return json.loads(result_file.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--pairs", type=int, default=6, help="pairs (= steps) per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--prompt-tokens", type=int, default=384)
    parser.add_argument("--completion-tokens", type=int, default=64)
    parser.add_argument("--trl-no-gradient-checkpointing", action="store_true",
                        help="TRL without its default gradient checkpointing (faster, more memory)")
    parser.add_argument("--out", default="eval/results/bench/dpo.json")
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    parser.add_argument("--pairs-file", help=argparse.SUPPRESS)
    parser.add_argument("--no-gradient-checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_worker:
        return trl_worker(args.model, args.pairs_file, args.trl_worker, not args.no_gradient_checkpointing)

    tokenizer = modeling.load_tokenizer(modeling.resolve_model(args.model))
    with tempfile.TemporaryDirectory() as workdir:
        pairs_file = Path(workdir) / "pairs.jsonl"
        rows = benchmark_pairs(tokenizer, args.pairs, args.prompt_tokens, args.completion_tokens)
        write_jsonl(pairs_file, rows)
        eot = modeling.end_of_turn_id(tokenizer)
        encoded = [modeling.encode_continuation(tokenizer, r["system"], r["messages"], "", r[side], True, eot)
                   for r in rows for side in ("chosen", "rejected")]
        our_tokens = [round(statistics.mean(len(p) for p, _ in encoded), 1),
                      round(statistics.mean(len(c) for _, c in encoded), 1)]
        runs = {"stage06": [], "trl": []}
        for r in range(args.rounds):
            for name in ("stage06", "trl"):
                result = (run_ours(args.model, pairs_file, workdir) if name == "stage06" else
                          run_trl(args.model, pairs_file, workdir, not args.trl_no_gradient_checkpointing))
                runs[name].append(result)
                print(f"round {r + 1} {name}: {json.dumps(result)}", flush=True)
    best = {name: max(x["steady_pairs_per_s"] for x in results) for name, results in runs.items()}
    best_step = {name: max(x["best_step_pairs_per_s"] for x in results) for name, results in runs.items()}
    report = {"model": args.model, "pairs": args.pairs, "prompt_tokens": args.prompt_tokens,
              "completion_tokens": args.completion_tokens, "stage06_mean_tokens": our_tokens,
              "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "runs": runs,
              "speedup_steady_best": best["stage06"] / best["trl"],
              "speedup_best_step": best_step["stage06"] / best_step["trl"],
              "speedup_end_to_end_best": max(x["end_to_end_pairs_per_s"] for x in runs["stage06"]) /
                                         max(x["end_to_end_pairs_per_s"] for x in runs["trl"])}
    records.atomic_write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
