"""Batched generation over KV caches: what evaluation (greedy) and the search (sampling) share,
down to one rule for where an answer ends (`stop_ids`).

`Rows` is a batch of token sequences that continue independently: they may differ in length and
in where their padding lies, because every cache slot carries its own position (-1 for padding)
and attention masks are built from positions, not slot indices. So rows of different prompts
decode in one batch, a row is forked (`select` with repeats) to sample k continuations of one
state, a finished row is dropped, and the caches of separately prefilled batches are joined
(`Rows.concat`) — all without recomputing a prefix.

Two choices keep decoding bound by the model rather than by copying:
  - the cache appends in place into a buffer with spare room (transformers' DynamicCache copies
    the whole cache at every token), and attention reads the whole buffer, its spare room zeroed
    and masked: a view of the filled slots alone is not contiguous in the batch, and the CPU's
    batched matmul would copy it, keys and values, in every layer at every token;
  - attention runs per key/value head group (GQA) without repeating the keys and values for
    every query head (`grouped_attention`, registered with transformers as "itool_grouped").
The LM head is applied to contiguous hidden states of the rows' last positions only.
"""
import torch
from tqdm import tqdm
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from itool import logprobs, modeling
from itool.logprobs import common_prefix, head_logits


ATTENTION = "itool_grouped"
GROWTH = 64  # slots a SlotLayer's buffer grows by when full


# --- where an answer ends -----------------------------------------------------------------------

def stop_ids(tokenizer):
    """The tokens that end an answer, in greedy and in sampled decoding alike. The turn ends at
    end-of-turn; a model that never learnt the turn format may instead end the document or open
    a new turn, which ends its answer just as well. A token the tokenizer lacks (Llama has no
    <start_of_turn>) is left out."""
    return {modeling.end_of_turn_id(tokenizer), tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids("<start_of_turn>")} - {None, tokenizer.unk_token_id}


# --- attention and cache ------------------------------------------------------------------------

def grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                      **kwargs):
    """Eager attention's arithmetic (bf16 scores, fp32 softmax) with the query heads of a group
    stacked against their shared key/value head instead of repeating keys and values per head.
    query [B, H, q, D], key/value [B, KVH, T, D], attention_mask additive [B, 1, q, T]."""
    batch, heads, q, dim = query.shape
    groups = key.shape[1]
    scaling = module.head_dim ** -0.5 if scaling is None else scaling
    if attention_mask is not None:
        if attention_mask.shape[-1] < key.shape[2]:  # a SlotLayer's spare room: zeros no query sees
            attention_mask = torch.nn.functional.pad(attention_mask, (0, key.shape[2] - attention_mask.shape[-1]),
                                                     value=torch.finfo(attention_mask.dtype).min)
        # keys that no query may see need no scores (a sliding window over a long cache), though a
        # slice is copied: worth it only when it leaves most keys out
        seen = (attention_mask[:, 0] == 0).any(dim=1).any(dim=0).nonzero()[:, 0]
        first, last = seen[0].item(), seen[-1].item() + 1
        if 2 * (last - first) <= key.shape[2]:
            key, value = key[:, :, first:last], value[:, :, first:last]
            attention_mask = attention_mask[..., first:last]
    grouped = query.reshape(batch, groups, (heads // groups) * q, dim)
    # keys on the left: a slice of the cache buffer is then read as it lies (as the right operand,
    # transposed, it would be copied into a contiguous tensor for every layer and token)
    scores = torch.matmul(key, grouped.transpose(2, 3)).transpose(2, 3) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores.reshape(batch, groups, heads // groups, q, -1)
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, None]
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights.view(batch, groups, (heads // groups) * q, -1), value)
    return out.view(batch, heads, q, -1).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, grouped_attention)
# A forward that is not given Rows' masks (a plain full-sequence pass) gets eager's additive causal
# mask: transformers hands an attention it does not know no mask at all.
AttentionMaskInterface.register(ATTENTION, eager_mask)


class SlotLayer(DynamicLayer):
    """A cache layer that writes new keys and values into a buffer with spare room: appending a
    token copies one token, not the whole cache. `keys` and `values` are views of the filled slots;
    `update` (the model's attention) gets the whole buffers, whose spare room holds zeros, for
    `grouped_attention` to mask (Rows' masks span the filled slots only)."""

    def __init__(self, keys=None, values=None, capacity=0):
        super().__init__()
        self.length = 0
        if keys is not None:
            self.lazy_initialization(keys, values)
            self.length = keys.shape[2]
            self._allocate(keys.shape[0], keys.shape[1], max(capacity, self.length), keys.shape[3])
            self.key_buffer[:, :, :self.length] = keys
            self.value_buffer[:, :, :self.length] = values
            self._publish()

    def _allocate(self, batch, heads, capacity, dim):
        # zeros: masked slots are still multiplied (by a weight of 0), and uninitialised memory may hold NaN
        self.key_buffer = torch.zeros(batch, heads, capacity, dim, dtype=self.dtype, device=self.device)
        self.value_buffer = torch.zeros_like(self.key_buffer)

    def _publish(self):
        self.keys = self.key_buffer[:, :, :self.length]
        self.values = self.value_buffer[:, :, :self.length]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._allocate(key_states.shape[0], key_states.shape[1], 0, key_states.shape[3])
        end = self.length + key_states.shape[2]
        if end > self.key_buffer.shape[2]:
            # grow by a fixed number of slots: attention reads the spare room too, and one copy of
            # the cache per GROWTH tokens is little next to attention reading all of it at every token
            old_keys, old_values = self.key_buffer, self.value_buffer
            self._allocate(old_keys.shape[0], old_keys.shape[1], max(end, old_keys.shape[2] + GROWTH),
                           old_keys.shape[3])
            self.key_buffer[:, :, :self.length] = old_keys[:, :, :self.length]
            self.value_buffer[:, :, :self.length] = old_values[:, :, :self.length]
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self._publish()
        return self.key_buffer, self.value_buffer

    def get_seq_length(self):
        return self.length


def use_grouped_attention(model):
    """Switch the model to the attention that `Rows` relies on (its masks are additive 4-D)."""
    modeling.unwrap(model).set_attn_implementation(ATTENTION)


# --- rows ---------------------------------------------------------------------------------------

class Rows:
    """The KV cache of a batch of rows, with the position of every cache slot (-1: padding)."""

    def __init__(self, model, layers, positions):
        self.model, self.layers, self.positions = model, layers, positions

    @classmethod
    def empty(cls, model, batch):
        base = modeling.unwrap(model)
        device = next(base.parameters()).device
        layers = [SlotLayer() for _ in range(base.config.get_text_config().num_hidden_layers)]
        return cls(model, layers, torch.empty(batch, 0, dtype=torch.long, device=device))

    def __len__(self):
        return self.positions.shape[0]

    @property
    def next_positions(self):
        """The position each row's next token takes."""
        return self.positions.max(dim=1).values + 1 if self.positions.shape[1] else \
            torch.zeros(len(self), dtype=torch.long, device=self.positions.device)

    def extend(self, token_lists, pad_id=0, chunk_tokens=2048):
        """Feed each row its list of tokens (lengths may differ; a list may be empty) and return
        the hidden states [B, q, H]: row b's j-th token's state is at [b, j]. Long inputs run in
        pieces of about `chunk_tokens` tokens over all rows, since attention scores grow with
        query length × cache length."""
        width = max(map(len, token_lists))
        step = max(64, chunk_tokens // len(self))
        if width <= step:
            return self._extend(token_lists, pad_id)
        return torch.cat([self._extend([t[start:start + step] for t in token_lists], pad_id)
                          for start in range(0, width, step)], dim=1)

    def _extend(self, token_lists, pad_id):
        width = max(map(len, token_lists))
        device = self.positions.device
        ids = torch.full((len(self), width), pad_id, dtype=torch.long, device=device)
        new = torch.full((len(self), width), -1, dtype=torch.long, device=device)
        start = self.next_positions
        for row, tokens in enumerate(token_lists):
            if tokens:
                ids[row, :len(tokens)] = torch.tensor(tokens, device=device)
                new[row, :len(tokens)] = start[row] + torch.arange(len(tokens), device=device)
        positions = torch.cat([self.positions, new], dim=1)
        masks = self.attention_masks(new, positions)
        cache = DynamicCache()
        cache.layers = self.layers
        hidden = modeling.unwrap(self.model).get_decoder()(
            input_ids=ids, attention_mask=masks, position_ids=new.clamp(min=0), past_key_values=cache,
            use_cache=True).last_hidden_state
        self.positions = positions
        return hidden

    def attention_masks(self, query_positions, key_positions):
        """Additive masks [B, 1, q, T]: a real query sees the real keys at or before its position
        (and, in sliding-window layers, fewer than `sliding_window` positions back); a padding
        query sees only itself, so no softmax row is empty."""
        config = modeling.unwrap(self.model).config.get_text_config()
        dtype = next(modeling.unwrap(self.model).parameters()).dtype
        if not dtype.is_floating_point:  # a 4-bit base: its compute dtype
            dtype = torch.bfloat16
        q, keys = query_positions[:, :, None], key_positions[:, None, :]
        width = key_positions.shape[1]
        slots = torch.arange(width - query_positions.shape[1], width, device=q.device)
        own = slots[:, None] == torch.arange(width, device=q.device)[None, :]
        pads = query_positions[:, :, None] < 0
        visible = ((keys >= 0) & (keys <= q)) | (pads & own)
        return logprobs.additive_masks(visible, query_positions, key_positions, config, dtype)

    def select(self, indices):
        """A new Rows of the given rows (repeats allowed: forks share nothing afterwards)."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.positions.device)
        layers = [SlotLayer(layer.keys.index_select(0, index), layer.values.index_select(0, index),
                            capacity=layer.length + GROWTH) if layer.is_initialized else SlotLayer()
                  for layer in self.layers]
        return Rows(self.model, layers, self.positions.index_select(0, index))

    @classmethod
    def concat(cls, parts):
        """One Rows of several (slot counts may differ: the shorter ones get padding slots)."""
        width = max(p.positions.shape[1] for p in parts)

        def padded(tensor, fill):
            extra = width - tensor.shape[2 if tensor.dim() == 4 else 1]
            if not extra:
                return tensor
            shape = list(tensor.shape)
            shape[2 if tensor.dim() == 4 else 1] = extra
            return torch.cat([tensor, torch.full(shape, fill, dtype=tensor.dtype, device=tensor.device)],
                             dim=2 if tensor.dim() == 4 else 1)

        layers = []
        for i in range(len(parts[0].layers)):
            keys = torch.cat([padded(p.layers[i].keys, 0) for p in parts])
            values = torch.cat([padded(p.layers[i].values, 0) for p in parts])
            layers.append(SlotLayer(keys, values, capacity=width + GROWTH))
        positions = torch.cat([padded(p.positions, -1) for p in parts])
        return cls(parts[0].model, layers, positions)


def greedy_tokens(model, hidden):
    """argmax of the LM head for each row of hidden [B, H]: the head weight [V, H] as the left
    operand (it streams through memory once; the product's argmax needs no softcap, which is
    monotone, and no fp32 copy of [B, V] logits)."""
    weight = modeling.unwrap(model).get_output_embeddings().weight
    return torch.matmul(weight, hidden.to(weight.dtype).t()).argmax(dim=0)


def offset_tokens(model, hidden, call_ids, offsets):
    """greedy_tokens with offsets[row] added to the logits of the tokens in `call_ids` (those that
    open a call list): the call-or-text decision of an answer's first token, its threshold moved."""
    logits = head_logits(model, hidden)
    logits[:, call_ids] += torch.tensor(offsets, device=logits.device)[:, None]
    return logits.argmax(dim=-1)


def call_margins(logits, call_ids):
    """[B]: the best call-opening logit minus the best other logit, from logits [B, V]. Greedy
    opens a call list where it is over 0, and over -offset with the offset added."""
    is_call = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    is_call[call_ids] = True
    return logits[:, is_call].max(dim=-1).values - logits[:, ~is_call].max(dim=-1).values


def last_hidden(hidden, token_lists):
    """[B, H] contiguous: each row's hidden state after its last fed token."""
    index = torch.tensor([len(t) - 1 for t in token_lists], device=hidden.device)
    return hidden[torch.arange(len(token_lists), device=hidden.device), index].contiguous()


def prefill(model, prompts, pad_id=0, max_tokens=2048):
    """Rows holding the given prompts, and each row's last hidden state [B, H].

    The prefix all prompts share (the instructions of a system prompt) is computed once and forked
    into every row; the rest runs in length-sorted chunks of at most `max_tokens` padded tokens
    (similar lengths waste little on padding), then the chunks are joined. The rows keep the
    order of `prompts`."""
    shared = common_prefix(prompts) if len(prompts) > 1 else 0
    root = Rows.empty(model, 1)
    if shared:
        root.extend([prompts[0][:shared]], pad_id)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    parts, lasts, chunk = [], [], []

    def run(chunk):
        rows = root.select([0] * len(chunk))
        suffixes = [prompts[i][shared:] for i in chunk]
        parts.append(rows)
        lasts.append(last_hidden(rows.extend(suffixes, pad_id), suffixes))

    for i in order:
        if chunk and (len(chunk) + 1) * (len(prompts[i]) - shared) > max_tokens:
            run(chunk)
            chunk = []
        chunk.append(i)
    run(chunk)
    rows = Rows.concat(parts) if len(parts) > 1 else parts[0]
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return rows.select(inverse.tolist()), torch.cat(lasts)[inverse.to(lasts[0].device)]


@torch.inference_mode()
def first_answer_logits(model, tokenizer, samples, desc):
    """fp32 logits [1, V] at the first answer token of each sample (its prompt in the training
    layout), one at a time: one plain forward each, the head at the last position only, so any
    model serves, LoRA merged or not, in training or not."""
    device = next(model.parameters()).device
    for sample in tqdm(samples, desc=desc, unit="answer", dynamic_ncols=True):
        ids = modeling.encode_prompt(tokenizer, sample["system"], sample["messages"])
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield model(input_ids=torch.tensor([ids], device=device), logits_to_keep=1).logits[:, -1].float()


def first_token_margins(model, tokenizer, samples):
    """call_margins at the first answer token of each sample."""
    call_ids = modeling.call_start_ids(tokenizer)
    return [call_margins(logits, call_ids).item()
            for logits in first_answer_logits(model, tokenizer, samples, "call offset")]


def matching_offset(margins, is_call):
    """The call offset under which greedy opens a call list for as many of these answers as the
    golds do (the offset moves every margin alike, so it sets how many are over 0, not which):
    halfway between two neighbouring margins, at the cut whose count above it is nearest the
    golds' calls (bf16 logits tie often, and tied margins fall on one side together). None where
    the golds are all calls or all text, or every margin is the same: no rate to match."""
    n_calls = sum(is_call)
    ordered = sorted(margins)
    cuts = [(abs(len(ordered) - i - n_calls), -(ordered[i - 1] + ordered[i]) / 2)
            for i in range(1, len(ordered)) if ordered[i] > ordered[i - 1]]
    if not 0 < n_calls < len(is_call) or not cuts:
        return None
    return min(cuts)[1]


class PrefixCache:
    """Prefilled prompts kept for a later prompt that extends one: a multi-turn dialogue's next
    step is its last prompt plus the answer and the tool's result, and re-reading the whole
    dialogue (thousands of tokens of tool docs) at every step would cost far more than the step.
    Only prompts of at least `min_tokens` are kept, at most `max_tokens` tokens in all (the
    least recently used go first); a prompt that a newer one extends is dropped."""

    def __init__(self, min_tokens=1024, max_tokens=131072):
        self.min_tokens, self.max_tokens = min_tokens, max_tokens
        self.entries = {}  # tuple of token ids -> Rows of one row, in least- to most-recent order

    def longest(self, prompt):
        """The longest kept prompt that is a proper prefix of `prompt`, or None."""
        found = [ids for ids in self.entries if len(ids) < len(prompt) and tuple(prompt[:len(ids)]) == ids]
        if not found:
            return None
        ids = max(found, key=len)
        self.entries[ids] = self.entries.pop(ids)  # most recently used
        return ids

    def add(self, prompt, rows):
        prompt = tuple(prompt)
        if len(prompt) < self.min_tokens:
            return
        for ids in [ids for ids in self.entries if prompt[:len(ids)] == ids]:
            del self.entries[ids]
        self.entries[prompt] = rows
        while sum(map(len, self.entries)) > self.max_tokens and len(self.entries) > 1:
            del self.entries[next(iter(self.entries))]


def prefill_cached(model, prompts, pad_id, cache):
    """prefill, continuing from `cache` (a PrefixCache) the prompts that extend a kept one, and
    keeping the long ones for their own continuations."""
    if cache is None:
        return prefill(model, prompts, pad_id)
    kept = [cache.longest(p) for p in prompts]
    fresh = [i for i, ids in enumerate(kept) if ids is None]
    resumed = [i for i, ids in enumerate(kept) if ids is not None]
    parts, lasts = [], []
    if fresh:
        rows, last = prefill(model, [prompts[i] for i in fresh], pad_id)
        parts.append(rows)
        lasts.append(last)
    if resumed:
        rows = Rows.concat([cache.entries[kept[i]] for i in resumed])
        rests = [prompts[i][len(kept[i]):] for i in resumed]
        parts.append(rows)
        lasts.append(last_hidden(rows.extend(rests, pad_id), rests))
    order = fresh + resumed
    inverse = [order.index(i) for i in range(len(prompts))]
    rows = (Rows.concat(parts) if len(parts) > 1 else parts[0]).select(inverse)
    for i, prompt in enumerate(prompts):
        if len(prompt) >= cache.min_tokens:
            cache.add(prompt, rows.select([i]))
    return rows, torch.cat(lasts)[torch.tensor(inverse, device=lasts[0].device)]


# --- greedy decoding ------------------------------------------------------------------------------

@torch.inference_mode()
def greedy(model, prompts, stop_ids, max_new_tokens, pad_id=0, batch_size=32, compact=0.75, cache=None,
           call_ids=(), offsets=None):
    """Greedy continuations (token ids, stop token excluded) of each prompt's token ids; `cache`
    (a PrefixCache) carries long prompts over to the calls whose prompts extend them. `offsets`
    (one per prompt, or None) move each answer's first token towards (> 0) or away from (< 0)
    the tokens in `call_ids` (offset_tokens).

    A pool of at most `batch_size` rows decodes together. Rows that stop leave it (the cache is
    compacted once the running rows fall to `compact` of the pool: each compaction copies the
    cache, so not at every finished row), and once half the pool has left, the next prompts are
    prefilled and join, so that one long answer does not keep a nearly empty batch decoding."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)  # popped shortest first
    outputs = [[] for _ in prompts]
    running, rows, hidden = [], None, None  # prompt index of each row of `rows`; its next input state
    alive = [False] * len(prompts)
    while True:
        live = [row for row, index in enumerate(running) if alive[index]]
        if order and len(live) <= batch_size // 2:
            joining = [order.pop() for _ in range(min(batch_size - len(live), len(order)))]
            new_rows, new_hidden = prefill_cached(model, [prompts[i] for i in joining], pad_id, cache)
            if live:
                rows = Rows.concat([rows.select(live), new_rows])
                hidden = torch.cat([hidden[live], new_hidden])
            else:
                rows, hidden = new_rows, new_hidden
            running = [running[row] for row in live] + joining
            for index in joining:
                alive[index] = True
        elif not live:
            return outputs
        elif len(live) <= compact * len(running):
            rows, hidden, running = rows.select(live), hidden[live], [running[row] for row in live]
        tokens = greedy_tokens(model, hidden)
        if offsets is not None:
            first = [row for row, index in enumerate(running) if alive[index] and not outputs[index] and offsets[index]]
            if first:
                tokens[first] = offset_tokens(model, hidden[first], list(call_ids),
                                              [offsets[running[row]] for row in first])
        stops = torch.isin(tokens, torch.tensor(sorted(stop_ids), device=tokens.device)).tolist()
        for index, token, stop in zip(running, tokens.tolist(), stops):
            if not alive[index]:
                continue
            if stop:
                alive[index] = False
            else:
                outputs[index].append(token)
                alive[index] = len(outputs[index]) < max_new_tokens
        if any(alive[index] for index in running):
            hidden = rows.extend([[t] for t in tokens.tolist()], pad_id)[:, -1].contiguous()


# --- sampled decoding: a pool of rows, each drawing from its own generator -------------------------

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


def continue_rows(rows, last, index, feeds, pad_id=0):
    """[B, H]: each row's hidden state after its feed; a row fed nothing keeps `last[index[row]]`,
    the last state of the prompt it was forked from."""
    if not any(feeds):
        return last[torch.tensor(index, device=last.device)]
    hidden = rows.extend(feeds, pad_id)
    return torch.stack([hidden[row, len(feed) - 1] if feed else last[i]
                        for row, (i, feed) in enumerate(zip(index, feeds))])


def join_pool(pool, rows, hidden, states):
    """A decoding pool, {"rows", "hidden", "states"} (or None), with new rows after the ones still
    running. A state is the caller's dict for its row, holding at least "done" and "generator"."""
    if pool is None:
        return {"rows": rows, "hidden": hidden, "states": states}
    live = [row for row, state in enumerate(pool["states"]) if not state["done"]]
    return {"rows": Rows.concat([pool["rows"].select(live), rows]),
            "hidden": torch.cat([pool["hidden"][live], hidden]),
            "states": [pool["states"][row] for row in live] + states}


@torch.inference_mode()
def sample_round(model, pool, sampling, take, pad_id=0, compact=0.75):
    """One sampled token for every running row of `pool` (each from its state's own generator),
    handed in row order to take(state, token, log-prob), which marks the row done where it ends;
    then the running rows are fed their tokens. Finished rows leave once the running ones fall to
    `compact` of the pool (each compaction copies the cache, so not at every finished row).
    `sampling` holds sample_tokens' settings. Returns (rows that drew a token, rows running)."""
    logits = head_logits(model, pool["hidden"])
    active = [row for row, state in enumerate(pool["states"]) if not state["done"]]
    tokens = torch.zeros(len(pool["states"]), dtype=torch.long, device=logits.device)
    index = torch.tensor(active, device=logits.device)
    tokens[index] = sample_tokens(logits[index], [pool["states"][row]["generator"] for row in active], **sampling)
    # log p(token) = logit - log Z, for every row at once: no [rows, vocab] log-softmax
    token_logps = (logits.gather(1, tokens[:, None])[:, 0] - logits.logsumexp(dim=-1)).tolist()
    token_ids = tokens.tolist()
    for row in active:
        take(pool["states"][row], token_ids[row], token_logps[row])
    running = [row for row, state in enumerate(pool["states"]) if not state["done"]]
    if running and len(running) <= compact * len(pool["states"]):
        pool.update(rows=pool["rows"].select(running), hidden=pool["hidden"][running],
                    states=[pool["states"][row] for row in running])
        tokens = tokens[running]
    if running:
        pool["hidden"] = pool["rows"].extend([[t] for t in tokens.tolist()], pad_id)[:, -1].contiguous()
    return len(active), len(running)
