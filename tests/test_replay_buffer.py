"""Stages 03 (replay buffer: perplexity of the gold answer) and 04 (top ALPHA % hard samples)."""
import json
import math
import re

import pytest
import torch
from tqdm import tqdm

from conftest import load_stage
from itool import modeling
from itool.files import read_jsonl, write_jsonl

perplexity_stage = load_stage("03_perplexity.py")
select_stage = load_stage("04_select_hard.py")


pytestmark = pytest.mark.usefixtures("one_thread")


# --- 03 -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peaky_model(tiny_model_dir):
    """The tiny model in fp32 with its (tied) embeddings scaled up: a random model is close to
    uniform, where a wrong target position would go unnoticed; this one is not."""
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(40)
    return model


def naive_perplexity(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits.float()[0], dim=-1)
    nll = [-logps[len(prompt) + t - 1, token].item() for t, token in enumerate(completion)]
    return math.exp(sum(nll) / len(nll))


def test_perplexity_is_exp_of_mean_token_nll(peaky_model, tiny_tokenizer, synthetic_samples):
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    conversations = [s["conversation"] for s in synthetic_samples]
    multi_turn = [s for s in synthetic_samples if conversations.count(s["conversation"]) > 1][:4]
    samples = multi_turn + [s for s in synthetic_samples if s not in multi_turn][:5]
    encoded = [modeling.encode_sample(tiny_tokenizer, s, eot) for s in samples]
    assert len({len(p) + len(c) for p, c in encoded}) > 1  # padding is exercised
    root, batches = perplexity_stage.plan(encoded, [s["conversation"] for s in samples], batch_tokens=3000)
    assert root > 0 and any(shared > root for shared, _ in batches)  # and both levels of prefix sharing
    scored = perplexity_stage.batched_logprobs(peaky_model, encoded, [s["conversation"] for s in samples],
                                               tiny_tokenizer.pad_token_id, batch_tokens=3000, device=None,
                                               progress=tqdm(disable=True))
    perplexities = [math.exp(-total / n) for total, n in scored]
    expected = [naive_perplexity(peaky_model, p, c) for p, c in encoded]
    assert perplexities == pytest.approx(expected, rel=1e-3)
    assert [n for _, n in scored] == [len(c) for _, c in encoded]
    assert max(expected) / min(expected) > 1.5  # the samples really differ


def test_stage_writes_one_row_per_sample(tmp_path, synthetic_samples, tiny_tokenizer):
    samples_path = tmp_path / "rl.jsonl"
    write_jsonl(samples_path, synthetic_samples[:6])
    out = tmp_path / "iter_1" / "buffer.jsonl"
    perplexity_stage.main(["--model", "tiny", "--samples", str(samples_path), "--out", str(out)])
    rows = read_jsonl(out)
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    assert [r["id"] for r in rows] == [s["id"] for s in synthetic_samples[:6]]
    assert [r["length"] for r in rows] == [len(modeling.encode_sample(tiny_tokenizer, s, eot)[1])
                                           for s in synthetic_samples[:6]]
    assert all(r["perplexity"] > 1 for r in rows)
    stats = json.loads((out.with_name("buffer_stats.json")).read_text())
    assert stats["samples"] == 6 and stats["samples_per_s"] > 0

    naive = tmp_path / "naive" / "buffer.jsonl"
    perplexity_stage.main(["--model", "tiny", "--samples", str(samples_path), "--out", str(naive), "--naive"])
    assert [r["perplexity"] for r in read_jsonl(naive)] == pytest.approx([r["perplexity"] for r in rows], rel=0.02)


def test_stage_errors_name_the_input(tmp_path):
    empty = tmp_path / "rl.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match=re.escape(f"{empty}: no samples")):
        perplexity_stage.main(["--model", "tiny", "--samples", str(empty), "--out", str(tmp_path / "b.jsonl")])
    write_jsonl(empty, [{"id": "a", "system": "s", "messages": [], "answer": "x"}])
    with pytest.raises(SystemExit, match="no adapter in"):
        perplexity_stage.main(["--model", "tiny", "--adapter", str(tmp_path), "--samples", str(empty),
                               "--out", str(tmp_path / "b.jsonl")])
    assert not (tmp_path / "b.jsonl").exists()


# --- 04 -------------------------------------------------------------------------------------------

def write_inputs(tmp_path, kinds_and_perplexities):
    samples = [{"id": f"s{i}", "kind": kind, "system": "sys", "messages": [], "answer": "a"}
               for i, (kind, _) in enumerate(kinds_and_perplexities)]
    write_jsonl(tmp_path / "rl.jsonl", samples)
    write_jsonl(tmp_path / "buffer.jsonl", [{"id": s["id"], "perplexity": p, "length": 3}
                                             for s, (_, p) in zip(samples, kinds_and_perplexities)])
    return tmp_path / "buffer.jsonl", tmp_path / "rl.jsonl"


def select(buffer, samples, out, *extra):
    """Stage 04 with the paper's rule (--no-stratify) unless a test asks for --stratify."""
    stratify = [] if "--stratify" in extra else ["--no-stratify"]
    select_stage.main(["--buffer", str(buffer), "--samples", str(samples), "--out", str(out), *stratify, *extra])
    return read_jsonl(out)


SPREAD = [("call", 5.0), ("call", 9.0), ("text", 2.0), ("call", 1.5), ("call", 7.0),
          ("text", 1.2), ("call", 3.0), ("call", 8.0), ("call", 4.0), ("text", 1.1)]


def test_keeps_the_top_alpha_percent_by_perplexity(tmp_path):
    buffer, samples = write_inputs(tmp_path, SPREAD)
    hard = select(buffer, samples, tmp_path / "hard.jsonl", "--alpha", "30")
    assert [(s["id"], s["perplexity"]) for s in hard] == [("s1", 9.0), ("s7", 8.0), ("s4", 7.0)]
    assert hard[0]["system"] == "sys" and hard[0]["kind"] == "call"  # full samples, for stage 05
    stats = json.loads((tmp_path / "hard_stats.json").read_text())
    assert stats["all"]["samples"] == 10 and stats["kept"]["samples"] == 3
    assert stats["kept"]["perplexity"]["p0"] == 7.0 and stats["all"]["perplexity"]["p100"] == 9.0
    assert stats["kept"]["perplexity"]["p50"] > stats["all"]["perplexity"]["p50"]
    assert len(select(buffer, samples, tmp_path / "one.jsonl", "--alpha", "1")) == 1  # at least one


def test_stratify_keeps_the_top_of_each_answer_kind(tmp_path):
    buffer, samples = write_inputs(tmp_path, SPREAD)
    assert select_stage.parse_args(["--buffer", "b", "--samples", "s", "--out", "o"]).stratify  # the default
    hard = select(buffer, samples, tmp_path / "hard.jsonl", "--alpha", "30", "--stratify")
    # 7 call answers -> 3 kept (ceil 2.1), 3 text answers -> 1 kept (ceil 0.9): the text one with 2.0
    assert [s["id"] for s in hard] == ["s1", "s7", "s4", "s2"]
    stats = json.loads((tmp_path / "hard_stats.json").read_text())
    assert stats["kept"]["by_kind"] == {"call": 3, "text": 1} and stats["stratify"] is True


def test_samples_searched_before_rank_after_all_others(tmp_path):
    buffer, samples = write_inputs(tmp_path, SPREAD)
    earlier = select(buffer, samples, tmp_path / "iter_1.jsonl", "--alpha", "30")  # s1, s7, s4
    hard = select(buffer, samples, tmp_path / "hard.jsonl", "--alpha", "30", "--searched", str(tmp_path / "iter_1.jsonl"))
    # the next three by perplexity, none of iteration 1's, still hardest first
    assert [s["id"] for s in hard] == ["s0", "s8", "s6"]
    stats = json.loads((tmp_path / "hard_stats.json").read_text())
    assert stats["searched_before"] == 3 and stats["kept_searched_before"] == 0
    # stratified, per answer kind: the text answers' top one (s2) was not searched, the call answers' were
    hard = select(buffer, samples, tmp_path / "strat.jsonl", "--alpha", "30", "--stratify",
                  "--searched", str(tmp_path / "iter_1.jsonl"))
    assert [s["id"] for s in hard] == ["s0", "s8", "s6", "s2"]
    # once the unsearched samples run out, the searched ones follow by perplexity
    write_jsonl(tmp_path / "iter_2.jsonl", earlier + hard)
    hard = select(buffer, samples, tmp_path / "last.jsonl", "--alpha", "50",
                  "--searched", str(tmp_path / "iter_2.jsonl"))
    assert [s["id"] for s in hard] == ["s1", "s7", "s3", "s5", "s9"]
    assert json.loads((tmp_path / "hard_stats.json").read_text())["kept_searched_before"] == 2


@pytest.mark.parametrize("case, message", [
    ("missing", "1 id(s) not in"),
    ("empty", "the replay buffer is empty"),
    ("duplicate", "appears twice"),
    ("nan", "perplexity must be a finite number"),
    ("alpha", "--alpha must be a percentage"),
])
def test_selection_errors_are_clear(tmp_path, case, message):
    buffer, samples = write_inputs(tmp_path, SPREAD[:4])
    rows = read_jsonl(buffer)
    alpha = "150" if case == "alpha" else "20"
    if case == "missing":
        rows.append({"id": "ghost", "perplexity": 3.0, "length": 2})
    elif case == "empty":
        rows = []
    elif case == "duplicate":
        rows.append(rows[0])
    elif case == "nan":
        rows[2]["perplexity"] = float("nan")
    buffer.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match=re.escape(message)):
        select(buffer, samples, tmp_path / "hard.jsonl", "--alpha", alpha)
    assert not (tmp_path / "hard.jsonl").exists()
