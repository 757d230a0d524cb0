"""The call-or-text probe (eval/decision.py): p(call) at the first answer token, by what the gold does."""
import json
import subprocess
import sys

import pytest
import torch

from eval import common, decision
from itool import modeling, records, synthetic
from itool.files import write_jsonl


def test_auc_orders_call_golds_above_text_golds():
    assert decision.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert decision.auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert decision.auc([0.5, 0.5], [0.5]) == 0.5  # blind: ties count one half
    assert decision.auc([0.9, 0.3], [0.5]) == 0.5
    assert decision.auc([], [0.5]) is None


def test_call_start_tokens_open_a_list_and_nothing_else(tiny_tokenizer):
    starts = set(modeling.call_start_ids(tiny_tokenizer))
    assert tiny_tokenizer("[get_weather(city='Paris')]", add_special_tokens=False).input_ids[0] in starts
    assert tiny_tokenizer("None of the functions can help.", add_special_tokens=False).input_ids[0] not in starts
    assert all(tiny_tokenizer.decode([i]).lstrip().startswith("[") for i in starts)


def test_probabilities_are_the_share_of_the_next_token_that_opens_a_call(tiny_model_dir, tiny_tokenizer,
                                                                          synthetic_samples):
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu"))
    samples = synthetic_samples[:3]
    ps = decision.call_probabilities(model, tiny_tokenizer, samples)
    starts = modeling.call_start_ids(tiny_tokenizer)
    for sample, p in zip(samples, ps):
        ids = modeling.encode_prompt(tiny_tokenizer, sample["system"], sample["messages"])
        with torch.no_grad():
            full = model(input_ids=torch.tensor([ids])).logits[0, -1].float().softmax(-1)
        assert p == pytest.approx(full[starts].sum().item(), abs=0.02)  # bf16 against fp32
        assert 0 < p < 1


def test_the_script_groups_user_turn_items_by_what_the_gold_does(tmp_path):
    samples = [s for i, r in enumerate(synthetic.generate(30, seed=5)) for s in records.record_samples(r, f"t{i}")]
    path = tmp_path / "test.jsonl"
    write_jsonl(path, samples)
    out = tmp_path / "decision.json"
    run = subprocess.run([sys.executable, "eval/decision.py", "--model", "tiny", "--samples", str(path),
                          "--out", str(out)], capture_output=True, text=True, cwd=common.REPO)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    user_turns = [s for s in samples if s["messages"][-1]["role"] == "user"]
    assert sum(g["items"] for g in result["groups"].values()) == len(user_turns) < len(samples)
    assert result["groups"]["call"]["items"] == sum(s["kind"] == "call" for s in user_turns)
    assert {"call", "decline"} <= set(result["groups"]) and "report" not in result["groups"]
    assert 0 <= result["auc_call_vs_text"] <= 1
