"""Stage 04 (make iterate): the hard samples of iteration K, the top ALPHA % of the replay buffer.

The replay buffer (stage 03) gives every RL sample its perplexity under policy K-1; the samples
the policy finds least likely are the ones it has most to learn from (paper §4.3, α = 20 %).
--stratify (the default; --no-stratify: the paper's rule) ranks call answers and text answers
separately and keeps the top ALPHA % of each, as the authors' release does, so that the rarer text
answers ("no function fits") are not crowded out by long call lists.
--searched (make's FRESH=1) names the hard.jsonl of earlier iterations: samples already searched
then rank after every sample not yet searched, so each iteration brings the search new gold
answers instead of repeating the previous one's; once every sample has been searched the rule is
the plain one. Without it (the default, the paper's rule) a sample the policy still finds hard is
searched again: by the third iteration the fresh samples are ones the policy mostly solves, and
the search has little left to teach (docs/results.md).

Outputs: --out (hard.jsonl) holds the kept samples in full, hardest first, each with its
"perplexity", so stage 05 reads nothing else; hard_stats.json beside it compares the perplexity
quantiles of the kept samples with the whole buffer's.
"""
import argparse
import math
import sys
from pathlib import Path

from itool.files import atomic_write_json, read_jsonl, write_jsonl
from itool.records import RecordError

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def read_buffer(path):
    """{id: perplexity} from buffer.jsonl; every row must have an id and a finite perplexity."""
    rows = read_jsonl(path)
    if not rows:
        raise RecordError(f"{path}: the replay buffer is empty")
    buffer = {}
    for line, row in enumerate(rows, 1):
        where = f"{path}: row {line}"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise RecordError(f"{where}: expected an object with a string 'id', got {row!r:.200}")
        perplexity = row.get("perplexity")
        if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not math.isfinite(perplexity):
            raise RecordError(f"{where} (id {row['id']}): perplexity must be a finite number, got {perplexity!r}")
        if row["id"] in buffer:
            raise RecordError(f"{where}: id {row['id']} appears twice")
        buffer[row["id"]] = float(perplexity)
    return buffer


def read_samples(path):
    """{id: sample} from the RL split; each sample needs its id and its answer kind."""
    samples = {}
    for line, sample in enumerate(read_jsonl(path), 1):
        if not isinstance(sample, dict) or not isinstance(sample.get("id"), str) \
                or sample.get("kind") not in ("call", "text"):
            raise RecordError(f"{path}: line {line}: expected a sample with a string 'id' and a 'kind' of call or text")
        samples[sample["id"]] = sample
    return samples


def top_fraction(samples, alpha, searched=frozenset()):
    """The ceil(alpha % of n) samples of highest perplexity (at least one), hardest first, those
    in `searched` after all others; ties are broken by id so the choice does not depend on file
    order."""
    ranked = sorted(samples, key=lambda s: (s["id"] in searched, -s["perplexity"], s["id"]))
    return ranked[:max(1, math.ceil(round(len(samples) * alpha / 100, 6)))]  # round: float error must not add one


def select_hard(samples, alpha, stratify, searched=frozenset()):
    if not stratify:
        kept = top_fraction(samples, alpha, searched)
    else:
        kept = []
        for kind in sorted({s["kind"] for s in samples}):
            kept += top_fraction([s for s in samples if s["kind"] == kind], alpha, searched)
    return sorted(kept, key=lambda s: (-s["perplexity"], s["id"]))


def read_searched(paths):
    """The ids of every sample in the given hard.jsonl files (earlier iterations' hard samples)."""
    searched = set()
    for path in paths:
        for line, sample in enumerate(read_jsonl(path), 1):
            if not isinstance(sample, dict) or not isinstance(sample.get("id"), str):
                raise RecordError(f"{path}: line {line}: expected a sample with a string 'id'")
            searched.add(sample["id"])
    return searched


def quantiles(values):
    ordered = sorted(values)
    def at(q):  # linear interpolation between the closest ranks
        pos = q * (len(ordered) - 1)
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
    stats = {f"p{round(q * 100)}": round(at(q), 4) for q in QUANTILES}
    stats["mean"] = round(sum(ordered) / len(ordered), 4)
    return stats


def describe(samples):
    return {"samples": len(samples),
            "by_kind": {kind: sum(s["kind"] == kind for s in samples) for kind in ("call", "text")},
            "perplexity": quantiles([s["perplexity"] for s in samples])}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buffer", required=True, help="buffer.jsonl from stage 03 (id, perplexity, length)")
    parser.add_argument("--samples", required=True, help="the RL split (rl.jsonl) the buffer was computed on")
    parser.add_argument("--alpha", type=float, default=20.0, help="percent of the buffer to keep (paper: 20)")
    parser.add_argument("--stratify", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the top ALPHA %% of call answers and of text answers separately "
                             "(--no-stratify: the top ALPHA %% of all, the paper's rule)")
    parser.add_argument("--searched", nargs="*", default=[], metavar="HARD_JSONL",
                        help="earlier iterations' hard.jsonl: their samples rank after all others")
    parser.add_argument("--out", required=True, help="hard.jsonl; hard_stats.json is written beside it")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if not 0 < args.alpha <= 100:
            raise RecordError(f"--alpha must be a percentage in (0, 100], got {args.alpha}")
        buffer = read_buffer(args.buffer)
        samples = read_samples(args.samples)
        searched = read_searched(args.searched)
        missing = [i for i in buffer if i not in samples]
        if missing:
            raise RecordError(f"{args.buffer}: {len(missing)} id(s) not in {args.samples}, e.g. {missing[:3]}: "
                              "the buffer was computed on other samples (re-run stage 03)")
    except (RecordError, OSError) as e:
        sys.exit(f"error: {e}")

    scored = [{**samples[i], "perplexity": p} for i, p in buffer.items()]
    if len(scored) < len(samples):
        print(f"warning: {len(samples) - len(scored)} samples of {args.samples} have no perplexity in "
              f"{args.buffer}; selecting among the {len(scored)} that do", file=sys.stderr)
    hard = select_hard(scored, args.alpha, args.stratify, searched)

    out = Path(args.out)
    stats = {"alpha": args.alpha, "stratify": args.stratify,
             "unscored_samples": len(samples) - len(buffer),  # in the RL split but not in the buffer
             "searched_before": sum(s["id"] in searched for s in scored),
             "kept_searched_before": sum(s["id"] in searched for s in hard),
             "all": describe(scored), "kept": describe(hard)}
    atomic_write_json(out.with_name("hard_stats.json"), stats)
    write_jsonl(out, hard)  # last: it is make's target
    all_p, kept_p = stats["all"]["perplexity"], stats["kept"]["perplexity"]
    repeated = f", {stats['kept_searched_before']} searched before" if searched else ""
    print(f"kept {len(hard)}/{len(scored)} samples (alpha {args.alpha:g} %{', stratified' if args.stratify else ''}"
          f"{repeated}): median perplexity {kept_p['p50']:.3g} vs {all_p['p50']:.3g} overall -> {out}")


if __name__ == "__main__":
    main()
