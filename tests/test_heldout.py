"""The held-out split harness (eval/heldout.py): items of the run's own test split, scored with
the search's outcome rule, grouped by what the gold does."""
import json
import sys

import records
import synthetic
from conftest import REPO

sys.path.insert(0, str(REPO / "eval"))
import heldout  # noqa: E402


def test_scores_with_the_outcome_rule_and_groups_by_what_the_gold_does(tmp_path):
    samples = [s for i, r in enumerate(synthetic.generate(40, seed=7)) for s in records.record_samples(r, f"t{i}")]
    path = tmp_path / "test.jsonl"
    records.write_jsonl(path, samples)
    items = heldout.load_items(str(path), 0)

    def generate(prompts, max_new_tokens):  # gold for even items, a malformed call for odd ones
        gold = {s["id"]: s["answer"] for s in samples}
        return [gold[p["id"]] if i % 2 == 0 else "[broken(call" for i, p in enumerate(prompts)]

    args = heldout.parse_args(["--out", str(tmp_path / "out"), "--samples", str(path)])
    scores = heldout.evaluate(items, generate, args)
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "heldout_verdicts.jsonl").read_text().splitlines()]
    assert [v["valid"] for v in verdicts] == [i % 2 == 0 for i in range(len(items))]
    assert scores["correct"] == (len(items) + 1) // 2 and scores["scored"] == len(items)
    assert {"call", "report"} <= set(scores["categories"])  # text answers are grouped by their job
    assert scores["answer_kinds"]["malformed"] == len(items) // 2
    assert "| call |" in (tmp_path / "out" / "heldout.md").read_text()
    assert not (tmp_path / "out" / heldout.PARTIAL).exists()
