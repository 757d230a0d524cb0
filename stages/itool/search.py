"""The step-level search of stage 05 (paper §4.3), without a model: the tree, PUCT, expansion,
roll-out and back-up, the lockstep driver, the preference pairs and their audit.

A search is a generator that yields what it needs from the model as requests and is sent the
answers, so everything here runs without torch: stage 05 answers the requests with a causal LM,
the tests with scripted policies. The one place the policy's raw tokens meet the search's steps
(`start_row`, `advance`) is here too, as plain functions on token ids: where a step ends is the
search's rule, not the model's. The flags named below are stage 05's.

For each hard sample the search grows a tree whose root is the prompt (tools and dialogue) and
whose edges are answer steps: one call of a call list, or one sentence of a text answer (itool.steps).
A node is the answer so far, as the token ids the policy produced (gold steps: the ids of the
gold answer, tokenised whole). One simulation (paper §4.3):

  select    from the root, follow PUCT (Eq. 5) through expanded nodes to one not yet expanded,
                Q(s,a) + c · p(a|s) · √N(s) / (1 + N(s,a)),   p(a|s) = exp(mean token log-prob of a);
  expand    sample --k next steps, merge identical ones, and add the gold next step when the node
            lies on the gold answer (--no-gold leaves it out). A new child s' gets the reward
            R(s') = O(s') + w · C(s') (Eq. 6, w = --self-eval-weight) and r(s,a) = R(s') − R(s);
  roll out  from the new child PUCT prefers, sample steps to a terminal state: the end of the
            answer (generation.stop_ids, the rule greedy evaluation stops at too), a step longer
            than --max-step-tokens, or --max-depth steps. The roll-out's steps join the tree, so
            a later simulation can branch off them;
  back up   from that terminal to the root (Eq. 8–9): N += 1, V(s) = Σ N·Q / Σ N over the
            visited children, Q(s,a) = r(s,a) + γ·V(s').

Limits that follow the data: --max-depth and --max-step-tokens are budgets for what the policy
writes, raised per sample so that its gold answer fits (as many steps as the gold has, and its
longest step plus a few tokens). Real ToolACE answers run to dozens of sentences and calls of
over a hundred tokens; under a fixed 8 × 48 such a gold would end unfinished (−1), and a correct
long call could become the rejected side of a pair. --fixed-limits keeps the budgets as given; the
samples whose gold then lies out of reach are counted (mcts_stats.json and the audit:
golds_unreachable).

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
them as they are). pairs_audit.json and pairs_audit.md describe the pairs (`audit`).
"""
import json
import math
import random
import string
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from itool.outcome import equivalent, is_clean, is_correct
from itool.records import RecordError, tools_from_system
from itool.steps import first_step_end, is_call_list, token_cut, token_steps
from itool.toolcalls import parse_answer, same_calls

GRADES = "ABCD"  # the self-evaluation's grades, best first
STEP_SLACK = 4  # tokens past a step's end before the cut is seen (a sentence ends at the space after it)


class Step(NamedTuple):
    text: str
    ends: bool  # the answer ends after this step (the policy produced end-of-turn)
    truncated: bool = False  # cut short: over the step's token budget, or doomed (see `advance`)
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


# --- the gold answer as steps, and the limits that let the search reach it ------------------------

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


def gold_next_step(gold_steps, node):
    """The gold answer's next step (a Step with its ids) when `node` is on the gold answer, else None."""
    depth = node["depth"]
    if depth >= len(gold_steps) or node["answer_ids"] != [t for step in gold_steps[:depth] for t in step.ids]:
        return None
    return gold_steps[depth]


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


# --- one search, as a generator of requests to the model -----------------------------------------
# A request is (kind, payload): ("generate", (node, max_steps, rows)) -> for each of `rows` rows
# the steps sampled after `node`; ("priors", (node, [steps])) -> p(a|s) of each step;
# ("confidence", [nodes]) -> C of each node. run_lockstep answers the requests of many searches.

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


def run_lockstep(searches, policy):
    """Drive many searches at once. Requests to score (priors, self-evaluations) are served as one
    batch per kind (policy.priors_batch, policy.confidence_batch: [(search, payload)] -> a result
    per ask); requests to generate join the policy's pool of decoding rows (policy.submit), which
    decodes until a good share of its rows has finished (policy.decode_pool) and hands those
    answers back as [(search, result)], while the rows still running stay in the pool for the
    next round: a long roll-out does not hold every other search still. Returns the trees in the
    order of `searches`."""
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


# --- a policy's sampled tokens, cut into steps ---------------------------------------------------
# A decoding row is a dict: its answer's token ids so far, each prefix's decoded length (None
# where it ends inside a character), the log-probs of the current step's tokens, the finished
# steps, and the row's budgets. The policy samples; these functions decide where steps end.

def start_row(node, max_steps, names, max_step_tokens, stops):
    """A row that samples after `node` until it has `max_steps` steps (or ends, or is cut short);
    `stops` are the tokens that end an answer (left out of the text the row cuts)."""
    ids = [t for t in node["answer_ids"] if t not in stops]
    lengths = [None] * len(ids) + [len(node["answer"])]
    return {"ids": ids, "lengths": lengths, "start": len(ids), "logps": [], "steps": [], "done": False,
            "max_steps": max_steps, "names": names, "max_step_tokens": max_step_tokens}


def advance(row, token, logp, decode, stops, specials):
    """Take one sampled token into a row, cutting off steps as they complete.

    A row stops early, its step cut short (truncated: a terminal no answer can be right
    from), once its answer is doomed: at a special token, or at a call-list step that is not
    one well-formed call. Rolling out such an answer would only spend tokens on a known −1."""
    if token in stops:
        finish_step(row, len(row["ids"]), decode, ends=True, extra=([token], [logp]))
        row["done"] = True
        return
    row["ids"].append(token)
    row["logps"].append(logp)
    if token in specials:
        finish_step(row, len(row["ids"]), decode, ends=False, truncated=True)
        row["done"] = True
        return
    text = decode(row["ids"])
    row["lengths"].append(None if text.endswith("\ufffd") else len(text))
    start_char = row["lengths"][row["start"]]
    cut = first_step_end(text, start_char, row["names"])
    if cut is not None:
        end = token_cut(row["lengths"], cut, row["start"] + 1)
        if end is not None:
            step = text[start_char:row["lengths"][end]]
            doomed = is_call_list(text) and step_calls(step, row["names"]) is None
            finish_step(row, end, decode, ends=False, truncated=doomed)
            if doomed or len(row["steps"]) >= row["max_steps"]:
                row["done"] = True
            return
    if len(row["ids"]) - row["start"] >= row["max_step_tokens"]:
        finish_step(row, len(row["ids"]), decode, ends=False, truncated=True)
        row["done"] = True


def finish_step(row, end, decode, ends, truncated=False, extra=([], [])):
    """Close the row's current step at token `end` (`extra`: the stop token and its log-prob)."""
    start = row["start"]
    ids = row["ids"][start:end] + extra[0]
    logps = row["logps"][:end - start] + extra[1]
    text = decode(row["ids"][:end])[row["lengths"][start]:]
    prior = math.exp(sum(logps) / len(logps)) if logps else None
    row["steps"].append(Step(text, ends=ends, truncated=truncated, ids=tuple(ids), prior=prior))
    row["logps"] = row["logps"][end - start:]
    row["start"] = end


# --- the self-evaluation prompt (C(s), Eq. 7) ------------------------------------------------------

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


# --- what the pairs teach, and what the search cost -------------------------------------------------

def decision(pair):
    """What a pair at an answer's first step teaches about calling at all: "text" (the chosen
    writes text, the rejected opens a call list), "call" (the other way round), or None."""
    if pair["prefix"].strip() or is_call_list(pair["chosen"]) == is_call_list(pair["rejected"]):
        return None
    return "call" if is_call_list(pair["chosen"]) else "text"


def audit(pairs):
    """What the pairs teach: shares of pairs whose chosen reached a correct answer and whose
    rejected did not ("decisive"), whose chosen or rejected step is malformed, whose chosen is
    the gold step; counts of pairs that teach text over a call and a call over text (decision);
    overall, per answer kind (call / text) and per depth."""
    def shares(group):
        n = len(group)
        share = (lambda key: round(sum(key(p) for p in group) / n, 4)) if n else (lambda key: None)
        return {"pairs": n, "decisive": share(lambda p: p["chosen_correct"] and not p["rejected_correct"]),
                "chosen_malformed": share(lambda p: p["chosen_malformed"]),
                "rejected_malformed": share(lambda p: p["rejected_malformed"]),
                "chosen_gold": share(lambda p: p["chosen_gold"]),
                "text_over_call": sum(decision(p) == "text" for p in group),
                "call_over_text": sum(decision(p) == "call" for p in group),
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
               f"{s['rejected_malformed']} | {s['chosen_gold']} | {s['text_over_call']} | {s['call_over_text']} |"

    lines = ["# Pair audit", "",
             "| pairs | n | samples | decisive | chosen malformed | rejected malformed | chosen = gold step | "
             "text over call | call over text |",
             "|---|---|---|---|---|---|---|---|---|", row("all", report)]
    lines += [row(f"kind {k}", s) for k, s in report["by_kind"].items()]
    lines += [row(f"depth {d}", s) for d, s in report["by_depth"].items()]
    lines += ["", "Decisive: the chosen step reached a correct answer in some roll-out, the rejected never did. "
              "Text over call (call over text): pairs at an answer's first step whose chosen writes text and "
              "whose rejected opens a call list (the other way round).", ""]
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
    """The run's figures from every sample's {"stats": tree_stats plus its limits}."""
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
