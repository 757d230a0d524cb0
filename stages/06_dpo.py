"""Stage 06 (make iterate): preference optimisation of policy K-1 on iteration K's MCTS pairs.

Each pair (from stage 05) is a prompt (dialogue + answer so far) with a chosen and a rejected
next step. The policy starts from adapter K-1 and is trained with paper Eq. 11,

    loss = -log σ(β·log π(y_w|x)/π_ref(y_w|x) - β·log π(y_l|x)/π_ref(y_l|x)),

or, for the paper's Fig. 6 ablation, SimPO, IPO or ORPO (--loss). --beta is the strength of the
chosen loss; left out, each loss takes its usual value (DPO β 0.1, SimPO β 2.5, IPO τ 0.1, ORPO
λ 0.1).

Each loss left at its defaults is the published one (ORPO with its own SFT term, SimPO and IPO
without any), except DPO, which by default is "DPO + NLL" (Pang et al., 2024, iterative RPO):
--nll-weight adds w times the chosen steps' negative log-likelihood (per token, over the whole
step), 1 for DPO and 0 for the others unless asked for; --nll-weight 0 is the paper's plain Eq. 11.
Plain DPO lowers the likelihood of chosen and rejected alike when they share most of their
tokens, as the search's sibling steps do; the NLL term keeps the chosen steps likely while the
margin grows.

Rejected steps cut to the chosen step's length (--cut-rejected, the default). The search's
rejected steps are mostly longer than its chosen ones (a hallucinated argument list, a run of
garbage), and a log-prob summed over more tokens is easier to lower: the margin then grows by
lowering every token of the long tail, argument separators and parameter names included (tokens
that are right in other answers), rather than where the step goes wrong. Cut, the rejected keeps
its first token that differs from the chosen (where the two really part) and is never longer than
the chosen, so length no longer pays. --no-cut-rejected trains on the steps as the search wrote them (paper).

Reference. The reference policy is the policy at the start of the iteration (the paper's
"reference refreshed with the latest policy"). Its log-probs are computed once, in one no-grad
pass over the pairs before the first update, with the very micro-batches training uses: exact,
with no second model in memory and no reference forward per step. SimPO and ORPO need none.

Speed. Chosen and rejected share their prompt, which is long (tool list, dialogue) while a step is
short, and the search's pairs at one node share it too (one chosen step against several rejected
ones). So the pairs with one prompt are one packed row: the prompt, then each distinct completion,
every completion positioned right after the prompt, and an attention mask that hides the
completions from each other: one forward computes every side and the prompt once, with the result
of separate rows. The prompt head that every row of a micro-batch begins with (the system prompt's
instructions) runs once for all of them (not under gradient checkpointing). The LM head runs only
where a completion token is predicted, its log-softmax in fp32; the decoder runs under bf16
autocast. Rows of similar length are grouped into micro-batches of at most --micro-batch-tokens
padded tokens (a row is never split), the same micro-batches every epoch in a new order; a step
takes them in that order, up to --batch-size pairs.

Each optimizer step's loss is the sum of its pairs' losses divided by the number of pairs in the
whole step (and the extra NLL term by the step's chosen-token count), so gradient accumulation over
unevenly filled micro-batches gives the gradient of one big batch. Under torchrun (NGPU > 1) each
rank takes its share of every step's micro-batches (and of the reference pass), and the LoRA
gradients are summed across ranks: the same update as one process (training.finish_step, which
also stops every rank before the update when a loss or the gradient is not finite).

Outputs in --out: the adapter (adapter_model.safetensors last), metrics.jsonl (a line every
--log-every steps: loss, rewards/chosen, rewards/rejected, rewards/accuracy, rewards/margin, ...)
and summary.json. A killed run resumes from train_state.pt, saved every --save-every steps.
"""
import argparse
import itertools
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from itool import distributed, files, modeling, training
from itool.files import atomic_write_json, read_jsonl
from itool.logprobs import common_prefix, head_logprobs, prefixed_hidden
from itool.records import RecordError

DEFAULT_BETA = {"dpo": 0.1, "simpo": 2.5, "ipo": 0.1, "orpo": 0.1}
# The extra NLL weight when --nll-weight is left out: DPO + NLL is this project's DPO (the paper's
# plain Eq. 11 is --nll-weight 0); the others run as their papers define them (ORPO's SFT term is
# part of ORPO, not this extra).
DEFAULT_NLL_WEIGHT = {"dpo": 1.0, "simpo": 0.0, "ipo": 0.0, "orpo": 0.0}
NEEDS_REFERENCE = {"dpo", "ipo"}
PAIR_FIELDS = {"id": str, "system": str, "messages": list, "prefix": str, "chosen": str, "rejected": str,
               "chosen_ends": bool, "rejected_ends": bool}
ID_FIELDS = ("prefix_ids", "chosen_ids", "rejected_ids")  # the search's own token ids (optional)
# Each pair is one packed row whose 4-D mask hides chosen and rejected from each other: only kernels
# that apply an arbitrary mask may run it (a flash kernel would let the two see each other).
MASKED_KERNELS = ("eager", "sdpa")


class TooLong(RecordError):
    """A pair longer than --max-length: skipped and counted, never an error."""
PROMPT, PAD = 0, -1  # segments of a packed row; completion j is segment 1 + j
PAIRS_PER_ROW = 4  # pairs sharing a prompt packed in one row (a row is never split across ranks)

# --- losses: pure functions of per-pair log-prob sums [B] (and token counts [B]) ---------------
# Each returns (loss per pair, reward of chosen, reward of rejected); a pair counts as correct
# when its chosen reward is the higher.

def dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta):
    """Paper Eq. 11: the rewards are β·log π/π_ref of each completion."""
    reward_chosen = beta * (chosen - ref_chosen)
    reward_rejected = beta * (rejected - ref_rejected)
    return -F.logsigmoid(reward_chosen - reward_rejected), reward_chosen, reward_rejected


def ipo_loss(chosen, rejected, ref_chosen, ref_rejected, tau):
    """IPO (Azar et al., 2024): regress the log-ratio margin onto 1/(2τ) instead of pushing it up
    without bound. Rewards are τ·log π/π_ref, reported like DPO's."""
    ratio_chosen, ratio_rejected = chosen - ref_chosen, rejected - ref_rejected
    loss = (ratio_chosen - ratio_rejected - 1 / (2 * tau)) ** 2
    return loss, tau * ratio_chosen, tau * ratio_rejected


def simpo_loss(chosen, rejected, n_chosen, n_rejected, beta, gamma):
    """SimPO (Meng et al., 2024): no reference; the reward is β·(mean token log-prob), and the
    chosen one must beat the rejected one by the margin γ."""
    reward_chosen = beta * chosen / n_chosen
    reward_rejected = beta * rejected / n_rejected
    return -F.logsigmoid(reward_chosen - reward_rejected - gamma), reward_chosen, reward_rejected


def log1mexp(x):
    """log(1 - e^x) for x < 0, accurate both near 0 and far below it (Mächler, 2012)."""
    x = x.clamp(max=-1e-7)  # a mean log-prob of exactly 0 (P = 1) would give infinite odds
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo_loss(chosen, rejected, n_chosen, n_rejected, lam):
    """ORPO (Hong et al., 2024): its SFT term, the chosen completion's mean token NLL, plus
    λ·-log σ(log odds(y_w) - log odds(y_l)), with odds(y) = P/(1-P) and P the mean-token
    probability. Rewards are λ·(mean token log-prob)."""
    mean_chosen, mean_rejected = chosen / n_chosen, rejected / n_rejected
    log_odds = (mean_chosen - log1mexp(mean_chosen)) - (mean_rejected - log1mexp(mean_rejected))
    return -mean_chosen - lam * F.logsigmoid(log_odds), lam * mean_chosen, lam * mean_rejected


def step_loss(args, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected, n_pairs, n_chosen_tokens):
    """A micro-batch's share of its step's loss: the pairs' losses over the step's pair count, plus
    --nll-weight times the chosen tokens' NLL over the step's chosen-token count (an extra term no
    published loss but DPO + NLL has). Returns (loss, nll, rewards of chosen, rewards of rejected)."""
    losses, reward_chosen, reward_rejected = preference_loss(
        args.loss, args.beta, args.simpo_gamma, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected)
    nll = nll_loss(chosen, n_chosen_tokens)
    loss = losses.sum() / n_pairs + (args.nll_weight * nll if args.nll_weight else 0.0)
    return loss, nll, reward_chosen, reward_rejected


def nll_loss(chosen, n_chosen_tokens):
    """The chosen completions' negative log-likelihood per token: their summed log-probs [B] over the
    number of chosen tokens in the whole optimizer step, so accumulated micro-batches add up to it."""
    return -chosen.sum() / n_chosen_tokens


def preference_loss(name, beta, gamma, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected):
    if name == "dpo":
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)
    if name == "ipo":
        return ipo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)
    if name == "simpo":
        return simpo_loss(chosen, rejected, n_chosen, n_rejected, beta, gamma)
    if name == "orpo":
        return orpo_loss(chosen, rejected, n_chosen, n_rejected, beta)
    raise ValueError(f"unknown loss {name!r}")


# --- pairs -------------------------------------------------------------------------------------

def cut_rejected(chosen, rejected):
    """The rejected ids cut to the chosen's length, but never before their first difference from
    the chosen (kept, so the cut pair still tells the two apart)."""
    parted = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)))
    return rejected[:max(len(chosen), parted + 1)]


def check_pair(pair, where):
    if not isinstance(pair, dict):
        raise RecordError(f"{where}: expected an object, got {type(pair).__name__}")
    for field, kind in PAIR_FIELDS.items():
        if not isinstance(pair.get(field), kind):
            raise RecordError(f"{where}: field {field!r} must be a {kind.__name__}, got {pair.get(field)!r:.100}")
    present = [field for field in ID_FIELDS if field in pair]
    if present and len(present) < len(ID_FIELDS):
        raise RecordError(f"{where}: has {present} but not all of {list(ID_FIELDS)}")
    for field in present:
        if not isinstance(pair[field], list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                                        for t in pair[field]):
            raise RecordError(f"{where}: field {field!r} must be a list of token ids")


def encode_pair(tokenizer, pair, eot_id, max_length, where, cut=False):
    """(prompt, chosen, rejected) token ids; the prompt is the dialogue plus the answer so far.

    A pair from stage 05 carries the very token ids the policy produced (prefix_ids, chosen_ids,
    rejected_ids: end-of-turn included where a step ends the answer) and is trained on them as
    they are; a pair written by hand has text only, tokenised as in training. With `cut` the
    rejected ids are cut to the chosen's length (cut_rejected)."""
    check_pair(pair, where)
    if "chosen_ids" in pair:
        prompt = modeling.encode_prompt(tokenizer, pair["system"], pair["messages"]) + pair["prefix_ids"]
        chosen, rejected = pair["chosen_ids"], pair["rejected_ids"]
    else:
        args = tokenizer, pair["system"], pair["messages"], pair["prefix"]
        prompt, chosen = modeling.encode_continuation(*args, pair["chosen"], pair["chosen_ends"], eot_id)
        _, rejected = modeling.encode_continuation(*args, pair["rejected"], pair["rejected_ends"], eot_id)
    if not chosen or not rejected:
        side = "chosen" if not chosen else "rejected"
        raise RecordError(f"{where}: the {side} completion is empty (no tokens to learn from)")
    if chosen == rejected:
        raise RecordError(f"{where}: chosen and rejected are the same tokens")
    if cut:
        rejected = cut_rejected(chosen, rejected)
    if len(prompt) + len(chosen) + len(rejected) > max_length:
        raise TooLong(f"{where}: {len(prompt)} + {len(chosen)} + {len(rejected)} tokens exceed "
                      f"--max-length {max_length}")
    return prompt, chosen, rejected


def load_pairs(path, tokenizer, max_length, skip_bad, cut=False):
    """(encoded pairs, {"bad": n, "too_long": n}): a pair longer than --max-length is skipped and
    counted; a malformed one is an error naming it, or with --skip-bad is skipped and counted."""
    eot_id = modeling.end_of_turn_id(tokenizer)
    encoded, skipped = [], {"bad": 0, "too_long": 0}
    for i, pair in enumerate(tqdm(read_jsonl(path), desc="tokenising pairs", unit="pair", leave=False)):
        where = f"{path}: pair {i}" + (f" (id {pair['id']})" if isinstance(pair, dict) and "id" in pair else "")
        try:
            encoded.append(encode_pair(tokenizer, pair, eot_id, max_length, where, cut))
        except TooLong as e:
            print(f"skipping: {e}", file=sys.stderr)
            skipped["too_long"] += 1
        except RecordError as e:
            if not skip_bad:
                raise
            print(f"skipping: {e}", file=sys.stderr)
            skipped["bad"] += 1
    return encoded, skipped


def group_pairs(pairs, max_pairs):
    """Rows to pack: pairs with the same prompt (the search's siblings at one node) share a row,
    each distinct completion once, at most `max_pairs` pairs a row. A row is (prompt ids,
    [completion ids], [(pair index, chosen completion, rejected completion)])."""
    groups = {}
    for i, (prompt, chosen, rejected) in enumerate(pairs):
        groups.setdefault(tuple(prompt), []).append(i)
    rows = []
    for prompt, members in groups.items():
        for start in range(0, len(members), max_pairs):
            completions, links = [], []
            for i in members[start:start + max_pairs]:
                ends = []
                for completion in pairs[i][1:]:
                    if completion not in completions:
                        completions.append(completion)
                    ends.append(completions.index(completion))
                links.append((i, *ends))
            rows.append((list(prompt), completions, links))
    return rows


def packed_length(row):
    return len(row[0]) + sum(map(len, row[1]))


def micro_batches(rows, max_tokens, max_pairs):
    """Lists of row indices of similar packed length, each of at most `max_tokens` padded tokens
    and `max_pairs` pairs (a row over either limit goes alone), so that a forward wastes little
    padding. A row is never split: its completions share one computation of its prompt."""
    return training.micro_batches([packed_length(row) for row in rows], max_tokens,
                                  sizes=[len(row[2]) for row in rows], max_size=max_pairs)


def plan_steps(rows, batches, batch_size, epochs, seed):
    """The run's optimizer steps as lists of micro-batch indices: every epoch a seeded shuffle of
    the same micro-batches, taken in order into steps of up to `batch_size` pairs (a micro-batch
    is never split). The micro-batches are the same in every epoch, so the reference log-probs,
    computed once over them, match the policy's exactly wherever the weights are unchanged."""
    order = []
    for epoch in range(epochs):
        epoch_order = list(range(len(batches)))
        random.Random(seed * 1000 + epoch).shuffle(epoch_order)
        order += epoch_order
    steps, step, n_pairs = [], [], 0
    for b in order:
        size = sum(len(rows[i][2]) for i in batches[b])
        if step and n_pairs + size > batch_size:
            steps.append(step)
            step, n_pairs = [], 0
        step.append(b)
        n_pairs += size
    return steps + [step] if step else steps


def attention_masks(segments, positions, config, dtype, first_query=0):
    """Additive masks [B, 1, T - first_query, T] (0 = may attend, -inf-like = may not) for packed
    rows, the queries from token `first_query` on (the tokens before it run as a shared prefix);
    the eager and the sdpa kernels both take them.

    A token sees earlier tokens of the prompt and of its own segment: chosen and rejected each
    see the prompt but not each other. Sliding-window layers also drop keys W or more positions
    back, by position, not index, since the rejected tokens reuse the chosen tokens' positions.
    Every token sees itself, so no row of the softmax is empty (not even a pad's).
    """
    index = torch.arange(segments.shape[1], device=segments.device)
    causal = index[None, first_query:, None] >= index[None, None, :]
    query_segment, key_segment = segments[:, first_query:, None], segments[:, None, :]
    visible = causal & ((key_segment == PROMPT) | (key_segment == query_segment))

    def additive(allowed):
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    if "sliding_attention" not in (getattr(config, "layer_types", None) or ()):
        return additive(visible)
    near = positions[:, first_query:, None] - positions[:, None, :] < config.sliding_window
    return {"full_attention": additive(visible), "sliding_attention": additive(visible & near)}


def pack(rows, pad_id, config, device, dtype=torch.bfloat16, share=True):
    """One packed row per group of pairs (group_pairs): the prompt, then each completion, every
    completion positioned right after the prompt and seeing only the prompt and itself. Also
    where each completion token is predicted from (the hidden state just before it; the prompt's
    last one for a completion's first token) and which completions each pair compares.

    With `share`, the leading tokens every row's prompt begins with (the system prompt's
    instructions) are left out of the rows as "prefix", to run once for all of them
    (logprobs.prefixed_hidden); the masks keep their columns."""
    width = max(map(packed_length, rows))
    batch = len(rows)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    positions = torch.arange(width).repeat(batch, 1)
    segments = torch.full((batch, width), PAD, dtype=torch.long)
    token_rows, sources, targets, slots, chosen, rejected, pair_ids = [], [], [], [], [], [], []
    n_completions = 0
    for row, (prompt, completions, links) in enumerate(rows):
        p, at = len(prompt), len(prompt)
        input_ids[row, :p] = torch.tensor(prompt)
        segments[row, :p] = PROMPT
        for j, completion in enumerate(completions):
            n = len(completion)
            input_ids[row, at:at + n] = torch.tensor(completion)
            segments[row, at:at + n] = 1 + j  # PROMPT is 0, PAD is -1
            positions[row, at:at + n] = torch.arange(p, p + n)
            token_rows += [row] * n
            sources += [p - 1] + list(range(at, at + n - 1))
            targets += completion
            slots += [n_completions + j] * n
            at += n
        for i, c, r in links:
            pair_ids.append(i)
            chosen.append(n_completions + c)
            rejected.append(n_completions + r)
        n_completions += len(completions)
    lengths = torch.zeros(n_completions)
    lengths.index_add_(0, torch.tensor(slots), torch.ones(len(slots)))
    positions, segments = positions.to(device), segments.to(device)
    shared = common_prefix([prompt for prompt, _, _ in rows]) if share and batch > 1 else 0
    # queries from the rest only; keys from the whole row (the prefix's from the cache)
    masks = attention_masks(segments, positions, config, dtype, first_query=shared)
    chosen, rejected = torch.tensor(chosen, device=device), torch.tensor(rejected, device=device)
    return {"prefix": rows[0][0][:shared], "input_ids": input_ids[:, shared:].to(device),
            "positions": positions[:, shared:], "masks": masks,
            "rows": torch.tensor(token_rows, device=device), "sources": torch.tensor(sources, device=device) - shared,
            "targets": torch.tensor(targets, device=device), "slots": torch.tensor(slots, device=device),
            "completions": n_completions, "chosen": chosen, "rejected": rejected, "pair_ids": pair_ids,
            "n_chosen": lengths.to(device)[chosen], "n_rejected": lengths.to(device)[rejected]}


def pair_logprobs(model, batch):
    """Summed log-probs of each pair's chosen and rejected completion: ([P], [P])."""
    hidden = prefixed_hidden(model, batch["prefix"], batch["input_ids"], batch["masks"], batch["positions"])
    token_logps = head_logprobs(model, hidden[batch["rows"], batch["sources"]], batch["targets"])
    sums = torch.zeros(batch["completions"], dtype=token_logps.dtype, device=token_logps.device)
    sums = sums.index_add(0, batch["slots"], token_logps)
    return sums[batch["chosen"]], sums[batch["rejected"]]


# --- training ----------------------------------------------------------------------------------

@torch.no_grad()
def reference_logprobs(model, rows, n_pairs, batches, pad_id, device):
    """[N, 2] summed log-probs of (chosen, rejected) under the starting policy, batched exactly as
    in training so that at the first step the policy's numbers match them bit for bit."""
    reference = torch.zeros(n_pairs, 2)
    share = not training.checkpoints_activations(model)  # as in training: checkpointed layers drop the cache
    for indices in tqdm(distributed.shard(batches), desc="reference log-probs", unit="batch"):
        batch = pack([rows[i] for i in indices], pad_id, model.config, device, share=share)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            chosen, rejected = pair_logprobs(model, batch)
        reference[batch["pair_ids"]] = torch.stack([chosen, rejected], dim=1).float().cpu()
    return sum(distributed.gather(reference))  # each rank filled the rows of its own batches


def train_step(model, optimizer, scheduler, pairs, rows, step_batches, reference, args, device, pad_id):
    """One optimizer step over a few micro-batches; returns the step's summed statistics."""
    step_pairs = [i for indices in step_batches for row in indices for i, _, _ in rows[row][2]]
    n_pairs = len(step_pairs)
    n_chosen_tokens = sum(len(pairs[i][1]) for i in step_pairs)
    totals = {"loss": 0.0, "rewards/chosen": 0.0, "rewards/rejected": 0.0, "rewards/accuracy": 0.0,
              "rewards/margin": 0.0, "logps/chosen": 0.0, "logps/rejected": 0.0, "nll": 0.0}
    loss_finite = True
    share = not training.checkpoints_activations(model)  # checkpointed layers would drop the prefix's cache
    for indices in distributed.shard(step_batches):
        batch = pack([rows[i] for i in indices], pad_id, model.config, device, share=share)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            chosen, rejected = pair_logprobs(model, batch)
        ref = reference[batch["pair_ids"]].to(device) if reference is not None else \
            torch.zeros(len(batch["pair_ids"]), 2, device=device)
        loss, nll, reward_chosen, reward_rejected = step_loss(
            args, chosen, rejected, batch["n_chosen"], batch["n_rejected"], ref[:, 0], ref[:, 1], n_pairs,
            n_chosen_tokens)
        totals["nll"] += nll.item()
        if not torch.isfinite(loss):  # stop every rank before the update (training.finish_step)
            loss_finite = False
            continue
        loss.backward()
        totals["loss"] += loss.item()
        totals["rewards/chosen"] += reward_chosen.sum().item() / n_pairs
        totals["rewards/rejected"] += reward_rejected.sum().item() / n_pairs
        totals["rewards/accuracy"] += (reward_chosen > reward_rejected).sum().item() / n_pairs
        totals["rewards/margin"] += (reward_chosen - reward_rejected).sum().item() / n_pairs
        totals["logps/chosen"] += (chosen / batch["n_chosen"]).sum().item() / n_pairs
        totals["logps/rejected"] += (rejected / batch["n_rejected"]).sum().item() / n_pairs
    grad_norm = training.finish_step(optimizer, scheduler, args.max_grad_norm, args.out / "train_state.pt", loss_finite)
    totals = dict(zip(totals, distributed.all_sum(torch.tensor(list(totals.values()), dtype=torch.float64)).tolist()))
    return {**totals, "grad_norm": grad_norm, "pairs": n_pairs}


def carry_over(args, skipped):
    """--allow-empty with no pairs: policy K is policy K-1, said loudly."""
    if not args.adapter:
        sys.exit("error: --allow-empty needs --adapter (the adapter to carry over)")
    print(f"WARNING: {args.pairs} holds no usable pair; the adapter of {args.adapter} is carried over "
          f"unchanged to {args.out} (iteration without preference training)", file=sys.stderr)
    model = modeling.load_model(modeling.resolve_model(args.model), adapter=args.adapter)
    atomic_write_json(args.out / "summary.json", {"pairs": 0, "skipped": skipped, "carried_over": True})
    modeling.save_adapter(model, args.out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m | tiny | local dir | hub id")
    parser.add_argument("--qlora", default="auto", help="auto (4-bit on CUDA only) | 1 | 0")
    parser.add_argument("--adapter", help="adapter dir of policy K-1 to start from (default: a fresh LoRA)")
    parser.add_argument("--pairs", required=True, type=Path, help="pairs.jsonl from stage 05")
    parser.add_argument("--out", required=True, type=Path, help="output dir of policy K")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", default="dpo", choices=sorted(DEFAULT_BETA))
    parser.add_argument("--beta", type=float, help="DPO/SimPO β, IPO τ, ORPO λ (default: " +
                        ", ".join(f"{k} {v}" for k, v in DEFAULT_BETA.items()) + ")")
    parser.add_argument("--nll-weight", type=float,
                        help="weight of an extra chosen-token NLL term added to the loss (default: 1 for DPO, "
                             "DPO + NLL as in iterative RPO, 0 gives the paper's Eq. 11; 0 for SimPO, IPO and "
                             "ORPO, which run as published, ORPO with its own SFT term)")
    parser.add_argument("--cut-rejected", action=argparse.BooleanOptionalAction, default=True,
                        help="cut each rejected step to its chosen step's length, keeping their first difference "
                             "(--no-cut-rejected: the steps as the search wrote them)")
    parser.add_argument("--simpo-gamma", type=float, default=0.5, help="SimPO reward margin γ")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    parser.add_argument("--max-length", type=int, default=4096,
                        help="longest prompt + chosen + rejected, in tokens; longer pairs are skipped and counted")
    parser.add_argument("--attn", default="auto", choices=("auto",) + MASKED_KERNELS,
                        help="attention kernel: auto (eager on CPU, sdpa on CUDA); only kernels that apply the packed "
                             "rows' 4-D mask")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed pairs (counted) instead of stopping")
    parser.add_argument("--allow-empty", action="store_true",
                        help="with no usable pair, carry adapter K-1 over unchanged instead of stopping")
    training.add_flags(parser, "pairs")
    # make's DPO_LR: at the paper's 5e-5 the embedded run's iterations overshot (docs/results.md)
    parser.set_defaults(lr=2e-5, warmup_ratio=0.1, save_every=5, log_every=1)
    args = parser.parse_args(argv)
    if args.beta is None:
        args.beta = DEFAULT_BETA[args.loss]
    if args.nll_weight is None:
        args.nll_weight = DEFAULT_NLL_WEIGHT[args.loss]
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    _, _, device = distributed.init()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model_dir = modeling.resolve_model(args.model)
    if args.adapter and not (Path(args.adapter) / "adapter_model.safetensors").is_file():
        sys.exit(f"error: no adapter in {args.adapter} (expected adapter_model.safetensors)")
    tokenizer = modeling.load_tokenizer(model_dir)
    try:
        pairs, skipped = load_pairs(args.pairs, tokenizer, args.max_length, args.skip_bad, args.cut_rejected)
    except (RecordError, OSError) as e:
        sys.exit(f"error: {e}")
    if not pairs:
        if args.allow_empty:
            return carry_over(args, skipped)
        sys.exit(f"error: {args.pairs} holds no usable pair (skipped: {skipped}). Stage 05 found no node whose "
                 f"children's Q values differ enough: give it a bigger budget (MCTS_ARGS), or pass "
                 f"DPO_ARGS=--allow-empty to carry the adapter over unchanged.")

    model = training.trainable_model(model_dir, args, device, modeling.use_qlora(args.qlora, device), args.adapter)
    pad_id = tokenizer.pad_token_id
    micro_batch_tokens = training.micro_batch_tokens(args, device)
    rows = group_pairs(pairs, max_pairs=PAIRS_PER_ROW)
    batches = micro_batches(rows, micro_batch_tokens, args.batch_size)
    steps = plan_steps(rows, batches, args.batch_size, args.epochs, args.seed)
    batches_done = list(itertools.accumulate(map(len, steps)))  # micro-batches trained after each step
    total_steps = min(len(steps), args.max_steps) if args.max_steps else len(steps)
    optimizer = training.make_optimizer(model, args.lr, args.weight_decay)
    scheduler = training.warmup_cosine(optimizer, max(1, round(args.warmup_ratio * total_steps)), total_steps)

    state_path = args.out / "train_state.pt"
    adapter_file = [Path(args.adapter) / "adapter_model.safetensors"] if args.adapter else []
    fingerprint = files.fingerprint(training.settings(args), [args.pairs, *adapter_file, __file__])
    state = training.load_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler,
                                fingerprint=fingerprint)
    start_step = state["step"] if state else 0
    if state:
        reference = state["extra"]["reference"]
        print(f"resuming {args.out} at step {start_step}/{total_steps}")
    else:
        started = time.time()
        reference = reference_logprobs(model, rows, len(pairs), batches, pad_id, device) \
            if args.loss in NEEDS_REFERENCE else None
        reference_seconds = time.time() - started

    def save(step):
        if distributed.is_main():
            training.save_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                                fingerprint=fingerprint, extra={"reference": reference})
        distributed.barrier()

    if not state:
        save(0)  # the reference pass is not repeated after a kill
    metrics = training.open_metrics(args.out / "metrics.jsonl", start_step) if distributed.is_main() else None
    print(f"{len(pairs)} pairs (skipped: {skipped['bad']} malformed, {skipped['too_long']} longer than --max-length "
          f"{args.max_length}) in {len(rows)} packed rows, {len(batches)} micro-batches of up to "
          f"{micro_batch_tokens} tokens, {total_steps} steps of up to {args.batch_size} pairs; loss {args.loss}, "
          f"β {args.beta}, NLL weight {args.nll_weight}, lr {args.lr}"
          f"{', rejected cut to the chosen length' if args.cut_rejected else ''}")

    model.train()
    started, trained_pairs, last = time.time(), 0, {}
    progress = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps, desc="dpo", unit="step",
                    disable=not distributed.is_main())
    for step in progress:
        lr = scheduler.get_last_lr()[0]
        last = train_step(model, optimizer, scheduler, pairs, rows, [batches[b] for b in steps[step]], reference, args,
                          device, pad_id)
        trained_pairs += last["pairs"]
        pairs_per_s = trained_pairs / (time.time() - started)
        progress.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['rewards/accuracy']:.2f}",
                             margin=f"{last['rewards/margin']:.3f}", pairs_s=f"{pairs_per_s:.2f}")

        done = step + 1
        if metrics and (done % args.log_every == 0 or done == total_steps):
            training.log_metrics(metrics, {"step": done, "epoch": round(batches_done[step] / len(batches), 3),
                                           "lr": lr, **last, "pairs_per_s": round(pairs_per_s, 4)})
        if done % args.save_every == 0 or done == total_steps:
            save(done)

    if distributed.is_main():
        metrics.close()
        elapsed = time.time() - started
        atomic_write_json(args.out / "summary.json", {
            "pairs": len(pairs), "skipped": skipped, "steps": total_steps, "loss": args.loss, "beta": args.beta,
            "nll_weight": args.nll_weight, "cut_rejected": args.cut_rejected,
            "tokens": {side: sum(len(pair[i]) for pair in pairs) for i, side in ((1, "chosen"), (2, "rejected"))},
            "lr": args.lr, "last_step": last, "train_seconds": round(elapsed, 1),
            "reference_seconds": None if state else round(reference_seconds, 1),
            "pairs_per_s": round(trained_pairs / elapsed, 4) if trained_pairs else None,
            "peak_memory_mib": round(training.peak_memory_mib(device))})
        modeling.save_adapter(model, args.out)  # the weights file appears last: make's target
        state_path.unlink(missing_ok=True)  # done: a re-run (e.g. after editing this script) starts afresh
    distributed.finish()


if __name__ == "__main__":
    try:
        main()
    except training.NonFiniteLoss as e:
        sys.exit(f"error: {e}")
