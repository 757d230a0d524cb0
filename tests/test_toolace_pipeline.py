"""The whole pipeline on real data: `make iterate ITER=1 MODEL=tiny DATA=<the shared ToolACE sample>
SKIP_BAD=1` in a temporary copy of the repo. Real records bring what the synthetic data does not:
records in a syntax of their own (skipped and counted), answers of many sentences and long calls
(every gold within the search's reach), tool-less dialogues."""
import json

import pytest

from conftest import REPO, copy_checkout, make
from itool.files import read_jsonl

RUN = "toolace"
SAMPLE = REPO / "eval" / "data" / "toolace" / "toolace_sample.json"
VARS = [f"RUN={RUN}", "MODEL=tiny", f"DATA={SAMPLE}", "SKIP_BAD=1", "SFT_ARGS=--max-steps 3 --batch-size 2",
        "MCTS_ARGS=--max-samples 6 --simulations 2 --k 2", "DPO_ARGS=--epochs 1"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    checkout = copy_checkout(tmp_path_factory.mktemp("toolace"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # the tiny model's ops gain nothing from a second thread
        make(checkout, "iterate", "ITER=1", *VARS)
    return checkout


def test_records_in_a_syntax_of_their_own_are_skipped_and_counted(checkout):
    stats = json.loads((checkout / f"data/{RUN}/data_stats.json").read_text())
    assert stats["records"] + stats["skipped"] == len(json.loads(SAMPLE.read_text()))
    assert stats["skipped"] > 0 and set(stats["skipped_by_reason"]) == {"call in a record-specific syntax"}
    split = json.loads((checkout / f"data/{RUN}/splits/stats.json").read_text())
    assert split["input"]["skipped"] == stats["skipped"]  # the count travels with the split


def test_every_gold_searched_is_within_reach_and_the_pairs_are_sound(checkout):
    d = checkout / f"data/{RUN}/iter_1"
    stats = json.loads((d / "mcts_stats.json").read_text())
    assert stats["samples"] == 6 and stats["golds_unreachable"] == 0
    assert stats["max_depth"] >= 8 and stats["max_step_tokens"] >= 48  # raised where a gold needs more
    audit = json.loads((d / "pairs_audit.json").read_text())
    assert audit["golds_unreachable"] == 0
    pairs = read_jsonl(d / "pairs.jsonl")
    assert pairs and audit["pairs"] == len(pairs)
    hard = {s["id"]: s for s in read_jsonl(d / "hard.jsonl")}
    for pair in pairs:
        assert pair["sample_id"] in hard and pair["chosen"] != pair["rejected"]
        assert pair["chosen_ids"] and pair["rejected_ids"]
        assert pair["chosen_correct"] or pair["q_chosen"] - pair["q_rejected"] >= 1.0
    assert (checkout / f"checkpoints/{RUN}/iter_1/adapter_model.safetensors").is_file()
