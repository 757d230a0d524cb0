"""One checkpoint's results (make eval): bfcl_scores.json + api_bank_scores.json -> summary.json and
table.md, the paper's Table 1 row (BFCL-v3: Overall, Non-live, Live, Multi-turn, Rel / Irrel) and
Table 2 row (API-Bank L1, L2).

    python eval/summarize.py --dir eval/results/default/base [--name base]

A benchmark whose scores file is missing shows as dashes. An aggregate marked * covers only the
BFCL categories that were run (--categories); summary.json names the missing ones.
"""
import argparse
import json
from pathlib import Path

import common
from records import RecordError, atomic_write_json, atomic_write_text

TABLE1 = {"overall": "Overall", "non_live": "Non-live", "live": "Live", "multi_turn": "Multi-turn",
          "relevance": "Rel", "irrelevance": "Irrel"}
TABLE2 = {"L-1": "API-Bank L1", "L-2": "API-Bank L2"}


def read_scores(path):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: invalid JSON ({e.msg})") from None


def summary(name, bfcl, api_bank):
    """The checkpoint's headline numbers (accuracies in [0, 1], None where not run) and sources."""
    aggregates = (bfcl or {}).get("aggregates", {})
    levels = (api_bank or {}).get("levels", {})
    source = bfcl or api_bank or {}
    return {
        "checkpoint": name,
        "model": source.get("model"),
        "adapter": source.get("adapter"),
        "table1": {key: aggregates.get(key, {}).get("accuracy") for key in TABLE1},
        "table1_missing": {key: aggregates[key]["missing"] for key in TABLE1 if aggregates.get(key, {}).get("missing")},
        "table2": {key: levels.get(key, {}).get("accuracy") for key in TABLE2},
        "bfcl_categories": {c: s["accuracy"] for c, s in (bfcl or {}).get("categories", {}).items()},
        "limit": {"bfcl": (bfcl or {}).get("limit"), "api_bank": (api_bank or {}).get("limit")},
        "seconds_per_item": {"bfcl": (bfcl or {}).get("seconds_per_item"),
                             "api_bank": (api_bank or {}).get("seconds_per_item")},
        "bfcl": bfcl,
        "api_bank": api_bank,
    }


def cell(s, key):
    value = s["table1"][key]
    return common.percent(value) + ("*" if key in s["table1_missing"] and value is not None else "")


def table_rows(summaries):
    """Markdown rows of Table 1 and Table 2 side by side, one row per checkpoint."""
    lines = ["| Checkpoint | Overall | Non-live | Live | Multi-turn | Rel / Irrel | API-Bank L1 | API-Bank L2 |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['checkpoint']} | {cell(s, 'overall')} | {cell(s, 'non_live')} | {cell(s, 'live')} | "
                     f"{cell(s, 'multi_turn')} | {cell(s, 'relevance')} / {cell(s, 'irrelevance')} | "
                     f"{common.percent(s['table2']['L-1'])} | {common.percent(s['table2']['L-2'])} |")
    if any(s["table1_missing"] for s in summaries):
        lines += ["", "\\* over the BFCL categories that were run only (`table1_missing` in summary.json)."]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="a checkpoint's results directory")
    parser.add_argument("--name", default=None, help="checkpoint name (default: the directory's name)")
    args = parser.parse_args()

    directory = Path(args.dir)
    bfcl, api_bank = read_scores(directory / "bfcl_scores.json"), read_scores(directory / "api_bank_scores.json")
    if bfcl is None and api_bank is None:
        raise SystemExit(f"{directory}: neither bfcl_scores.json nor api_bank_scores.json; run eval/bfcl.py or eval/api_bank.py first")
    s = summary(args.name or directory.name, bfcl, api_bank)
    limits = ", ".join(f"{k} {v or 'none'}" for k, v in s["limit"].items() if v is not None)
    text = "\n".join([f"# {s['checkpoint']}", ""] + table_rows([s]) + ["", f"Limit per category: {limits}.", ""])
    atomic_write_json(directory / "summary.json", s)
    atomic_write_text(directory / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
