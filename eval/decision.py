"""Does a checkpoint know when to call? The probability that its answer opens a call list, read at
the first answer token of every item that answers a user turn, grouped by what the gold does.

    python eval/decision.py --model gemma-3-270m [--adapter DIR] \
        --samples data/default/splits/test.jsonl [--limit N] [--out FILE.json]

Greedy decoding writes a call wherever p(call) is over one half, so a warm-up that never declines
or asks is one of two things: close (p(call) a little over one half where the gold is text, and
lower there than where the gold is a call: a small push flips it) or blind (the same p(call)
whatever the gold: it has learnt how often the data calls, not when). The table tells which: each
group's quartiles of p(call), and the AUC of p(call) as a test of "the gold is a call" (1: every
call gold above every text gold; 0.5: blind). Items after a tool result (reports) are left out:
there the context alone says that text is due.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from eval.heldout import category, load_items
from itool import distributed, generation, modeling
from itool.files import atomic_write_json
from itool.records import answers_user


@torch.inference_mode()
def call_probabilities(model, tokenizer, samples):
    """p(the answer's first token opens a call list) for each sample, from its training-layout prompt."""
    starts = modeling.call_start_ids(tokenizer)
    return [logits.softmax(-1)[0, starts].sum().item()
            for logits in generation.first_answer_logits(model, tokenizer, samples, "p(call)")]


def auc(positives, negatives):
    """P(a random positive scores above a random negative), ties counting one half."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def quartiles(values):
    ordered = sorted(values)
    return [round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4) for q in (0.25, 0.5, 0.75)]


def report(groups):
    """{group: {items, p_call quartiles, share over one half}} and the call-against-text AUC."""
    calls = groups.get("call", [])
    texts = [p for name, values in groups.items() if name != "call" for p in values]
    table = {name: {"items": len(values), "p_call_quartiles": quartiles(values),
                    "share_over_half": round(sum(p > 0.5 for p in values) / len(values), 4)}
             for name, values in sorted(groups.items())}
    score = auc(calls, texts)
    return {"groups": table, "auc_call_vs_text": None if score is None else round(score, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modeling.add_model_flags(parser, adapter_help="LoRA adapter directory (none: the base model)")
    parser.add_argument("--samples", required=True, help="a split's samples (stage 01's test.jsonl) or a records file")
    parser.add_argument("--limit", type=int, default=0, help="items, spread evenly, before the user-turn filter (0 = all)")
    parser.add_argument("--out", help="JSON file for the table (default: print only)")
    args = parser.parse_args(argv)

    items = [s for s in load_items(args.samples, args.limit) if answers_user(s)]
    if not items:
        sys.exit(f"error: {args.samples}: no item answers a user turn")
    try:
        tokenizer, model = modeling.load_policy(args, distributed.local_device())
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    groups = {}
    for item, p in zip(items, call_probabilities(model, tokenizer, items)):
        groups.setdefault(category(item), []).append(p)
    result = {"samples": str(args.samples), "adapter": args.adapter, **report(groups)}
    if args.out:
        atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
