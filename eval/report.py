"""Base vs warm-up vs each iteration (make report): every eval/results/$(RUN)/<checkpoint>/summary.json
side by side in report.md, with paired differences between checkpoints, and accuracy against
iteration per Table 1 column (the paper's Fig. 5) in accuracy_vs_iteration.png, each checkpoint
minus the warm-up with its interval in vs_warmup.png (Fig. 4 and 5 read as differences), and the
training curves of the warm-up and of each iteration's DPO in training_curves.png.

    python eval/report.py --results eval/results/default [--data data/default] [--out DIR] \
        [--checkpoints-dir checkpoints/default] [--resamples 10000] [--seed 0]

Checkpoints are ordered base, warmup, iter_1, iter_2, ..., then any other (an adapter directory
evaluated with CKPT=<dir>); the plot shows base, warm-up (iteration 0) and the iterations.
Paired differences (eval/compare.py, from the checkpoints' *_verdicts.jsonl): the warm-up against
the base, each iteration and any other checkpoint against the warm-up, and each iteration against
the one before it. With --data, the search's pair audit of each iteration (stage 05's
iter_K/pairs_audit.json) is shown too: what DPO was taught, beside what it changed. The training
curves come from --checkpoints-dir's */metrics.jsonl; report.md names a missing one.
"""
import argparse
import json
import re
from pathlib import Path

from eval import common, compare, summarize
from itool.files import atomic_write_text
from itool.records import RecordError


FIG4 = ("warmup_easy2hard", "warmup_mixed")  # the warm-up with the other curriculum (make ladder's rung)


def order(name):
    """Sort key: base, warmup_easy2hard or warmup_mixed, warmup, iter_1, iter_2, ..., then the rest by name."""
    if name == "base":
        return (0, 0, name)
    if name in FIG4:  # the ladder's rung between the base and the warm-up: the other curriculum
        return (0, 1, name)
    if name == "warmup":
        return (1, 0, name)
    match = re.fullmatch(r"iter_(\d+)", name)
    return (2, int(match.group(1)), name) if match else (3, 0, name)


def load_summaries(results, checkpoints=None):
    """(directory, summary) of every checkpoint under `results` (or of those named), in checkpoint order."""
    summaries = []
    paths = sorted(Path(results).glob("*/summary.json")) if checkpoints is None else \
        [Path(results) / name / "summary.json" for name in checkpoints]
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run `make eval CKPT={path.parent.name}` first")
        try:
            summaries.append((path.parent, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: invalid JSON ({e.msg})") from None
    return sorted(summaries, key=lambda d_s: order(d_s[1]["checkpoint"]))


def comparisons(names):
    """The (reference, checkpoint) pairs to compare: warm-up vs base, every other vs warm-up,
    each iteration vs the one before it (iter_1's is the warm-up, already there)."""
    pairs = [("base", "warmup")] if "base" in names and "warmup" in names else []
    iterations = [n for n in names if re.fullmatch(r"iter_\d+", n)]
    for name in names:
        if name in ("base", "warmup"):
            continue
        if "warmup" in names:
            pairs.append(("warmup", name))
        if name in iterations[1:]:
            pairs.append((iterations[iterations.index(name) - 1], name))
    return pairs


# The ladder's headline measures: (verdict file, compare.py's measure, column).
HEADLINES = [("heldout_verdicts.jsonl", "all items", "Held-out"), ("toolace_verdicts.jsonl", "all items", "ToolACE"),
             ("bfcl_verdicts.jsonl", "Non-live AST", "BFCL non-live AST"),
             ("bfcl_verdicts.jsonl", "Live AST", "BFCL live AST"), ("bfcl_verdicts.jsonl", "AST", "BFCL AST"),
             ("api_bank_verdicts.jsonl", "all items", "API-Bank")]


def headline(results, file, measure):
    """compare.py's row for `measure` of `file`, or None."""
    rows = results.get(file, {}).get("rows", [])
    return next((r for r in rows if r["measure"] == measure), None)


def versus_warmup(compared, name, file, measure):
    """(warm-up's accuracy, name's accuracy, name - warm-up, low, high) for a headline measure, from
    whichever way round the pair was compared; None where not scored by both."""
    if ("warmup", name) in compared:
        r = headline(compared[("warmup", name)], file, measure)
        return r and (r["a"], r["b"], r["diff"], r["low"], r["high"])
    r = headline(compared.get((name, "warmup"), {}), file, measure)
    return r and (r["b"], r["a"], -r["diff"], -r["high"], -r["low"])


def ladder_table(directories, compared):
    """Each checkpoint against the warm-up on the headline measures: accuracy, then the paired
    difference with its 95 % interval. `compared` maps (a, b) to compare.compare's results."""
    others = [name for name in directories if name != "warmup"]
    if "warmup" not in directories or not others:
        return []
    lines = ["## Against the warm-up", "",
             "Accuracy in %, then the difference from the warm-up in points on the same items with its paired "
             "bootstrap 95 % interval: a gain or a loss is one whose interval excludes zero.", "",
             "| checkpoint | " + " | ".join(column for _, _, column in HEADLINES) + " |",
             "|---|" + "---|" * len(HEADLINES)]
    for name in directories:
        cells = []
        for file, measure, _ in HEADLINES:
            if name == "warmup":
                found = [v for v in (versus_warmup(compared, o, file, measure) for o in others) if v]
                cells.append(common.percent(found[0][0]) if found else "–")
                continue
            v = versus_warmup(compared, name, file, measure)
            cells.append(f"{common.percent(v[1])} ({compare.points(v[2])} [{compare.points(v[3])}, "
                         f"{compare.points(v[4])}])" if v else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    items = {}  # per headline, the items of the first comparison that scored it
    for file, measure, column in HEADLINES:
        found = [r for r in (headline(c, file, measure) for c in compared.values()) if r]
        if found:
            items[column] = found[0]["items"]
    return lines + ["", "Items scored by both: " + ", ".join(f"{c} {n}" for c, n in items.items()) + ".", ""]


def compare_all(directories, resamples, seed):
    """compare.compare's results for every pair of comparisons(), by (a, b)."""
    return {(a, b): compare.compare(directories[a], directories[b], resamples=resamples, seed=seed)
            for a, b in comparisons(list(directories))}


def differences(directories, compared, resamples, seed):
    """report.md's section of paired differences, for the checkpoints in `directories` ({name: dir})."""
    lines = ["## Paired differences", "",
             "B - A in points on the items both were scored on, with a paired bootstrap 95 % interval "
             f"({resamples:,} resamples of the items within each category, seed {seed}); \"no difference\" where "
             "the interval includes zero. BFCL columns appear only where both runs scored all their categories.", ""]
    pairs = comparisons(list(directories))
    for a, b in pairs:
        results = compared[(a, b)]
        lines += [f"### {b} vs {a}", ""]
        lines += compare.markdown(results, a, b) if results else ["No verdict files in both.", ""]
    return lines if pairs else []


def category_table(summaries, field="bfcl_categories", skip_same=False):
    """Per-category BFCL figures (`field` of the summaries), one column per checkpoint; with
    skip_same, only the categories where some checkpoint's figure differs from its accuracy."""
    columns = [(s.get(field) or {}, s.get("bfcl_categories") or {}) for s in summaries]
    categories = []
    for values, _ in columns:
        categories += [c for c in values if c not in categories]
    if skip_same:
        categories = [c for c in categories
                      if any(values.get(c) not in (None, accuracy.get(c)) for values, accuracy in columns)]
    if not categories:
        return []
    lines = ["| category | " + " | ".join(s["checkpoint"] for s in summaries) + " |",
             "|---|" + "---|" * len(summaries)]
    for c in categories:
        lines.append(f"| {c} | " + " | ".join(cell(values.get(c), field) for values, _ in columns) + " |")
    return lines


def cell(value, field):
    if field == "bfcl_seconds_per_item":
        return "–" if value is None else f"{value:.2f}"
    return common.percent(value)


def x_position(name):
    """Where a checkpoint sits on the iteration axis: base -1, warm-up 0, iter_K K; others none."""
    if name == "base":
        return -1
    if name == "warmup":
        return 0
    match = re.fullmatch(r"iter_(\d+)", name)
    return int(match.group(1)) if match else None


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display where make report runs
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    """Write the figure under a temporary name, then rename: a killed report leaves no half png."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    pyplot().close(fig)
    tmp.replace(path)


def plot(summaries, path):
    plt = pyplot()
    points = [(x_position(s["checkpoint"]), s) for s in summaries if x_position(s["checkpoint"]) is not None]
    xs = [x for x, _ in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    for key, label in common.TABLE1.items():
        ys = [100 * s["table1"][key] if s["table1"][key] is not None else float("nan") for _, s in points]
        left.plot(xs, ys, marker="o", label=label, linewidth=2.2 if key == "overall" else 1.4)
    for key, label in common.AST_ONLY.items():
        ys = [100 * s["ast_only"][key] if s["ast_only"][key] is not None else float("nan") for _, s in points]
        left.plot(xs, ys, marker=".", linestyle=":", label=label)
    for key, label in common.TABLE2.items():
        ys = [100 * s["table2"][key] if s["table2"][key] is not None else float("nan") for _, s in points]
        right.plot(xs, ys, marker="s", linestyle="--", label=label)
    for key, label in (("heldout", "held-out split"), ("toolace", "ToolACE sample")):
        ys = [100 * s[key] if s.get(key) is not None else float("nan") for _, s in points]
        if any(y == y for y in ys):  # not all NaN
            right.plot(xs, ys, marker="^", label=label)
    ticks = sorted(set(xs))
    labels = ["base" if x == -1 else "warm-up" if x == 0 else str(x) for x in ticks]
    for ax, title in ((left, "BFCL-v3"), (right, "API-Bank and the held-out sets")):
        ax.set_xticks(ticks, labels)
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def warmup_series(directories, compared):
    """{panel: [(checkpoint, diff, low, high), ...]}, checkpoint - warm-up for every aggregate that
    compare.py computed between a checkpoint and the warm-up, the checkpoints in report order."""
    panels = {}
    for name in directories:
        results = compared.get(("warmup", name)) or compared.get((name, "warmup")) or {}
        for file, result in results.items():
            for r in (r for r in result["rows"] if r["kind"] == "aggregate"):
                panels.setdefault(f"{result['benchmark']}: {r['measure']}", []).append(
                    (name, *versus_warmup(compared, name, file, r["measure"])[2:]))
    return panels


def plot_versus_warmup(directories, compared, path):
    """vs_warmup.png, one panel per aggregate; report.md's lines for it (why not, where not drawn)."""
    panels = warmup_series(directories, compared)
    if not panels:
        path.unlink(missing_ok=True)  # an earlier run's would read as this one's
        return [f"No {path.name}: " + ("no warm-up among the checkpoints." if "warmup" not in directories else
                                       "no checkpoint was scored on the same items as the warm-up."), ""]
    width = min(4, len(panels))
    height = -(-len(panels) // width)
    fig, axes = pyplot().subplots(height, width, figsize=(3.6 * width, 3.4 * height), squeeze=False)
    for ax, (panel, points) in zip(axes.flat, panels.items()):
        names, diff, low, high = zip(*points)
        ax.errorbar(range(len(names)), [100 * d for d in diff], capsize=4, fmt="o",  # float noise must not make a length negative
                    yerr=[[max(0, 100 * (d - l)) for d, l in zip(diff, low)],
                          [max(0, 100 * (h - d)) for d, h in zip(diff, high)]])
        ax.axhline(0, color="grey", linewidth=1)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set(title=panel, ylabel="minus warm-up (points)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    save(fig, path)
    return [f"![each checkpoint minus the warm-up]({path.name})", "",
            "Each checkpoint minus the warm-up in points on the items both were scored on, with the paired bootstrap "
            "95 % interval of the tables above (the zero line is the warm-up).", ""]


# What training_curves.png draws of each iteration's metrics.jsonl (stages/06_dpo.py's names).
DPO_CURVES = {"loss": "DPO loss", "rewards/margin": "reward margin", "rewards/accuracy": "reward accuracy"}


def read_metrics(path, fields):
    """The lines of a metrics.jsonl as dicts, each holding `fields`."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            if not (isinstance(row, dict) and all(f in row for f in fields)):
                raise ValueError
        except ValueError:  # json's errors are ValueErrors too
            raise RecordError(f"{path}:{number}: expected a JSON object with {', '.join(fields)}") from None
        rows.append(row)
    return rows


def series(rows, field, by=None):
    """{group: (steps, values)} of `field` against step, a group per value of `by` (None: one group)."""
    groups = {}
    for row in rows:
        steps, values = groups.setdefault(row[by] if by else None, ([], []))
        steps.append(row["step"])
        values.append(row[field])
    return groups


def trained(checkpoints_dir, names):
    """The runs whose curves to draw: the warm-up, and the other curriculum's and each iteration that
    was reported or trained (a directory under checkpoints_dir), in checkpoint order."""
    found = set(names) | {p.name for p in Path(checkpoints_dir).glob("*") if p.is_dir()}
    return ["warmup"] + sorted((n for n in found if n in FIG4 or re.fullmatch(r"iter_\d+", n)), key=order)


def plot_training(checkpoints_dir, names, path):
    """training_curves.png: the warm-ups' loss by phase, each iteration's DPO_CURVES; report.md's lines."""
    notes, curves = [], {}
    for name in trained(checkpoints_dir, names):
        file = Path(checkpoints_dir) / name / "metrics.jsonl"
        fields = ["step", *DPO_CURVES] if name.startswith("iter_") else ["step", "phase", "loss"]
        if file.is_file():
            curves[name] = read_metrics(file, fields)
        else:
            notes.append(f"No {file}: {name} is left out of the training curves.")
    if not curves:
        path.unlink(missing_ok=True)
        return ["## Training curves", "", *notes, "", f"No {path.name}: no metrics to draw.", ""]
    fig, axes = pyplot().subplots(1, 1 + len(DPO_CURVES), figsize=(16, 3.6))
    for name, rows in curves.items():
        dpo = name.startswith("iter_")
        for ax, field in zip(axes[1:], DPO_CURVES) if dpo else [(axes[0], "loss")]:
            for group, (steps, values) in series(rows, field, None if dpo else "phase").items():
                ax.plot(steps, values, marker=".", label=name if dpo else f"{name}: {group}")
    for ax, title in zip(axes, ["warm-up SFT loss", *DPO_CURVES.values()]):
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        if ax.lines:  # an empty legend is a matplotlib warning
            ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return ["## Training curves", "", f"![training curves]({path.name})", "",
            f"From {checkpoints_dir}/*/metrics.jsonl: the warm-up's loss per curriculum phase (stage 02), and each "
            "iteration's DPO loss, reward margin and reward accuracy (stage 06), against its own steps.", "",
            *notes, *([""] if notes else [])]


AUDIT_COLUMNS = {"pairs": "pairs", "samples": "samples with pairs", "decisive": "decisive",
                 "chosen_gold": "chosen = gold", "chosen_malformed": "chosen malformed",
                 "rejected_malformed": "rejected malformed", "text_over_call": "text over call",
                 "call_over_text": "call over text"}
AUDIT_COUNTS = ("pairs", "samples", "text_over_call", "call_over_text")


def audit_table(data):
    """Stage 05's pair audit of every iteration under `data` (data/$(RUN)), one row per iteration
    and answer kind: what the preference pairs DPO learnt from were made of."""
    audits = sorted(Path(data).glob("iter_*/pairs_audit.json"), key=lambda p: order(p.parent.name))
    if not audits:
        return []
    lines = ["## What the search taught (stage 05's pair audit)", "",
             "Decisive: the chosen step reached a correct answer in some rollout and the rejected none. "
             "Chosen = gold: the chosen step is the gold answer's own. Shares of the pairs, in %. "
             "Text over call (call over text): how many pairs at an answer's first step chose text over "
             "a call list (a call list over text).", "",
             "| iteration | answers | " + " | ".join(AUDIT_COLUMNS.values()) + " |",
             "|---|---|" + "---|" * len(AUDIT_COLUMNS)]
    for path in audits:
        try:
            audit = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: invalid JSON ({e.msg})") from None
        for kind, figures in [("all", audit), *sorted(audit.get("by_kind", {}).items())]:
            # audits written before the decision counts have none: a dash
            cells = ["–" if figures.get(k) is None else str(figures[k]) if k in AUDIT_COUNTS
                     else common.percent(figures[k]) for k in AUDIT_COLUMNS]
            lines.append(f"| {path.parent.name} | {kind} | " + " | ".join(cells) + " |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="eval/results/$(RUN): one sub-directory per checkpoint")
    parser.add_argument("--out", default=None, help="where report.md and the plot go (default: --results)")
    parser.add_argument("--checkpoints", nargs="+", default=None,
                        help="report these checkpoints only (make ladder's rungs; default: every one under --results)")
    parser.add_argument("--data", default=None, help="data/$(RUN): also show each iteration's pair audit")
    parser.add_argument("--checkpoints-dir", default=None,
                        help="checkpoints/$(RUN), for the training curves (default: checkpoints/<--results' name>)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples of the paired differences")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args()

    loaded = load_summaries(args.results, args.checkpoints)
    if not loaded:
        raise SystemExit(f"{args.results}: no */summary.json; run `make eval CKPT=...` first")
    summaries = [s for _, s in loaded]
    directories = {s["checkpoint"]: d for d, s in loaded}
    compared = compare_all(directories, args.resamples, args.seed)
    out = Path(args.out or args.results)
    limits = sorted({", ".join(f"{k} {v or 'all'}" for k, v in s["limit"].items() if v is not None) for s in summaries})
    grammar = category_table(summaries, "bfcl_grammar", skip_same=True)
    out.mkdir(parents=True, exist_ok=True)
    versus = plot_versus_warmup(directories, compared, out / "vs_warmup.png")
    curves = plot_training(args.checkpoints_dir or Path("checkpoints") / Path(args.results).name, list(directories),
                           out / "training_curves.png")
    text = "\n".join(
        ["# iTool evaluation", "", "BFCL-v3 (paper Table 1, with the AST-only figures) and API-Bank (paper Table 2), "
         "accuracy in %. BFCL items: scored / in the benchmark.", ""]
        + summarize.table_rows(summaries) + [""]
        + ladder_table(directories, compared)
        + differences(directories, compared, args.resamples, args.seed)
        + (audit_table(args.data) if args.data else [])
        + ["## BFCL-v3 per category", ""] + category_table(summaries)
        + ["", "## Diagnostic: with the project grammar", "",
           "Accuracy if the answers that only the project's grammar reads (names with spaces, call lists over lines) "
           "were read that way; never part of a headline. Categories where it changes nothing are left out.", ""]
        + (grammar or ["It changes nothing here."])
        + ["", "## Generation time per item (s)", ""] + category_table(summaries, "bfcl_seconds_per_item")
        + ["", "![accuracy vs iteration](accuracy_vs_iteration.png)", "", *versus,
           f"Items per category: {'; '.join(limits)}"
           + (" (the checkpoints differ: compare with care)." if len(limits) > 1 else "."), ""] + curves)
    atomic_write_text(out / "report.md", text)
    plot(summaries, out / "accuracy_vs_iteration.png")
    print(text)


if __name__ == "__main__":
    main()
