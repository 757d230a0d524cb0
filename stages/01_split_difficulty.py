"""Stage 01 (make split): warm-up / RL / held-out test split by conversation, and the warm-up's
easy/medium/hard thirds.

Each assistant turn is a sample. Conversations, not samples, are split into warm-up, RL and test
(seeded; --shares, in percent: 59/15/26 by default), so no dialogue is seen by two of them; 26 %
of the default 1,500 conversations is the smallest share that holds out over 500 samples, enough
for a paired interval of a few points. The paper's split is --shares 90/10/0: 90 % warm-up, 10 %
RL and no held-out split (it tests on BFCL and API-Bank); test.jsonl is then empty. The test split is never trained on: it is where checkpoints
are compared (eval/heldout.py). Warm-up samples are ranked on the paper's three difficulty criteria
(number of candidate tools, string length of the tool list, number of calls in the answer); the
three ranks are averaged and the order is cut into equal thirds (--thirds all, the paper's).
--thirds by-kind ranks and cuts three strata apart (calls, text reporting a tool result, text
answering the user) and joins them level by level, so that every phase holds the same share of
each; --thirds replies cuts only the replies apart and ranks calls and reports together, as the
paper does.
"""
import argparse
import json
import random
import sys
from pathlib import Path

from itool.files import atomic_write_json, read_jsonl, write_jsonl
from itool.records import RecordError, record_samples, validate_record

CRITERIA = ("n_tools", "tools_chars", "n_calls")
LEVELS = ("easy", "medium", "hard")
STRATA_APART = {"by-kind": ("call", "report", "reply"), "replies": ("reply",)}  # --thirds: strata cut apart


def average_ranks(values):
    """Rank of each value (1 = smallest), ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def split_conversations(records, rl_fraction, test_fraction, seed):
    """(warm-up ids, RL ids, test ids): a seeded shuffle of conversation ids, the first
    test_fraction of them to test, the next rl_fraction to RL, the rest to the warm-up."""
    ids = sorted(r["id"] for r in records)
    random.Random(seed).shuffle(ids)
    n_test = max(1, round(len(ids) * test_fraction)) if test_fraction > 0 else 0
    n_rl = max(1, round(len(ids) * rl_fraction))
    if len(ids) - n_rl - n_test < 3:
        raise RecordError(f"only {len(ids)} conversations: too few for a test split, an RL split and three "
                          "warm-up thirds")
    return set(ids[n_test + n_rl:]), set(ids[n_test:n_test + n_rl]), set(ids[:n_test])


def difficulty_thirds(samples):
    """Samples ordered by averaged criterion rank, cut into thirds whose sizes differ by at most 1."""
    ranks = [average_ranks([s[c] for s in samples]) for c in CRITERIA]
    for i, s in enumerate(samples):
        s["difficulty"] = sum(r[i] for r in ranks) / len(CRITERIA)
    ordered = sorted(samples, key=lambda s: (s["difficulty"], s["id"]))
    thirds, start = {}, 0
    for i, level in enumerate(LEVELS):
        size = len(ordered) // 3 + (i < len(ordered) % 3)
        thirds[level] = ordered[start:start + size]
        start += size
    return thirds


def stratum(sample):
    """What a sample's answer does, as far as the split can tell without a model: a call, text that
    reports a tool result, or text that answers the user (an ask, a decline, chat)."""
    if sample["kind"] == "call":
        return "call"
    after_tool = bool(sample["messages"]) and sample["messages"][-1]["role"] == "tool"
    return "report" if after_tool else "reply"


def thirds_by_kind(samples, apart):
    """difficulty_thirds of each stratum in `apart` apart (the rest ranked together), joined level
    by level: every phase then holds the data's share of each. Ranked together, the replies (no
    calls, often few tools) fill the easy third and the curriculum ends on calls and reports alone,
    which teaches the warm-up to call on every request, where it should decline or ask."""
    strata, thirds = {}, {level: [] for level in LEVELS}
    for s in samples:
        kind = stratum(s)
        strata.setdefault(kind if kind in apart else "rest", []).append(s)
    for kind in sorted(strata):
        for level, part in difficulty_thirds(strata[kind]).items():
            thirds[level].extend(part)
    for level in LEVELS:
        thirds[level].sort(key=lambda s: (s["difficulty"], s["id"]))
    return thirds


def describe(samples):
    stats = {"samples": len(samples), "conversations": len({s["conversation"] for s in samples}),
             "call_answers": sum(s["kind"] == "call" for s in samples)}
    for c in CRITERIA + ("difficulty",):
        values = [s[c] for s in samples if c in s]
        if values:
            stats[c] = {"min": min(values), "max": max(values), "mean": round(sum(values) / len(values), 3)}
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", required=True, help="toolace.jsonl from stage 00")
    parser.add_argument("--out", required=True, help="folder of the split files (splits/)")
    parser.add_argument("--shares", default="59/15/26",
                        help="warm-up/RL/test percentages of the conversations (the paper's: 90/10/0, no test split)")
    parser.add_argument("--thirds", choices=(*STRATA_APART, "all"), default="all",
                        help="by-kind: calls, reports and replies ranked apart, so each third has the same mix; "
                             "replies: only the replies (asks, declines) apart, in every third; "
                             "all: every sample ranked together (the paper)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        shares = [float(x) for x in args.shares.split("/")]
    except ValueError:
        shares = []
    if len(shares) != 3 or min(shares) < 0 or shares[0] <= 0 or shares[1] <= 0 or abs(sum(shares) - 100) > 1e-6:
        parser.error(f"--shares {args.shares!r}: three percentages warm-up/RL/test adding up to 100, the first two "
                     "above 0 (e.g. 59/15/26, or the paper's 90/10/0)")
    args.rl_fraction, args.test_fraction = shares[1] / 100, shares[2] / 100
    return args


def main():
    args = parse_args()
    try:
        records = read_jsonl(args.records)
        for i, record in enumerate(records):
            validate_record(record, f"{args.records}: record {i}")
        warmup_ids, rl_ids, test_ids = split_conversations(records, args.rl_fraction, args.test_fraction, args.seed)
    except RecordError as e:
        sys.exit(f"error: {e}")

    warmup, rl, test = [], [], []
    for record in records:
        samples = record_samples(record, record["id"])
        (rl if record["id"] in rl_ids else test if record["id"] in test_ids else warmup).extend(samples)
    thirds = difficulty_thirds(warmup) if args.thirds == "all" else thirds_by_kind(warmup, STRATA_APART[args.thirds])

    out = Path(args.out)
    for level, samples in thirds.items():
        write_jsonl(out / f"{level}.jsonl", samples)
    write_jsonl(out / "rl.jsonl", rl)
    write_jsonl(out / "test.jsonl", test)
    stats = {"seed": args.seed, "thirds": args.thirds, "rl_fraction": args.rl_fraction, "test_fraction": args.test_fraction,
             **{level: describe(samples) for level, samples in thirds.items()}, "rl": describe(rl)}
    if test:
        stats["test"] = describe(test)
    data_stats = Path(args.records).with_name("data_stats.json")
    if data_stats.exists():
        stats["input"] = json.loads(data_stats.read_text())  # records read and malformed ones skipped
    atomic_write_json(out / "stats.json", stats)
    print(" ".join(f"{level}={len(s)}" for level, s in thirds.items()) + f" rl={len(rl)} test={len(test)} samples "
          f"-> {out}/")


if __name__ == "__main__":
    main()
