"""Base vs warm-up vs each iteration (make report): every eval/results/$(RUN)/<checkpoint>/summary.json
side by side in report.md, and accuracy against iteration per category (the paper's Fig. 5) in
accuracy_vs_iteration.png.

    python eval/report.py --results eval/results/default [--out DIR]

Checkpoints are ordered base, warmup, iter_1, iter_2, ..., then any other (an adapter directory
evaluated with CKPT=<dir>); the plot shows base, warm-up (iteration 0) and the iterations.
"""
import argparse
import json
import re
from pathlib import Path

import common
import summarize
from records import RecordError, atomic_write_text

BFCL_LINES = {"overall": "Overall", "non_live": "Non-live", "live": "Live", "multi_turn": "Multi-turn",
              "relevance": "Relevance", "irrelevance": "Irrelevance"}


def order(name):
    """Sort key: base, warmup, iter_1, iter_2, ..., then the rest by name."""
    if name == "base":
        return (0, 0, name)
    if name == "warmup":
        return (1, 0, name)
    match = re.fullmatch(r"iter_(\d+)", name)
    return (2, int(match.group(1)), name) if match else (3, 0, name)


def load_summaries(results):
    summaries = []
    for path in sorted(Path(results).glob("*/summary.json")):
        try:
            summaries.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: invalid JSON ({e.msg})") from None
    return sorted(summaries, key=lambda s: order(s["checkpoint"]))


def category_table(summaries):
    """Per-category BFCL accuracies, one column per checkpoint."""
    categories = []
    for s in summaries:
        categories += [c for c in s.get("bfcl_categories", {}) if c not in categories]
    if not categories:
        return []
    lines = ["| category | " + " | ".join(s["checkpoint"] for s in summaries) + " |",
             "|---|" + "---|" * len(summaries)]
    for c in categories:
        lines.append(f"| {c} | " + " | ".join(common.percent(s.get("bfcl_categories", {}).get(c)) for s in summaries) + " |")
    return lines


def x_position(name):
    """Where a checkpoint sits on the iteration axis: base -1, warm-up 0, iter_K K; others none."""
    if name == "base":
        return -1
    if name == "warmup":
        return 0
    match = re.fullmatch(r"iter_(\d+)", name)
    return int(match.group(1)) if match else None


def plot(summaries, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(x_position(s["checkpoint"]), s) for s in summaries if x_position(s["checkpoint"]) is not None]
    xs = [x for x, _ in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    for key, label in BFCL_LINES.items():
        ys = [100 * s["table1"][key] if s["table1"][key] is not None else float("nan") for _, s in points]
        left.plot(xs, ys, marker="o", label=label, linewidth=2.2 if key == "overall" else 1.4)
    for key, label in summarize.TABLE2.items():
        ys = [100 * s["table2"][key] if s["table2"][key] is not None else float("nan") for _, s in points]
        right.plot(xs, ys, marker="s", linestyle="--", label=label)
    ticks = sorted(set(xs))
    labels = ["base" if x == -1 else "warm-up" if x == 0 else str(x) for x in ticks]
    for ax, title in ((left, "BFCL-v3"), (right, "API-Bank")):
        ax.set_xticks(ticks, labels)
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="eval/results/$(RUN): one sub-directory per checkpoint")
    parser.add_argument("--out", default=None, help="where report.md and the plot go (default: --results)")
    args = parser.parse_args()

    summaries = load_summaries(args.results)
    if not summaries:
        raise SystemExit(f"{args.results}: no */summary.json; run `make eval CKPT=...` first")
    out = Path(args.out or args.results)
    limits = sorted({", ".join(f"{k} {v or 'all'}" for k, v in s["limit"].items() if v is not None) for s in summaries})
    text = "\n".join(
        ["# iTool evaluation", "", "BFCL-v3 (paper Table 1) and API-Bank (paper Table 2), accuracy in %.", ""]
        + summarize.table_rows(summaries)
        + ["", "## BFCL-v3 per category", ""] + category_table(summaries)
        + ["", "![accuracy vs iteration](accuracy_vs_iteration.png)", "",
           f"Items per category: {'; '.join(limits)}"
           + (" (the checkpoints differ: compare with care)." if len(limits) > 1 else "."), ""])
    atomic_write_text(out / "report.md", text)
    plot(summaries, out / "accuracy_vs_iteration.png")
    print(text)


if __name__ == "__main__":
    main()
