"""Stage 02 (make warmup): the warm-up SFT with LoRA or QLoRA, in a plain PyTorch loop.

The loss is the paper's -log P(y | q, T) on the assistant answer tokens only (Eq. 1-3), over the
easy, medium and hard thirds of stage 01. --curriculum easy2hard is the paper's warm-up: the easy
third, then the medium, then the hard, each a phase (--epochs passes over it), the adapter saved
after each. --curriculum mixed, the default, is the paper's Fig. 4 ablation: one phase, the
shuffled union of the three thirds cut into the same number of steps; on the embedded run it beat
easy to hard (docs/results.md). One learning-rate schedule (linear warm-up, cosine decay) spans the
whole run:

  <out>/easy/ <out>/medium/ <out>/hard/    adapter after each phase (easy2hard)
  <out>/adapter_model.safetensors + config  final adapter (the iteration-0 policy), written last
  <out>/metrics.jsonl                       phase, loss, lr, tokens/s, grad norm, peak memory per log step
  <out>/summary.json                        steps, tokens, throughput, skipped samples
  <out>/call_offset.json, call_gate.json    with --call-offset-samples or --call-gate (docs/design.md)
  <out>/train_state.pt                      resumable state while training (deleted at the end)

A step is --batch-size samples. Its samples are grouped by length into micro-batches of at most
--micro-batch-tokens padded tokens, and every micro-batch's summed loss is divided by the step's
total number of answer tokens, so accumulation gives exactly the token-mean loss of the whole batch
whatever the micro-batching. The decoder runs on every position, the LM head only on the positions
that predict an answer token, and the prompt head that a micro-batch's samples share runs once for
all of them (not under gradient checkpointing, which drops the cache it needs). A non-finite loss
or gradient stops the stage before the update, naming the step and the last good training state
(training.finish_step).

Killed and re-run with the same settings, the stage resumes from the last state saved (every
--save-every steps) and ends with the same adapter as an uninterrupted run.

Under torchrun (make NGPU=N) every rank takes its share of each step's samples, the LoRA gradients
are summed across ranks and every loss is divided by the step's total answer-token count, so the
update is the one a single process makes; rank 0 writes adapters, metrics and training state.
"""
import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

# Each new tensor shape (every micro-batch has its own length) adds entries to oneDNN's and PyTorch's
# mkldnn primitive caches, 1024 each by default; on the CPU that grew the process by ~20 MB a step
# (6 GB after 60 steps). 64 entries keep it flat at the same speed. Read when torch loads.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from itool import distributed, files, gate, generation, modeling, training  # noqa: E402
from itool.files import atomic_write_json, read_jsonl  # noqa: E402
from itool.logprobs import IGNORE, chunked_head_logprobs, collate, common_prefix, prefixed_hidden  # noqa: E402
from itool.records import RecordError, answers_user, check_samples  # noqa: E402

LEVELS = ("easy", "medium", "hard")
BUCKET_POOL = 16  # batches per pool that is sorted by length before cutting: little padding, yet mixed batches


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modeling.add_model_flags(parser)
    parser.add_argument("--splits-dir", required=True, help="folder with easy.jsonl, medium.jsonl, hard.jsonl (stage 01)")
    parser.add_argument("--out", required=True, help="output folder for the adapters, metrics and training state")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curriculum", choices=("mixed", "easy2hard"), default="mixed",
                        help="mixed: the three thirds shuffled into one phase; easy2hard: easy, medium, hard in turn (paper)")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="train only this many steps, shared across the phases in proportion (quick runs)")
    parser.add_argument("--max-length", type=int, default=2048,
                        help="samples with more tokens (prompt + answer) are skipped and counted")
    parser.add_argument("--decision-weight", type=float, default=0.0,
                        help="extra weight of the first answer token (call or text) of every sample that answers a "
                             "user turn, in answer tokens, per call sample; text samples weigh more, so that calls "
                             "and texts weigh the same in all (0: the paper's loss only)")
    parser.add_argument("--call-offset-samples",
                        help="samples the warm-up does not train on (stage 01's rl.jsonl): once trained, set the "
                             "offset on its call-opening logits under which it calls as often on their user turns "
                             "as their golds do, saved as call_offset.json beside the adapter (none: no offset)")
    parser.add_argument("--call-gate", action="store_true",
                        help="once trained, fit the call gate (itool/gate.py) on the base model's states of the "
                             "warm-up's own answers to a user, saved as call_gate.json beside the adapter: every "
                             "harness then lets it decide whether such an answer opens a call list")
    parser.add_argument("--attn", default="auto", help="attention kernel: auto (eager on CPU, sdpa on CUDA) | sdpa | eager")
    training.add_flags(parser, "samples")
    # 5e-5 is the paper's rate for a full model; this rank-8 adapter, one pass over the data, learns
    # far more at 1e-3 (docs/failures.md: measured against 2e-4 on two seeds' held-out splits)
    parser.set_defaults(lr=1e-3)
    return parser.parse_args(argv)


# --- data -----------------------------------------------------------------------------------------

def load_thirds(splits_dir):
    """{level: samples} from <splits_dir>/{easy,medium,hard}.jsonl; a missing or empty file is an error."""
    thirds = {}
    for level in LEVELS:
        path = Path(splits_dir) / f"{level}.jsonl"
        if not path.is_file():
            raise RecordError(f"{path}: not found (run `make split` first)")
        samples = read_jsonl(path)
        if not samples:
            raise RecordError(f"{path}: no samples")
        for n, sample in enumerate(samples, 1):
            if not all(isinstance(sample.get(k), str) for k in ("system", "answer")) or not isinstance(sample.get("messages"), list):
                raise RecordError(f"{path}: sample {n} (id {sample.get('id')!r}) lacks system/messages/answer")
        thirds[level] = samples
    return thirds


def encode_thirds(tokenizer, thirds, max_length):
    """{level: [(prompt ids, answer ids, opens a call)]} and the ids of the samples skipped for being
    too long. "opens a call" is None where the answer follows a tool result (a report: the context
    alone says text is due), else whether its first token opens a call list."""
    eot = modeling.end_of_turn_id(tokenizer)
    starts = set(modeling.call_start_ids(tokenizer))
    encoded, skipped = {}, []
    for level, samples in thirds.items():
        encoded[level] = []
        for sample in samples:
            prompt, answer = modeling.encode_sample(tokenizer, sample, eot)
            opens_call = answer[0] in starts if answers_user(sample) else None
            if len(prompt) + len(answer) > max_length:
                skipped.append(sample["id"])
            else:
                encoded[level].append((prompt, answer, opens_call))
        if not encoded[level]:
            raise RecordError(f"every {level} sample is longer than --max-length {max_length}")
    return encoded, skipped


# --- the step plan: which samples each optimizer step trains on --------------------------------------

def length_bucketed_batches(lengths, n_batches, rng):
    """Cut the indices of `lengths` into n_batches batches of near-equal size, each made of samples of
    similar length (sorted within pools of BUCKET_POOL batches), in shuffled order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = len(order) / n_batches
    bounds = [round(i * size) for i in range(n_batches + 1)]
    batches = []
    for first in range(0, n_batches, BUCKET_POOL):
        last = min(first + BUCKET_POOL, n_batches)
        pool = sorted(order[bounds[first]:bounds[last]], key=lambda i: lengths[i])
        offset = bounds[first]
        batches += [pool[bounds[b] - offset:bounds[b + 1] - offset] for b in range(first, last)]
    rng.shuffle(batches)
    return batches


def plan_steps(encoded, curriculum, epochs, batch_size, max_steps, seed):
    """The run's optimizer steps as (phase, [(level, index), ...]) in training order.

    easy2hard: the epochs of easy, then of medium, then of hard. mixed: epochs over the union of the
    three, each cut into as many batches as the three thirds take together, so both curricula take
    the same number of steps. --max-steps keeps the first steps of each phase, in proportion. The plan
    is a function of the arguments alone: a resumed run rebuilds it and continues at the saved step.
    """
    rng = random.Random(seed)
    batches_per_epoch = {level: math.ceil(len(encoded[level]) / batch_size) for level in LEVELS}
    if curriculum == "mixed":
        phases = {"mixed": ([(level, i) for level in LEVELS for i in range(len(encoded[level]))],
                            sum(batches_per_epoch.values()))}
    else:
        phases = {level: ([(level, i) for i in range(len(encoded[level]))], batches_per_epoch[level])
                  for level in LEVELS}
    keep = {phase: epochs * n_batches for phase, (_, n_batches) in phases.items()}
    if 0 < max_steps < sum(keep.values()):
        keep = share_steps(keep, max_steps)
    plan = []
    for phase, (units, n_batches) in phases.items():
        lengths = [len(encoded[level][i][0]) + len(encoded[level][i][1]) for level, i in units]
        batches = [batch for _ in range(epochs) for batch in length_bucketed_batches(lengths, n_batches, rng)]
        plan += [(phase, [units[j] for j in batch]) for batch in batches[:keep[phase]]]
    return plan


def decision_weights(encoded, weight):
    """{(level, index): extra weight of its first answer token} for every sample that answers a user
    turn, each class (call, text) weighing `weight` x the number of calls in all: text answers are
    rarer, so each counts for more, and answering with the data's call rate, whatever the request,
    no longer pays. Empty when the weight is 0 or the data holds one class only."""
    units = {(level, i): example[2] for level in LEVELS for i, example in enumerate(encoded[level])
             if example[2] is not None}
    n_calls = sum(units.values())
    n_texts = len(units) - n_calls
    if not weight or not n_calls or not n_texts:
        return {}
    return {unit: weight * (1.0 if opens_call else n_calls / n_texts) for unit, opens_call in units.items()}


def share_steps(full, total):
    """Split `total` steps across phases in proportion to their full step counts (largest remainder)."""
    exact = {phase: total * n / sum(full.values()) for phase, n in full.items()}
    shares = {phase: int(x) for phase, x in exact.items()}
    for phase in sorted(exact, key=lambda p: shares[p] - exact[p])[:total - sum(shares.values())]:
        shares[phase] += 1
    return shares


def micro_batches(examples, max_tokens):
    """(prompt, answer, ...) examples of similar length in micro-batches of at most max_tokens padded tokens."""
    lengths = [len(example[0]) + len(example[1]) for example in examples]
    return [[examples[i] for i in batch] for batch in training.micro_batches(lengths, max_tokens)]


# --- the loss -------------------------------------------------------------------------------------

def answer_nll(model, group, pad_id, device, shared=0):
    """(summed -log p of the answer tokens, summed weighted -log p of the first answer token) of a
    micro-batch of (prompt, answer[, decision weight, ...]) examples, the LM head run only at the
    answer positions; the second sum covers the examples with a decision weight (0 without any).

    The first `shared` tokens, which every prompt of the group begins with (the system prompt's
    instructions), run once for all rows (logprobs.prefixed_hidden): the loss and gradient of full
    rows for less compute. Right padding under a causal mask: every pad comes after every real
    token of its row, so no real token attends to one and no attention mask is needed (the pads'
    own outputs are never used).
    """
    input_ids, _, labels = collate([(prompt[shared:], answer) for prompt, answer, *_ in group], pad_id, device)
    hidden = prefixed_hidden(model, group[0][0][:shared], input_ids)
    mask = labels[:, 1:] != IGNORE  # position t-1 predicts token t
    logprobs = chunked_head_logprobs(model, hidden[:, :-1][mask], labels[:, 1:][mask])  # row by row
    weights = [example[2] if len(example) > 2 else 0.0 for example in group]
    if not any(weights):
        return -logprobs.sum(), logprobs.new_zeros(())
    firsts = torch.tensor([0] + [len(example[1]) for example in group[:-1]], device=logprobs.device).cumsum(0)
    return -logprobs.sum(), -(torch.tensor(weights, device=logprobs.device) * logprobs[firsts]).sum()


def rank_share(examples):
    """This rank's samples of a step: dealt out in length order, so every rank gets a similar load."""
    return distributed.shard(sorted(examples, key=lambda e: len(e[0]) + len(e[1])))


def train_step(model, optimizer, scheduler, groups, n_targets, pad_id, device, args, state_path):
    """Forward/backward every micro-batch of a step and update the weights; returns (answer-token
    loss and weighted decision loss, each summed over all ranks, gradient norm before clipping,
    tokens computed once for several rows: a micro-batch's shared prompt head, counted once per row
    it spared).

    `n_targets` counts the answer tokens of the whole step on every rank, so each rank's gradient is
    its share of the step's token mean and summing them gives the single-process update; the
    decision loss is added to the answer-token sum before that division (a sample's decision weighs
    as many answer tokens as its weight says)."""
    total, total_decision, spared, loss_finite = 0.0, 0.0, 0, True
    share = not training.checkpoints_activations(model)  # checkpointed layers would drop the head's cache
    for group in groups:
        shared = common_prefix([example[0] for example in group]) if share and len(group) > 1 else 0
        spared += (len(group) - 1) * shared
        with torch.autocast(device.type, dtype=torch.bfloat16):
            nll, decision = answer_nll(model, group, pad_id, device, shared)
        if not torch.isfinite(nll + decision):  # stop every rank before the update (training.finish_step)
            loss_finite = False
            continue
        ((nll + decision) / n_targets).backward()  # token mean over the whole step, not over this micro-batch
        total, total_decision = total + nll.item(), total_decision + decision.item()
    grad_norm = training.finish_step(optimizer, scheduler, args.max_grad_norm, state_path, loss_finite)
    sums = distributed.all_sum(torch.tensor([total, total_decision, spared], dtype=torch.float64)).tolist()
    return sums[0], sums[1], grad_norm, int(sums[2])


# --- the run --------------------------------------------------------------------------------------

def call_offset(model, tokenizer, path):
    """The call offset (generation.matching_offset) measured on the answers to a user in the
    samples at `path`, and what it does there: the share of them that open a call list in the
    golds, and under greedy before and after the offset."""
    samples = read_jsonl(path)
    check_samples(samples, path)
    samples = [s for s in samples if answers_user(s)]
    is_call = [s.get("kind") == "call" for s in samples]
    model.eval()
    margins = generation.first_token_margins(model, tokenizer, samples)
    offset = generation.matching_offset(margins, is_call)
    if offset is None:
        print(f"--call-offset-samples {path}: {len(samples)} answers to a user, all calls, all text or every "
              "margin alike: no call rate to match, no offset", file=sys.stderr)
        offset = 0.0

    def share(flags):
        return round(sum(flags) / max(1, len(flags)), 4)
    return {"offset": round(offset, 4), "samples": str(path), "answers": len(samples),
            "gold_call_share": share(is_call), "call_share_without": share([m > 0 for m in margins]),
            "call_share_with": share([m + offset > 0 for m in margins])}


def call_gate(model, tokenizer, thirds):
    """The call gate fitted on the warm-up's answers to a user, read from the base model under the
    adapter; with what its fit saw."""
    samples = [s for level in LEVELS for s in thirds[level] if answers_user(s)]
    is_call = [s.get("kind") == "call" for s in samples]
    model.eval()
    layer = gate.default_layer(model)
    with model.disable_adapter():
        X = gate.features(model, tokenizer, samples, layer)
    fitted = gate.fit(X, is_call)
    right = [(s > 0) == c for s, c in zip(gate.score(fitted, X).tolist(), is_call)]
    return fitted, layer, {"texts": is_call.count(False), "calls": is_call.count(True),
                           "fit_accuracy": round(sum(right) / len(right), 4)}


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    state_path = out / "train_state.pt"
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    _, _, device = distributed.init()
    main_rank = distributed.is_main()
    qlora = modeling.use_qlora(args.qlora, device)
    micro_batch_tokens = training.micro_batch_tokens(args, device)
    model_dir = modeling.resolve_model(args.model)
    tokenizer = modeling.load_tokenizer(model_dir)
    if args.call_gate and args.call_offset_samples:
        sys.exit("error: --call-gate and --call-offset-samples both set the answer's first token: choose one")
    try:
        thirds = load_thirds(args.splits_dir)
        encoded, skipped = encode_thirds(tokenizer, thirds, args.max_length)
    except RecordError as e:
        sys.exit(f"error: {e}")
    if skipped and main_rank:
        print(f"skipped {len(skipped)} samples longer than --max-length {args.max_length} tokens "
              f"(e.g. {', '.join(skipped[:5])})", file=sys.stderr)
    plan = plan_steps(encoded, args.curriculum, args.epochs, args.batch_size, args.max_steps, args.seed)
    weights = decision_weights(encoded, args.decision_weight)
    if args.decision_weight and not weights and main_rank:
        print("--decision-weight: no sample answers a user turn with a call, or none with text; the weight has "
              "nothing to balance and is not used", file=sys.stderr)
    phase_ends = {phase: i + 1 for i, (phase, _) in enumerate(plan)}  # step after which each phase is done

    model = training.trainable_model(model_dir, args, device, qlora)
    model.train()
    optimizer = training.make_optimizer(model, args.lr, args.weight_decay)
    scheduler = training.warmup_cosine(optimizer, max(1, round(args.warmup_ratio * len(plan))), len(plan))
    inputs = [Path(args.splits_dir) / f"{level}.jsonl" for level in LEVELS] + [Path(__file__)]
    fingerprint = files.fingerprint({**training.settings(args), "model_dir": model_dir, "qlora": qlora}, inputs)
    state = training.load_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler,
                                fingerprint=fingerprint)
    start = state["step"] if state else 0
    if start and main_rank:
        print(f"resuming from {state_path} at step {start}/{len(plan)}")
    metrics = training.open_metrics(out / "metrics.jsonl", start) if main_rank else None

    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if main_rank:
        print(f"{args.curriculum}: {len(plan)} steps ({', '.join(f'{p} {sum(s[0] == p for s in plan)}' for p in phase_ends)}), "
              f"{n_trainable / 1e6:.2f}M trainable parameters, {'QLoRA' if qlora else 'LoRA'} on {device}"
              f"{f' x {distributed.world_size()} ranks' if distributed.world_size() > 1 else ''}")
    window = {"nll": 0.0, "decision": 0.0, "targets": 0, "tokens": 0, "seconds": 0.0}
    run_tokens, run_spared, run_seconds = 0, 0, 0.0
    progress = tqdm(range(start, len(plan)), initial=start, total=len(plan), desc="warm-up", dynamic_ncols=True,
                    disable=not main_rank)
    for step in progress:
        phase, units = plan[step]
        examples = [(*encoded[level][i][:2], weights.get((level, i), 0.0)) for level, i in units]
        n_targets = sum(len(example[1]) for example in examples)
        n_tokens = sum(len(example[0]) + len(example[1]) for example in examples)
        lr = scheduler.get_last_lr()[0]
        started = time.perf_counter()
        groups = micro_batches(rank_share(examples), micro_batch_tokens)
        nll, decision, grad_norm, spared = train_step(model, optimizer, scheduler, groups, n_targets,
                                                      tokenizer.pad_token_id, device, args, state_path)
        seconds = time.perf_counter() - started
        for key, value in (("nll", nll), ("decision", decision), ("targets", n_targets), ("tokens", n_tokens),
                           ("seconds", seconds)):
            window[key] += value
        if step > start:  # the first step pays one-off allocation costs
            run_tokens, run_spared, run_seconds = run_tokens + n_tokens, run_spared + spared, run_seconds + seconds
        progress.set_postfix(phase=phase, loss=f"{nll / n_targets:.3f}", lr=f"{lr:.1e}", tok_s=f"{n_tokens / seconds:.0f}")

        done = step + 1
        if main_rank and (done % args.log_every == 0 or done == len(plan) or done == phase_ends[phase]):
            training.log_metrics(metrics, {
                "step": done, "phase": phase, "loss": round(window["nll"] / window["targets"], 5),
                **({"decision_loss": round(window["decision"] / window["targets"], 5)} if weights else {}), "lr": lr,
                "grad_norm": round(grad_norm, 4), "tokens_per_s": round(window["tokens"] / window["seconds"], 1),
                "peak_memory_mib": round(training.peak_memory_mib(device))})
            window = dict.fromkeys(window, 0)
        if main_rank and done == phase_ends[phase] and args.curriculum == "easy2hard":
            modeling.save_adapter(model, out / phase)
        if main_rank and (done % args.save_every == 0 or done == phase_ends[phase]):
            training.save_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler, step=done,
                                fingerprint=fingerprint)
    progress.close()
    if not main_rank:
        distributed.finish()
        return
    metrics.close()

    summary = {
        "curriculum": args.curriculum, "steps": len(plan),
        "samples": {level: len(encoded[level]) for level in LEVELS}, "skipped_too_long": len(skipped),
        "tokens_per_s": round(run_tokens / run_seconds, 1) if run_seconds else None,
        # the tokens the decoder ran: a micro-batch's shared prompt head counts once
        "decoder_tokens_per_s": round((run_tokens - run_spared) / run_seconds, 1) if run_seconds else None,
        "peak_memory_mib": round(training.peak_memory_mib(device)), "device": str(device), "qlora": qlora,
    }
    offset_path = out / modeling.CALL_OFFSET_FILE
    if args.call_offset_samples:  # before the weights: an adapter make sees complete has its offset
        try:
            summary["call_offset"] = call_offset(model, tokenizer, args.call_offset_samples)
        except (RecordError, FileNotFoundError) as e:
            sys.exit(f"error: --call-offset-samples: {e}")
        atomic_write_json(offset_path, summary["call_offset"])
        print(f"call offset {summary['call_offset']['offset']:+.3f}: calls on "
              f"{summary['call_offset']['call_share_with']:.1%} of {args.call_offset_samples}'s answers to a user "
              f"(golds {summary['call_offset']['gold_call_share']:.1%}, without it "
              f"{summary['call_offset']['call_share_without']:.1%})")
    else:
        offset_path.unlink(missing_ok=True)  # an earlier run's offset belongs to other weights
    gate_path = out / gate.GATE_FILE
    if args.call_gate:
        try:
            fitted, layer, summary["call_gate"] = call_gate(model, tokenizer, thirds)
        except ValueError as e:
            sys.exit(f"error: --call-gate: {e} in {args.splits_dir}")
        gate.save(gate_path, fitted, layer, summary["call_gate"])
        print(f"call gate (layer {layer}) fitted on {summary['call_gate']['texts']} texts and "
              f"{summary['call_gate']['calls']} calls: {summary['call_gate']['fit_accuracy']:.1%} right on them")
    else:
        gate_path.unlink(missing_ok=True)
    atomic_write_json(out / "summary.json", summary)
    modeling.save_adapter(model, out)  # adapter_model.safetensors last: the file make waits for
    state_path.unlink(missing_ok=True)
    print(f"warm-up adapter -> {out}/ ({summary['tokens_per_s']} tokens/s, peak {summary['peak_memory_mib']} MiB)")
    distributed.finish()


if __name__ == "__main__":
    try:
        main()
    except training.NonFiniteLoss as e:
        sys.exit(f"error: {e}")
