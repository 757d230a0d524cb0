"""Preference pairs as stage 06 trains on them: stage 05's pairs read and tokenised, the pairs that
share a prompt packed into one row, and each pair's summed log-probs from one forward of its row.

Chosen and rejected share their prompt, which is long (tool list, dialogue) while a step is short,
and the search's pairs at one node share it too (one chosen step against several rejected ones).
So the pairs with one prompt are one packed row: the prompt, then each distinct completion, every
completion positioned right after the prompt, and an attention mask that hides the completions
from each other: one forward computes every side and the prompt once, with the result of separate
rows. The prompt head that every row of a micro-batch begins with (the system prompt's
instructions) runs once for all of them (logprobs.prefixed_hidden; not under gradient
checkpointing). The LM head runs only where a completion token is predicted, its log-softmax in
fp32. Rows of similar length are grouped into micro-batches of at most a token budget (a row is
never split).

An encoded pair is (prompt ids, chosen ids, rejected ids); a row is (prompt ids, [completion ids],
[(pair index, chosen completion, rejected completion)]).
"""
import sys

import torch
from tqdm import tqdm

from itool import modeling, training
from itool.files import read_jsonl
from itool.logprobs import additive_masks, common_prefix, head_logprobs, prefixed_hidden
from itool.losses import cut_rejected
from itool.records import RecordError

PAIR_FIELDS = {"id": str, "system": str, "messages": list, "prefix": str, "chosen": str, "rejected": str,
               "chosen_ends": bool, "rejected_ends": bool}
ID_FIELDS = ("prefix_ids", "chosen_ids", "rejected_ids")  # the search's own token ids (optional)
# Each pair is one packed row whose 4-D mask hides chosen and rejected from each other: only kernels
# that apply an arbitrary mask may run it (a flash kernel would let the two see each other).
MASKED_KERNELS = ("eager", "sdpa")


PROMPT, PAD = 0, -1  # segments of a packed row; completion j is segment 1 + j
PAIRS_PER_ROW = 4  # pairs sharing a prompt packed in one row (a row is never split across ranks)


class TooLong(RecordError):
    """A pair longer than --max-length: skipped and counted, never an error."""


# --- reading -------------------------------------------------------------------------------------

def check_pair(pair, where):
    """Raise RecordError, naming `where`, unless `pair` has stage 05's fields (its token ids all or none)."""
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


# --- packing -------------------------------------------------------------------------------------

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


def attention_masks(segments, positions, config, dtype, first_query=0):
    """Additive masks [B, 1, T - first_query, T] for packed rows (logprobs.additive_masks), the
    queries from token `first_query` on (the tokens before it run as a shared prefix).

    A token sees earlier tokens of the prompt and of its own segment: chosen and rejected each
    see the prompt but not each other. Sliding-window layers also drop keys W or more positions
    back, by position, not index, since the rejected tokens reuse the chosen tokens' positions.
    Every token sees itself, so no row of the softmax is empty (not even a pad's).
    """
    index = torch.arange(segments.shape[1], device=segments.device)
    causal = index[None, first_query:, None] >= index[None, None, :]
    query_segment, key_segment = segments[:, first_query:, None], segments[:, None, :]
    visible = causal & ((key_segment == PROMPT) | (key_segment == query_segment))
    return additive_masks(visible, positions[:, first_query:], positions, config, dtype)


def pack(rows, pad_id, config, device, dtype=torch.bfloat16, share=True):
    """One packed row per group of pairs (group_pairs): the prompt, then each completion, every
    completion positioned right after the prompt and seeing only the prompt and itself. Also
    where each completion token is predicted from (the hidden state just before it; the prompt's
    last one for a completion's first token) and which completions each pair compares.

    With `share`, the leading tokens every row's prompt begins with (the system prompt's
    instructions) are left out of the rows as their "head", to run once for all of them
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
    # queries from the rest only; keys from the whole row (the head's from the cache)
    masks = attention_masks(segments, positions, config, dtype, first_query=shared)
    chosen, rejected = torch.tensor(chosen, device=device), torch.tensor(rejected, device=device)
    return {"head": rows[0][0][:shared], "input_ids": input_ids[:, shared:].to(device),
            "positions": positions[:, shared:], "masks": masks,
            "rows": torch.tensor(token_rows, device=device), "sources": torch.tensor(sources, device=device) - shared,
            "targets": torch.tensor(targets, device=device), "slots": torch.tensor(slots, device=device),
            "completions": n_completions, "chosen": chosen, "rejected": rejected, "pair_ids": pair_ids,
            "n_chosen": lengths.to(device)[chosen], "n_rejected": lengths.to(device)[rejected]}


def pair_logprobs(model, batch):
    """Summed log-probs of each pair's chosen and rejected completion: ([P], [P])."""
    hidden = prefixed_hidden(model, batch["head"], batch["input_ids"], batch["masks"], batch["positions"])
    token_logps = head_logprobs(model, hidden[batch["rows"], batch["sources"]], batch["targets"])
    sums = torch.zeros(batch["completions"], dtype=token_logps.dtype, device=token_logps.device)
    sums = sums.index_add(0, batch["slots"], token_logps)
    return sums[batch["chosen"]], sums[batch["rejected"]]


