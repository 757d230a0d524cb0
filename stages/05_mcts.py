"""Stage 05 (make iterate): step-level MCTS on the hard samples -> step-level preference pairs.

For each hard sample the search grows a tree whose root is the prompt (tools and dialogue) and
whose edges are answer steps (one call, or one sentence); its simulations (select by PUCT, expand,
reward, roll out, back up: paper §4.3, Eq. 5–9), its limits, its reward R = O + w·C and its pair
rule are described where they are implemented, in itool/search.py. Every pair's prompt, chosen
and rejected are the token ids the policy produced, which stage 06 trains on as they are.

Where the code is. The search, the pairs and the audit need no model: each tree's search is a
generator that yields what it needs from the model (sampled steps, priors of gold steps,
self-evaluations). This script holds the model that answers those requests (ModelPolicy) and the
recipe: read the samples, resume, search them batch by batch, write pairs.jsonl, mcts_stats.json
and the audit (pairs_audit.json, pairs_audit.md: see search.audit).

Speed. Samples are searched in lockstep, --batch-samples at a time (search.run_lockstep): one
batched forward serves every tree's requests (generation.Rows: each sample's prompt and
self-evaluation prompt are prefilled once and forked for every state), and the rows sampling
steps decode as one pool that finished rows leave and new requests join (generation.sample_round).

Resume. Each finished batch of samples is appended to .pairs.partial.<rank>.jsonl in the output
directory (itool.files' partial results, a line per sample) and its trees are written to
--trees-dir/<id>.json; a re-run with the same settings, inputs and code skips finished samples.
--out (make's target) appears only at the end, with mcts_stats.json and the audit beside it.
Under torchrun the batches are dealt out to the ranks whole, so a batch's samples and their trees
are the same whatever the number of ranks.
"""
import argparse
import math
import re
import shutil
import sys
import time
import zlib
from pathlib import Path

import torch
from tqdm import tqdm

import itool
from itool import distributed, files, generation, modeling
from itool.files import atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from itool.logprobs import head_logprobs
from itool.records import RecordError, check_samples, tools_from_system
from itool.search import (GRADES, advance, audit, audit_markdown, eval_prompt_parts, gold_reachable, gold_step_list,
                          load_eval_template, preference_pairs, run_lockstep, search, search_limits, start_row,
                          summary, tree_stats)

EVAL_PROMPT = Path(__file__).with_name("self_eval_prompt.txt")


# --- the policy behind the search: a causal LM over batched KV caches -------------------------------

class ModelPolicy:
    """The model behind a batch of searches, answering their requests (search.run_lockstep): each
    sample's prompt and self-evaluation prompt prefilled once (generation.Rows), forked for every
    request, one batch per kind of request."""

    def __init__(self, model, tokenizer, samples, template, *, generators, sampling, max_step_tokens, grade_scores):
        self.model, self.tokenizer = model, tokenizer
        self.generators, self.sampling = generators, sampling
        self.max_step_tokens = max_step_tokens  # per sample: its gold's longest step fits
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id
        self.stop_ids = generation.stop_ids(tokenizer)
        # special tokens (<unused71>, <bos>, ...) that no answer can hold
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

    @torch.inference_mode()
    def submit(self, asks):
        """Add rows to the decoding pool: asks [(search, (node, max_steps, n_rows))], each row
        sampling after `node` until it has max_steps steps (or ends, or is cut short)."""
        jobs = [(tree, node, max_steps) for tree, (node, max_steps, n_rows) in asks for _ in range(n_rows)]
        trees = [tree for tree, _, _ in jobs]
        rows = self.prompt_rows.select(trees)
        hidden = generation.continue_rows(rows, self.prompt_last, trees, [node["answer_ids"] for _, node, _ in jobs],
                                          self.pad_id)
        states = [{**start_row(node, max_steps, self.names[tree], self.max_step_tokens[tree], self.stop_ids),
                   "search": tree, "generator": self.generators[tree]} for tree, node, max_steps in jobs]
        for tree, _ in asks:  # a request's rows, kept here whatever becomes of them in the pool
            self.requests[tree] = [state for state in states if state["search"] == tree]
        self.pool = generation.join_pool(self.pool, rows, hidden, states)

    @torch.inference_mode()
    def decode_pool(self, share=0.6):
        """Decode the pool until a request's rows have all finished and the running rows are at
        most `share` of those the pool started with (or none run); returns the finished requests
        as [(search, [each row's Steps])]. The rows still running stay for the next call."""
        start = sum(not state["done"] for state in self.pool["states"])
        finished = []

        def take(state, token, logp):
            advance(state, token, logp, self.decode, self.stop_ids, self.special_ids)
            if state["done"] and all(other["done"] for other in self.requests[state["search"]]):
                finished.append((state["search"], [other["steps"] for other in self.requests.pop(state["search"])]))

        while True:
            drawn, running = generation.sample_round(self.model, self.pool, self.sampling, take, self.pad_id)
            self.generated_tokens += drawn
            if finished and running <= share * start:
                break
        if not running:
            self.pool = None
        return finished

    @torch.inference_mode()
    def priors_batch(self, asks):
        """asks: [(tree, (node, [steps]))] -> per ask, p(a|s) of each step: exp(mean token log-prob)."""
        jobs = [(tree, node, step) for tree, (node, steps) in asks for step in steps]
        trees = [tree for tree, _, _ in jobs]
        feeds = [node["answer_ids"] + list(step.ids) for _, node, step in jobs]
        hidden = self.prompt_rows.select(trees).extend(feeds, self.pad_id)
        sources, targets = [], []
        for row, (tree, node, step) in enumerate(jobs):
            start = len(node["answer_ids"])
            for j, token in enumerate(step.ids):  # token j of the step is predicted just before it
                position = start + j - 1
                sources.append(hidden[row, position] if position >= 0 else self.prompt_last[tree])
                targets.append(token)
        logps = head_logprobs(self.model, torch.stack(sources), torch.tensor(targets, device=self.device))
        means = [math.exp(chunk.mean().item()) for chunk in logps.split([len(step.ids) for _, _, step in jobs])]
        return per_ask(means, [len(steps) for _, (_, steps) in asks])

    @torch.inference_mode()
    def confidence_batch(self, asks):
        """asks: [(tree, [nodes])] -> per ask, C of each node: the expected grade score under
        p(A..D) renormalised, after the partial answer and the prompt's tail."""
        jobs = [(tree, node) for tree, nodes in asks for node in nodes]
        trees = [tree for tree, _ in jobs]
        feeds = [[t for t in node["answer_ids"] if t not in self.stop_ids] + self.eval_tails[tree]
                 for tree, node in jobs]
        last = generation.continue_rows(self.eval_rows.select(trees), self.eval_last, trees, feeds, self.pad_id)
        scores = (torch.softmax(self.grade_logits(last), dim=-1) @ self.grade_scores).tolist()
        return per_ask(scores, [len(nodes) for _, nodes in asks])

    def grade_logits(self, hidden):
        """The logits of the four grade letters only (a 4-row slice of the head, not 262k)."""
        base = modeling.unwrap(self.model)
        weight = base.get_output_embeddings().weight[self.grade_ids]
        logits = (hidden.to(weight.dtype) @ weight.t()).float()
        softcap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / softcap) * softcap if softcap else logits


def per_ask(values, counts):
    """A flat list of results cut back into one list per ask."""
    out, position = [], 0
    for count in counts:
        out.append(values[position:position + count])
        position += count
    return out


# --- setup --------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modeling.add_model_flags(parser, adapter_help="adapter dir of the policy (default: the bare base model)")
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


def read_inputs(args):
    """The samples to search (the first --max-samples) and the self-evaluation template; exits
    with the reason when an input is unusable."""
    try:
        samples = read_jsonl(args.samples)
        check_samples(samples, args.samples)
        template = load_eval_template(args.eval_prompt)
        modeling.check_adapter(args.adapter)
    except (RecordError, OSError) as e:
        sys.exit(f"error: {e}")
    return samples[:args.max_samples] if args.max_samples else samples, template


def run_fingerprint(args):
    """(settings, fingerprint): partial results are reused only by a run with the same settings,
    inputs and code. The code is this script and every module of the library, so that no module
    it comes to import can be forgotten."""
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "trees_dir", "max_samples")}
    adapter_file = [Path(args.adapter) / "adapter_model.safetensors"] if args.adapter else []
    code = [Path(__file__), *sorted(Path(itool.__file__).parent.glob("*.py"))]
    return settings, files.fingerprint(settings, [args.samples, args.eval_prompt, *adapter_file, *code])


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


# --- the loop: batches of samples searched in lockstep ---------------------------------------------

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
    policy = ModelPolicy(model, tokenizer, batch, template, generators=generators,
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


def batch_results(batch, trees, reach, tokens, seconds, args, trees_dir):
    """Each sample's row of the partial file (its pairs and stats); writes its tree."""
    rows = []
    for sample, tree, limits in zip(batch, trees, reach):
        pairs = preference_pairs(tree, sample, args.pair_gap, args.outcome_margin, args.pairs_per_node)
        # the batch's time and tokens are shared out evenly: the trees grew together
        stats = {**tree_stats(tree, pairs, seconds / len(batch), tokens / len(batch), args.simulations), **limits}
        atomic_write_json(tree_path(trees_dir, sample["id"]),
                          {"sample_id": sample["id"], "gold": sample["answer"], "stats": stats, "nodes": tree})
        rows.append({"id": sample["id"], "pairs": pairs, "stats": stats})
    return rows


def search_all(todo, template, args, device, fingerprint):
    """Search this rank's unfinished batches, appending each batch's results to its partial file."""
    tokenizer, model = modeling.load_policy(args, device)  # the policy is frozen here
    generation.use_grouped_attention(model)
    eot_id = modeling.end_of_turn_id(tokenizer)
    out_dir, trees_dir = Path(args.out).parent, Path(args.trees_dir)
    trees_dir.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out_dir, distributed.rank())
    if not partial.is_file():  # a rank whose file prepare_resume kept appends to it
        files.write_partial(partial, fingerprint)
    n_pairs = 0
    with tqdm(total=sum(map(len, todo)), desc="mcts", unit="sample", disable=not distributed.is_main()) as bar:
        for batch in todo:
            trees, reach, tokens, seconds = search_batch(model, tokenizer, batch, template, args, eot_id)
            rows = batch_results(batch, trees, reach, tokens, seconds, args, trees_dir)
            files.append_partial(partial, rows)
            n_pairs += sum(len(row["pairs"]) for row in rows)
            bar.update(len(batch))
            bar.set_postfix(pairs=n_pairs, sims_per_s=f"{args.simulations * len(batch) / seconds:.2f}")


# --- save: the pairs, the run's stats and the audit, from every rank's results -----------------------

def save(samples, out, settings, fingerprint):
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
          f"malformed chosen {report['chosen_malformed']}, text over call {report['text_over_call']}, call over text "
          f"{report['call_over_text']}); {stats['simulations_per_s']} simulations/s, "
          f"{stats['generated_tokens_per_s']} generated tokens/s -> {out}")


def main(argv=None):
    args = parse_args(argv)
    _, _, device = distributed.init()
    out, trees_dir = Path(args.out), Path(args.trees_dir)
    samples, template = read_inputs(args)
    settings, fingerprint = run_fingerprint(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        resumed = prepare_resume(out.parent, trees_dir, fingerprint)
        if resumed:
            print(f"resuming: {resumed} samples already searched")
    distributed.barrier()
    done = finished_results(out.parent, fingerprint)

    batches = distributed.shard(batches_of(samples, args.batch_samples))
    todo = [batch for batch in batches if any(s["id"] not in done for s in batch)]
    if todo:
        search_all(todo, template, args, device, fingerprint)

    distributed.barrier()
    if distributed.is_main():
        save(samples, out, settings, fingerprint)
    distributed.finish()


if __name__ == "__main__":
    main()
