"""Stage 03 (make iterate): the replay buffer of iteration K, every RL sample scored by policy K-1.

The score is the perplexity of the gold answer y under the policy (paper Eq. 4),

    h = P(y | q, T) ^ (-1/n) = exp(-(1/n) Σ_t log p(y_t | q, T, y_<t)),

over the n answer tokens, end-of-turn included (the tokens SFT trains on). Stage 04 keeps the
samples with the highest h.

Speed. Tool prompts are long and answers short, and Gemma's LM head spans a 262k vocabulary, so
  - the adapter is merged into the weights (the policy is frozen here: one matmul per layer, not
    three; not with QLoRA, whose 4-bit weights cannot take it);
  - the head runs only at the answer positions, never over the prompt, over vocabulary chunks
    (logprobs.chunked_head_logprobs: no [answer tokens × 262k] logits in fp32);
  - shared prompt prefixes are computed once: the leading tokens every sample shares (the
    system instructions) are prefilled once and their KV cache forked, and the samples of one
    multi-turn conversation (same tools, same first turns) share their common prefix too
    (47 % of all tokens of the embedded run's RL split are computed once instead of many times);
  - the remaining suffixes run in right-padded batches of similar length, at most --micro-batch-tokens
    padded tokens each (no attention mask needed: causal attention never looks right).
--naive scores one sample at a time with full-vocabulary logits at every position: the benchmark
baseline (make bench); it gives the same numbers up to bf16 rounding.

Outputs: --out (buffer.jsonl), one row per sample in input order: {"id", "perplexity", "length"}
(length = n); buffer_stats.json beside it (samples/s, tokens/s, perplexity range).
Under torchrun each rank scores its shard and rank 0 writes the merged buffer.
"""
import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import DynamicCache

from itool import distributed, modeling, training
from itool.files import atomic_write_json, read_jsonl, write_jsonl
from itool.logprobs import cached_hidden, chunked_head_logprobs, common_prefix, fork_cache
from itool.records import RecordError, check_samples


def plan(encoded, conversations, batch_tokens):
    """(root, [(shared prefix length, sample indices)]): `root` tokens are common to all samples;
    each multi-turn conversation shares its own longer prefix; the other samples are batched by
    length on the root alone."""
    root = common_prefix([prompt for prompt, _ in encoded])
    groups = defaultdict(list)
    for i, conversation in enumerate(conversations):
        groups[conversation].append(i)
    units, loose = [], []
    for members in groups.values():
        shared = common_prefix([encoded[i][0] for i in members])
        if len(members) > 1 and shared > root:
            units.append((shared, members))
        else:
            loose += members
    if loose:
        units.append((root, loose))
    batches = []
    for shared, members in units:
        lengths = [len(encoded[i][0]) + len(encoded[i][1]) - shared for i in members]
        batches += [(shared, [members[j] for j in batch]) for batch in training.micro_batches(lengths, batch_tokens)]
    return root, batches


@torch.inference_mode()
def batched_logprobs(model, encoded, conversations, pad_id, batch_tokens, device, progress):
    """(sum of answer log-probs, answer tokens) per (prompt, completion) pair, in input order."""
    if not encoded:  # a rank with no share of the samples
        return []
    sequences = [prompt + completion for prompt, completion in encoded]
    root, batches = plan(encoded, conversations, batch_tokens)
    root_cache = DynamicCache(config=model.config)
    if root:
        cached_hidden(model, torch.tensor([sequences[0][:root]], device=device), root_cache)
    results = [None] * len(encoded)
    prefix, prefix_cache = None, None
    for shared, batch in batches:
        if sequences[batch[0]][:shared] != prefix:  # the first batch of a conversation (or of the rest)
            prefix, prefix_cache = sequences[batch[0]][:shared], fork_cache(root_cache)
            if shared > root:
                cached_hidden(model, torch.tensor([prefix[root:]], device=device), prefix_cache)
        suffixes = [sequences[i][shared:] for i in batch]
        width = max(map(len, suffixes))
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in suffixes], device=device)
        hidden = cached_hidden(model, input_ids, fork_cache(prefix_cache, len(batch)))
        # suffix position j predicts sequence token shared + j + 1; the answer starts at len(prompt)
        starts = [len(encoded[i][0]) - shared - 1 for i in batch]
        answer_hidden = torch.cat([hidden[row, start:start + len(encoded[i][1])]
                                   for row, (i, start) in enumerate(zip(batch, starts))])
        targets = torch.tensor([t for i in batch for t in encoded[i][1]], device=device)
        token_logps = chunked_head_logprobs(model, answer_hidden, targets)
        for i, logps in zip(batch, token_logps.split([len(encoded[i][1]) for i in batch])):
            results[i] = (logps.sum().item(), len(logps))
        progress.update(len(batch))
    return results


@torch.inference_mode()
def naive_logprobs(model, encoded, device, progress):
    """The baseline: batch 1, logits over the whole vocabulary at every position."""
    results = []
    for prompt, completion in encoded:
        ids = torch.tensor([prompt + completion], device=device)
        logps = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)[0]
        targets = ids[0, len(prompt):]
        token_logps = logps[len(prompt) - 1:-1].gather(1, targets[:, None])
        results.append((token_logps.sum().item(), len(completion)))
        progress.update(1)
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modeling.add_model_flags(parser, adapter_help="adapter dir of the policy (default: the bare base model)")
    parser.add_argument("--samples", required=True, help="the RL split, rl.jsonl")
    parser.add_argument("--out", required=True, help="buffer.jsonl")
    parser.add_argument("--micro-batch-tokens", type=int, default=4096,
                        help="padded tokens per forward pass (beyond the shared prefixes)")
    parser.add_argument("--naive", action="store_true", help="benchmark baseline: batch 1, full logits")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _, _, device = distributed.init()
    try:
        samples = read_jsonl(args.samples)
        check_samples(samples, args.samples)
        modeling.check_adapter(args.adapter)
    except (RecordError, OSError) as e:
        sys.exit(f"error: {e}")

    tokenizer, model = modeling.load_policy(args, device)
    eot_id = modeling.end_of_turn_id(tokenizer)

    mine = distributed.shard(samples)
    encoded = [modeling.encode_sample(tokenizer, s, eot_id) for s in mine]
    start = time.perf_counter()
    with tqdm(total=len(mine), desc="perplexity", unit="sample", disable=not distributed.is_main()) as progress:
        if args.naive:
            scores = naive_logprobs(model, encoded, device, progress)
        else:
            conversations = [s.get("conversation", s["id"]) for s in mine]
            scores = batched_logprobs(model, encoded, conversations, tokenizer.pad_token_id, args.micro_batch_tokens,
                                      device, progress)
    seconds = time.perf_counter() - start
    rows = [{"id": s["id"], "perplexity": math.exp(-total / n), "length": n} for s, (total, n) in zip(mine, scores)]
    tokens = sum(len(p) + len(c) for p, c in encoded)

    gathered = distributed.gather((rows, tokens, seconds))
    if distributed.is_main():
        by_id = {row["id"]: row for part, _, _ in gathered for row in part}
        rows = [by_id[s["id"]] for s in samples]
        tokens = sum(t for _, t, _ in gathered)
        seconds = max(s for _, _, s in gathered)
        out = Path(args.out)
        perplexities = sorted(row["perplexity"] for row in rows)
        atomic_write_json(out.with_name("buffer_stats.json"), {
            "samples": len(rows), "naive": args.naive, "seconds": round(seconds, 2),
            "samples_per_s": round(len(rows) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "perplexity": {"min": perplexities[0], "median": perplexities[len(rows) // 2], "max": perplexities[-1]}})
        write_jsonl(out, rows)  # last: it is make's target
        print(f"{len(rows)} samples scored in {seconds:.1f} s ({len(rows) / seconds:.2f} samples/s, "
              f"median perplexity {perplexities[len(rows) // 2]:.3g}) -> {out}")
    distributed.finish()


if __name__ == "__main__":
    main()
