"""Warm-up SFT throughput and peak memory: stage 02 versus TRL's SFTTrainer on the same samples, model
and LoRA configuration (r 8, alpha 16, all linear layers, bf16), one 512-token sample per step,
alternating runs.

    python eval/bench_sft.py --model gemma-3-270m --steps 8 --rounds 2 --out eval/results/bench/sft.json

Every run is its own process, so that its peak memory (max RSS on a CPU) is its own. Tokens/s counts
every token of a sample (prompt and answer) per second of training-step wall time, over the steps
after the first (which pays one-off allocations). TRL runs as a user would set it up: prompt-completion
data (loss on the answer only), its default gradient checkpointing unless --trl-no-gradient-checkpointing.
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


def benchmark_samples(tokenizer, n, tokens=512, tolerance=16, seed=0):
    """n synthetic samples (stage 01's schema) whose prompt + answer is tokens ± tolerance long."""
    eot = modeling.end_of_turn_id(tokenizer)
    samples = [s for i, r in enumerate(synthetic.generate(600, seed=seed)) for s in records.record_samples(r, f"b{i}")]
    chosen = [s for s in samples if abs(sum(map(len, modeling.encode_sample(tokenizer, s, eot))) - tokens) <= tolerance]
    if len(chosen) < n:
        raise RuntimeError(f"only {len(chosen)} synthetic samples of {tokens} ± {tolerance} tokens")
    return chosen[:n]


def run_ours(model, samples, workdir, threads):
    """Stage 02 on the samples (a third each as easy, medium, hard), one sample per step."""
    splits, out = Path(workdir) / "splits", Path(workdir) / "ours"
    third = len(samples) // 3
    for k, level in enumerate(("easy", "medium", "hard")):
        write_jsonl(splits / f"{level}.jsonl", samples[k * third:(k + 1) * third if k < 2 else None])
    _run([str(REPO / "stages/02_sft.py"), "--model", model, "--splits-dir", str(splits), "--out", str(out),
          "--batch-size", "1", "--log-every", "1", "--save-every", "1000000"], threads)
    summary = json.loads((out / "summary.json").read_text())
    return {"tokens_per_s": summary["tokens_per_s"], "peak_memory_mib": summary["peak_memory_mib"]}


def trl_worker(model, samples_file, result_file, gradient_checkpointing):
    """Runs in its own process: TRL's SFTTrainer as a user would set it up, one sample per step."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    import training

    model_dir = modeling.resolve_model(model)
    tokenizer = modeling.load_tokenizer(model_dir)
    samples = records.read_jsonl(samples_file)
    bos = tokenizer.bos_token or ""
    data = Dataset.from_list([{  # the stage's exact prompt text; TRL's tokenizer adds the BOS itself
        "prompt": tokenizer.apply_chat_template(modeling.chat_messages(s["system"], s["messages"]), tokenize=False,
                                                add_generation_prompt=True).removeprefix(bos),
        "completion": s["answer"]} for s in samples])
    step_ends = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            step_ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(output_dir=tmp, per_device_train_batch_size=1, max_steps=len(samples), learning_rate=5e-5,
                           weight_decay=0.01, bf16=True, use_cpu=True, logging_steps=1, report_to=[],
                           save_strategy="no", max_length=None, eos_token="<end_of_turn>",
                           gradient_checkpointing=gradient_checkpointing, dataloader_num_workers=0)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16), args=config,
                             train_dataset=data, processing_class=tokenizer, callbacks=[StepTimes()],
                             peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                    task_type="CAUSAL_LM"))
        mean_tokens = statistics.mean(len(e["input_ids"]) for e in trainer.train_dataset)
        trainer.train()
    seconds = step_ends[-1] - step_ends[0]
    result = {"tokens_per_s": round(mean_tokens * (len(step_ends) - 1) / seconds, 1),
              "peak_memory_mib": round(training.peak_memory_mib(torch.device("cpu"))),
              "mean_tokens": round(mean_tokens, 1)}
    Path(result_file).write_text(json.dumps(result))


def run_trl(model, samples_file, workdir, threads, gradient_checkpointing=True):
    result_file = Path(workdir) / "trl.json"
    _run([__file__, "--trl-worker", str(result_file), "--model", model, "--samples-file", str(samples_file)]
         + ([] if gradient_checkpointing else ["--no-gradient-checkpointing"]), threads)
    return json.loads(result_file.read_text())


def _run(command, threads):
    """A Python script in its own process (OMP_NUM_THREADS=threads if set); its stderr tail on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    result = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command[:1])} failed:\n{result.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--steps", type=int, default=8, help="samples (= steps) per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per sample (prompt + answer, ± 16)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the runs (0: torch's default)")
    parser.add_argument("--trl-no-gradient-checkpointing", action="store_true",
                        help="TRL without its default gradient checkpointing (faster, more memory)")
    parser.add_argument("--out", default="eval/results/bench/sft.json")
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    parser.add_argument("--samples-file", help=argparse.SUPPRESS)
    parser.add_argument("--no-gradient-checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_worker:
        return trl_worker(args.model, args.samples_file, args.trl_worker, not args.no_gradient_checkpointing)

    tokenizer = modeling.load_tokenizer(modeling.resolve_model(args.model))
    samples = benchmark_samples(tokenizer, args.steps, args.tokens)
    eot = modeling.end_of_turn_id(tokenizer)
    our_tokens = statistics.mean(sum(map(len, modeling.encode_sample(tokenizer, s, eot))) for s in samples)
    runs = {"stage02": [], "trl": []}
    with tempfile.TemporaryDirectory() as workdir:
        samples_file = Path(workdir) / "samples.jsonl"
        write_jsonl(samples_file, samples)
        for r in range(args.rounds):
            for name in runs:
                result = (run_ours(args.model, samples, workdir, args.threads) if name == "stage02" else
                          run_trl(args.model, samples_file, workdir, args.threads, not args.trl_no_gradient_checkpointing))
                runs[name].append(result)
                print(f"round {r + 1} {name}: {json.dumps(result)}", flush=True)
    best = {name: max(x["tokens_per_s"] for x in results) for name, results in runs.items()}
    report = {"model": args.model, "steps": args.steps, "stage02_mean_tokens": round(our_tokens, 1),
              "threads": args.threads or None, "cpus": os.cpu_count(),
              "trl_gradient_checkpointing": not args.trl_no_gradient_checkpointing, "runs": runs,
              "speedup_best": round(best["stage02"] / best["trl"], 2),
              "speedup_median": round(statistics.median(x["tokens_per_s"] for x in runs["stage02"]) /
                                      statistics.median(x["tokens_per_s"] for x in runs["trl"]), 2)}
    records.atomic_write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
