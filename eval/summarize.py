"""One checkpoint's results (make eval): bfcl_scores.json + api_bank_scores.json (+ heldout_scores.json)
-> summary.json and table.md, the paper's Table 1 row (BFCL-v3: Overall, Non-live, Live, Multi-turn,
Relevance, Irrelevance; the AST-only Non-live AST and Live AST beside them), Table 2 row (API-Bank
L1, L2), and the run's held-out split.

    python eval/summarize.py --dir eval/results/default/base [--name base]

A benchmark whose scores file is missing shows as dashes, and so does a BFCL column whose
categories were not all run: its value over the categories that were run is printed below the
table, marked partial, and is in summary.json under "partial" with the missing categories.
"""
import argparse
import json
from pathlib import Path

from eval import common
from itool.files import atomic_write_json, atomic_write_text
from itool.records import RecordError


def read_scores(path):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: invalid JSON ({e.msg})") from None


def summary(name, bfcl, api_bank, heldout=None, toolace=None):
    """The checkpoint's headline numbers (accuracies in [0, 1], None where not run or not complete),
    the partial BFCL aggregates, what was run, and the sources."""
    bfcl = bfcl or {}
    aggregates = bfcl.get("aggregates", {})
    levels = (api_bank or {}).get("levels", {})
    source = bfcl or api_bank or {}
    return {
        "checkpoint": name,
        "model": source.get("model"),
        "adapter": source.get("adapter"),
        "table1": {key: aggregates.get(key, {}).get("accuracy") for key in common.TABLE1},
        "ast_only": {key: aggregates.get(key, {}).get("accuracy") for key in common.AST_ONLY},
        "partial": {key: {"accuracy": node["partial"], "missing": node["missing"]}
                    for key, node in aggregates.items() if node["accuracy"] is None and node["partial"] is not None},
        "table2": {key: levels.get(key, {}).get("accuracy") for key in common.TABLE2},
        "heldout": (heldout or {}).get("accuracy"),
        "toolace": (toolace or {}).get("accuracy"),
        "bfcl_categories": {c: s["accuracy"] for c, s in bfcl.get("categories", {}).items()},
        "bfcl_grammar": {c: s["grammar_accuracy"] for c, s in bfcl.get("categories", {}).items()},
        "bfcl_seconds_per_item": {c: s["seconds_per_item"] for c, s in bfcl.get("categories", {}).items()},
        "bfcl_coverage": bfcl.get("coverage"),
        "limit": {"bfcl": bfcl.get("limit"), "api_bank": (api_bank or {}).get("limit"),
                  "heldout": (heldout or {}).get("limit"), "toolace": (toolace or {}).get("limit")},
        "seconds_per_item": {"bfcl": bfcl.get("seconds_per_item"),
                             "api_bank": (api_bank or {}).get("seconds_per_item")},
        "bfcl": bfcl or None,
        "api_bank": api_bank,
        "heldout_scores": heldout,
        "toolace_scores": toolace,
    }


def items_cell(s):
    coverage = s["bfcl_coverage"]
    return "–" if not coverage else f"{coverage['items']} / {coverage['items_full']}"


def table_rows(summaries):
    """Markdown rows of Table 1 (with the AST-only figures) and Table 2 side by side, one row per
    checkpoint; below them, the partial values of the columns left blank."""
    labels = [*common.TABLE1.values(), *common.AST_ONLY.values(), *common.TABLE2.values(), "Held-out", "ToolACE"]
    lines = ["| Checkpoint | BFCL items | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for s in summaries:
        values = [s["table1"][k] for k in common.TABLE1] + [s["ast_only"][k] for k in common.AST_ONLY] + \
            [s["table2"][k] for k in common.TABLE2] + [s.get("heldout"), s.get("toolace")]
        lines.append(f"| {s['checkpoint']} | {items_cell(s)} | " + " | ".join(map(common.percent, values)) + " |")
    partial = [partial_line(s) for s in summaries if s["partial"]]
    if partial:
        lines += ["", "– in a BFCL column: not every category of the column was run. Partial values, over the "
                      "categories run only (not comparable with the paper: the leaderboard counts a category not "
                      "run as 0):", ""] + partial
    return lines


def partial_line(s):
    return f"- {s['checkpoint']}: " + "; ".join(
        f"{common.BFCL_LABELS[k]} {common.percent(p['accuracy'])} ({len(p['missing'])} categories missing)"
        for k, p in s["partial"].items())


def coverage_lines(s):
    """Which BFCL categories and how many items a checkpoint's run scored."""
    coverage = s["bfcl_coverage"]
    if not coverage:
        return []
    missing = f"; not run: {', '.join(coverage['missing'])}" if coverage["missing"] else ""
    limit = s["limit"]["bfcl"]
    run, everything = len(coverage["categories"]), len(coverage["categories"]) + len(coverage["missing"])
    return [f"BFCL categories run: {run} of {everything}{missing}. Items: {coverage['items']} of {coverage['items_full']}"
            + (f" ({limit} per category, spread evenly)." if limit else ".")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="a checkpoint's results directory")
    parser.add_argument("--name", default=None, help="checkpoint name (default: the directory's name)")
    args = parser.parse_args()

    directory = Path(args.dir)
    bfcl, api_bank = read_scores(directory / "bfcl_scores.json"), read_scores(directory / "api_bank_scores.json")
    heldout = read_scores(directory / "heldout_scores.json")
    toolace = read_scores(directory / "toolace_scores.json")  # make ladder's yardstick
    if bfcl is None and api_bank is None and heldout is None:
        raise SystemExit(f"{directory}: no bfcl_scores.json, api_bank_scores.json or heldout_scores.json; run "
                         "eval/bfcl.py, eval/api_bank.py or eval/heldout.py first")
    s = summary(args.name or directory.name, bfcl, api_bank, heldout, toolace)
    text = "\n".join([f"# {s['checkpoint']}", "", "Accuracy in %.", ""] + table_rows([s]) + [""] + coverage_lines(s)
                     + [f"API-Bank: {s['limit']['api_bank'] or 'all'} records per level." if api_bank else ""]
                     + [f"Held-out: {heldout['scored']} items of {heldout['samples']}." if heldout else ""]
                     + [f"ToolACE: {toolace['scored']} items of {toolace['samples']}." if toolace else "", ""])
    atomic_write_json(directory / "summary.json", s)
    atomic_write_text(directory / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
