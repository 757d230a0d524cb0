"""The held-out test split (make eval): the run's own kind of data, never trained on nor tuned on.

    python eval/heldout.py --model gemma-3-270m [--adapter DIR] --out DIR \
        --samples data/default/splits/test.jsonl [--limit N]

Every assistant turn of the split's conversations is an item; the model answers it greedily from
the same prompt layout it was trained on, and the answer is scored with the search's own rule
(outcome.is_correct): the gold's calls, order-free; for a text gold, the same job done (a
decline, the missing parameter asked for, the tool result's facts restated; see outcome.py).
Items are grouped by what the gold does: call, or the job of a text answer (ask, decline,
report, other), so a comparison of two checkpoints (eval/compare.py) reports each group.

Outputs in --out: heldout_generations.jsonl, heldout_verdicts.jsonl (id, category, valid, the
answer's kind), heldout_scores.json, heldout.md. A killed run resumes from its partial file.
"""
import argparse
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

import common
from outcome import answer_kind, intent, is_correct, tool_names
from records import RecordError, atomic_write_json, atomic_write_text, check_samples, read_jsonl, \
    tools_from_system, write_jsonl

PARTIAL = ".heldout_generations.partial.jsonl"


def category(sample):
    """What the gold does: "call", or the job of its text (outcome.intent)."""
    if sample.get("kind") == "call":
        return "call"
    return intent(sample["answer"], sample["messages"], tools_from_system(sample["system"]) or [])


def load_items(path, limit):
    try:
        samples = read_jsonl(path)
        check_samples(samples, path)
    except (RecordError, OSError) as e:
        raise SystemExit(f"error: {e} (run `make split` first: the split writes test.jsonl)")
    return common.spread(samples, limit)


def evaluate(items, generate, args):
    """Generate answers, score them, write the outputs to args.out; returns the scores."""
    out = Path(args.out)
    started = time.time()
    texts = generate_all(items, generate, out, args)
    seconds = time.time() - started
    generations, verdicts = [], []
    for item in items:
        text = texts[item["id"]]
        generations.append({"id": item["id"], "output": text})
        verdicts.append({"id": item["id"], "category": category(item), "valid": is_correct(text, item),
                         "kind": answer_kind(text, tool_names(item["system"])), "gold": item["answer"]})
    scores = summarise(verdicts, args, seconds)
    write_jsonl(out / "heldout_generations.jsonl", generations)
    write_jsonl(out / "heldout_verdicts.jsonl", verdicts)
    atomic_write_text(out / "heldout.md", markdown(scores, args.adapter or f"{args.model} (base)"))
    atomic_write_json(out / "heldout_scores.json", scores)  # last: the file make watches
    (out / PARTIAL).unlink(missing_ok=True)
    return scores


def generate_all(items, generate, out, args):
    """Every item's answer, taking what a killed run with the same settings already generated."""
    from training import fingerprint

    settings = {"model": args.model, "adapter": args.adapter, "qlora": args.qlora, "generator": args.generator,
                "max_new_tokens": args.max_new_tokens}
    inputs = [__file__, common.__file__, args.samples] + \
        ([str(Path(args.adapter) / "adapter_model.safetensors")] if args.adapter else [])
    texts = {i: row["output"] for i, row in common.open_partial(out / PARTIAL, fingerprint(settings, inputs)).items()}
    todo = [item for item in items if item["id"] not in texts]
    chunk = 4 * args.batch_size
    with tqdm(total=len(items), initial=len(items) - len(todo), desc="held-out", unit="item", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            rows = [{"id": item["id"], "output": text} for item, text in zip(part, generate(part, args.max_new_tokens))]
            texts.update((r["id"], r["output"]) for r in rows)
            common.append_partial(out / PARTIAL, rows)
            bar.update(len(part))
    return texts


def summarise(verdicts, args, seconds):
    groups = {}
    for name in sorted({v["category"] for v in verdicts}):
        valid = [v["valid"] for v in verdicts if v["category"] == name]
        groups[name] = {"accuracy": sum(valid) / len(valid), "correct": sum(valid), "scored": len(valid)}
    valid = [v["valid"] for v in verdicts]
    return {"benchmark": "held-out split", "samples": args.samples, "model": args.model, "adapter": args.adapter,
            "limit": args.limit, "accuracy": sum(valid) / len(valid) if valid else None, "correct": sum(valid),
            "scored": len(valid), "categories": groups,
            "answer_kinds": dict(Counter(v["kind"] for v in verdicts)),
            "seconds": round(seconds, 1), "seconds_per_item": seconds / max(1, len(verdicts))}


def markdown(scores, label):
    lines = [f"# Held-out split: {label}", "", f"{scores['samples']}: {scores['correct']} / {scores['scored']} correct "
             f"({common.percent(scores['accuracy'])} %), limit {scores['limit'] or 'none'}; "
             f"{scores['seconds_per_item']:.2f} s per item.", "",
             "| gold does | accuracy | correct / scored |", "|---|---|---|"]
    lines += [f"| {name} | {common.percent(g['accuracy'])} | {g['correct']} / {g['scored']} |"
              for name, g in scores["categories"].items()]
    lines += ["", f"Answers written: {scores['answer_kinds']} (malformed: an attempted call that does not parse, or "
              "text no answer can hold).", ""]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_checkpoint_flags(parser)
    parser.add_argument("--samples", required=True, help="the split's test.jsonl (stage 01)")
    parser.add_argument("--limit", type=int, default=0, help="items, spread evenly (0 = all)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows decoded together (a pool new prompts join)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    return parser.parse_args(argv)


def main():
    args = parse_args()
    items = load_items(args.samples, args.limit)
    generate = common.load_generator(args.model, args.adapter, args.qlora, args.batch_size,
                                     reference=args.generator == "reference")
    scores = evaluate(items, generate, args)
    print(markdown(scores, args.adapter or f"{args.model} (base)"))


if __name__ == "__main__":
    main()
