"""Stage 05 and its library itool.search: the search tree (backup, PUCT, pairs) on hand-built
trees and scripted policies, the outcome at terminals, the lockstep driver, the model-backed
policy (batched searches = separate ones, steps as the model's own token ids, priors and grades =
a plain forward), the pair audit, the stage writing the library's pairs, and resuming."""
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
from itool import generation, modeling, search
from itool.files import read_jsonl, write_jsonl
from itool.logprobs import decoder_hidden, head_logits
from itool.records import tools_from_system
from itool.search import Step
from itool.steps import split_steps

mcts = load_stage("05_mcts.py")


pytestmark = pytest.mark.usefixtures("one_thread")


# --- hand-built trees -------------------------------------------------------------------------

def hand_tree(rewards):
    """A tree from {name: (parent name, r)}; the root is "root" with N = 0."""
    tree, by_name = [], {}
    by_name["root"] = search.add_node(tree, None, Step("", False), max_depth=10)
    for name, (parent, r) in rewards.items():
        node = search.add_node(tree, by_name[parent], Step(name + " ", False), max_depth=10)
        node["r"] = node["Q"] = r
        by_name[name] = node
    return tree, by_name


def test_backup_gives_hand_computed_q_and_v():
    tree, n = hand_tree({"a": ("root", 0.5), "b": ("root", -0.3), "a1": ("a", 1.0), "a2": ("a", -1.0)})
    for leaf in ("a1", "a2", "a1", "b"):
        search.backup(tree, n[leaf], gamma=1.0)
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
    search.backup(tree, n["a1"], gamma=0.5)
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
    assert search.best_child(tree, n["root"], c=1.0) is n["y"]
    # c = 0.1: x 0.505, y 0.38, z 1.05
    assert search.best_child(tree, n["root"], c=0.1) is n["z"]
    n["root"]["expanded"] = True
    assert search.select_leaf(tree, c=1.0) is n["y"]  # y is not expanded: the search stops there



SAMPLE = {"id": "s1", "system": "sys", "messages": [{"role": "user", "content": "q"}], "answer": "[A(x=1)]"}


def terminal(tree, parent, text, outcome, q, visits=1):
    node = search.add_node(tree, parent, Step(text, True), max_depth=10)
    node.update(outcome=outcome, Q=q, N=visits)
    return node


def test_pairs_need_rolled_out_children_and_the_outcome_behind_them():
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=1)]", 1, 0.9)
    terminal(tree, root, "[A(x=2)]", -1, -1.1)
    unvisited = search.add_node(tree, root, Step("[A(x=3)]", False), max_depth=10)
    unvisited["Q"] = -5.0  # Q = r only (no outcome yet): never compared
    pairs = search.preference_pairs(tree, SAMPLE, gap=0.1)
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair["chosen"], pair["rejected"]) == ("[A(x=1)]", "[A(x=2)]")
    assert (pair["q_chosen"], pair["q_rejected"]) == (0.9, -1.1)
    assert pair["chosen_correct"] and not pair["rejected_correct"] and pair["kind"] == "call"
    assert pair["id"] == "s1:0" and pair["sample_id"] == "s1" and pair["depth"] == 0 and pair["prefix"] == ""
    assert pair["system"] == SAMPLE["system"] and pair["messages"] == SAMPLE["messages"]
    assert pair["chosen_ends"] is True and pair["rejected_ends"] is True


def test_more_pairs_per_node_take_the_next_lowest_siblings_that_qualify():
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=1)]", 1, 1.0)
    terminal(tree, root, "[A(x=2)]", -1, -1.2)
    terminal(tree, root, "[A(x=3)]", -1, -1.0)
    terminal(tree, root, "[A(x=1.0)]", 1, 0.5)  # correct as well: never a rejected
    pairs = search.preference_pairs(tree, SAMPLE, gap=0.1, per_node=3)
    assert [p["rejected"] for p in pairs] == ["[A(x=2)]", "[A(x=3)]"] and [p["id"] for p in pairs] == ["s1:0", "s1:0:1"]
    assert len(search.preference_pairs(tree, SAMPLE, gap=0.1, per_node=1)) == 1


def test_no_pair_on_grades_alone_nor_between_equivalent_answers():
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=2)]", -1, -0.6)  # both wrong: a Q gap of 0.5 from the grades alone
    terminal(tree, root, "[A(x=3)]", -1, -1.1)
    assert search.preference_pairs(tree, SAMPLE, gap=0.1) == []
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, '[A(x=1)]', 1, 1.2)  # both right, quoted differently
    terminal(tree, root, "[A(x=1.0)]", 1, 0.7)
    assert search.preference_pairs(tree, SAMPLE, gap=0.1) == []
    # a Q gap beyond the margin pairs even without a correct terminal below the chosen
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=2)]", -1, 0.5)
    terminal(tree, root, "[A(x=3)]", -1, -0.6)
    assert len(search.preference_pairs(tree, SAMPLE, gap=0.1, margin=1.0)) == 1


def test_a_step_of_the_gold_answer_is_never_rejected():
    """Its roll-outs all failed (the policy rambled on after it): that does not make it wrong."""
    sample = {**SAMPLE, "answer": "I need the title. Could you provide it?"}
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    ok = search.add_node(tree, root, Step("OK.", False), max_depth=10)
    ok.update(Q=0.4, N=2)
    terminal(tree, ok, " Could you provide the title?", 1, 1.0)
    gold = search.add_node(tree, root, Step("I need the title.", False), max_depth=10)
    gold.update(Q=-1.0, N=2, gold=True)
    terminal(tree, gold, " [A(x=1)]", -1, -1.0)
    terminal(tree, root, "[A(x=2)]", -1, -1.2)
    pairs = search.preference_pairs(tree, sample, gap=0.1, per_node=3)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("OK.", "[A(x=2)]")]
    gold["gold"] = False  # the same tree with the step off the gold path: now it is rejected too
    assert [p["rejected"] for p in search.preference_pairs(tree, sample, gap=0.1, per_node=3)] == \
        ["[A(x=2)]", "I need the title."]


def test_a_decisive_sibling_of_higher_q_is_not_lost():
    """Qualifying is not ordered by Q: a wrong sibling whose grades gave it a low Q may fall short
    of the margin while a decisive one of higher Q qualifies."""
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=1)]", 1, 0.6)
    terminal(tree, root, "[A(x=2)]", -1, -0.2)  # Q gap 0.8, under the margin
    middle = search.add_node(tree, root, Step("[A(x=3), ", False), max_depth=10)
    middle.update(Q=0.3, N=2)  # gap 0.3, and no correct answer below it: decisive
    terminal(tree, middle, " B(y=1)]", -1, -1.0)
    reached = search.correct_below(tree)
    assert not reached[middle["id"]]
    # both wrong siblings are decisive: both pair
    pairs = search.preference_pairs(tree, SAMPLE, gap=0.1, margin=1.0, per_node=3)
    assert sorted(p["rejected"] for p in pairs if p["depth"] == 0) == ["[A(x=2)]", "[A(x=3), "]
    # a lowest-Q sibling that does not qualify (it reached a correct answer) no longer hides the next
    tree[2].update(outcome=1)
    pairs = search.preference_pairs(tree, SAMPLE, gap=0.1, margin=1.0, per_node=3)
    assert [p["rejected"] for p in pairs if p["depth"] == 0] == ["[A(x=3), "]


def expected_pairs(tree, gap, margin, per_node):
    """(node id, rejected id) of every pair the rule asks for, by brute force."""
    reached = search.correct_below(tree)
    out = []
    for node in tree:
        children = [tree[i] for i in node["children"] if tree[i]["N"] > 0 or tree[i]["terminal"]]
        if len(children) < 2:
            continue
        chosen = max(children, key=lambda c: c["Q"])
        qualifying = [c for c in sorted(children, key=lambda c: c["Q"]) if c is not chosen
                      and ((reached[chosen["id"]] and not reached[c["id"]] and chosen["Q"] - c["Q"] > gap)
                           or chosen["Q"] - c["Q"] >= margin)
                      and not c["gold"] and c["step"] != chosen["step"]]
        out += [(node["id"], c["id"]) for c in qualifying[:per_node]]
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(-3, 3), st.integers(0, 3), st.sampled_from([-1, 0, 1])),
                min_size=1, max_size=30), st.floats(0, 1))
def test_every_pair_is_backed_by_its_outcomes_and_none_is_lost(spec, gap):
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=99)
    # a decisive pair at the root in every example, so that no example passes for want of pairs
    terminal(tree, root, "[A(x=-1)]", 1, 9.0)
    terminal(tree, root, "[A(x=-2)]", -1, -9.0)
    for i, (parent, q, visits, result) in enumerate(spec):
        ends = result != 0
        node = search.add_node(tree, tree[parent % len(tree)], Step(f"[A(x={i})]" if ends else f"[A(x={i}), ", ends),
                             max_depth=99)
        node.update(Q=q, N=visits, outcome=result)
    reached = search.correct_below(tree)
    pairs = search.preference_pairs(tree, SAMPLE, gap, margin=1.0, per_node=2)
    assert pairs and len({p["id"] for p in pairs}) == len(pairs)
    made = []
    for pair in pairs:
        node = tree[int(pair["id"].split(":")[1])]
        evaluated = [tree[i] for i in node["children"] if tree[i]["N"] > 0 or tree[i]["terminal"]]
        assert pair["q_chosen"] == max(c["Q"] for c in evaluated)
        decisive = pair["chosen_correct"] and not pair["rejected_correct"]
        assert (decisive and pair["q_chosen"] > pair["q_rejected"] + gap) or pair["q_chosen"] - pair["q_rejected"] >= 1.0
        assert pair["prefix"] == node["answer"]
        made.append((node["id"], next(c["id"] for c in evaluated if c["step"] == pair["rejected"])))
    assert made == expected_pairs(tree, gap, 1.0, 2)  # every qualifying pair, none lost
    for node in tree:
        for child in node["children"]:
            if tree[child]["terminal"] and tree[child]["outcome"] == 1:
                assert reached[node["id"]]


# --- steps and outcomes -----------------------------------------------------------------------

def test_gold_steps_follow_the_gold_path(tiny_tokenizer):
    gold = '[Get Game Result(team="Toronto, ON", date="2025"), Get Crypto History(coin="DOT", days=108)]'
    sample = {"answer": gold}
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    steps = search.gold_step_list(tiny_tokenizer, sample, eot, [])
    assert [s.text for s in steps] == split_steps(gold) == ['[Get Game Result(team="Toronto, ON", date="2025"),',
                                                           ' Get Crypto History(coin="DOT", days=108)]']
    ids = tiny_tokenizer(gold, add_special_tokens=False).input_ids
    assert [t for s in steps for t in s.ids] == ids + [eot]  # the whole answer's own ids, then end of turn
    assert [s.ends for s in steps] == [False, True]
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=8)
    assert search.gold_next_step(steps, root) == steps[0]
    on_path = search.add_node(tree, root, steps[0], max_depth=8)
    off_path = search.add_node(tree, root, Step('[Get Game Result(team="Oslo"),', False, ids=(5, 6)), max_depth=8)
    assert search.gold_next_step(steps, on_path) == steps[1]
    assert search.gold_next_step(steps, off_path) is None


TEXT_SAMPLE = {"system": "", "messages": [{"role": "user", "content": "Book me a taxi."}],
               "answer": "None of the available functions can book a taxi."}


@pytest.mark.parametrize("answer, ends, gold, expected", [
    ('[B(y="2, 3"), A(x=1)]', True, '[A(x=1), B(y="2, 3")]', 1),  # parallel calls: any order
    ('[A(x=1), A(x=1)]', True, '[A(x=1)]', -1),
    ('[A(x=2)]', True, '[A(x=1)]', -1),
    ('[A(x=1),', False, '[A(x=1)]', -1),  # unfinished (truncated or out of depth)
    ("Sorry, no tool can do that.", True, None, 1),  # a decline for a declined request
    ("Sure, your taxi is on its way.", True, None, -1),  # any text is not enough
    ("[A(x=1)]", True, None, -1),
    ("[convert_length(value=466.0, to_unit=cm)]", True, None, -1),  # a malformed call is no text answer
    ("No tool can do that.<unused4260>", True, None, -1),
])
def test_outcome_at_terminals(answer, ends, gold, expected):
    sample = TEXT_SAMPLE if gold is None else {**TEXT_SAMPLE, "answer": gold}
    node = {"terminal": True, "ends": ends, "answer": answer}
    assert search.outcome(node, sample) == expected
    assert search.outcome({**node, "terminal": False}, sample) == 0


# --- search with scripted policies ------------------------------------------------------------

class Scripted:
    """search.run_lockstep's side of a scripted policy: a generate request is answered at the next
    decode_pool, each row by propose(search_id, node, max_steps, row); priors are 0.5, grades grade(node)."""

    def __init__(self):
        self.decoding, self.confidence_batches = [], []

    def submit(self, asks):
        self.decoding += [(i, [self.propose(i, node, max_steps, row) for row in range(rows)])
                          for i, (node, max_steps, rows) in asks]

    def decode_pool(self):
        finished, self.decoding = self.decoding, []
        return finished

    def priors_batch(self, asks):
        return [[0.5] * len(steps) for _, (_, steps) in asks]

    def confidence_batch(self, asks):
        self.confidence_batches += [len(nodes) for _, nodes in asks]
        return [[self.grade(node) for node in nodes] for _, nodes in asks]


class ScriptedPolicy(Scripted):
    """Proposes the gold next step when on the gold path, else (or also, with `wrong`) a wrong
    final answer; rolls out the rest of the gold answer; grades everything 0."""

    def __init__(self, gold, wrong=None, grade=None):
        super().__init__()
        self.steps = split_steps(gold)
        self.wrong = wrong
        self.grade = grade or (lambda node: 0.0)

    def gold_after(self, answer):
        for i in range(len(self.steps)):
            if "".join(self.steps[:i]) == answer:
                return Step(self.steps[i], ends=i == len(self.steps) - 1, prior=0.5)
        return None

    def propose(self, search_id, node, max_steps, row):
        answer, steps = node["answer"], []
        if max_steps == 1:  # a proposal
            gold = self.gold_after(answer)
            return [gold if gold and self.wrong is None else Step(self.wrong or "Nothing.", ends=True, prior=0.5)]
        while (step := self.gold_after(answer)) is not None and len(steps) < max_steps:
            steps.append(step)
            answer += step.text
        return steps or [Step("", ends=True, prior=0.5)]


GOLD = '[Get Weather(city="Oslo, NO"), Get Time(zone="CET"), Get News(topic="tech, AI")]'


def gold_steps(gold):
    texts = split_steps(gold)
    return [Step(text, ends=i == len(texts) - 1) for i, text in enumerate(texts)]


def scripted_search(sample, policy, simulations, k, add_gold, weight=1.0):
    [tree] = search.run_lockstep([search.search(sample, gold_steps(sample["answer"]), simulations=simulations, k=k,
                                                max_depth=8, c=1.0, gamma=1.0, add_gold=add_gold, weight=weight)],
                                 policy)
    return tree


def test_a_policy_proposing_the_gold_step_reaches_a_correct_terminal():
    sample = {"id": "g", "system": "", "messages": [], "answer": GOLD}
    tree = scripted_search(sample, ScriptedPolicy(GOLD), simulations=4, k=2, add_gold=False)
    correct = [node for node in tree if node["terminal"] and node["outcome"] == 1]
    assert correct and correct[0]["answer"] == GOLD and correct[0]["depth"] == 3
    assert tree[0]["N"] == 4 and tree[0]["V"] == pytest.approx(1.0)  # every visit ended at +1
    assert all(node["children"] for node in tree[:3]) and len(tree) == 4  # duplicates were merged
    assert search.tree_stats(tree, [], 1.0, 0, 4)["solved_by_policy"]


def test_the_gold_candidate_wins_over_a_wrong_policy():
    policy = ScriptedPolicy(GOLD, wrong='[Get Weather(city="Bergen")]')
    sample = {"id": "w", "system": "sys", "messages": [], "answer": GOLD}
    tree = scripted_search(sample, policy, simulations=3, k=3, add_gold=True)
    root_children = [tree[i] for i in tree[0]["children"]]
    assert len(root_children) == 2  # the k identical wrong proposals were merged into one node
    wrong = next(child for child in root_children if not child["gold"])
    assert wrong["sampled"] == 3 and wrong["outcome"] == -1 and wrong["Q"] == pytest.approx(-1.0)
    pairs = search.preference_pairs(tree, sample, gap=0.1)
    root_pair = next(pair for pair in pairs if pair["depth"] == 0)
    assert root_pair["chosen"] == split_steps(GOLD)[0] and root_pair["rejected"] == wrong["step"]
    assert root_pair["q_chosen"] == pytest.approx(1.0) and root_pair["chosen_gold"]
    assert max(policy.confidence_batches) > 1  # new children are graded together
    stats = search.tree_stats(tree, pairs, 1.0, 0, 3)
    assert stats["correct_terminals"] == 1 and not stats["solved_by_policy"]  # only the gold steps were right
    report = search.audit(pairs)
    assert report["decisive"] == 1.0 and report["by_kind"]["call"]["pairs"] == len(pairs)
    assert "## w:0" in search.audit_markdown(report, pairs)


def test_rewards_add_the_weighted_self_evaluation_to_the_outcome():
    """R = O + w·C (Eq. 6) with C ≠ 0 and w ≠ 1, r = R(s') − R(s), and a visited terminal's Q = r."""
    def grade(node):  # on the gold path: good; off it: poor
        return 0.4 if GOLD.startswith(node["answer"]) else -0.8
    policy = ScriptedPolicy(GOLD, wrong='[Get Weather(city="Bergen")]', grade=grade)
    sample = {"id": "c", "system": "sys", "messages": [], "answer": GOLD}
    tree = scripted_search(sample, policy, simulations=4, k=2, add_gold=True, weight=0.25)
    assert tree[0]["reward"] == pytest.approx(0.25 * 0.4)
    for node in tree[1:]:
        assert node["confidence"] == grade(node)
        assert node["reward"] == pytest.approx(node["outcome"] + 0.25 * node["confidence"])
        assert node["r"] == pytest.approx(node["reward"] - tree[node["parent"]]["reward"])
    wrong = next(tree[i] for i in tree[0]["children"] if not tree[i]["gold"])
    # a wrong final answer: O = −1, C = −0.8, under a root of R = 0.1
    assert wrong["terminal"] and wrong["Q"] == wrong["r"] == pytest.approx(-1 - 0.2 - 0.1)
    correct = next(node for node in tree if node["terminal"] and node["outcome"] == 1)
    assert correct["reward"] == pytest.approx(1 + 0.1)


def test_the_audit_counts_malformed_steps():
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "[A(x=1)]", 1, 1.0)
    terminal(tree, root, "[A(x=1)<unused12>", -1, -1.0)
    pairs = search.preference_pairs(tree, SAMPLE, gap=0.1)
    report = search.audit(pairs)
    assert report["rejected_malformed"] == 1.0 and report["chosen_malformed"] == 0.0
    assert report["by_depth"]["0"]["pairs"] == 1


def test_the_audit_counts_pairs_that_teach_calling_or_not():
    """Text over a call list where the gold is text, a call list over text where it is a call; a
    pair deeper in a call list teaches neither."""
    decline = {**SAMPLE, "id": "t", "answer": "No tool here can book a flight."}
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    terminal(tree, root, "No tool here can book a flight.", 1, 1.0)
    terminal(tree, root, "[A(x=1)]", -1, -1.0)
    text_pairs = search.preference_pairs(tree, decline, gap=0.1)
    tree = []
    root = search.add_node(tree, None, Step("", False), max_depth=10)
    first = search.add_node(tree, root, Step("[A(x=1), ", False), max_depth=10)
    first.update(Q=1.0, N=2)
    terminal(tree, root, "Which x do you mean?", -1, -1.0)
    terminal(tree, first, "B(y=2)]", 1, 1.0)
    terminal(tree, first, "A(x=1)]", -1, -1.0)
    call_pairs = search.preference_pairs(tree, SAMPLE, gap=0.1)
    assert len(text_pairs) == 1 and len(call_pairs) == 2
    report = search.audit(text_pairs + call_pairs)
    assert (report["text_over_call"], report["call_over_text"]) == (1, 1)
    assert report["by_kind"]["text"]["text_over_call"] == 1 and report["by_kind"]["call"]["text_over_call"] == 0
    assert report["by_depth"]["1"]["call_over_text"] == 0
    assert "| all | 3 | 2 |" in search.audit_markdown(report, text_pairs + call_pairs)


class ManyScripted(Scripted):
    """The scripted policies of several searches behind one run_lockstep. Its pool hands back
    only some of the finished requests at a time, the last submitted first, as a real pool does
    when rows finish at different lengths."""

    def __init__(self, policies):
        super().__init__()
        self.policies = policies

    def propose(self, search_id, node, max_steps, row):
        return self.policies[search_id].propose(search_id, node, max_steps, row)

    def decode_pool(self):
        n = max(1, len(self.decoding) // 2)
        finished, self.decoding = self.decoding[-n:][::-1], self.decoding[:-n]
        return finished

    def confidence_batch(self, asks):
        return [[self.policies[i].grade(node) for node in nodes] for i, nodes in asks]


def test_searches_in_lockstep_grow_the_trees_each_grows_alone():
    golds = [GOLD, '[Get Time(zone="UTC"), Get Date(zone="UTC")]', "I need the city. Which city do you mean?"]
    wrongs = ['[Get Weather(city="Bergen")]', None, "Sorry, I cannot."]
    samples = [{"id": f"l{i}", "system": "", "messages": [], "answer": gold} for i, gold in enumerate(golds)]

    def grade(node):
        return 0.3 if len(node["answer"]) % 2 else -0.4

    def searches():
        return [search.search(s, gold_steps(s["answer"]), simulations=5, k=2, max_depth=8, c=1.0, gamma=1.0,
                              add_gold=True, weight=0.25) for s in samples]

    def policies():
        return [ScriptedPolicy(gold, wrong=wrong, grade=grade) for gold, wrong in zip(golds, wrongs)]

    together = search.run_lockstep(searches(), ManyScripted(policies()))
    alone = [search.run_lockstep([one], policy) for one, policy in zip(searches(), policies())]
    assert together == [tree for [tree] in alone]
    assert all(len(tree) > 2 and tree[0]["N"] == 5 for tree in together)


# --- the model-backed policy --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_fp32(tiny_model_dir):
    # fp32, so that batched and separate computations agree to rounding (bf16 would not)
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()
    generation.use_grouped_attention(model)
    return model


def search_args(**overrides):
    args = mcts.parse_args(["--samples", "x", "--out", "x", "--trees-dir", "x", "--simulations", "3", "--k", "2",
                            "--max-depth", "4", "--max-step-tokens", "10", "--seed", "5"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def comparable(tree):
    return [(n["parent"], n["answer_ids"], n["ends"], n["N"], round(n["Q"], 4), round(n["prior"] or 0, 4))
            for n in tree]


@torch.inference_mode()
def test_a_sample_grows_the_same_tree_in_any_batch(tiny_fp32, tiny_tokenizer, synthetic_samples):
    """Searched in lockstep with others or alone, a sample's tree is the same: its draws come from
    its own generator and the batched forwards give the numbers of separate ones."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    template = search.load_eval_template(mcts.EVAL_PROMPT)
    samples = synthetic_samples[:3]
    args = search_args()
    together, _, tokens, _ = mcts.search_batch(tiny_fp32, tiny_tokenizer, samples, template, args, eot)
    assert tokens > 0
    for sample, tree in zip(samples, together):
        alone, _, _, _ = mcts.search_batch(tiny_fp32, tiny_tokenizer, [sample], template, args, eot)
        assert comparable(alone[0]) == comparable(tree)
        assert len(tree) > 3


@torch.inference_mode()
def test_sampled_steps_are_the_models_own_tokens_cut_at_step_boundaries(tiny_fp32, tiny_tokenizer,
                                                                        synthetic_samples):
    """Every node's ids are its parent's ids plus its step's ids; the step's text is what those
    ids decode to; a finished step is exactly one step of its answer; priors are probabilities."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    template = search.load_eval_template(mcts.EVAL_PROMPT)
    args = search_args(simulations=6, max_step_tokens=16)
    trees, _, _, _ = mcts.search_batch(tiny_fp32, tiny_tokenizer, synthetic_samples[3:6], template, args, eot)
    checked = 0
    for tree in trees:
        for node in tree[1:]:
            parent = tree[node["parent"]]
            assert node["answer_ids"] == parent["answer_ids"] + node["step_ids"]
            ids = [t for t in node["answer_ids"] if t != eot]
            assert tiny_tokenizer.decode(ids, skip_special_tokens=False) == node["answer"]
            assert 0 < node["prior"] <= 1
            if not (node["ends"] or node["truncated"]):
                assert split_steps(node["answer"])[-1] == node["step"]
                checked += 1
    assert checked > 0


@torch.inference_mode()
def test_priors_and_grades_equal_a_plain_forward(tiny_fp32, tiny_tokenizer, synthetic_samples):
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    template = search.load_eval_template(mcts.EVAL_PROMPT)
    sample = max(synthetic_samples, key=lambda s: len(s["system"]))
    policy = mcts.ModelPolicy(tiny_fp32, tiny_tokenizer, [sample, synthetic_samples[0]], template,
                              generators=[torch.Generator(), torch.Generator()],
                              sampling={"temperature": 1.0, "top_k": 50, "top_p": 0.95, "min_p": 0.0},
                              max_step_tokens=[12, 12], grade_scores=[1.0, 0.1, -1.0, -2.0])
    prompt = modeling.encode_prompt(tiny_tokenizer, sample["system"], sample["messages"])
    assert len(prompt) > tiny_fp32.config.sliding_window  # the window layers are exercised too
    steps = search.gold_step_list(tiny_tokenizer, sample, eot, [])
    root = {"answer_ids": [], "answer": ""}
    first = {"answer_ids": list(steps[0].ids), "answer": steps[0].text}
    priors_root, priors_first = policy.priors_batch([(0, (root, steps[:1])), (0, (first, steps[1:2] or steps[:1]))])

    def plain_prior(answer_ids, step_ids):
        ids = prompt + answer_ids + step_ids
        logps = head_logits(tiny_fp32, decoder_hidden(tiny_fp32, torch.tensor([ids]))[0]).log_softmax(-1)
        start = len(prompt) + len(answer_ids)
        return torch.exp(torch.stack([logps[start + j - 1, t] for j, t in enumerate(step_ids)]).mean()).item()

    assert priors_root[0] == pytest.approx(plain_prior([], list(steps[0].ids)), rel=1e-4)
    second = steps[1] if len(steps) > 1 else steps[0]
    assert priors_first[0] == pytest.approx(plain_prior(list(steps[0].ids), list(second.ids)), rel=1e-4)

    head, tail = search.eval_prompt_parts(tiny_tokenizer, template, sample)
    [grades] = policy.confidence_batch([(0, [root, first])])
    for node, grade in zip([root, first], grades):
        ids = head + [t for t in node["answer_ids"] if t != eot] + tail  # graded without its end of turn
        logits = head_logits(tiny_fp32, decoder_hidden(tiny_fp32, torch.tensor([ids]))[0, -1])
        probs = torch.softmax(logits[policy.grade_ids], -1)
        assert grade == pytest.approx((probs @ torch.tensor([1.0, 0.1, -1.0, -2.0])).item(), abs=1e-4)


def test_top_k_and_top_p_keep_only_likely_tokens():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, -2.0]] * 200)
    generators = [torch.Generator().manual_seed(i) for i in range(200)]
    drawn = generation.sample_tokens(logits, generators, temperature=1.0, top_k=3, top_p=0.8, min_p=0.0)
    assert set(drawn.tolist()) == {0, 1}  # top-p 0.8 drops token 2 (p ≈ 0.013) that top-k kept
    assert set(generation.sample_tokens(logits, generators, 1.0, top_k=1, top_p=1.0, min_p=0.0).tolist()) == {0}
    assert set(generation.sample_tokens(logits, generators, 1.0, top_k=0, top_p=1.0, min_p=0.3).tolist()) <= {0, 1}


# --- the stage: outputs and resuming after a kill ----------------------------------------------

def stage_args(tmp, samples_path, *extra):
    return ["--model", "tiny", "--samples", str(samples_path), "--out", str(tmp / "pairs.jsonl"),
            "--trees-dir", str(tmp / "trees"), "--seed", "3", "--simulations", "2", "--k", "2",
            "--max-depth", "4", "--max-step-tokens", "10", "--batch-samples", "2", *extra]


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
    assert json.loads((whole / "pairs_audit.json").read_text())["pairs"] == len(expected)
    assert (whole / "pairs_audit.md").read_text().startswith("# Pair audit")
    assert not list(whole.glob(".pairs.partial*"))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")}
    process = subprocess.Popen([sys.executable, str(REPO / "stages" / "05_mcts.py"), *stage_args(killed, hard_file)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = killed / ".pairs.partial.0.jsonl"  # a header line, then a line per sample searched
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 3) and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "pairs.jsonl").exists(), "the run finished before it could be killed"
    finished = [json.loads(line)["id"] for line in partial.read_text().splitlines()[1:] if line.endswith("}")]
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


class FakeModelPolicy(Scripted):
    """Stands in for the stage's ModelPolicy (the same arguments), with no model: proposals that
    depend on the node alone. On the gold path a proposal is the gold's next step in even rows
    and a wrong final answer in odd ones, and a roll-out follows the gold; off it, every step is
    the wrong answer. Grades follow the answer's length."""

    def __init__(self, model, tokenizer, samples, template, *, generators, sampling, max_step_tokens, grade_scores):
        super().__init__()
        eot = modeling.end_of_turn_id(tokenizer)
        names = [[t["name"] for t in tools_from_system(s["system"]) or []] for s in samples]
        self.golds = [search.gold_step_list(tokenizer, s, eot, n) for s, n in zip(samples, names)]
        wrong_ids = tokenizer("Nothing.", add_special_tokens=False).input_ids + [eot]
        self.wrong = Step("Nothing.", ends=True, ids=tuple(wrong_ids), prior=0.2)
        self.generated_tokens = 0

    def propose(self, search_id, node, max_steps, row):
        gold = self.golds[search_id]
        if search.gold_next_step(gold, node) is None or (max_steps == 1 and row % 2):
            return [self.wrong]
        return [step._replace(prior=0.6) for step in gold[node["depth"]:node["depth"] + max_steps]]

    def grade(self, node):
        return 0.1 * (len(node["answer_ids"]) % 3) - 0.1


def test_the_stage_writes_the_pairs_of_each_sample_searched_alone(tmp_path, hard_file, tiny_tokenizer, monkeypatch):
    """Batching, per-sample limits, resuming and writing leave the pairs what the library makes
    of each sample on its own, in the order of the samples."""
    monkeypatch.setattr(mcts, "ModelPolicy", FakeModelPolicy)
    argv = stage_args(tmp_path, hard_file, "--simulations", "4", "--batch-samples", "3")
    mcts.main(argv)
    args = mcts.parse_args(argv)
    expected = []
    for sample in read_jsonl(hard_file):
        policy = FakeModelPolicy(None, tiny_tokenizer, [sample], None, generators=None, sampling=None,
                                 max_step_tokens=None, grade_scores=None)
        depth, _ = search.search_limits(policy.golds[0], args.max_depth, args.max_step_tokens)
        [tree] = search.run_lockstep([search.search(sample, policy.golds[0], simulations=args.simulations, k=args.k,
                                                    max_depth=depth, c=args.c, gamma=args.gamma, add_gold=True,
                                                    weight=args.self_eval_weight)], policy)
        expected += search.preference_pairs(tree, sample, args.pair_gap, args.outcome_margin, args.pairs_per_node)
    assert expected and read_jsonl(tmp_path / "pairs.jsonl") == expected


@pytest.mark.slow
@torch.inference_mode()
def test_gemma_priors_and_grades_from_forked_caches_equal_a_plain_forward(synthetic_samples):
    """Gemma 3's sliding-window layers (512 tokens) with a prompt longer than the window, in bf16."""
    model_dir = modeling.resolve_model("gemma-3-270m")
    model, tokenizer = modeling.load_model(model_dir, device=torch.device("cpu")), modeling.load_tokenizer(model_dir)
    plain = modeling.load_model(model_dir, device=torch.device("cpu"))
    generation.use_grouped_attention(model)
    eot = modeling.end_of_turn_id(tokenizer)
    template = search.load_eval_template(mcts.EVAL_PROMPT)
    sample = max(synthetic_samples, key=lambda s: len(s["system"]))
    prompt = modeling.encode_prompt(tokenizer, sample["system"], sample["messages"])
    assert len(prompt) > model.config.sliding_window
    policy = mcts.ModelPolicy(model, tokenizer, [sample], template, generators=[torch.Generator()],
                              sampling={"temperature": 1.0, "top_k": 50, "top_p": 0.95, "min_p": 0.0},
                              max_step_tokens=[48], grade_scores=[1.0, 0.1, -1.0, -2.0])
    steps = search.gold_step_list(tokenizer, sample, eot, [])
    [[prior]] = policy.priors_batch([(0, ({"answer_ids": [], "answer": ""}, steps[:1]))])
    ids = prompt + list(steps[0].ids)
    logps = head_logits(plain, decoder_hidden(plain, torch.tensor([ids]))[0]).log_softmax(-1)
    expected = torch.exp(torch.stack([logps[len(prompt) + j - 1, t] for j, t in enumerate(steps[0].ids)]).mean())
    assert prior == pytest.approx(expected.item(), rel=0.1)  # bf16 rounding only


# --- the search's limits on real data ------------------------------------------------------------

TOOLACE = REPO / "eval" / "data" / "toolace" / "toolace_sample.json"


@pytest.fixture(scope="module")
def toolace_samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("toolace") / "toolace.jsonl"
    subprocess.run([sys.executable, str(REPO / "stages/00_data.py"), "--data", str(TOOLACE), "--skip-bad", "--out",
                    str(out)], check=True, capture_output=True)
    from itool import records
    return [s for r in read_jsonl(out) for s in records.record_samples(r, r["id"])]


def test_every_gold_of_the_real_toolace_sample_is_within_reach(toolace_samples, tiny_tokenizer):
    """Real answers have many sentences and long calls: at the fixed budgets (8 steps of 48 tokens)
    many golds lie out of reach; the limits raised per sample reach every one."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    out_of_reach = 0
    for sample in toolace_samples:
        names = [t["name"] for t in tools_from_system(sample["system"]) or []]
        gold = search.gold_step_list(tiny_tokenizer, sample, eot, names)
        out_of_reach += not search.gold_reachable(gold, *search.search_limits(gold, 8, 48, fixed=True))
        assert search.gold_reachable(gold, *search.search_limits(gold, 8, 48)), sample["id"]
    assert len(toolace_samples) > 1000 and out_of_reach > 100


def test_a_long_real_gold_is_sampled_whole_and_judged_correct(toolace_samples, tiny_tokenizer):
    """A row sampling a long gold step token by token (search.advance) finishes the step instead
    of cutting it short, and the gold path ends in a correct terminal."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    def long_steps(sample):  # more than 8 steps, one of them over 48 tokens
        gold = search.gold_step_list(tiny_tokenizer, sample, eot, [])
        return len(gold) > 8 and max(len(step.ids) for step in gold) > 48

    sample = next(s for s in toolace_samples if s["kind"] == "text" and long_steps(s))
    gold = search.gold_step_list(tiny_tokenizer, sample, eot, [])
    depth, step_tokens = search.search_limits(gold, 8, 48)
    assert depth == len(gold) > 8 and step_tokens > 48
    stops = generation.stop_ids(tiny_tokenizer)
    specials = {i for i, token in tiny_tokenizer.added_tokens_decoder.items() if token.special} - stops

    def decode(ids):
        return tiny_tokenizer.decode(ids, skip_special_tokens=False)

    def sample_token(row, token):  # the policy "samples" exactly the gold's tokens
        search.advance(row, token, -1.0, decode, stops, specials)

    tree = []
    node = search.add_node(tree, None, Step("", False), depth)
    for step in gold:
        row = search.start_row(node, 1, [], step_tokens, stops)
        for token in step.ids:
            sample_token(row, token)
        if not row["steps"]:  # a sentence's end is seen with the next token: the next step's first
            sample_token(row, gold[node["depth"] + 1].ids[0])
        sampled = row["steps"][0]
        assert not sampled.truncated and sampled.text == step.text, node["depth"]
        node = search.add_node(tree, node, step, depth)
    assert node["terminal"] and node["ends"] and search.outcome(node, sample) == 1
    # at the fixed budgets the same gold path is cut off at depth 8, unfinished: −1
    fixed = []
    node = search.add_node(fixed, None, Step("", False), 8)
    for step in gold[:8]:
        node = search.add_node(fixed, node, step, 8)
    assert node["terminal"] and not node["ends"] and search.outcome(node, sample) == -1
