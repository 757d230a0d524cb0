"""Paired comparison of two checkpoints scored on the same items (make report; the RL ladder).

    python eval/compare.py A_DIR B_DIR [--files bfcl_verdicts.jsonl ...] [--resamples 10000] \
        [--seed 0] [--json OUT]

Input: per-item verdict files, JSON lines with "id", a group ("category" or "level") and "valid"
(bfcl_verdicts.jsonl, api_bank_verdicts.jsonl, heldout_verdicts.jsonl, ...), from two result
directories: every *_verdicts.jsonl that both hold, or those named by --files. Items are matched
by id; only the items both were scored on count.

For each file: the accuracy of A and of B per group and per aggregate, and the difference B - A
with a paired bootstrap 95 % interval. The bootstrap resamples the items with replacement within
each group, the same draws for A and B, recomputes every group's accuracy and every aggregate from
them, and takes the 2.5 and 97.5 percentiles of the differences. An interval that includes zero
reads "no difference".

Aggregates: bfcl_verdicts.jsonl gets the paper's Table 1 columns and the AST-only figures
(bfcl.leaderboard; each only where all its categories were scored by both); any other file gets
"all items", the accuracy over all its items. A new benchmark needs nothing but its verdicts file;
one with aggregates of its own adds them to AGGREGATES.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from eval import common
from itool.files import atomic_write_json
from itool.records import RecordError

TOLERANCE = 1e-12  # float noise in recomputed aggregates: an interval [0, 0] includes zero


# --- reading and pairing ---------------------------------------------------------------------------

def read_verdicts(path):
    """{id: (group, valid)} from a verdicts file; the group is the row's "category" or "level"."""
    verdicts = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                group = row["category"] if "category" in row else row["level"]
                verdicts[row["id"]] = (group, bool(row["valid"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise RecordError(f"{path}:{number}: expected a JSON object with id, category or level, "
                                  f"and valid") from None
    return verdicts


def pair_counts(a, b):
    """Per group, in A's order, the counts of the items both scored that A / B got (wrong, wrong),
    (wrong, right), (right, wrong), (right, right); and the numbers of items only A, only B has.
    These four counts are all the paired bootstrap needs: it resamples items, and an item enters
    the accuracies only through which of the four it is."""
    counts = {}
    for item, (group, valid_a) in a.items():
        if item in b:
            counts.setdefault(group, [0, 0, 0, 0])[2 * valid_a + b[item][1]] += 1
    return counts, len(a.keys() - b.keys()), len(b.keys() - a.keys())


# --- aggregates ------------------------------------------------------------------------------------
# An aggregate function maps group accuracies ({group: number or numpy array of resampled values})
# and group item counts to {label: (value or None, the groups it covers)}.

def pooled(accuracy, items):
    """The accuracy over all items, whatever their group."""
    total = sum(items.values())
    return {"all items": (sum(accuracy[g] * items[g] for g in accuracy) / total, list(accuracy))}


def bfcl_aggregates(accuracy, items):
    """Table 1's columns and the AST-only figures, as eval/bfcl.py computes them."""
    from eval import bfcl

    sizes = {c: bfcl.category_size(c) for c in bfcl.TEST_COLLECTION_MAPPING["all"]}
    board = bfcl.leaderboard(accuracy, sizes)
    covered = bfcl.leaderboard({}, sizes)  # with nothing scored, "missing" lists what each covers
    return {label: (board[k]["accuracy"], covered[k]["missing"]) for k, label in common.BFCL_LABELS.items()}


AGGREGATES = {"bfcl_verdicts.jsonl": bfcl_aggregates}
NAMES = {f"{name}_verdicts.jsonl": benchmark for name, benchmark in common.BENCHMARKS.items()}


# --- the bootstrap ---------------------------------------------------------------------------------

def resample(counts, resamples, rng):
    """Per group, A's and B's accuracies over `resamples` resamplings of its items: drawing n
    items with replacement is drawing the four (A, B) outcome counts from a multinomial."""
    a, b = {}, {}
    for group, c in counts.items():
        n = sum(c)
        draws = rng.multinomial(n, np.array(c) / n, size=resamples)
        a[group] = (draws[:, 2] + draws[:, 3]) / n
        b[group] = (draws[:, 1] + draws[:, 3]) / n
    return a, b


def accuracies(counts):
    """A's and B's accuracies per group, as observed."""
    return ({g: (c[2] + c[3]) / sum(c) for g, c in counts.items()},
            {g: (c[1] + c[3]) / sum(c) for g, c in counts.items()})


def bootstrap(counts, aggregate=pooled, resamples=10_000, seed=0):
    """Rows {"measure", "kind", "items", "a", "b", "diff", "low", "high", "verdict"}, aggregates
    first (those covering a group not scored are left out), then the groups; accuracies in [0, 1]."""
    items = {g: sum(c) for g, c in counts.items()}
    observed_a, observed_b = accuracies(counts)
    sampled_a, sampled_b = resample(counts, resamples, np.random.default_rng(seed))
    rows = []
    point_a, point_b = aggregate(observed_a, items), aggregate(observed_b, items)
    spread_a, spread_b = aggregate(sampled_a, items), aggregate(sampled_b, items)
    for label, (value, groups) in point_a.items():
        if value is not None:
            rows.append(row(label, "aggregate", sum(items.get(g, 0) for g in groups), value, point_b[label][0],
                            spread_b[label][0] - spread_a[label][0]))
    for group in counts:
        rows.append(row(group, "group", items[group], observed_a[group], observed_b[group],
                        sampled_b[group] - sampled_a[group]))
    return rows


def row(measure, kind, items, a, b, differences):
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"measure": measure, "kind": kind, "items": items, "a": float(a), "b": float(b), "diff": float(b - a),
            "low": float(low), "high": float(high), "verdict": verdict(low, high)}


def verdict(low, high):
    if low > TOLERANCE:
        return "higher"
    if high < -TOLERANCE:
        return "lower"
    return "no difference"


# --- two result directories ------------------------------------------------------------------------

def verdict_files(a_dir, b_dir, files=None):
    """The verdict files to compare: `files`, or every *_verdicts.jsonl both directories hold."""
    if files:
        return list(files)
    names = {p.name for p in Path(a_dir).glob("*_verdicts.jsonl")} & {p.name for p in Path(b_dir).glob("*_verdicts.jsonl")}
    known = list(NAMES)
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def compare(a_dir, b_dir, files=None, resamples=10_000, seed=0):
    """{file: {"benchmark", "only_a", "only_b", "rows"}} for each verdict file of both directories."""
    results = {}
    for name in verdict_files(a_dir, b_dir, files):
        paths = [Path(a_dir) / name, Path(b_dir) / name]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SystemExit(f"no {name} in {', '.join(missing)}")
        counts, only_a, only_b = pair_counts(*map(read_verdicts, paths))
        results[name] = {"benchmark": NAMES.get(name, name.removesuffix("_verdicts.jsonl")), "only_a": only_a,
                         "only_b": only_b,
                         "rows": bootstrap(counts, AGGREGATES.get(name, pooled), resamples, seed) if counts else []}
    return results


def points(value):
    """A difference in points, signed."""
    return f"{100 * value:+.2f}"


def markdown(results, name_a, name_b):
    """One table per benchmark: the measures, A, B, and B - A with its interval."""
    lines = []
    for result in results.values():
        lines += [f"**{result['benchmark']}**: {name_b} - {name_a}", "",
                  f"| measure | items | {name_a} | {name_b} | difference [95 % interval] | |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['measure']} | {r['items']} | {common.percent(r['a'])} | {common.percent(r['b'])} | "
                  f"{points(r['diff'])} [{points(r['low'])}, {points(r['high'])}] | {r['verdict']} |"
                  for r in result["rows"]]
        if not result["rows"]:
            lines.append("| no item scored by both | | | | | |")
        if result["only_a"] or result["only_b"]:
            lines += ["", f"Left out: {result['only_a']} items scored only for {name_a}, {result['only_b']} only "
                          f"for {name_b}."]
        lines.append("")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a_dir", help="the reference checkpoint's results directory (e.g. .../warmup)")
    parser.add_argument("b_dir", help="the checkpoint compared with it (e.g. .../iter_3)")
    parser.add_argument("--files", nargs="+", default=None,
                        help="verdict files to compare (default: every *_verdicts.jsonl both directories hold)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    results = compare(args.a_dir, args.b_dir, args.files, args.resamples, args.seed)
    if not results:
        raise SystemExit(f"{args.a_dir}, {args.b_dir}: no *_verdicts.jsonl in both")
    if args.json:
        atomic_write_json(Path(args.json), results)
    print("\n".join(markdown(results, Path(args.a_dir).name, Path(args.b_dir).name)))


if __name__ == "__main__":
    main()
