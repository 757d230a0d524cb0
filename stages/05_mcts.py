"""Stage 05 (make iterate): step-level MCTS on the hard samples -> step-level preference pairs.

For each hard sample the search grows a tree whose root is the prompt (tools and dialogue) and
whose edges are answer steps: one call of a call list, or one sentence of a text answer (itool/steps.py).
A node is the answer so far, as the token ids the policy produced (gold steps: the ids of the
gold answer, tokenised whole). One simulation (paper §4.3):

  select    from the root, follow PUCT (Eq. 5) through expanded nodes to one not yet expanded,
                Q(s,a) + c · p(a|s) · √N(s) / (1 + N(s,a)),   p(a|s) = exp(mean token log-prob of a);
  expand    sample --k next steps, merge identical ones, and add the gold next step when the node
            lies on the gold answer (--no-gold leaves it out). A new child s' gets the reward
            R(s') = O(s') + w · C(s') (Eq. 6, w = --self-eval-weight) and r(s,a) = R(s') − R(s);
  roll out  from the new child PUCT prefers, sample steps to a terminal state: the end of turn,
            a step longer than --max-step-tokens, or --max-depth steps. The roll-out's steps
            join the tree, so a later simulation can branch off them;

Limits that follow the data: --max-depth and --max-step-tokens are budgets for what the policy
writes, raised per sample so that its gold answer fits (as many steps as the gold has, and its
longest step plus a few tokens). Real ToolACE answers run to dozens of sentences and calls of
over a hundred tokens; under a fixed 8 × 48 such a gold would end unfinished (−1), and a correct
long call could become the rejected side of a pair. --fixed-limits keeps the budgets as given; the
samples whose gold then lies out of reach are counted (mcts_stats.json and the audit:
golds_unreachable).
  back up   from that terminal to the root (Eq. 8–9): N += 1, V(s) = Σ N·Q / Σ N over the
            visited children, Q(s,a) = r(s,a) + γ·V(s').

O(s) is 0 before the end; at a terminal it is +1 if the answer was finished and is correct
(outcome.is_correct: the gold's calls, or for a text gold the same job done — see itool/outcome.py),
−1 otherwise (malformed calls and special tokens included). C(s) is the self-evaluation (Eq. 7):
one forward pass of the policy on the prompt in stages/self_eval_prompt.txt (tools, dialogue,
gold answer, partial answer), the expected grade score under the probabilities of the letters A–D
renormalised over them (--grade-scores). w < 1 keeps the grades' span (3.0 by default) below the
outcome's (2.0), so that no grade can outvote a wrong or right answer.

Sampling: temperature, then top-k and top-p (nucleus) and min-p filtering; each sample draws
from its own seeded generator, so its tree does not depend on which samples share its batch
(in exact arithmetic: in bf16 the batch changes the rounding, which can steer a draw elsewhere).

Pairs, at every node with ≥ 2 children that have been rolled out (or are terminal): the child
of highest Q is chosen, the one of lowest Q rejected — and, with --pairs-per-node > 1, the next
lowest too, each against the same chosen — unless the two are the same answer in other words
(outcome.equivalent, or the same call), and only when the outcome speaks for the chosen: it
reached a correct answer in some roll-out and the rejected never did (with a Q gap over
--pair-gap), or its Q exceeds the rejected's by --outcome-margin, which grades alone cannot span.
A node's k sampled steps and the gold step are mostly one-step answers whose tree ends there, so
one pair per node leaves most of what the search found unused.
A pair's prompt is the dialogue plus the answer so far, as token ids, and chosen and rejected
are the ids of the steps themselves: exactly the tokens the policy produced (stage 06 trains on
them as they are). pairs_audit.json and pairs_audit.md describe the pairs (see `audit`).

Speed. Samples are searched in lockstep, --batch-samples at a time: each tree's search is a
generator that yields what it needs from the model (sampled steps, priors of gold steps,
self-evaluations), and one batched forward serves every tree's requests (generation.Rows: each
sample's prompt and self-evaluation prompt are prefilled once and forked for every state).

Resume. Each finished batch of samples is appended to .pairs.partial.<rank>.jsonl in the output
directory (itool.files' partial results, a line per sample) and its trees are written to
--trees-dir/<id>.json; a re-run with the same settings, inputs and code skips finished samples.
--out (make's target) appears only at the end, with mcts_stats.json and the audit beside it.
Under torchrun the batches are dealt out to the ranks whole, so a batch's samples and their trees
are the same whatever the number of ranks.
"""
import argparse
import json
import math
import random
import re
import shutil
import string
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm import tqdm

import itool
from itool import distributed, files, generation, modeling
from itool.files import atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from itool.logprobs import head_logits, head_logprobs
from itool.outcome import equivalent, is_clean, is_correct
from itool.records import RecordError, check_samples, tools_from_system
from itool.steps import first_step_end, is_call_list, token_cut, token_steps
from itool.toolcalls import parse_answer, same_calls

EVAL_PROMPT = Path(__file__).with_name("self_eval_prompt.txt")
GRADES = "ABCD"


class Step(NamedTuple):
    text: str
    ends: bool  # the answer ends after this step (the policy produced end-of-turn)
    truncated: bool = False  # cut short: over --max-step-tokens, or doomed (see ModelPolicy.advance)
    ids: tuple = ()  # the step's token ids (end-of-turn included when it ends the answer)
    prior: float | None = None  # p(a|s) when known from sampling it


# --- the search tree: a list of plain dicts, node id = index ------------------------------------

def add_node(tree, parent, step, max_depth):
    """Append the node reached from `parent` by `step` (parent None: the root)."""
    depth = 0 if parent is None else parent["depth"] + 1
    node = {"id": len(tree), "parent": None if parent is None else parent["id"], "depth": depth,
            "step": step.text, "answer": (parent["answer"] if parent else "") + step.text,
            "step_ids": list(step.ids), "answer_ids": (parent["answer_ids"] if parent else []) + list(step.ids),
            "ends": step.ends, "truncated": step.truncated,
            "terminal": step.ends or step.truncated or depth >= max_depth,
            "expanded": False, "children": [], "gold": False, "sampled": 0, "rollout": False,
            "prior": step.prior, "outcome": 0, "confidence": None, "reward": None, "r": 0.0,
            "N": 0, "V": 0.0, "Q": 0.0}
    tree.append(node)
    if parent is not None:
        parent["children"].append(node["id"])
    return node


def find_child(tree, node, step):
    """The child of `node` reached by the same step (same text, same ending), if there is one."""
    return next((tree[i] for i in node["children"] if (tree[i]["step"], tree[i]["ends"]) == (step.text, step.ends)),
                None)


def outcome(node, sample):
    """O(s): 0 before the end; at a terminal +1 for a finished answer that is correct, else −1."""
    if not node["terminal"]:
        return 0
    return 1 if node["ends"] and is_correct(node["answer"], sample) else -1


def set_rewards(tree, nodes, confidences, sample, weight):
    """R = O + w·C (Eq. 6) and r = R − R(parent) for new nodes; Q = r until a visit gives them a V."""
    for node, confidence in zip(nodes, confidences):
        node["outcome"] = outcome(node, sample)
        node["confidence"] = confidence
        node["reward"] = node["outcome"] + weight * confidence
        node["r"] = node["reward"] - tree[node["parent"]]["reward"]
        node["Q"] = node["r"]


def puct(parent, child, c):
    """Eq. 5: the child's value plus an exploration bonus led by its prior."""
    return child["Q"] + c * child["prior"] * math.sqrt(parent["N"]) / (1 + child["N"])


def best_child(tree, node, c):
    return max((tree[i] for i in node["children"]), key=lambda child: puct(node, child, c))  # ties: first


def select_leaf(tree, c):
    node = tree[0]
    while node["expanded"] and not node["terminal"]:
        node = best_child(tree, node, c)
    return node


def backup(tree, node, gamma):
    """Eq. 8–9 along the path from `node` up to the root."""
    while node is not None:
        node["N"] += 1
        visited = [tree[i] for i in node["children"] if tree[i]["N"] > 0]
        if visited:
            node["V"] = sum(child["N"] * child["Q"] for child in visited) / sum(child["N"] for child in visited)
        node["Q"] = node["r"] + gamma * node["V"]
        node = tree[node["parent"]] if node["parent"] is not None else None


def gold_next_step(gold_steps, node):
    """The gold answer's next step (a Step with its ids) when `node` is on the gold answer, else None."""
    depth = node["depth"]
    if depth >= len(gold_steps) or node["answer_ids"] != [t for step in gold_steps[:depth] for t in step.ids]:
        return None
    return gold_steps[depth]


# --- one search, as a generator of requests to the model -----------------------------------------
# A request is (kind, payload): ("generate", (node, max_steps, rows)) -> for each of `rows` rows
# the steps sampled after `node`; ("priors", (node, [steps])) -> p(a|s) of each step;
# ("confidence", [nodes]) -> C of each node. run_search answers them from a policy object;
# run_lockstep answers the requests of many searches with one batch per kind.

def expand(tree, node, sample, gold_steps, *, k, add_gold, max_depth, weight):
    """Children for k sampled next steps (and the gold one); priors and rewards for new children."""
    rows = yield "generate", (node, 1, k)
    candidates = [(steps[0], False) for steps in rows]
    gold_step = gold_next_step(gold_steps, node) if add_gold else None
    if gold_step is not None:
        candidates.append((gold_step, True))
    new = []
    for step, is_gold in candidates:
        child = find_child(tree, node, step)
        if child is None:
            child = add_node(tree, node, step, max_depth)
            new.append(child)
        child["gold"] |= is_gold
        child["sampled"] += 0 if is_gold else 1
    unscored = [tree[i] for i in node["children"] if tree[i]["prior"] is None]  # gold steps never sampled
    if unscored:
        priors = yield "priors", (node, [Step(c["step"], c["ends"], ids=tuple(c["step_ids"])) for c in unscored])
        for child, prior in zip(unscored, priors):
            child["prior"] = prior
    if new:
        set_rewards(tree, new, (yield "confidence", new), sample, weight)
    node["expanded"] = True


def roll_out(tree, node, sample, *, max_depth, weight):
    """Sample steps from `node` to a terminal state, adding them to the tree; returns the last."""
    (steps,) = yield "generate", (node, max_depth - node["depth"], 1)
    new = []
    for step in steps:
        child = find_child(tree, node, step)
        if child is None:
            child = add_node(tree, node, step, max_depth)
            child["rollout"] = True
            new.append(child)
        node = child
        if node["terminal"]:
            break
    if new:
        set_rewards(tree, new, (yield "confidence", new), sample, weight)
    return node


def search(sample, gold_steps, *, simulations, k, max_depth, c, gamma, add_gold, weight):
    """The search tree of one sample after `simulations` simulations (a generator of requests)."""
    tree = []
    root = add_node(tree, None, Step("", ends=False), max_depth)
    (root["confidence"],) = yield "confidence", [root]
    root["reward"] = weight * root["confidence"]
    for _ in range(simulations):
        leaf = select_leaf(tree, c)
        if not leaf["terminal"]:
            yield from expand(tree, leaf, sample, gold_steps, k=k, add_gold=add_gold, max_depth=max_depth,
                              weight=weight)
            leaf = best_child(tree, leaf, c)
            if not leaf["terminal"]:
                leaf = yield from roll_out(tree, leaf, sample, max_depth=max_depth, weight=weight)
        backup(tree, leaf, gamma)
    return tree


def run_search(searching, policy):
    """Drive one search with a policy answering each request (policy.generate / priors / confidence)."""
    request = next(searching)
    while True:
        kind, payload = request
        if kind == "generate":
            node, max_steps, rows = payload
            answer = [policy.generate(node, max_steps) for _ in range(rows)]
        elif kind == "priors":
            answer = policy.priors(*payload)
        else:
            answer = policy.confidence(payload)
        try:
            request = searching.send(answer)
        except StopIteration as done:
            return done.value


def run_lockstep(searches, policy):
    """Drive many searches at once. Requests to score (priors, self-evaluations) are served as one
    batch per kind; requests to generate join the policy's pool of decoding rows (policy.submit),
    which decodes until a good share of its rows has finished (policy.decode_pool) and hands those
    answers back, while the rows still running stay in the pool for the next round: a long
    roll-out does not hold every other search still. Returns the trees in the order of `searches`."""
    pending = {i: next(s) for i, s in enumerate(searches)}
    trees, decoding = [None] * len(searches), set()

    def answer(i, result):
        try:
            pending[i] = searches[i].send(result)
        except StopIteration as done:
            trees[i] = done.value

    while pending or decoding:
        for kind in ("priors", "confidence"):
            asks = [(i, pending.pop(i)[1]) for i, request in list(pending.items()) if request[0] == kind]
            for (i, _), result in zip(asks, getattr(policy, f"{kind}_batch")(asks) if asks else []):
                answer(i, result)
        asks = [(i, pending.pop(i)[1]) for i, request in list(pending.items()) if request[0] == "generate"]
        if asks:
            policy.submit(asks)
            decoding.update(i for i, _ in asks)
        if not pending and decoding:
            for i, result in policy.decode_pool():
                decoding.discard(i)
                answer(i, result)
    return trees


# --- pairs -----------------------------------------------------------------------------------------

def correct_below(tree):
    """For every node: whether a correct terminal lies at or below it (some roll-out reached one)."""
    reached = [node["terminal"] and node["outcome"] == 1 for node in tree]
    for node in reversed(tree):  # children come after their parents
        if node["parent"] is not None and reached[node["id"]]:
            reached[node["parent"]] = True
    return reached


def step_calls(text, names):
    """The call of a call-list step ('[A(x=1),' or ' B(y=2)]'), or None if it is not one call."""
    calls = parse_answer("[" + text.strip().lstrip("[").rstrip(",").rstrip().rstrip("]") + "]", names)
    return calls if calls is not None and len(calls) == 1 else None


def same_answer(a, b, sample, names):
    """Whether two sibling steps are one answer in other words: finished answers that are
    equivalent, or steps holding the same call (and both closing the list, or neither)."""
    if a["ends"] and b["ends"]:
        return equivalent(a["answer"], b["answer"], sample)
    if a["ends"] != b["ends"]:
        return False
    calls_a, calls_b = step_calls(a["step"], names), step_calls(b["step"], names)
    if calls_a is not None and calls_b is not None:
        return same_calls(calls_a, calls_b) and a["step"].rstrip().endswith("]") == b["step"].rstrip().endswith("]")
    return " ".join(a["step"].split()) == " ".join(b["step"].split())


def malformed(node, names):
    """A step no answer should take: special tokens or control characters, a call-list step that
    is not one well-formed call, or a finished answer that attempts a call and does not parse."""
    if not is_clean(node["step"]):
        return True
    if is_call_list(node["answer"]):
        if node["ends"]:
            return parse_answer(node["answer"], names) is None
        return step_calls(node["step"], names) is None
    return False


def preference_pairs(tree, sample, gap, margin=1.0, per_node=1):
    """At every node, its highest-Q rolled-out child against its lowest-Q ones (up to `per_node`
    of them, lowest first), each pair only when the outcome backs the choice: the chosen reached a
    correct answer and the rejected never did (Q gap > gap), or the Q gap is at least `margin`.
    Equivalent answers never pair, and a step of the gold answer is never rejected: unlucky
    roll-outs after it say nothing against the step itself."""
    names = [t["name"] for t in tools_from_system(sample["system"]) or []]
    reached = correct_below(tree)
    kind = "text" if parse_answer(sample["answer"], names) is None else "call"
    pairs = []
    for node in tree:
        children = [tree[i] for i in node["children"] if tree[i]["N"] > 0 or tree[i]["terminal"]]
        if len(children) < 2:
            continue
        chosen = max(children, key=lambda child: child["Q"])
        made = 0
        for rejected in sorted((c for c in children if c is not chosen), key=lambda child: child["Q"]):
            if made == per_node:
                break
            q_gap = chosen["Q"] - rejected["Q"]
            decisive = reached[chosen["id"]] and not reached[rejected["id"]]
            # no early stop at the first that fails: a sibling of higher Q can still be decisive
            if not ((decisive and q_gap > gap) or q_gap >= margin):
                continue
            if rejected["gold"] or same_answer(chosen, rejected, sample, names):
                continue
            pairs.append({"id": f"{sample['id']}:{node['id']}" + (f":{made}" if made else ""),
                          "sample_id": sample["id"], "depth": node["depth"],
                          "kind": kind, "system": sample["system"], "messages": sample["messages"],
                          "prefix": node["answer"], "prefix_ids": node["answer_ids"],
                          "chosen": chosen["step"], "chosen_ids": chosen["step_ids"],
                          "rejected": rejected["step"], "rejected_ids": rejected["step_ids"],
                          "chosen_ends": chosen["ends"], "rejected_ends": rejected["ends"],
                          "q_chosen": chosen["Q"], "q_rejected": rejected["Q"],
                          "chosen_correct": reached[chosen["id"]], "rejected_correct": reached[rejected["id"]],
                          "chosen_malformed": malformed(chosen, names),
                          "rejected_malformed": malformed(rejected, names), "chosen_gold": chosen["gold"]})
            made += 1
    return pairs


def audit(pairs):
    """What the pairs teach: shares of pairs whose chosen reached a correct answer and whose
    rejected did not ("decisive"), whose chosen or rejected step is malformed, whose chosen is
    the gold step; overall, per answer kind (call / text) and per depth."""
    def shares(group):
        n = len(group)
        share = (lambda key: round(sum(key(p) for p in group) / n, 4)) if n else (lambda key: None)
        return {"pairs": n, "decisive": share(lambda p: p["chosen_correct"] and not p["rejected_correct"]),
                "chosen_malformed": share(lambda p: p["chosen_malformed"]),
                "rejected_malformed": share(lambda p: p["rejected_malformed"]),
                "chosen_gold": share(lambda p: p["chosen_gold"]),
                "samples": len({p["sample_id"] for p in group})}

    by_kind, by_depth = defaultdict(list), defaultdict(list)
    for p in pairs:
        by_kind[p["kind"]].append(p)
        by_depth[str(p["depth"])].append(p)
    return {**shares(pairs), "by_kind": {k: shares(v) for k, v in sorted(by_kind.items())},
            "by_depth": {d: shares(v) for d, v in sorted(by_depth.items(), key=lambda kv: int(kv[0]))}}


def audit_markdown(report, pairs, n=20, seed=0):
    """The audit's figures and `n` pairs drawn at random, to be read by eye."""
    def row(label, s):
        return f"| {label} | {s['pairs']} | {s['samples']} | {s['decisive']} | {s['chosen_malformed']} | " \
               f"{s['rejected_malformed']} | {s['chosen_gold']} |"

    lines = ["# Pair audit", "",
             "| pairs | n | samples | decisive | chosen malformed | rejected malformed | chosen = gold step |",
             "|---|---|---|---|---|---|---|", row("all", report)]
    lines += [row(f"kind {k}", s) for k, s in report["by_kind"].items()]
    lines += [row(f"depth {d}", s) for d, s in report["by_depth"].items()]
    lines += ["", "Decisive: the chosen step reached a correct answer in some roll-out, the rejected never did.", ""]
    if "golds_unreachable" in report:
        lines += [f"Gold answers out of the search's reach (more steps than its depth, or a step longer than it "
                  f"samples): {report['golds_unreachable']}.", ""]
    for p in random.Random(seed).sample(pairs, min(n, len(pairs))):
        user = next((m["content"] for m in reversed(p["messages"]) if m["role"] == "user"), "")
        lines += [f"## {p['id']} ({p['kind']}, depth {p['depth']})", "",
                  f"- user: {user[:300]!r}", f"- answer so far: {p['prefix']!r}",
                  f"- chosen (Q {p['q_chosen']:.2f}, {'correct' if p['chosen_correct'] else 'not correct'}"
                  f"{', malformed' if p['chosen_malformed'] else ''}): {p['chosen']!r}",
                  f"- rejected (Q {p['q_rejected']:.2f}, {'correct' if p['rejected_correct'] else 'not correct'}"
                  f"{', malformed' if p['rejected_malformed'] else ''}): {p['rejected']!r}", ""]
    return "\n".join(lines)


# --- the policy behind the search: a causal LM over batched KV caches -------------------------------

def render_dialogue(messages):
    names = {"user": "User", "assistant": "Assistant", "tool": "Tool result"}
    return "\n".join(f"{names[m['role']]}: {m['content']}" for m in messages)


def load_eval_template(path):
    """The self-evaluation prompt: a text with the fields {tools}, {dialogue}, {gold}, {partial}."""
    template = Path(path).read_text(encoding="utf-8").strip()
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    if sorted(fields) != ["dialogue", "gold", "partial", "tools"]:
        raise RecordError(f"{path}: needs each of {{tools}} {{dialogue}} {{gold}} {{partial}} once (and no other "
                          f"braces), found {fields}")
    return template


def eval_prompt_parts(tokenizer, template, sample):
    """(token ids of the self-evaluation prompt up to the partial answer, token ids after it)."""
    marker = "\x00PARTIAL\x00"
    content = template.format(tools=json.dumps(tools_from_system(sample["system"]) or [], ensure_ascii=False),
                              dialogue=render_dialogue(sample["messages"]), gold=sample["answer"], partial=marker)
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    head, tail = text.split(marker)
    return (tokenizer(head, add_special_tokens=False).input_ids,
            tokenizer(tail, add_special_tokens=False).input_ids)


def gold_step_list(tokenizer, sample, eot_id, names):
    """The gold answer as Steps of its own token ids (tokenised whole, cut at clean boundaries)."""
    ids = tokenizer(sample["answer"], add_special_tokens=False).input_ids

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=False)

    pieces = token_steps(ids, decode, names)
    steps, done = [], []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        text = decode(done + piece)[len(decode(done)):]
        steps.append(Step(text, ends=last, ids=tuple(piece + ([eot_id] if last else []))))
        done += piece
    return steps


STEP_SLACK = 4  # tokens past a step's end before the cut is seen (a sentence ends at the space after it)


def search_limits(gold_steps, max_depth, max_step_tokens, fixed=False):
    """(depth, step tokens) of one sample's search: the budgets, raised so that the sample's gold
    answer fits (all its steps, and its longest step sampled token by token), unless `fixed`."""
    if fixed:
        return max_depth, max_step_tokens
    longest = max(len(step.ids) for step in gold_steps) + STEP_SLACK
    return max(max_depth, len(gold_steps)), max(max_step_tokens, longest)


def gold_reachable(gold_steps, max_depth, max_step_tokens):
    """Whether a search under these limits can reach the gold answer: neither too many steps, nor a
    step too long to sample whole."""
    return len(gold_steps) <= max_depth and max(len(step.ids) for step in gold_steps) + STEP_SLACK <= max_step_tokens


def sample_tokens(logits, generators, temperature, top_k, top_p, min_p):
    """One token per row: temperature, then top-k, top-p and min-p filtering, then a draw by
    inverting the cumulative distribution with one uniform number from the row's own generator
    (temperature 0: greedy)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if top_k:
        values, index = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1)
    else:
        values, index = scaled.sort(dim=-1, descending=True)
    probs = torch.softmax(values, dim=-1)
    if min_p > 0:
        probs = probs * (probs >= min_p * probs[:, :1])
    if top_p < 1:
        probs = probs * (probs.cumsum(dim=-1) - probs < top_p)  # keep the smallest head reaching top_p
    cumulative = probs.double().cumsum(dim=-1)
    uniform = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(logits.device)
    choice = torch.searchsorted(cumulative, (uniform * cumulative[:, -1])[:, None], right=True)
    return index.gather(1, choice.clamp(max=index.shape[1] - 1))[:, 0]


class ModelPolicy:
    """The model behind a batch of searches: each sample's prompt and self-evaluation prompt
    prefilled once (generation.Rows), forked for every request, one batch per kind of request."""

    def __init__(self, model, tokenizer, samples, template, *, eot_id, generators, sampling, max_step_tokens,
                 grade_scores):
        self.model, self.tokenizer, self.samples = model, tokenizer, samples
        self.generators, self.sampling = generators, sampling
        self.max_step_tokens = max_step_tokens  # per sample: its gold's longest step fits
        self.device = next(model.parameters()).device
        self.eot_id, self.pad_id = eot_id, tokenizer.pad_token_id
        self.stop_ids = {eot_id, tokenizer.eos_token_id} - {None}
        # special tokens (<unused71>, <start_of_turn>, ...) that no answer can hold
        self.special_ids = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special} - self.stop_ids
        self.names = [[t["name"] for t in tools_from_system(s["system"]) or []] for s in samples]
        self.grade_ids = [self.token_id(letter) for letter in GRADES]
        self.grade_scores = torch.tensor(grade_scores, device=self.device)
        prompts = [modeling.encode_prompt(tokenizer, s["system"], s["messages"]) for s in samples]
        self.prompt_rows, self.prompt_last = generation.prefill(model, prompts, self.pad_id)
        parts = [eval_prompt_parts(tokenizer, template, s) for s in samples]
        self.eval_rows, self.eval_last = generation.prefill(model, [head for head, _ in parts], self.pad_id)
        self.eval_tails = [tail for _, tail in parts]
        self.generated_tokens = 0
        self.pool, self.requests = None, {}  # the rows decoding; each search's rows in flight

    def token_id(self, text):
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(f"the grade letter {text!r} is not a single token for this tokenizer: {ids}")
        return ids[0]

    def decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def continue_rows(self, rows, last, trees, feeds):
        """Hidden state after each row's feed (a row fed nothing keeps its prompt's last state)."""
        if not any(feeds):
            return last[torch.tensor(trees, device=self.device)]
        hidden = rows.extend(feeds, self.pad_id)
        return torch.stack([hidden[row, len(feed) - 1] if feed else last[tree]
                            for row, (tree, feed) in enumerate(zip(trees, feeds))])

    # -- generation: k proposals of one step, or a roll-out of several ------------------------------

    @torch.inference_mode()
    def submit(self, asks):
        """Add rows to the decoding pool: asks [(search, (node, max_steps, n_rows))], each row
        sampling after `node` until it has max_steps steps (or ends, or is cut short)."""
        jobs = [(search, node, max_steps) for search, (node, max_steps, n_rows) in asks for _ in range(n_rows)]
        trees = [search for search, _, _ in jobs]
        rows = self.prompt_rows.select(trees)
        hidden = self.continue_rows(rows, self.prompt_last, trees, [node["answer_ids"] for _, node, _ in jobs])
        states = [{**self.start_row(node, max_steps, search), "search": search} for search, node, max_steps in jobs]
        for search, _ in asks:  # a request's rows, kept here whatever becomes of them in the pool
            self.requests[search] = [state for state in states if state["search"] == search]
        if self.pool is None:
            self.pool = {"rows": rows, "hidden": hidden, "states": states}
            return
        live = [row for row, state in enumerate(self.pool["states"]) if not state["done"]]
        self.pool = {"rows": generation.Rows.concat([self.pool["rows"].select(live), rows]),
                     "hidden": torch.cat([self.pool["hidden"][live], hidden]),
                     "states": [self.pool["states"][row] for row in live] + states}

    @torch.inference_mode()
    def decode_pool(self, share=0.6):
        """Decode the pool until a request's rows have all finished and the running rows are at
        most `share` of those the pool started with (or none run); returns the finished requests
        as [(search, [each row's Steps])]. The rows still running stay for the next call."""
        pool = self.pool
        start = sum(not state["done"] for state in pool["states"])
        finished = []
        while True:
            logits = head_logits(self.model, pool["hidden"])
            active = [row for row, state in enumerate(pool["states"]) if not state["done"]]
            tokens = torch.zeros(len(pool["states"]), dtype=torch.long, device=self.device)
            index = torch.tensor(active, device=self.device)
            # each row draws from its own sample's generator, in row order
            tokens[index] = sample_tokens(logits[index], [self.generators[pool["states"][r]["search"]] for r in active],
                                          **self.sampling)
            # log p(token) = logit - log Z, for every row at once: no [rows, vocab] log-softmax
            token_logps = (logits.gather(1, tokens[:, None])[:, 0] - logits.logsumexp(dim=-1)).tolist()
            token_ids = tokens.tolist()
            for row in active:
                state, token = pool["states"][row], token_ids[row]
                self.advance(state, token, token_logps[row])
                if state["done"] and all(other["done"] for other in self.requests[state["search"]]):
                    finished.append((state["search"], [other["steps"] for other in self.requests.pop(state["search"])]))
            self.generated_tokens += len(active)
            running = [row for row, state in enumerate(pool["states"]) if not state["done"]]
            if running and len(running) <= 0.75 * len(pool["states"]):  # compact now and then, not per row
                pool.update(rows=pool["rows"].select(running), hidden=pool["hidden"][running],
                            states=[pool["states"][row] for row in running])
                tokens = tokens[running]
            if running:
                pool["hidden"] = pool["rows"].extend([[t] for t in tokens.tolist()], self.pad_id)[:, -1].contiguous()
            if finished and len(running) <= share * start:
                break
        if not running:
            self.pool = None
        return finished

    def start_row(self, node, max_steps, tree):
        ids = [t for t in node["answer_ids"] if t not in self.stop_ids]
        lengths = [None] * len(ids) + [len(node["answer"])]
        return {"ids": ids, "lengths": lengths, "start": len(ids), "logps": [], "steps": [], "done": False,
                "max_steps": max_steps, "names": self.names[tree], "max_step_tokens": self.max_step_tokens[tree]}

    def advance(self, state, token, logp):
        """Take one sampled token into a row, cutting off steps as they complete.

        A row stops early, its step cut short (truncated: a terminal no answer can be right
        from), once its answer is doomed: at a special token, or at a call-list step that is not
        one well-formed call. Rolling out such an answer would only spend tokens on a known −1."""
        if token in self.stop_ids:
            self.finish_step(state, len(state["ids"]), ends=True, extra=([token], [logp]))
            state["done"] = True
            return
        state["ids"].append(token)
        state["logps"].append(logp)
        if token in self.special_ids:
            self.finish_step(state, len(state["ids"]), ends=False, truncated=True)
            state["done"] = True
            return
        text = self.decode(state["ids"])
        state["lengths"].append(None if text.endswith("\ufffd") else len(text))
        start_char = state["lengths"][state["start"]]
        cut = first_step_end(text, start_char, state["names"])
        if cut is not None:
            end = token_cut(state["lengths"], cut, state["start"] + 1)
            if end is not None:
                step = text[start_char:state["lengths"][end]]
                doomed = is_call_list(text) and step_calls(step, state["names"]) is None
                self.finish_step(state, end, ends=False, truncated=doomed)
                if doomed or len(state["steps"]) >= state["max_steps"]:
                    state["done"] = True
                return
        if len(state["ids"]) - state["start"] >= state["max_step_tokens"]:
            self.finish_step(state, len(state["ids"]), ends=False, truncated=True)
            state["done"] = True

    def finish_step(self, state, end, ends, truncated=False, extra=([], [])):
        start = state["start"]
        ids = state["ids"][start:end] + extra[0]
        logps = state["logps"][:end - start] + extra[1]
        text = self.decode(state["ids"][:end])[state["lengths"][start]:]
        prior = math.exp(sum(logps) / len(logps)) if logps else None
        state["steps"].append(Step(text, ends=ends, truncated=truncated, ids=tuple(ids), prior=prior))
        state["logps"] = state["logps"][end - start:]
        state["start"] = end

    # -- priors of steps the policy did not sample (gold steps) -------------------------------------

    @torch.inference_mode()
    def priors_batch(self, asks):
        """asks: [(tree, (node, [steps]))] -> per ask, p(a|s) of each step: exp(mean token log-prob)."""
        jobs = [(tree, node, step) for tree, (node, steps) in asks for step in steps]
        trees = [tree for tree, _, _ in jobs]
        feeds = [node["answer_ids"] + list(step.ids) for _, node, step in jobs]
        rows = self.prompt_rows.select(trees)
        hidden = rows.extend(feeds, self.pad_id)
        sources, targets = [], []
        for row, (tree, node, step) in enumerate(jobs):
            start = len(node["answer_ids"])
            for j, token in enumerate(step.ids):  # token j of the step is predicted just before it
                position = start + j - 1
                sources.append(hidden[row, position] if position >= 0 else self.prompt_last[tree])
                targets.append(token)
        logps = head_logprobs(self.model, torch.stack(sources), torch.tensor(targets, device=self.device))
        means = [math.exp(chunk.mean().item()) for chunk in logps.split([len(step.ids) for _, _, step in jobs])]
        out, position = [], 0
        for _, (_, steps) in asks:
            out.append(means[position:position + len(steps)])
            position += len(steps)
        return out

    # -- self-evaluation -----------------------------------------------------------------------------

    @torch.inference_mode()
    def confidence_batch(self, asks):
        """asks: [(tree, [nodes])] -> per ask, C of each node: the expected grade score under
        p(A..D) renormalised, after the partial answer and the prompt's tail."""
        jobs = [(tree, node) for tree, nodes in asks for node in nodes]
        trees = [tree for tree, _ in jobs]
        feeds = [[t for t in node["answer_ids"] if t not in self.stop_ids] + self.eval_tails[tree]
                 for tree, node in jobs]
        last = self.continue_rows(self.eval_rows.select(trees), self.eval_last, trees, feeds)
        grade_logits = self.grade_logits(last)
        scores = (torch.softmax(grade_logits, dim=-1) @ self.grade_scores).tolist()
        out, position = [], 0
        for _, nodes in asks:
            out.append(scores[position:position + len(nodes)])
            position += len(nodes)
        return out

    def grade_logits(self, hidden):
        """The logits of the four grade letters only (a 4-row slice of the head, not 262k)."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        weight = base.get_output_embeddings().weight[self.grade_ids]
        logits = (hidden.to(weight.dtype) @ weight.t()).float()
        softcap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / softcap) * softcap if softcap else logits


# --- files: per-sample results (itool.files' partial format, a file per rank), trees -------------

def tree_path(trees_dir, sample_id):
    return Path(trees_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) + ".json")


def partial_path(out_dir, rank):
    return Path(out_dir) / f".pairs.partial.{rank}.jsonl"


def partial_paths(out_dir):
    return sorted(Path(out_dir).glob(".pairs.partial.*.jsonl"))


def prepare_resume(out_dir, trees_dir, fingerprint):
    """Keep the finished samples of an interrupted run with the same fingerprint (rewriting each
    rank's partial file without a line cut short by the kill) and return their number; results of
    any other run are stale and removed, trees included."""
    paths = partial_paths(out_dir)
    found = [files.read_partial(path, fingerprint) for path in paths]
    if None not in found and any(found):
        for path, rows in zip(paths, found):
            files.write_partial(path, fingerprint, rows.values())
        return sum(map(len, found))
    if None in found:
        print(f"{out_dir}: partial results of a run with other settings or inputs; starting afresh", file=sys.stderr)
    for path in paths:
        path.unlink()
    shutil.rmtree(trees_dir, ignore_errors=True)
    return 0


def finished_results(out_dir, fingerprint):
    """{sample id: its pairs and stats} from every rank's partial file."""
    return {sample_id: row for path in partial_paths(out_dir)
            for sample_id, row in (files.read_partial(path, fingerprint) or {}).items()}


def written_by_policy(tree, node):
    """Whether the policy itself produced every step from the root to `node` (no gold-only step)."""
    while node["parent"] is not None:
        if not (node["sampled"] or node["rollout"]):
            return False
        node = tree[node["parent"]]
    return True


def tree_stats(tree, pairs, seconds, generated_tokens, simulations):
    correct = [node for node in tree if node["terminal"] and node["outcome"] == 1]
    return {"simulations": simulations, "nodes": len(tree), "pairs": len(pairs),
            "depth": max(node["depth"] for node in tree),
            "terminals": sum(node["terminal"] for node in tree), "correct_terminals": len(correct),
            "solved_by_policy": any(written_by_policy(tree, node) for node in correct),
            "generated_tokens": generated_tokens, "seconds": round(seconds, 3)}


def summary(results):
    stats = [r["stats"] for r in results]
    seconds = sum(s["seconds"] for s in stats)
    simulations = sum(s["simulations"] for s in stats)
    tokens = sum(s["generated_tokens"] for s in stats)
    return {"samples": len(results), "pairs": sum(s["pairs"] for s in stats),
            "samples_with_pairs": sum(s["pairs"] > 0 for s in stats),
            "golds_unreachable": sum(not s["gold_reachable"] for s in stats),
            "max_depth": max(s["max_depth"] for s in stats) if stats else None,
            "max_step_tokens": max(s["max_step_tokens"] for s in stats) if stats else None,
            "samples_solved_by_policy": sum(s["solved_by_policy"] for s in stats),
            "nodes": sum(s["nodes"] for s in stats), "simulations": simulations,
            "generated_tokens": tokens, "search_seconds": round(seconds, 2),
            "simulations_per_s": round(simulations / seconds, 3) if seconds else None,
            "generated_tokens_per_s": round(tokens / seconds, 1) if seconds else None}


# --- main ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m | tiny | local dir | hub id")
    parser.add_argument("--qlora", default="auto", help="auto (4-bit on CUDA only) | 1 | 0")
    parser.add_argument("--adapter", help="adapter dir of the policy (default: the bare base model)")
    parser.add_argument("--samples", required=True, help="hard.jsonl from stage 04")
    parser.add_argument("--out", required=True, help="pairs.jsonl")
    parser.add_argument("--trees-dir", required=True, help="one <sample id>.json search tree per sample")
    parser.add_argument("--seed", type=int, default=0)
    budget = parser.add_argument_group("search budget")
    budget.add_argument("--max-samples", type=int, default=0,
                        help="search only the first (hardest) N samples of --samples; 0 = all")
    budget.add_argument("--simulations", type=int, default=12, help="simulations per sample")
    budget.add_argument("--k", type=int, default=3, help="candidate steps sampled per expansion")
    budget.add_argument("--max-depth", type=int, default=8,
                        help="steps in an answer, deeper is terminal; raised per sample to its gold's step count")
    budget.add_argument("--max-step-tokens", type=int, default=48,
                        help="tokens in a sampled step, longer is terminal; raised per sample to fit its gold's "
                             "longest step")
    budget.add_argument("--fixed-limits", action="store_true",
                        help="keep --max-depth and --max-step-tokens for every sample, even where the gold answer "
                             "then lies out of reach (counted as golds_unreachable)")
    sampling = parser.add_argument_group("sampling (expansion and roll-out)")
    sampling.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    sampling.add_argument("--top-k", type=int, default=50, help="keep the k most likely tokens (0: all)")
    sampling.add_argument("--top-p", type=float, default=0.95, help="keep the smallest set of this probability")
    sampling.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min-p × the top probability")
    rules = parser.add_argument_group("rewards and pairs")
    rules.add_argument("--c", type=float, default=1.0, help="PUCT exploration constant (Eq. 5)")
    rules.add_argument("--gamma", type=float, default=1.0, help="discount of V(s') in Q (Eq. 8)")
    rules.add_argument("--no-gold", action="store_true", help="do not add the gold next step as a candidate")
    rules.add_argument("--grade-scores", default="1.0,0.1,-1.0,-2.0",
                       help="scores of the self-evaluation grades A,B,C,D (Eq. 7)")
    rules.add_argument("--self-eval-weight", type=float, default=0.25,
                       help="w in R = O + w·C; the paper's Eq. 6 is w = 1")
    rules.add_argument("--eval-prompt", default=str(EVAL_PROMPT), help="self-evaluation prompt template")
    rules.add_argument("--pair-gap", type=float, default=0.1,
                       help="a decisive pair (chosen reached a correct answer, rejected never) needs this Q gap")
    rules.add_argument("--outcome-margin", type=float, default=1.0,
                       help="any other pair needs this Q gap (more than the weighted grades can span)")
    rules.add_argument("--pairs-per-node", type=int, default=3,
                       help="pairs of one node's chosen child with its lowest-Q siblings (the paper's rule: 1)")
    parser.add_argument("--batch-samples", type=int, default=32,
                        help="samples searched in lockstep, their requests batched (1: one tree at a time)")
    args = parser.parse_args(argv)
    args.grade_scores = [float(x) for x in args.grade_scores.split(",")]
    if len(args.grade_scores) != len(GRADES):
        parser.error(f"--grade-scores needs {len(GRADES)} numbers (A,B,C,D)")
    if min(args.k, args.simulations, args.max_depth, args.max_step_tokens, args.batch_samples) < 1:
        parser.error("--k, --simulations, --max-depth, --max-step-tokens and --batch-samples must be at least 1")
    if not 0 < args.top_p <= 1 or args.top_k < 0 or not 0 <= args.min_p < 1:
        parser.error("need 0 < --top-p <= 1, --top-k >= 0 and 0 <= --min-p < 1")
    return args


def batches_of(samples, size):
    """Samples in batches of `size`, grouped by prompt length (little padding in a batch); the
    batches depend on the samples alone, so ranks and resumed runs see the same ones."""
    ordered = sorted(samples, key=lambda s: (len(s["system"]) + sum(len(m["content"]) for m in s["messages"]),
                                             s["id"]))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def search_batch(model, tokenizer, batch, template, args, eot_id):
    """Search every sample of a batch in lockstep; returns (trees, each sample's limits and whether
    its gold is within them, generated tokens, seconds)."""
    started = time.perf_counter()
    # seeded per sample: a sample's draws do not depend on its batch, its rank or a resume
    generators = [torch.Generator().manual_seed(zlib.crc32(f"{args.seed}:{s['id']}".encode())) for s in batch]
    names = [[t["name"] for t in tools_from_system(s["system"]) or []] for s in batch]
    golds = [gold_step_list(tokenizer, s, eot_id, n) for s, n in zip(batch, names)]
    limits = [search_limits(gold, args.max_depth, args.max_step_tokens, args.fixed_limits) for gold in golds]
    policy = ModelPolicy(model, tokenizer, batch, template, eot_id=eot_id, generators=generators,
                         sampling={"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                                   "min_p": args.min_p},
                         max_step_tokens=[tokens for _, tokens in limits], grade_scores=args.grade_scores)
    searches = [search(s, gold, simulations=args.simulations, k=args.k, max_depth=depth, c=args.c, gamma=args.gamma,
                       add_gold=not args.no_gold, weight=args.self_eval_weight)
                for s, gold, (depth, _) in zip(batch, golds, limits)]
    trees = run_lockstep(searches, policy)
    reach = [{"max_depth": depth, "max_step_tokens": tokens, "gold_steps": len(gold),
              "gold_reachable": gold_reachable(gold, depth, tokens)} for gold, (depth, tokens) in zip(golds, limits)]
    return trees, reach, policy.generated_tokens, time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    rank, _, device = distributed.init()
    out, trees_dir = Path(args.out), Path(args.trees_dir)
    try:
        samples = read_jsonl(args.samples)
        check_samples(samples, args.samples)
        template = load_eval_template(args.eval_prompt)
        if args.adapter and not (Path(args.adapter) / "adapter_model.safetensors").is_file():
            raise RecordError(f"no adapter in {args.adapter} (adapter_model.safetensors missing): "
                              "train the warm-up first (make warmup), or leave --adapter out to search with the "
                              "base model")
    except (RecordError, OSError) as e:
        sys.exit(f"error: {e}")
    if args.max_samples:
        samples = samples[:args.max_samples]

    # Partial results are reused only by a run with the same settings, inputs and code.
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "trees_dir", "max_samples")}
    adapter_file = [Path(args.adapter) / "adapter_model.safetensors"] if args.adapter else []
    code = [__file__] + [Path(itool.__file__).with_name(f"{m}.py") for m in
                         ("outcome", "steps", "toolcalls", "records", "generation", "modeling", "logprobs")]
    fingerprint = files.fingerprint(settings, [args.samples, args.eval_prompt, *adapter_file, *code])
    out.parent.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        resumed = prepare_resume(out.parent, trees_dir, fingerprint)
        if resumed:
            print(f"resuming: {resumed} samples already searched")
    distributed.barrier()
    done = finished_results(out.parent, fingerprint)

    model_dir = modeling.resolve_model(args.model)
    tokenizer = modeling.load_tokenizer(model_dir)
    eot_id = modeling.end_of_turn_id(tokenizer)
    batches = distributed.shard(batches_of(samples, args.batch_samples))
    todo = [batch for batch in batches if any(s["id"] not in done for s in batch)]
    if todo:
        model = modeling.load_model(model_dir, adapter=args.adapter, qlora=modeling.use_qlora(args.qlora, device),
                                    device=device, merge=True)  # the policy is frozen here
        generation.use_grouped_attention(model)
        trees_dir.mkdir(parents=True, exist_ok=True)
        partial = partial_path(out.parent, rank)
        if not partial.is_file():  # a rank whose file prepare_resume kept appends to it
            files.write_partial(partial, fingerprint)
        n_pairs = 0
        with tqdm(total=sum(map(len, todo)), desc="mcts", unit="sample", disable=not distributed.is_main()) as bar:
            for batch in todo:
                trees, reach, tokens, seconds = search_batch(model, tokenizer, batch, template, args, eot_id)
                rows = []
                for sample, tree, limits in zip(batch, trees, reach):
                    pairs = preference_pairs(tree, sample, args.pair_gap, args.outcome_margin, args.pairs_per_node)
                    # the batch's time and tokens are shared out evenly: the trees grew together
                    stats = {**tree_stats(tree, pairs, seconds / len(batch), tokens / len(batch), args.simulations),
                             **limits}
                    atomic_write_json(tree_path(trees_dir, sample["id"]),
                                      {"sample_id": sample["id"], "gold": sample["answer"], "stats": stats,
                                       "nodes": tree})
                    rows.append({"id": sample["id"], "pairs": pairs, "stats": stats})
                    n_pairs += len(pairs)
                files.append_partial(partial, rows)
                bar.update(len(batch))
                bar.set_postfix(pairs=n_pairs, sims_per_s=f"{args.simulations * len(batch) / seconds:.2f}")

    distributed.barrier()
    if distributed.is_main():
        done = finished_results(out.parent, fingerprint)
        missing = [s["id"] for s in samples if s["id"] not in done]
        if missing:
            sys.exit(f"error: {len(missing)} samples have no result (e.g. {missing[:3]}); re-run to resume")
        results = [done[s["id"]] for s in samples]
        pairs = [pair for r in results for pair in r["pairs"]]
        stats = {**summary(results), "settings": settings}
        report = {**audit(pairs), "golds_unreachable": stats["golds_unreachable"]}
        atomic_write_json(out.with_name("mcts_stats.json"), stats)
        atomic_write_json(out.with_name("pairs_audit.json"), report)
        atomic_write_text(out.with_name("pairs_audit.md"), audit_markdown(report, pairs))
        write_jsonl(out, pairs)  # last: it is make's target
        for path in partial_paths(out.parent):
            path.unlink()
        print(f"{stats['pairs']} pairs from {stats['samples']} samples ({stats['samples_with_pairs']} with pairs, "
              f"{stats['golds_unreachable']} golds out of reach, "
              f"{stats['samples_solved_by_policy']} solved by the policy's own steps; decisive {report['decisive']}, "
              f"malformed chosen {report['chosen_malformed']}); {stats['simulations_per_s']} simulations/s, "
              f"{stats['generated_tokens_per_s']} generated tokens/s -> {out}")
    distributed.finish()


if __name__ == "__main__":
    main()
