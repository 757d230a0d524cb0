"""Stage 05: the search tree (backup, PUCT, pairs) on hand-built trees and scripted policies, the
step cutting used while generating, the model-backed policy's KV-cache reuse, and resuming."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import REPO, load_stage
from records import read_jsonl, write_jsonl
from toolcalls import split_steps

mcts = load_stage("05_mcts.py")
Step = mcts.Step


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model gains nothing from threads, and oversubscribed OpenMP threads stall badly
    on a machine shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- hand-built trees -------------------------------------------------------------------------

def hand_tree(rewards):
    """A tree from {name: (parent name, r)}; the root is "root" with N = 0."""
    tree, by_name = [], {}
    by_name["root"] = mcts.add_node(tree, None, Step("", False), max_depth=10)
    for name, (parent, r) in rewards.items():
        node = mcts.add_node(tree, by_name[parent], Step(name + " ", False), max_depth=10)
        node["r"] = node["Q"] = r
        by_name[name] = node
    return tree, by_name


def test_backup_gives_hand_computed_q_and_v():
    tree, n = hand_tree({"a": ("root", 0.5), "b": ("root", -0.3), "a1": ("a", 1.0), "a2": ("a", -1.0)})
    for leaf in ("a1", "a2", "a1", "b"):
        mcts.backup(tree, n[leaf], gamma=1.0)
    # a1 visited twice, a2 once: V(a) = (2·1.0 + 1·(−1.0)) / 3, Q(a) = r(a) + V(a)
    assert n["a1"]["N"] == 2 and n["a2"]["N"] == 1 and n["a"]["N"] == 3 and n["b"]["N"] == 1
    assert n["a"]["V"] == pytest.approx(1 / 3)
    assert n["a"]["Q"] == pytest.approx(0.5 + 1 / 3)
    assert n["b"]["Q"] == pytest.approx(-0.3) and n["b"]["V"] == 0
    # V(root) = (3·Q(a) + 1·Q(b)) / 4
    assert n["root"]["N"] == 4
    assert n["root"]["V"] == pytest.approx((3 * (0.5 + 1 / 3) + 1 * -0.3) / 4)


def test_backup_discounts_by_gamma_and_ignores_unvisited_children():
    tree, n = hand_tree({"a": ("root", 0.2), "a1": ("a", 1.0), "a2": ("a", 5.0)})  # a2 never visited
    mcts.backup(tree, n["a1"], gamma=0.5)
    assert n["a"]["V"] == pytest.approx(1.0)
    assert n["a"]["Q"] == pytest.approx(0.2 + 0.5 * 1.0)
    assert n["root"]["V"] == pytest.approx(0.2 + 0.5 * 1.0)
    assert n["a2"]["Q"] == 5.0 and n["a2"]["N"] == 0  # untouched: Q = r until visited


def test_puct_picks_the_hand_computed_child():
    tree, n = hand_tree({"x": ("root", 0.5), "y": ("root", 0.2), "z": ("root", 1.0)})
    n["root"]["N"] = 4
    for name, prior, visits in (("x", 0.1, 3), ("y", 0.9, 0), ("z", 0.5, 1)):
        n[name]["prior"], n[name]["N"] = prior, visits
    # c = 1: x 0.5 + 0.1·2/4 = 0.55, y 0.2 + 0.9·2/1 = 2.0, z 1.0 + 0.5·2/2 = 1.5
    assert mcts.best_child(tree, n["root"], c=1.0) is n["y"]
    # c = 0.1: x 0.505, y 0.38, z 1.05
    assert mcts.best_child(tree, n["root"], c=0.1) is n["z"]
    n["root"]["expanded"] = True
    assert mcts.select_leaf(tree, c=1.0) is n["y"]  # y is not expanded: the search stops there


SAMPLE = {"id": "s1", "system": "sys", "messages": [{"role": "user", "content": "q"}], "answer": "[A(x=1)]"}


def test_pairs_come_from_the_max_and_min_q_children():
    tree, n = hand_tree({"a": ("root", 0.3), "b": ("root", 0.9), "c": ("root", -0.4),
                         "a1": ("a", 0.10), "a2": ("a", 0.15),  # gap 0.05 < 0.1: no pair
                         "b1": ("b", 0.0)})  # one child: no pair
    pairs = mcts.preference_pairs(tree, SAMPLE, gap=0.1)
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair["chosen"], pair["rejected"]) == ("b ", "c ")
    assert (pair["q_chosen"], pair["q_rejected"]) == (0.9, -0.4)
    assert pair["id"] == "s1:0" and pair["sample_id"] == "s1" and pair["depth"] == 0 and pair["prefix"] == ""
    assert pair["system"] == SAMPLE["system"] and pair["messages"] == SAMPLE["messages"]
    assert pair["chosen_ends"] is False and pair["rejected_ends"] is False


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(-3, 3)), min_size=1, max_size=30), st.floats(0, 1))
def test_every_pair_beats_its_rejected_step_by_the_gap(spec, gap):
    tree = []
    mcts.add_node(tree, None, Step("", False), max_depth=99)
    for i, (parent, q) in enumerate(spec):
        node = mcts.add_node(tree, tree[parent % len(tree)], Step(f"s{i} ", False), max_depth=99)
        node["Q"] = q
    pairs = mcts.preference_pairs(tree, SAMPLE, gap)
    for pair in pairs:
        node = tree[int(pair["id"].split(":")[1])]
        sibling_q = [tree[i]["Q"] for i in node["children"]]
        assert pair["q_chosen"] > pair["q_rejected"] + gap
        assert pair["q_chosen"] == max(sibling_q) and pair["q_rejected"] == min(sibling_q)
        assert pair["prefix"] == node["answer"]
    expected = sum(len(node["children"]) >= 2 and max(tree[i]["Q"] for i in node["children"])
                   > min(tree[i]["Q"] for i in node["children"]) + gap for node in tree)
    assert len(pairs) == expected


# --- steps and outcomes -----------------------------------------------------------------------

@pytest.mark.parametrize("text, start, step", [
    # a call step ends after its comma and the space, once the next call has begun
    ('[Get Game Result(team="Toronto, ON", date="2025-05-26"), Get', 0,
     '[Get Game Result(team="Toronto, ON", date="2025-05-26"), '),
    ('[Get Game Result(team="Toronto, ON", date="2025-05-26"), ', 0, None),  # more spaces may follow
    ('[Get Game Result(team="Toronto, ON"', 0, None),  # the comma in the string is no boundary
    ('[A(x=[1, 2], y={"k": "a, b"}), B(z="c")] ', 0, '[A(x=[1, 2], y={"k": "a, b"}), '),
    ('[A(x=[1, 2], y={"k": "a, b"}), B(z="c")] ', 31, None),  # the list is closed: the end of turn decides
    ('[A(x=1), B(z="c, d"), C()', 9, 'B(z="c, d"), '),  # the second call, after the first
    ("Sure. I can", 0, "Sure. "),
    ("It costs 3.5 dollars, e.g. in Oslo. Next", 0, "It costs 3.5 dollars, e.g. in Oslo. "),
    ("Hello. \n World. X", 7, "\n World. "),  # whitespace left over from the step before joins this one
    ("No tool fits.", 0, None),  # the last sentence ends with end of turn, not here
])
def test_step_end_cuts_calls_and_sentences(text, start, step):
    end = mcts.step_end(text, start)
    assert (None if end is None else text[start:end]) == step


def test_gold_steps_follow_the_gold_path():
    gold = '[Get Game Result(team="Toronto, ON", date="2025"), Get Crypto History(coin="DOT", days=108)]'
    steps = split_steps(gold)
    assert steps == ['[Get Game Result(team="Toronto, ON", date="2025"), ', 'Get Crypto History(coin="DOT", days=108)]']
    tree = []
    root = mcts.add_node(tree, None, Step("", False), max_depth=8)
    assert mcts.gold_next_step(steps, root) == Step(steps[0], ends=False)
    on_path = mcts.add_node(tree, root, Step(steps[0], False), max_depth=8)
    off_path = mcts.add_node(tree, root, Step("[Get Game Result(team=\"Oslo\"), ", False), max_depth=8)
    assert mcts.gold_next_step(steps, on_path) == Step(steps[1], ends=True)
    assert mcts.gold_next_step(steps, off_path) is None


@pytest.mark.parametrize("answer, ends, gold, expected", [
    ('[B(y="2, 3"), A(x=1)]', True, '[A(x=1), B(y="2, 3")]', 1),  # parallel calls: any order
    ('[A(x=1), A(x=1)]', True, '[A(x=1)]', -1),
    ('[A(x=2)]', True, '[A(x=1)]', -1),
    ('[A(x=1), ', False, '[A(x=1)]', -1),  # unfinished (truncated or out of depth)
    ('Sorry, no tool can do that.', True, 'I cannot help with that.', 1),
    ('[A(x=1)]', True, 'I cannot help with that.', -1),
    ('[A(x=1', False, 'I cannot help with that.', -1),  # an unfinished call list is no text answer
])
def test_outcome_at_terminals(answer, ends, gold, expected):
    node = {"terminal": True, "ends": ends, "answer": answer}
    assert mcts.outcome(node, gold) == expected
    assert mcts.outcome({**node, "terminal": False}, gold) == 0


# --- search with scripted policies ------------------------------------------------------------

class ScriptedPolicy:
    """Proposes the gold next step when on the gold path, else (or also, with `wrong`) a wrong
    final answer; rolls out the rest of the gold answer; grades everything 0."""

    def __init__(self, gold, wrong=None):
        self.steps = split_steps(gold)
        self.wrong = wrong
        self.confidence_batches = []

    def gold_after(self, answer):
        for i in range(len(self.steps)):
            if "".join(self.steps[:i]) == answer:
                return Step(self.steps[i], ends=i == len(self.steps) - 1)
        return None

    def propose(self, answer, k):
        gold = self.gold_after(answer)
        if gold and self.wrong is None:
            return [gold] * k
        return [Step(self.wrong or "Nothing.", ends=True)] * k

    def rollout(self, answer, max_steps):
        steps = []
        while (step := self.gold_after(answer)) is not None and len(steps) < max_steps:
            steps.append(step)
            answer += step.text
        return steps or [Step("", ends=True)]

    def priors(self, answer, steps):
        return [0.5] * len(steps)

    def confidence(self, answers):
        self.confidence_batches.append(len(answers))
        return [0.0] * len(answers)


GOLD = '[Get Weather(city="Oslo, NO"), Get Time(zone="CET"), Get News(topic="tech, AI")]'


def test_a_policy_proposing_the_gold_step_reaches_a_correct_terminal():
    policy = ScriptedPolicy(GOLD)
    tree = mcts.search({"id": "g", "answer": GOLD}, policy, simulations=4, k=2, max_depth=8, c=1.0, gamma=1.0,
                       add_gold=False)
    correct = [node for node in tree if node["terminal"] and node["outcome"] == 1]
    assert correct and correct[0]["answer"] == GOLD and correct[0]["depth"] == 3
    assert tree[0]["N"] == 4 and tree[0]["V"] == pytest.approx(1.0)  # every visit ended at +1
    assert all(node["children"] for node in tree[:3]) and len(tree) == 4  # duplicates were merged
    assert mcts.tree_stats(tree, [], 1.0, 0, 4)["solved_by_policy"]


def test_the_gold_candidate_wins_over_a_wrong_policy():
    policy = ScriptedPolicy(GOLD, wrong='[Get Weather(city="Bergen")]')
    sample = {"id": "w", "system": "sys", "messages": [], "answer": GOLD}
    tree = mcts.search(sample, policy, simulations=3, k=3, max_depth=8, c=1.0, gamma=1.0, add_gold=True)
    root_children = [tree[i] for i in tree[0]["children"]]
    assert len(root_children) == 2  # the k identical wrong proposals were merged into one node
    wrong = next(child for child in root_children if not child["gold"])
    assert wrong["sampled"] == 3 and wrong["outcome"] == -1 and wrong["Q"] == pytest.approx(-1.0)
    pairs = mcts.preference_pairs(tree, sample, gap=0.1)
    root_pair = next(pair for pair in pairs if pair["depth"] == 0)
    assert root_pair["chosen"] == split_steps(GOLD)[0] and root_pair["rejected"] == wrong["step"]
    assert root_pair["q_chosen"] == pytest.approx(1.0)
    assert max(policy.confidence_batches) > 1  # new children are graded together
    stats = mcts.tree_stats(tree, pairs, 1.0, 0, 3)
    assert stats["correct_terminals"] == 1 and not stats["solved_by_policy"]  # only the gold steps were right


# --- the model-backed policy --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_fp32(tiny_model_dir):
    import modeling

    # fp32, so that the cached and the recomputed paths agree to rounding (bf16 would not)
    return modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()


def make_policy(model, tokenizer, sample, reuse, temperature=0.0):
    import modeling

    return mcts.ModelPolicy(model, tokenizer, sample, mcts.load_eval_template(mcts.EVAL_PROMPT),
                            eot_id=modeling.end_of_turn_id(tokenizer), temperature=temperature,
                            max_step_tokens=12, grade_scores=[1.0, 0.1, -1.0, -2.0], reuse=reuse,
                            generator=torch.Generator().manual_seed(0))


@torch.inference_mode()
def test_prefix_cache_reuse_matches_recomputing(tiny_fp32, tiny_tokenizer, synthetic_samples):
    sample = max(synthetic_samples, key=lambda s: len(s["system"]))
    cached = make_policy(tiny_fp32, tiny_tokenizer, sample, reuse=True)
    fresh = make_policy(tiny_fp32, tiny_tokenizer, sample, reuse=False)
    # the prompt outgrows the sliding window, so the cache of the window layers is exercised too
    assert len(cached.prompt_ids) > tiny_fp32.config.sliding_window
    prompt_tokens = cached.prompt_cache.get_seq_length()

    answer = split_steps(sample["answer"])[0]
    steps = [(answer, False), ("Anything at all. ", False), ("", True)]
    assert cached.priors("", steps) == pytest.approx(fresh.priors("", steps), rel=1e-4)
    partials = ["", answer, "Some text. And more"]
    assert cached.confidence(partials) == pytest.approx(fresh.confidence(partials), abs=1e-4)
    # greedy: the batch of k forks and the k separate runs produce the same steps
    proposed = cached.propose(answer, 3)
    assert proposed == fresh.propose(answer, 3) and len(set(proposed)) == 1
    assert cached.rollout(answer, 3) == fresh.rollout(answer, 3)
    assert cached.prompt_cache.get_seq_length() == prompt_tokens  # forks never grow the prompt's cache
    step = proposed[0]
    assert step.ends or step.truncated or split_steps(answer + step.text)[-1] == step.text


@torch.inference_mode()
def test_sampled_candidates_are_seeded_and_complete(tiny_fp32, tiny_tokenizer, synthetic_samples):
    sample = synthetic_samples[0]
    first = make_policy(tiny_fp32, tiny_tokenizer, sample, reuse=True, temperature=1.0)
    again = make_policy(tiny_fp32, tiny_tokenizer, sample, reuse=True, temperature=1.0)
    steps = first.propose("", 4)
    assert steps == again.propose("", 4)  # same seed, same steps
    assert len(set(steps)) > 1  # temperature 1 on a random model: the candidates differ
    assert first.generated_tokens >= 4
    for step in steps:
        assert step.text or step.ends
        assert step.ends or step.truncated or split_steps(step.text) == [step.text]


# --- the stage: outputs and resuming after a kill ----------------------------------------------

def stage_args(tmp, samples_path, *extra):
    return ["--model", "tiny", "--samples", str(samples_path), "--out", str(tmp / "pairs.jsonl"),
            "--trees-dir", str(tmp / "trees"), "--seed", "3", "--simulations", "2", "--k", "2",
            "--max-depth", "4", "--max-step-tokens", "10", *extra]


@pytest.fixture(scope="module")
def hard_file(tmp_path_factory, synthetic_samples):
    path = tmp_path_factory.mktemp("hard") / "hard.jsonl"
    write_jsonl(path, [{**s, "perplexity": 1.0} for s in synthetic_samples[:8]])
    return path


def test_killed_run_resumes_without_redoing_finished_samples(tmp_path, hard_file, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    killed.mkdir()
    mcts.main(stage_args(whole, hard_file))
    expected = read_jsonl(whole / "pairs.jsonl")
    stats = json.loads((whole / "mcts_stats.json").read_text())
    assert stats["samples"] == 8 and stats["pairs"] == len(expected) > 0
    assert {pair["sample_id"] for pair in expected} <= {s["id"] for s in read_jsonl(hard_file)}
    assert not list(whole.glob(".pairs.partial*"))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")}
    process = subprocess.Popen([sys.executable, str(REPO / "stages" / "05_mcts.py"), *stage_args(killed, hard_file)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = killed / ".pairs.partial.0.jsonl"
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "pairs.jsonl").exists(), "the run finished before it could be killed"
    finished = [json.loads(line)["sample_id"] for line in partial.read_text().splitlines() if line.endswith("}")]
    assert 2 <= len(finished) < 8
    tree_times = {i: mcts.tree_path(killed / "trees", i).stat().st_mtime_ns for i in finished}

    capsys.readouterr()
    mcts.main(stage_args(killed, hard_file))
    assert f"resuming: {len(finished)} samples" in capsys.readouterr().out
    assert read_jsonl(killed / "pairs.jsonl") == expected  # as if it had never been killed
    assert all(mcts.tree_path(killed / "trees", i).stat().st_mtime_ns == t for i, t in tree_times.items())
    tree = json.loads(mcts.tree_path(killed / "trees", finished[0]).read_text())
    assert tree["sample_id"] == finished[0] and tree["nodes"][0]["N"] == 2


def test_results_of_other_settings_are_not_reused(tmp_path, hard_file, capsys):
    first_id = read_jsonl(hard_file)[0]["id"]
    stale_pair = {"id": f"{first_id}:0", "sample_id": first_id, "chosen": "stale"}
    (tmp_path / ".pairs.partial.0.jsonl").write_text(json.dumps(
        {"fingerprint": "other settings", "sample_id": first_id, "pairs": [stale_pair], "stats": {}}) + "\n")
    (tmp_path / "trees").mkdir()
    (tmp_path / "trees" / "old-sample.json").write_text("{}")
    mcts.main(stage_args(tmp_path, hard_file, "--max-samples", "3", "--pair-gap", "0.5"))
    output = capsys.readouterr()
    assert "starting afresh" in output.err and "resuming" not in output.out
    assert sorted(p.name for p in (tmp_path / "trees").iterdir()) == sorted(
        mcts.tree_path(tmp_path / "trees", s["id"]).name for s in read_jsonl(hard_file)[:3])
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    assert stale_pair not in pairs and all(pair["q_chosen"] > pair["q_rejected"] + 0.5 for pair in pairs)


def test_bad_input_is_named(tmp_path, hard_file):
    bad = tmp_path / "hard.jsonl"
    bad.write_text('{"id": "x1", "system": "s", "messages": []}\n')
    with pytest.raises(SystemExit, match=re.escape(f"{bad}: line 1: sample x1 lacks a str 'answer'")):
        mcts.main(stage_args(tmp_path, bad))
    with pytest.raises(SystemExit, match=re.escape(f"no adapter in {tmp_path}")):
        mcts.main(stage_args(tmp_path, hard_file, "--adapter", str(tmp_path)))
    assert not (tmp_path / "pairs.jsonl").exists()


@pytest.mark.slow
@torch.inference_mode()
def test_gemma_prefix_cache_reuse_matches_recomputing(synthetic_samples):
    """Gemma 3's sliding-window layers (512 tokens) with a prompt longer than the window, in bf16."""
    import modeling

    model_dir = modeling.resolve_model("gemma-3-270m")
    model, tokenizer = modeling.load_model(model_dir, device=torch.device("cpu")), modeling.load_tokenizer(model_dir)
    sample = max(synthetic_samples, key=lambda s: len(s["system"]))
    cached = make_policy(model, tokenizer, sample, reuse=True)
    fresh = make_policy(model, tokenizer, sample, reuse=False)
    assert len(cached.prompt_ids) > model.config.sliding_window
    answer = split_steps(sample["answer"])[0]
    steps = [(answer, False), ("I cannot help with that.", True)]
    assert cached.priors("", steps) == pytest.approx(fresh.priors("", steps), rel=0.1)  # bf16 rounding only
    assert cached.confidence(["", answer]) == pytest.approx(fresh.confidence(["", answer]), abs=0.05)
