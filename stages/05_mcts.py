"""Stage 05 (make iterate): step-level MCTS on the hard samples -> step-level preference pairs.

For each hard sample the search grows a tree whose root is the prompt (tools and dialogue) and
whose edges are answer steps: one call of a call list, or one sentence of a text answer
(toolcalls.split_steps). A node is the answer so far. One simulation (paper §4.3):

  select    from the root, follow PUCT (Eq. 5) through expanded nodes to one not yet expanded,
                Q(s,a) + c · p(a|s) · √N(s) / (1 + N(s,a)),   p(a|s) = exp(mean token log-prob of a);
  expand    sample --k next steps in one batch, merge identical ones, and add the gold next step
            when the node lies on the gold answer (--no-gold leaves it out). A new child s' gets
            the reward R(s') = O(s') + C(s') (Eq. 6) and r(s,a) = R(s') − R(s);
  roll out  from the new child PUCT prefers, sample steps to a terminal state: the end of turn,
            a step longer than --max-step-tokens, or --max-depth steps. The roll-out's steps
            join the tree as unexpanded nodes, so a later simulation can branch off them;
  back up   from that terminal to the root (Eq. 8–9): N += 1, V(s) = Σ N·Q / Σ N over the
            visited children, Q(s,a) = r(s,a) + γ·V(s').

O(s) is 0 before the end; at a terminal it is +1 if the answer was finished and matches the gold
(toolcalls.answers_match: the same calls and values in any order, or text for a text answer),
−1 otherwise. C(s) is the self-evaluation (Eq. 7): one forward pass of the policy on the prompt
in stages/self_eval_prompt.txt (tools, dialogue, gold answer, partial answer) and the expected
grade score under the probabilities of the letters A–D renormalised over them (--grade-scores).

Pairs: at every node with ≥ 2 children, the highest-Q child is chosen and the lowest-Q one
rejected, if Q(chosen) > Q(rejected) + --pair-gap. The prompt is the dialogue plus the answer
so far; the same tokens (modeling.encode_continuation) score p(a|s) here and train in stage 06.

Speed. The tree logic below is plain functions over a list of dicts; the model sits behind a
small policy object (propose, rollout, priors, confidence). The model-backed one prefills the
sample's prompt once and forks that KV cache for every state; the k candidates of a node are
sampled as one batch of k rows from the fork, each stopping at its first step boundary (rows
that finish leave the batch); the priors of a node's children are one batched forward; the
self-evaluation prompt up to the partial answer is prefilled once per sample and the partial
answers of all new nodes are scored as one right-padded batch on top of it, with the LM head
applied to one position per row. --no-prefix-cache recomputes every prompt instead (and samples
the k candidates one by one): the benchmark baseline.

Resume. Each finished sample's pairs are appended (one line) to .pairs.partial.<rank>.jsonl in
the output directory and its tree written to --trees-dir/<id>.json; a re-run with the same
settings and inputs skips finished samples. --out (make's target) appears only at the end,
with mcts_stats.json beside it (simulations/s, generated tokens/s, pairs per sample).
"""
import argparse
import json
import math
import os
import re
import shutil
import string
import sys
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm import tqdm
from transformers import DynamicCache

import distributed
import modeling
import training
from logprobs import cached_hidden, decoder_hidden, fork_cache, head_logits, head_logprobs
from records import RecordError, atomic_write_json, check_samples, read_jsonl, tools_from_system, write_jsonl
from steps import first_step_end, split_steps
from toolcalls import answers_match

EVAL_PROMPT = Path(__file__).with_name("self_eval_prompt.txt")
GRADES = "ABCD"


class Step(NamedTuple):
    text: str
    ends: bool  # the answer ends after this step (the policy produced end-of-turn)
    truncated: bool = False  # cut at --max-step-tokens without reaching a step boundary


# --- the search tree: a list of plain dicts, node id = index ------------------------------------

def add_node(tree, parent, step, max_depth):
    """Append the node reached from `parent` by `step` (parent None: the root)."""
    depth = 0 if parent is None else parent["depth"] + 1
    node = {"id": len(tree), "parent": None if parent is None else parent["id"], "depth": depth,
            "step": step.text, "answer": (parent["answer"] if parent else "") + step.text,
            "ends": step.ends, "truncated": step.truncated,
            "terminal": step.ends or step.truncated or depth >= max_depth,
            "expanded": False, "children": [], "gold": False, "sampled": 0, "rollout": False,
            "prior": None, "outcome": 0, "confidence": None, "reward": None, "r": 0.0,
            "N": 0, "V": 0.0, "Q": 0.0}
    tree.append(node)
    if parent is not None:
        parent["children"].append(node["id"])
    return node


def find_child(tree, node, step):
    """The child of `node` reached by the same step (same text, same ending), if there is one."""
    return next((tree[i] for i in node["children"] if (tree[i]["step"], tree[i]["ends"]) == (step.text, step.ends)),
                None)


def outcome(node, gold):
    """O(s): 0 before the end; at a terminal +1 for a finished answer that matches the gold, else −1."""
    if not node["terminal"]:
        return 0
    return 1 if node["ends"] and answers_match(node["answer"], gold) else -1


def set_rewards(tree, nodes, confidences, gold):
    """R = O + C (Eq. 6) and r = R − R(parent) for new nodes; Q = r until a visit gives them a V."""
    for node, confidence in zip(nodes, confidences):
        node["outcome"] = outcome(node, gold)
        node["confidence"] = confidence
        node["reward"] = node["outcome"] + confidence
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
    """The gold answer's next step when `node` is on the gold answer, else None."""
    depth = node["depth"]
    if depth < len(gold_steps) and node["answer"] == "".join(gold_steps[:depth]):
        return Step(gold_steps[depth], ends=depth == len(gold_steps) - 1)
    return None


def expand(tree, node, policy, gold, gold_steps, k, add_gold, max_depth):
    """Children for k sampled next steps (and the gold one); priors and rewards for new children."""
    candidates = [(step, False) for step in policy.propose(node["answer"], k)]
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
    children = [tree[i] for i in node["children"]]
    unscored = [child for child in children if child["prior"] is None]  # new ones, and a roll-out's
    for child, prior in zip(unscored, policy.priors(node["answer"], [(ch["step"], ch["ends"]) for ch in unscored])):
        child["prior"] = prior
    if new:
        set_rewards(tree, new, policy.confidence([child["answer"] for child in new]), gold)
    node["expanded"] = True


def roll_out(tree, node, policy, gold, max_depth):
    """Sample steps from `node` to a terminal state, adding them to the tree; returns the last."""
    new = []
    for step in policy.rollout(node["answer"], max_depth - node["depth"]):
        child = find_child(tree, node, step)
        if child is None:
            child = add_node(tree, node, step, max_depth)
            child["rollout"] = True
            new.append(child)
        node = child
        if node["terminal"]:
            break
    if new:
        set_rewards(tree, new, policy.confidence([child["answer"] for child in new]), gold)
    return node


def search(sample, policy, *, simulations, k, max_depth, c, gamma, add_gold):
    """The search tree of one sample after `simulations` simulations."""
    gold = sample["answer"]
    gold_steps = split_steps(gold)
    tree = []
    root = add_node(tree, None, Step("", ends=False), max_depth)
    root["confidence"] = root["reward"] = policy.confidence([""])[0]
    for _ in range(simulations):
        leaf = select_leaf(tree, c)
        if not leaf["terminal"]:
            expand(tree, leaf, policy, gold, gold_steps, k, add_gold, max_depth)
            leaf = best_child(tree, leaf, c)
            if not leaf["terminal"]:
                leaf = roll_out(tree, leaf, policy, gold, max_depth)
        backup(tree, leaf, gamma)
    return tree


def preference_pairs(tree, sample, gap):
    """Highest- vs lowest-Q child at every node with ≥ 2 children, when their Q differ by > gap."""
    pairs = []
    for node in tree:
        children = [tree[i] for i in node["children"]]
        if len(children) < 2:
            continue
        chosen = max(children, key=lambda child: child["Q"])
        rejected = min(children, key=lambda child: child["Q"])
        if chosen["Q"] > rejected["Q"] + gap:
            pairs.append({"id": f"{sample['id']}:{node['id']}", "sample_id": sample["id"], "depth": node["depth"],
                          "system": sample["system"], "messages": sample["messages"], "prefix": node["answer"],
                          "chosen": chosen["step"], "rejected": rejected["step"],
                          "chosen_ends": chosen["ends"], "rejected_ends": rejected["ends"],
                          "q_chosen": chosen["Q"], "q_rejected": rejected["Q"]})
    return pairs


# --- the policy behind the search: Gemma (or any causal LM) with KV-cache reuse -----------------

def step_end(text, start):
    """End of the step that starts at `start`, once it is complete with the whitespace after it
    (a non-space character follows): generation may stop there, and the step is exactly the
    one split_steps cuts from the finished answer. None while the step is still being written.
    Whitespace alone is no step (the previous step was cut before all of its trailing
    whitespace was written): it joins the step after it."""
    end = first_step_end(text, start)
    while end is not None and not text[start:end].strip():
        end = first_step_end(text, end)
    return end if end is not None and end < len(text) else None


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
    """(token ids of the self-evaluation prompt up to the partial answer, the text after it)."""
    marker = "\x00PARTIAL\x00"
    content = template.format(tools=json.dumps(tools_from_system(sample["system"]), ensure_ascii=False),
                              dialogue=render_dialogue(sample["messages"]), gold=sample["answer"], partial=marker)
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    head, tail = text.split(marker)
    return tokenizer(head, add_special_tokens=False).input_ids, tail


class ModelPolicy:
    """propose / rollout / priors / confidence for one sample, from a causal LM.

    A state (node) is the token sequence modeling.encode_continuation gives for the answer so far:
    the prompt, then the answer text tokenised on its own, exactly as stage 06 will see it. With
    reuse, every state starts from a fork of the prompt's KV cache and feeds only the answer so
    far. Keeping a cache per node would save little more: the answer so far is a few dozen
    tokens next to a prompt of hundreds, and a child's tokens need not extend its parent's
    (tokenising prefix + step in one piece may merge across the cut). Caches hold a state minus
    its last token, which is fed together with whatever continues it.
    """

    def __init__(self, model, tokenizer, sample, template, *, eot_id, temperature, max_step_tokens, grade_scores,
                 reuse, generator):
        self.model, self.tokenizer, self.sample, self.reuse = model, tokenizer, sample, reuse
        self.temperature, self.max_step_tokens, self.generator = temperature, max_step_tokens, generator
        self.device = next(model.parameters()).device
        self.eot_id = eot_id
        self.stop_ids = {self.eot_id, tokenizer.eos_token_id}
        self.grade_ids = [self.token_id(letter) for letter in GRADES]
        self.grade_scores = torch.tensor(grade_scores, device=self.device)
        self.prompt_ids = self.state_ids("")
        self.eval_ids, self.eval_tail = eval_prompt_parts(tokenizer, template, sample)
        self.prompt_cache = self.prefill(self.prompt_ids[:-1]) if reuse else None
        self.eval_cache = self.prefill(self.eval_ids) if reuse else None
        self.generated_tokens = 0

    def token_id(self, text):
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(f"the grade letter {text!r} is not a single token for this tokenizer: {ids}")
        return ids[0]

    def state_ids(self, answer):
        return modeling.encode_continuation(self.tokenizer, self.sample["system"], self.sample["messages"],
                                            answer, "", False, self.eot_id)[0]

    def tensor(self, rows):
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def prefill(self, ids):
        cache = DynamicCache(config=self.model.config)
        cached_hidden(self.model, self.tensor([ids]), cache)
        return cache

    def cache_of(self, ids):
        """A KV cache holding `ids` (a state minus its last token): a fork of the prompt's cache fed
        the rest, or, without reuse, all of it computed afresh."""
        if not self.reuse:
            return self.prefill(ids)
        cache = fork_cache(self.prompt_cache)
        rest = ids[len(self.prompt_ids) - 1:]
        if rest:
            cached_hidden(self.model, self.tensor([rest]), cache)
        return cache

    def hidden_after(self, prefix_ids, prefix_cache, suffixes):
        """Hidden states [len(suffix), H] of each suffix following prefix_ids. With reuse, the
        prefix's cache is forked into one row per suffix and the suffixes run as one right-padded
        batch (causal attention never looks right, so padding needs no mask)."""
        if not self.reuse:
            return [decoder_hidden(self.model, self.tensor([prefix_ids + s]))[0, len(prefix_ids):] for s in suffixes]
        width = max(map(len, suffixes))
        batch = self.tensor([s + [self.tokenizer.pad_token_id] * (width - len(s)) for s in suffixes])
        hidden = cached_hidden(self.model, batch, fork_cache(prefix_cache, len(suffixes)))
        return [hidden[row, :len(s)] for row, s in enumerate(suffixes)]

    def confidence(self, answers):
        """C(s) for each partial answer: the expected grade score under p(A..D), renormalised."""
        suffixes = [self.tokenizer(answer + self.eval_tail, add_special_tokens=False).input_ids for answer in answers]
        last = torch.stack([h[-1] for h in self.hidden_after(self.eval_ids, self.eval_cache, suffixes)])
        grade_probs = torch.softmax(head_logits(self.model, last)[:, self.grade_ids], dim=-1)
        return (grade_probs @ self.grade_scores).tolist()

    def priors(self, answer, steps):
        """p(a|s) = exp(mean token log-prob) of each (text, ends) step after `answer`."""
        if not steps:
            return []
        encoded = [modeling.encode_continuation(self.tokenizer, self.sample["system"], self.sample["messages"],
                                                answer, text, ends, self.eot_id) for text, ends in steps]
        state = encoded[0][0]
        completions = [completion for _, completion in encoded]
        cache = self.cache_of(state[:-1]) if self.reuse else None
        hidden = self.hidden_after(state[:-1], cache, [[state[-1]] + c for c in completions])
        targets = torch.cat([self.tensor(c) for c in completions])
        logps = head_logprobs(self.model, torch.cat([h[:len(c)] for h, c in zip(hidden, completions)]), targets)
        return [math.exp(chunk.mean().item()) for chunk in logps.split([len(c) for c in completions])]

    def propose(self, answer, k):
        """k sampled next steps: one batch of k rows from the state's cache, or k separate runs."""
        state = self.state_ids(answer)
        if self.reuse:
            rows = self.generate(fork_cache(self.cache_of(state[:-1]), k), [state[-1]] * k, answer, max_steps=1)
        else:
            rows = [self.generate(self.cache_of(state[:-1]), [state[-1]], answer, max_steps=1)[0] for _ in range(k)]
        return [steps[0] for steps in rows]

    def rollout(self, answer, max_steps):
        """Steps sampled after `answer` until the end of turn, a truncated step or max_steps."""
        state = self.state_ids(answer)
        return self.generate(self.cache_of(state[:-1]), [state[-1]], answer, max_steps)[0]

    def sample_tokens(self, hidden):
        """One token per row at the temperature (0: greedy). Sampled by inverting the cumulative
        distribution with one uniform number per row: torch.multinomial over a 262k vocabulary
        costs ~20× more on a CPU."""
        logits = head_logits(self.model, hidden)
        if self.temperature <= 0:
            return logits.argmax(dim=-1)
        cumulative = torch.softmax(logits / self.temperature, dim=-1).double().cumsum(dim=-1)
        uniform = torch.rand(len(logits), 1, generator=self.generator, dtype=torch.float64, device=self.device)
        tokens = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True)
        return tokens[:, 0].clamp(max=logits.shape[-1] - 1)

    def generate(self, cache, last_ids, answer, max_steps):
        """Sample a continuation of `answer` per row until it has max_steps steps, ends or runs over
        --max-step-tokens in a step; the cache holds everything before last_ids. Returns each row's steps."""
        rows = [{"ids": [], "start": len(answer), "step_tokens": 0, "steps": []} for _ in last_ids]
        active = list(range(len(rows)))
        inputs = self.tensor(last_ids)[:, None]
        while active:
            next_ids = self.sample_tokens(cached_hidden(self.model, inputs, cache)[:, -1])
            self.generated_tokens += len(active)
            keep = []  # positions in the batch of the rows that go on
            for i, (row, token) in enumerate(zip(active, next_ids.tolist())):
                if self.advance(rows[row], token, answer, max_steps):
                    keep.append(i)
            if len(keep) < len(active):
                active = [active[i] for i in keep]
                if active:
                    cache.batch_select_indices(self.tensor(keep))
            inputs = next_ids[keep][:, None]
        return [row["steps"] for row in rows]

    def advance(self, row, token, answer, max_steps):
        """Take one sampled token into a row, cutting off steps as they complete; False once done."""
        if token in self.stop_ids:
            text = answer + self.tokenizer.decode(row["ids"])
            row["steps"].append(Step(text[row["start"]:], ends=True))
            return False
        row["ids"].append(token)
        row["step_tokens"] += 1
        text = answer + self.tokenizer.decode(row["ids"])
        end = step_end(text, row["start"])
        if end is not None:
            row["steps"].append(Step(text[row["start"]:end], ends=False))
            row["start"], row["step_tokens"] = end, 0
            return len(row["steps"]) < max_steps
        if row["step_tokens"] >= self.max_step_tokens:
            row["steps"].append(Step(text[row["start"]:], ends=False, truncated=True))
            return False
        return True


# --- files: resumable per-sample results, trees, pairs --------------------------------------------

def tree_path(trees_dir, sample_id):
    return Path(trees_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) + ".json")


def partial_files(out_dir):
    return sorted(Path(out_dir).glob(".pairs.partial.*.jsonl"))


def read_partial(path):
    """The complete lines of a partial file; a line cut short by a kill is left out."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return entries


def prepare_resume(out_dir, trees_dir, fingerprint):
    """Keep the finished samples of an interrupted run with the same fingerprint (rewriting the
    partial files without a torn last line) and return their number; results of any other run
    are stale and removed, trees included."""
    files = partial_files(out_dir)
    entries = {path: read_partial(path) for path in files}
    n_finished = sum(map(len, entries.values()))
    if n_finished and all(e["fingerprint"] == fingerprint for found in entries.values() for e in found):
        for path, found in entries.items():
            write_jsonl(path, found)
        return n_finished
    if n_finished:
        print(f"{out_dir}: partial results of a run with other settings or inputs; starting afresh", file=sys.stderr)
    for path in files:
        path.unlink()
    shutil.rmtree(trees_dir, ignore_errors=True)
    return 0


def finished_results(out_dir, fingerprint):
    return {e["sample_id"]: e for path in partial_files(out_dir) for e in read_partial(path)
            if e["fingerprint"] == fingerprint}


def append_line(file, entry):
    file.write(json.dumps(entry, ensure_ascii=False) + "\n")
    file.flush()
    os.fsync(file.fileno())


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


def summary(results, args):
    stats = [r["stats"] for r in results]
    seconds = sum(s["seconds"] for s in stats)
    simulations = sum(s["simulations"] for s in stats)
    tokens = sum(s["generated_tokens"] for s in stats)
    return {"samples": len(results), "pairs": sum(s["pairs"] for s in stats),
            "samples_with_pairs": sum(s["pairs"] > 0 for s in stats),
            "samples_solved_by_policy": sum(s["solved_by_policy"] for s in stats),
            "nodes": sum(s["nodes"] for s in stats), "simulations": simulations,
            "generated_tokens": tokens, "search_seconds": round(seconds, 2),
            "simulations_per_s": round(simulations / seconds, 3) if seconds else None,
            "generated_tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "prefix_cache": not args.no_prefix_cache}


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
    budget = parser.add_argument_group("search budget (defaults sized for the embedded CPU run)")
    budget.add_argument("--max-samples", type=int, default=16,
                        help="search only the first (hardest) N samples of --samples; 0 = all")
    budget.add_argument("--simulations", type=int, default=3, help="simulations per sample")
    budget.add_argument("--k", type=int, default=3, help="candidate steps sampled per expansion")
    budget.add_argument("--max-depth", type=int, default=8, help="steps in an answer; deeper is terminal")
    budget.add_argument("--max-step-tokens", type=int, default=48, help="tokens in a step; longer is terminal")
    budget.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
    budget.add_argument("--c", type=float, default=1.0, help="PUCT exploration constant (Eq. 5)")
    budget.add_argument("--gamma", type=float, default=1.0, help="discount of V(s') in Q (Eq. 8)")
    budget.add_argument("--no-gold", action="store_true", help="do not add the gold next step as a candidate")
    budget.add_argument("--pair-gap", type=float, default=0.1, help="keep a pair only if Q(chosen) > Q(rejected) + gap")
    budget.add_argument("--grade-scores", default="1.0,0.1,-1.0,-2.0",
                        help="scores of the self-evaluation grades A,B,C,D (Eq. 7)")
    budget.add_argument("--eval-prompt", default=str(EVAL_PROMPT), help="self-evaluation prompt template")
    parser.add_argument("--no-prefix-cache", action="store_true",
                        help="benchmark baseline: recompute every prompt, sample candidates one by one")
    args = parser.parse_args(argv)
    args.grade_scores = [float(x) for x in args.grade_scores.split(",")]
    if len(args.grade_scores) != len(GRADES):
        parser.error(f"--grade-scores needs {len(GRADES)} numbers (A,B,C,D)")
    if args.k < 1 or args.simulations < 1 or args.max_depth < 1 or args.max_step_tokens < 1:
        parser.error("--k, --simulations, --max-depth and --max-step-tokens must be at least 1")
    return args


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
    fingerprint = training.fingerprint(settings, [args.samples, args.eval_prompt, *adapter_file, __file__])
    out.parent.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        resumed = prepare_resume(out.parent, trees_dir, fingerprint)
        if resumed:
            print(f"resuming: {resumed} samples already searched")
    distributed.barrier()
    done = finished_results(out.parent, fingerprint)
    todo = [s for s in distributed.shard(samples) if s["id"] not in done]

    if todo:
        model_dir = modeling.resolve_model(args.model)
        tokenizer = modeling.load_tokenizer(model_dir)
        model = modeling.load_model(model_dir, adapter=args.adapter, qlora=modeling.use_qlora(args.qlora, device),
                                    device=device)
        eot_id = modeling.end_of_turn_id(tokenizer)
        trees_dir.mkdir(parents=True, exist_ok=True)
        n_pairs = 0
        with open(out.parent / f".pairs.partial.{rank}.jsonl", "a", encoding="utf-8") as partial, \
                tqdm(todo, desc="mcts", unit="sample", disable=not distributed.is_main()) as progress, \
                torch.inference_mode():
            for sample in progress:
                start = time.perf_counter()
                # seeded per sample: a resumed or sharded run samples exactly what one full run would
                seed = zlib.crc32(f"{args.seed}:{sample['id']}".encode())
                generator = torch.Generator(device=device).manual_seed(seed)
                policy = ModelPolicy(model, tokenizer, sample, template, eot_id=eot_id, temperature=args.temperature,
                                     max_step_tokens=args.max_step_tokens, grade_scores=args.grade_scores,
                                     reuse=not args.no_prefix_cache, generator=generator)
                tree = search(sample, policy, simulations=args.simulations, k=args.k, max_depth=args.max_depth,
                              c=args.c, gamma=args.gamma, add_gold=not args.no_gold)
                pairs = preference_pairs(tree, sample, args.pair_gap)
                stats = tree_stats(tree, pairs, time.perf_counter() - start, policy.generated_tokens, args.simulations)
                atomic_write_json(tree_path(trees_dir, sample["id"]),
                                  {"sample_id": sample["id"], "gold": sample["answer"], "stats": stats, "nodes": tree})
                append_line(partial, {"fingerprint": fingerprint, "sample_id": sample["id"], "pairs": pairs,
                                      "stats": stats})
                n_pairs += len(pairs)
                progress.set_postfix(pairs=n_pairs, sims_per_s=f"{args.simulations / stats['seconds']:.2f}")

    distributed.barrier()
    if distributed.is_main():
        done = finished_results(out.parent, fingerprint)
        missing = [s["id"] for s in samples if s["id"] not in done]
        if missing:
            sys.exit(f"error: {len(missing)} samples have no result (e.g. {missing[:3]}); re-run to resume")
        results = [done[s["id"]] for s in samples]
        stats = {**summary(results, args), "settings": settings}
        atomic_write_json(out.with_name("mcts_stats.json"), stats)
        write_jsonl(out, [pair for r in results for pair in r["pairs"]])  # last: it is make's target
        for path in partial_files(out.parent):
            path.unlink()
        print(f"{stats['pairs']} pairs from {stats['samples']} samples ({stats['samples_with_pairs']} with pairs, "
              f"{stats['samples_solved_by_policy']} solved by the policy's own steps); "
              f"{stats['simulations_per_s']} simulations/s, {stats['generated_tokens_per_s']} generated tokens/s "
              f"-> {out}")
    distributed.finish()


if __name__ == "__main__":
    main()
