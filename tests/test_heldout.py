"""The held-out split harness (eval/heldout.py): items of the run's own test split, scored with
the search's outcome rule, grouped by what the gold does."""
import json

from eval import common, heldout
from itool import records, synthetic
from itool.files import write_jsonl


def test_scores_with_the_outcome_rule_and_groups_by_what_the_gold_does(tmp_path):
    samples = [s for i, r in enumerate(synthetic.generate(40, seed=7)) for s in records.record_samples(r, f"t{i}")]
    path = tmp_path / "test.jsonl"
    write_jsonl(path, samples)
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
    assert not common.partial_file(tmp_path / "out", "heldout").exists()


def test_a_records_file_is_a_yardstick_with_every_assistant_turn_an_item(tmp_path):
    """make ladder's ToolACE yardstick: stage 00's records, not a split's samples, under their own name."""
    recs = [{"id": f"r{i:06d}", **r} for i, r in enumerate(synthetic.generate(12, seed=3))]
    path = tmp_path / "toolace.jsonl"
    write_jsonl(path, recs)
    items = heldout.load_items(str(path), 0)
    turns = sum(t["from"] == "assistant" for r in recs for t in r["conversations"])
    assert len(items) == turns and items[0]["id"] == "r000000-" + str(
        next(i for i, t in enumerate(recs[0]["conversations"]) if t["from"] == "assistant"))

    def generate(prompts, max_new_tokens):
        gold = {s["id"]: s["answer"] for s in items}
        return [gold[p["id"]] for p in prompts]

    args = heldout.parse_args(["--out", str(tmp_path / "out"), "--samples", str(path), "--name", "toolace"])
    scores = heldout.evaluate(items, generate, args)
    assert scores["accuracy"] == 1.0 and scores["benchmark"] == common.BENCHMARKS["toolace"]
    assert (tmp_path / "out" / "toolace_verdicts.jsonl").is_file() and not (tmp_path / "out" / "heldout_scores.json").exists()
    assert "# ToolACE sample:" in (tmp_path / "out" / "toolace.md").read_text()
