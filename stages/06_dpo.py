"""Stage 06 (make iterate): preference optimisation of policy K-1 on iteration K's MCTS pairs.

Each pair (from stage 05) is a prompt (dialogue + answer so far) with a chosen and a rejected
next step. The policy starts from adapter K-1 and is trained with paper Eq. 11,

    loss = -log σ(β·log π(y_w|x)/π_ref(y_w|x) - β·log π(y_l|x)/π_ref(y_l|x)),

or, for the paper's Fig. 6 ablation, SimPO, IPO or ORPO (--loss; their formulas: itool.losses).
--beta is the strength of the chosen loss; left out, each loss takes its usual value (DPO β 0.1,
SimPO β 2.5, IPO τ 0.1, ORPO λ 0.1).

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

Replay (--replay, make's REPLAY=1): the pairs of iterations 1..K-1 are trained on again beside
iteration K's own. With FRESH=1 each iteration searches other samples, so a lesson taught once (a
decline where the tools serve nothing) is otherwise never repeated; replayed, it is learned again
against the latest reference, in the same number of epochs, not with a bigger step.

Reference. The reference policy is the policy at the start of the iteration (the paper's
"reference refreshed with the latest policy"). Its log-probs are computed once, in one no-grad
pass over the pairs before the first update, with the very micro-batches training uses: exact,
with no second model in memory and no reference forward per step. SimPO and ORPO need none.

Speed. The pairs that share a prompt (chosen and rejected, and the search's sibling steps at one
node) are one packed row whose mask hides the completions from each other: one forward computes
the prompt once and every side, with the result of separate rows (itool.pairs says how). The
decoder runs under bf16 autocast, the LM head only where a completion token is predicted. Rows of
similar length are grouped into micro-batches of at most --micro-batch-tokens padded tokens (a row
is never split), the same micro-batches every epoch in a new order; a step takes them in that
order, up to --batch-size pairs.

Each optimizer step's loss is the sum of its pairs' losses divided by the number of pairs in the
whole step (and the extra NLL term by the step's chosen-token count), so gradient accumulation over
unevenly filled micro-batches gives the gradient of one big batch. Under torchrun (NGPU > 1) each
rank takes its share of every step's micro-batches (and of the reference pass), and the LoRA
gradients are summed across ranks: the same update as one process (training.finish_step, which
also stops every rank before the update when a loss or the gradient is not finite).

Outputs in --out: the adapter (adapter_model.safetensors last), metrics.jsonl (a line every
--log-every steps: loss, rewards/chosen, rewards/rejected, rewards/accuracy, rewards/margin, ...)
and summary.json, and the starting adapter's call gate if it has one (it reads the base model, so
it holds for every iteration; docs/design.md). A killed run resumes from train_state.pt, saved
every --save-every steps.
"""
import argparse
import itertools
import random
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from itool import distributed, files, gate, losses, modeling, pairs, training
from itool.files import atomic_write_json
from itool.records import RecordError

# What metrics.jsonl logs of a step (with grad_norm and pairs): sums over its micro-batches and ranks.
STATISTICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "logps/chosen",
              "logps/rejected", "nll")


# --- the schedule ----------------------------------------------------------------------------------

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


# --- training ----------------------------------------------------------------------------------

def batch_logprobs(model, rows, indices, pad_id, device, share):
    """The packed micro-batch of rows `indices` and its pairs' summed log-probs (chosen, rejected);
    `share`: run the rows' common prompt head once (pairs.pack)."""
    batch = pairs.pack([rows[i] for i in indices], pad_id, model.config, device, share=share)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        chosen, rejected = pairs.pair_logprobs(model, batch)
    return batch, chosen, rejected


@torch.no_grad()
def reference_logprobs(model, rows, n_pairs, batches, pad_id, device):
    """[N, 2] summed log-probs of (chosen, rejected) under the starting policy, batched exactly as
    in training so that at the first step the policy's numbers match them bit for bit."""
    reference = torch.zeros(n_pairs, 2)
    share = not training.checkpoints_activations(model)  # as in training
    for indices in tqdm(distributed.shard(batches), desc="reference log-probs", unit="batch"):
        batch, chosen, rejected = batch_logprobs(model, rows, indices, pad_id, device, share)
        reference[batch["pair_ids"]] = torch.stack([chosen, rejected], dim=1).float().cpu()
    return sum(distributed.gather(reference))  # each rank filled the rows of its own batches


def train_step(model, optimizer, scheduler, encoded, rows, step_batches, reference, args, device, pad_id):
    """One optimizer step over a few micro-batches; returns the step's summed statistics."""
    step_pairs = [i for indices in step_batches for row in indices for i, _, _ in rows[row][2]]
    n_pairs = len(step_pairs)
    n_chosen_tokens = sum(len(encoded[i][1]) for i in step_pairs)
    totals = dict.fromkeys(STATISTICS, 0.0)
    loss_finite = True
    share = not training.checkpoints_activations(model)  # checkpointed layers would drop the prefix's cache
    for indices in distributed.shard(step_batches):
        batch, chosen, rejected = batch_logprobs(model, rows, indices, pad_id, device, share)
        ref = reference[batch["pair_ids"]].to(device) if reference is not None else \
            torch.zeros(len(batch["pair_ids"]), 2, device=device)
        loss, nll, reward_chosen, reward_rejected = losses.step_loss(
            args.loss, chosen, rejected, batch["n_chosen"], batch["n_rejected"], ref[:, 0], ref[:, 1], n_pairs,
            n_chosen_tokens, beta=args.beta, gamma=args.simpo_gamma, nll_weight=args.nll_weight)
        totals["nll"] += nll.item()
        if not torch.isfinite(loss):  # stop every rank before the update (training.finish_step)
            loss_finite = False
            continue
        loss.backward()
        totals["loss"] += loss.item()
        per_pair = {"rewards/chosen": reward_chosen, "rewards/rejected": reward_rejected,
                    "rewards/accuracy": losses.reward_accuracy(reward_chosen, reward_rejected),
                    "rewards/margin": losses.reward_margin(reward_chosen, reward_rejected),
                    "logps/chosen": chosen / batch["n_chosen"], "logps/rejected": rejected / batch["n_rejected"]}
        for key, values in per_pair.items():  # means over the whole step's pairs
            totals[key] += values.sum().item() / n_pairs
    grad_norm = training.finish_step(optimizer, scheduler, args.max_grad_norm, args.out / "train_state.pt", loss_finite)
    totals = dict(zip(totals, distributed.all_sum(torch.tensor(list(totals.values()), dtype=torch.float64)).tolist()))
    return {**totals, "grad_norm": grad_norm, "pairs": n_pairs}


# --- setup and the end -----------------------------------------------------------------------------

def read_pairs(args, tokenizer):
    """The encoded pairs of --pairs, then of each --replay file, the skipped counts summed, and how
    many of the pairs were replayed. A malformed pair (without --skip-bad) stops the stage, and so
    does no usable pair at all, unless --allow-empty."""
    encoded, skipped, replayed = [], {"bad": 0, "too_long": 0}, 0
    for i, path in enumerate([args.pairs, *args.replay]):
        try:
            more, more_skipped = pairs.load_pairs(path, tokenizer, args.max_length, args.skip_bad, args.cut_rejected)
        except (RecordError, OSError) as e:
            sys.exit(f"error: {e}")
        encoded += more
        skipped = {key: skipped[key] + more_skipped[key] for key in skipped}
        replayed += len(more) if i else 0
    if not encoded and not args.allow_empty:
        sys.exit(f"error: {args.pairs} holds no usable pair (skipped: {skipped}). Stage 05 found no node whose "
                 f"children's Q values differ enough: give it a bigger budget (MCTS_ARGS), or pass "
                 f"DPO_ARGS=--allow-empty to carry the adapter over unchanged.")
    return encoded, skipped, replayed


def carry_over(args, skipped):
    """--allow-empty with no pairs: policy K is policy K-1, said loudly."""
    if not args.adapter:
        sys.exit("error: --allow-empty needs --adapter (the adapter to carry over)")
    print(f"WARNING: {args.pairs} holds no usable pair; the adapter of {args.adapter} is carried over "
          f"unchanged to {args.out} (iteration without preference training)", file=sys.stderr)
    model = modeling.load_model(modeling.resolve_model(args.model), adapter=args.adapter)
    atomic_write_json(args.out / "summary.json", {"pairs": 0, "skipped": skipped, "carried_over": True})
    gate.carry(args.adapter, args.out)
    modeling.save_adapter(model, args.out)


def run_fingerprint(args):
    """Resume only the very run: same flags, pairs, starting adapter and training code."""
    adapter_file = [Path(args.adapter) / "adapter_model.safetensors"] if args.adapter else []
    return files.fingerprint(training.settings(args), [args.pairs, *args.replay, *adapter_file, __file__,
                                                       losses.__file__, pairs.__file__])


def write_summary(args, encoded, skipped, replayed, total_steps, last, elapsed, trained_pairs, reference_seconds,
                  device):
    atomic_write_json(args.out / "summary.json", {
        "pairs": len(encoded), "replayed": replayed, "skipped": skipped, "steps": total_steps, "loss": args.loss,
        "beta": args.beta, "nll_weight": args.nll_weight, "cut_rejected": args.cut_rejected,
        "tokens": {side: sum(len(pair[i]) for pair in encoded) for i, side in ((1, "chosen"), (2, "rejected"))},
        "lr": args.lr, "last_step": last, "train_seconds": round(elapsed, 1),
        "reference_seconds": None if reference_seconds is None else round(reference_seconds, 1),
        "pairs_per_s": round(trained_pairs / elapsed, 4) if trained_pairs else None,
        "peak_memory_mib": round(training.peak_memory_mib(device))})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modeling.add_model_flags(parser, adapter_help="adapter dir of policy K-1 to start from (default: a fresh LoRA)")
    parser.add_argument("--pairs", required=True, type=Path, help="pairs.jsonl from stage 05")
    parser.add_argument("--replay", nargs="*", type=Path, default=[],
                        help="earlier iterations' pairs.jsonl, trained on again beside --pairs (make's REPLAY=1)")
    parser.add_argument("--out", required=True, type=Path, help="output dir of policy K")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", default="dpo", choices=sorted(losses.DEFAULT_BETA))
    parser.add_argument("--beta", type=float, help="DPO/SimPO β, IPO τ, ORPO λ (default: " +
                        ", ".join(f"{k} {v}" for k, v in losses.DEFAULT_BETA.items()) + ")")
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
    parser.add_argument("--attn", default="auto", choices=("auto",) + pairs.MASKED_KERNELS,
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
        args.beta = losses.DEFAULT_BETA[args.loss]
    if args.nll_weight is None:
        args.nll_weight = losses.DEFAULT_NLL_WEIGHT[args.loss]
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def main(argv=None):
    # --- setup: pairs, model, micro-batches, schedule, a resumed state or the reference pass
    args = parse_args(argv)
    _, _, device = distributed.init()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model_dir = modeling.resolve_model(args.model)
    try:
        modeling.check_adapter(args.adapter)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    tokenizer = modeling.load_tokenizer(model_dir)
    encoded, skipped, replayed = read_pairs(args, tokenizer)
    if not encoded:
        return carry_over(args, skipped)  # --allow-empty

    model = training.trainable_model(model_dir, args, device, modeling.use_qlora(args.qlora, device), args.adapter)
    pad_id = tokenizer.pad_token_id
    micro_batch_tokens = training.micro_batch_tokens(args, device)
    rows = pairs.group_pairs(encoded, max_pairs=pairs.PAIRS_PER_ROW)
    batches = pairs.micro_batches(rows, micro_batch_tokens, args.batch_size)
    steps = plan_steps(rows, batches, args.batch_size, args.epochs, args.seed)
    batches_done = list(itertools.accumulate(map(len, steps)))  # micro-batches trained after each step
    total_steps = min(len(steps), args.max_steps) if args.max_steps else len(steps)
    optimizer = training.make_optimizer(model, args.lr, args.weight_decay)
    scheduler = training.warmup_cosine(optimizer, max(1, round(args.warmup_ratio * total_steps)), total_steps)

    state_path = args.out / "train_state.pt"
    fingerprint = run_fingerprint(args)
    state = training.load_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler,
                                fingerprint=fingerprint)
    start_step, reference_seconds = (state["step"] if state else 0), None
    if state:
        reference = state["extra"]["reference"]
        print(f"resuming {args.out} at step {start_step}/{total_steps}")
    else:
        started = time.time()
        reference = reference_logprobs(model, rows, len(encoded), batches, pad_id, device) \
            if args.loss in losses.NEEDS_REFERENCE else None
        reference_seconds = time.time() - started

    def save(step):
        if distributed.is_main():
            training.save_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                                fingerprint=fingerprint, extra={"reference": reference})
        distributed.barrier()

    if not state:
        save(0)  # the reference pass is not repeated after a kill
    metrics = training.open_metrics(args.out / "metrics.jsonl", start_step) if distributed.is_main() else None
    print(f"{len(encoded)} pairs (skipped: {skipped['bad']} malformed, {skipped['too_long']} longer than --max-length "
          f"{args.max_length}) in {len(rows)} packed rows, {len(batches)} micro-batches of up to "
          f"{micro_batch_tokens} tokens, {total_steps} steps of up to {args.batch_size} pairs; loss {args.loss}, "
          f"β {args.beta}, NLL weight {args.nll_weight}, lr {args.lr}"
          f"{', rejected cut to the chosen length' if args.cut_rejected else ''}")

    # --- the loop: a step, its metrics line, now and then a resumable state
    model.train()
    started, trained_pairs, last = time.time(), 0, {}
    progress = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps, desc="dpo", unit="step",
                    disable=not distributed.is_main())
    for step in progress:
        lr = scheduler.get_last_lr()[0]
        last = train_step(model, optimizer, scheduler, encoded, rows, [batches[b] for b in steps[step]], reference,
                          args, device, pad_id)
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

    # --- the end: summary, then the adapter (its weights file last: make's target)
    if distributed.is_main():
        metrics.close()
        write_summary(args, encoded, skipped, replayed, total_steps, last, time.time() - started, trained_pairs,
                      reference_seconds, device)
        gate.carry(args.adapter, args.out)  # before the weights: an adapter make sees complete has it
        modeling.save_adapter(model, args.out)
        state_path.unlink(missing_ok=True)  # done: a re-run (e.g. after editing this script) starts afresh
    distributed.finish()


if __name__ == "__main__":
    try:
        main()
    except training.NonFiniteLoss as e:
        sys.exit(f"error: {e}")
