"""Stage 00 (make data): normalise the input records into data/$(RUN)/toolace.jsonl.

DATA is `synthetic` (the project's own generator, seeded), a local ToolACE-format .json array or
.jsonl file, or a hub dataset id (or a local dataset folder, loaded the same way by `datasets`).
Every record is validated (records.validate_record): its structure, its tool list (read in every
layout ToolACE uses), and each assistant turn, which must be text or a call list the grammar parses
calling only the record's own tools. Malformed records stop the stage with errors naming the file,
the record and the turn, or with --skip-bad are skipped and counted, by reason, in data_stats.json.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from itool.files import atomic_write_json, write_jsonl
from itool.records import RecordError, validate_record


def load_local(path):
    """Records of a .json array or a .jsonl file, each with the place it came from."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".jsonl"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((json.loads(line), f"{path}: record {len(records)} (line {n})"))
                except json.JSONDecodeError as e:
                    raise RecordError(f"{path}: record {len(records)} (line {n}): invalid JSON ({e.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    return [(record, f"{path}: record {i}") for i, record in enumerate(data)]


def load_hub(dataset_id):
    import datasets

    try:
        rows = datasets.load_dataset(dataset_id, split="train")
    except Exception as e:  # no network, unknown id, gated dataset: say which input failed
        sys.exit(f"DATA={dataset_id}: could not load it from the dataset hub ({type(e).__name__}: {e})")
    return [(dict(row), f"{dataset_id}: record {i}") for i, row in enumerate(rows)]


def load_records(data, conversations, seed):
    if data == "synthetic":
        from itool import synthetic

        return [(r, f"synthetic: record {i}") for i, r in enumerate(synthetic.generate(conversations, seed))]
    if Path(data).is_file():
        if not data.endswith((".json", ".jsonl")):
            sys.exit(f"DATA={data}: expected a .json or .jsonl file in ToolACE format")
        return load_local(data)
    return load_hub(data)  # a hub id, or a local dataset folder: datasets reads both the same way


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--conversations", type=int, default=1500, help="conversations to generate (synthetic only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed records (counted) instead of failing")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def main():
    args = parse_args()

    try:
        loaded = load_records(args.data, args.conversations, args.seed)
    except RecordError as e:
        sys.exit(f"error: {e}")
    kept, skipped = [], []
    for record, where in loaded:
        try:
            validate_record(record, where)
        except RecordError as e:
            skipped.append(e)
            continue
        kept.append({"id": f"r{len(kept):06d}", "system": record["system"], "conversations": record["conversations"]})
    reasons = dict(Counter(e.reason for e in skipped).most_common())
    if skipped and not args.skip_bad:
        # every bad record at once, not one per run: a real data set has several kinds of them
        listed = "\n".join(f"error: {e}" for e in skipped[:5])
        more = f"\n... {len(skipped) - 5} more" if len(skipped) > 5 else ""
        sys.exit(f"{listed}{more}\n{len(skipped)} malformed records in DATA={args.data} ({reasons}); "
                 "use --skip-bad (make SKIP_BAD=1) to skip them, counted in data_stats.json")
    if not kept:
        sys.exit(f"error: DATA={args.data} holds no usable record ({len(skipped)} skipped)")

    write_jsonl(args.out, kept)
    atomic_write_json(Path(args.out).with_name("data_stats.json"),
                      {"data": args.data, "records": len(kept), "skipped": len(skipped),
                       "skipped_by_reason": reasons, "skipped_errors": [str(e) for e in skipped]})
    print(f"{args.out}: {len(kept)} records" + (f", {len(skipped)} malformed skipped {reasons}" if skipped else ""))


if __name__ == "__main__":
    main()
