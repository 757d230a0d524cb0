"""The paired comparison (eval/compare.py): pairing by id, the bootstrap against a plain resampling
of items and against the normal approximation of a paired difference, the BFCL aggregates, the
wording, the command line over BFCL, API-Bank and a benchmark it has never heard of."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from eval import bfcl, common, compare
from itool.records import RecordError


def write_verdicts(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def outcomes(group, pairs, start=0):
    """Verdict rows of A and B for a group from (valid in A, valid in B, how many) triples."""
    a, b, i = [], [], start
    for valid_a, valid_b, n in pairs:
        for _ in range(n):
            a.append({"id": f"{group}_{i}", "category": group, "valid": valid_a})
            b.append({"id": f"{group}_{i}", "category": group, "valid": valid_b})
            i += 1
    return a, b


def test_items_pair_by_id_and_unmatched_ones_are_counted(tmp_path):
    a = {"x_0": ("x", True), "x_1": ("x", False), "y_0": ("y", True), "only_a": ("x", True)}
    b = {"x_0": ("x", False), "x_1": ("x", True), "y_0": ("y", True), "only_b": ("y", False), "only_b2": ("y", True)}
    assert compare.pair_counts(a, b) == ({"x": [0, 1, 1, 0], "y": [0, 0, 0, 1]}, 1, 2)

    path = write_verdicts(tmp_path / "v.jsonl", [{"id": "L-1/0", "level": "L-1", "valid": True},
                                                 {"id": "h_0", "category": "h", "valid": False}])
    assert compare.read_verdicts(path) == {"L-1/0": ("L-1", True), "h_0": ("h", False)}
    path.write_text(path.read_text() + '{"id": "h_1", "valid": true}\n')
    with pytest.raises(RecordError, match=r"v.jsonl:3: expected a JSON object with id"):
        compare.read_verdicts(path)


def test_identical_runs_differ_by_nothing():
    rows = compare.bootstrap({"x": [7, 0, 0, 13], "y": [2, 0, 0, 0]}, resamples=2000)
    assert [(r["measure"], r["diff"], r["low"], r["high"], r["verdict"]) for r in rows] == [
        ("all items", 0.0, 0.0, 0.0, "no difference"), ("x", 0.0, 0.0, 0.0, "no difference"),
        ("y", 0.0, 0.0, 0.0, "no difference")]


def test_the_interval_is_that_of_a_paired_difference():
    # 200 items: 10 only B gets right, 95 both, 95 neither. Paired, the difference's standard error
    # is sqrt(var(d) / n) with d in {0, 1}: 0.0154; unpaired it would be 0.050.
    counts = {"x": [95, 10, 0, 95]}
    (row,) = [r for r in compare.bootstrap(counts, resamples=20_000, seed=1) if r["measure"] == "x"]
    d = np.array([1] * 10 + [0] * 190)
    half = 1.96 * d.std() / np.sqrt(len(d))
    assert row["diff"] == pytest.approx(0.05)
    assert (row["high"] - row["low"]) / 2 == pytest.approx(half, abs=0.006)
    assert row["verdict"] == "higher"


def test_the_bootstrap_equals_resampling_the_items_within_each_group():
    """The multinomial draw of outcome counts against the textbook loop: draw item indices with
    replacement per group, the same for A and B, and recompute."""
    counts = {"x": [3, 5, 2, 10], "y": [12, 1, 4, 3]}
    rows = {r["measure"]: r for r in compare.bootstrap(counts, resamples=20_000, seed=3)}
    rng = np.random.default_rng(7)
    items = {g: np.repeat([[0, 0], [0, 1], [1, 0], [1, 1]], c, axis=0) for g, c in counts.items()}
    draws = {g: v[rng.integers(0, len(v), size=(20_000, len(v)))] for g, v in items.items()}
    diffs = {g: d[:, :, 1].mean(1) - d[:, :, 0].mean(1) for g, d in draws.items()}
    diffs["all items"] = sum(d[:, :, 1].sum(1) - d[:, :, 0].sum(1) for d in draws.values()) / sum(map(sum, counts.values()))
    for measure, d in diffs.items():
        low, high = np.percentile(d, [2.5, 97.5])
        assert (rows[measure]["low"], rows[measure]["high"]) == pytest.approx((low, high), abs=0.03), measure


def test_seeded_and_fast_on_a_full_size_benchmark():
    sizes = {c: bfcl.category_size(c) for c in bfcl.TEST_COLLECTION_MAPPING["all"]}
    counts = {c: [n // 2, n // 8, n // 8, n - n // 2 - 2 * (n // 8)] for c, n in sizes.items()}
    started = time.time()
    first = compare.bootstrap(counts, compare.bfcl_aggregates, resamples=10_000, seed=5)
    assert time.time() - started < 20  # seconds, on a shared 2-core machine
    assert first == compare.bootstrap(counts, compare.bfcl_aggregates, resamples=10_000, seed=5)
    assert first != compare.bootstrap(counts, compare.bfcl_aggregates, resamples=10_000, seed=6)


def test_bfcl_aggregates_are_table_1_over_the_items_of_both():
    sizes = {c: bfcl.category_size(c) for c in bfcl.TEST_COLLECTION_MAPPING["all"]}
    counts = {c: [4, i % 3, 1, 5] for i, c in enumerate(sizes)}
    rows = {r["measure"]: r for r in compare.bootstrap(counts, compare.bfcl_aggregates, resamples=500)}
    accuracy_a = {c: (n[2] + n[3]) / sum(n) for c, n in counts.items()}
    accuracy_b = {c: (n[1] + n[3]) / sum(n) for c, n in counts.items()}
    board_a, board_b = bfcl.leaderboard(accuracy_a, sizes), bfcl.leaderboard(accuracy_b, sizes)
    for key, label in common.BFCL_LABELS.items():
        row = rows[label]
        assert (row["a"], row["b"]) == pytest.approx((board_a[key]["accuracy"], board_b[key]["accuracy"]))
        assert row["low"] <= row["diff"] <= row["high"]
    assert rows["Overall"]["items"] == sum(map(sum, counts.values()))
    assert rows["Relevance"]["items"] == sum(counts["live_relevance"])
    # Without the multi-turn categories there is no Overall and no Multi-turn, and no partial stand-in.
    single_turn = {c: n for c, n in counts.items() if not c.startswith("multi_turn")}
    measures = [r["measure"] for r in compare.bootstrap(single_turn, compare.bfcl_aggregates, resamples=100)]
    assert measures[:6] == ["Non-live", "Live", "Relevance", "Irrelevance", "Non-live AST", "Live AST"]
    assert "Overall" not in measures and "Multi-turn" not in measures and "all items" not in measures


def test_a_lower_score_reads_lower():
    (aggregate, group) = compare.bootstrap({"x": [10, 0, 30, 60]}, resamples=2000)
    assert aggregate["diff"] == group["diff"] == pytest.approx(-0.3)
    assert group["high"] < 0 and group["verdict"] == "lower"


def test_cli_compares_every_verdict_file_both_directories_hold(tmp_path):
    a_rows, b_rows = outcomes("simple", [(True, True, 6), (False, True, 4)])
    a_live, b_live = outcomes("live_simple", [(True, False, 1), (False, False, 5)])
    write_verdicts(tmp_path / "warmup" / "bfcl_verdicts.jsonl", a_rows + a_live)
    write_verdicts(tmp_path / "iter_1" / "bfcl_verdicts.jsonl", b_rows + b_live + [
        {"id": "simple_99", "category": "simple", "valid": True}])  # scored only for iter_1: left out
    for run, valid in (("warmup", [True, False]), ("iter_1", [True, True])):
        write_verdicts(tmp_path / run / "heldout_verdicts.jsonl",
                       [{"id": f"h{i}", "category": "call", "valid": v} for i, v in enumerate(valid)])
        write_verdicts(tmp_path / run / "mystery_verdicts.jsonl",  # a benchmark compare.py has never heard of
                       [{"id": "t0", "level": "turn", "valid": not valid[1]}])
    write_verdicts(tmp_path / "iter_1" / "api_bank_verdicts.jsonl", [{"id": "L-1/0", "level": "L-1", "valid": True}])

    out = tmp_path / "diff.json"
    result = subprocess.run([sys.executable, str(REPO / "eval" / "compare.py"), str(tmp_path / "warmup"),
                             str(tmp_path / "iter_1"), "--resamples", "1000", "--json", str(out)],
                            capture_output=True, text=True, check=True)
    saved = json.loads(out.read_text())
    assert list(saved) == ["bfcl_verdicts.jsonl", "heldout_verdicts.jsonl", "mystery_verdicts.jsonl"]
    assert saved["bfcl_verdicts.jsonl"]["only_b"] == 1
    assert [r["measure"] for r in saved["bfcl_verdicts.jsonl"]["rows"]] == ["simple", "live_simple"]
    assert saved["mystery_verdicts.jsonl"]["rows"][0]["diff"] == -1.0
    assert "**held-out split**: iter_1 - warmup" in result.stdout and "**mystery**: iter_1 - warmup" in result.stdout
    assert "| simple | 10 | 60.00 | 100.00 | +40.00 [+" in result.stdout
    assert "Left out: 0 items scored only for warmup, 1 only for iter_1." in result.stdout

    only = subprocess.run([sys.executable, str(REPO / "eval" / "compare.py"), str(tmp_path / "warmup"),
                           str(tmp_path / "iter_1"), "--files", "heldout_verdicts.jsonl", "--resamples", "100"],
                          capture_output=True, text=True, check=True).stdout
    assert "held-out split" in only and "BFCL" not in only
    missing = subprocess.run([sys.executable, str(REPO / "eval" / "compare.py"), str(tmp_path / "warmup"),
                              str(tmp_path / "iter_1"), "--files", "api_bank_verdicts.jsonl"],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "no api_bank_verdicts.jsonl in" in missing.stderr
