"""The held-out test split (make eval), or any other ToolACE-format yardstick never trained on
(make ladder: the real ToolACE sample), scored the same way.

    python eval/heldout.py --model gemma-3-270m [--adapter DIR] --out DIR \
        --samples data/default/splits/test.jsonl [--limit N] [--name heldout]

--samples is a split's samples (stage 01's test.jsonl) or a records file (stage 00's toolace.jsonl
of any ToolACE-format data), whose every assistant turn becomes a sample.

Every assistant turn of the split's conversations is an item; the model answers it greedily from
the same prompt layout it was trained on, and the answer is scored with the search's own rule
(outcome.is_correct): the gold's calls, order-free; for a text gold, the same job done (a
decline, the missing parameter asked for, the tool result's facts restated; see itool/outcome.py).
Items are grouped by what the gold does: call, or the job of a text answer (ask, decline,
report, other), so a comparison of two checkpoints (eval/compare.py) reports each group.

Outputs in --out, named after --name: <name>_generations.jsonl, <name>_verdicts.jsonl (id, category,
valid, the answer's kind), <name>_scores.json, <name>.md. A killed run resumes from its partial file.
"""
import argparse
from collections import Counter

from eval import common
from itool.files import read_jsonl
from itool.outcome import answer_kind, intent, is_correct, tool_names
from itool.records import RecordError, check_samples, record_samples, tools_from_system


def category(sample):
    """What the gold does: "call", or the job of its text (outcome.intent)."""
    if sample.get("kind") == "call":
        return "call"
    return intent(sample["answer"], sample["messages"], tools_from_system(sample["system"]) or [])


def load_items(path, limit):
    """The samples of a split file, or of every assistant turn of a records file; --limit of them."""
    try:
        rows = read_jsonl(path)
        if rows and "conversations" in rows[0]:  # records (stage 00), not samples (stage 01)
            rows = [s for i, record in enumerate(rows) for s in record_samples(record, record.get("id", f"r{i}"))]
        check_samples(rows, path)
    except (RecordError, OSError) as e:
        raise SystemExit(f"error: {e} (run `make split` first: the split writes test.jsonl)")
    return common.spread(rows, limit)


def evaluate(items, generate, args):
    """Generate answers, judge them, write the outputs to args.out; returns the scores."""
    return common.evaluate(args.name, items, generate, args, judge=judge, summarise=summarise, markdown=markdown,
                           inputs=[__file__, args.samples])


def judge(item, text):
    return {"id": item["id"], "category": category(item), "valid": is_correct(text, item),
            "kind": answer_kind(text, tool_names(item["system"])), "gold": item["answer"]}


def summarise(verdicts, args, timing):
    groups = {}
    for name in sorted({v["category"] for v in verdicts}):
        valid = [v["valid"] for v in verdicts if v["category"] == name]
        groups[name] = {"accuracy": sum(valid) / len(valid), "correct": sum(valid), "scored": len(valid)}
    valid = [v["valid"] for v in verdicts]
    seconds = timing["generation_seconds"]
    return {"benchmark": common.BENCHMARKS.get(args.name, args.name), "samples": args.samples, "model": args.model,
            "adapter": args.adapter, "limit": args.limit, "accuracy": sum(valid) / len(valid) if valid else None,
            "correct": sum(valid), "scored": len(valid), "categories": groups,
            "answer_kinds": dict(Counter(v["kind"] for v in verdicts)),
            "seconds": round(seconds, 1), "seconds_per_item": seconds / max(1, len(verdicts))}


def markdown(scores, label):
    lines = [f"# {scores['benchmark']}: {label}", "", f"{scores['samples']}: {scores['correct']} / {scores['scored']} correct "
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
    parser.add_argument("--samples", required=True,
                        help="the split's test.jsonl (stage 01), or a records file (stage 00's toolace.jsonl)")
    parser.add_argument("--name", default="heldout", help="what its output files are named after (heldout, toolace)")
    parser.add_argument("--limit", type=int, default=0, help="items, spread evenly (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    return parser.parse_args(argv)


def main():
    args = parse_args()
    scores = evaluate(load_items(args.samples, args.limit), common.load_generator(args), args)
    print(markdown(scores, common.label(args)))


if __name__ == "__main__":
    main()
