"""Log-probabilities of answer tokens, with the LM head applied only where they are needed.

Tool prompts are long and answers short, and Gemma's head spans a 262k vocabulary: running it on
every position would dominate the cost of a step. So the decoder runs on the whole sequence and
the head only on the hidden states that predict a target token; and the prompt head that the rows
of a batch share (the system prompt's instructions) may run once for all of them (prefixed_hidden).

The masks of rows that carry their own positions (packed pairs, decoding rows) are built here too
(additive_masks), for one rule over sliding windows.

Labels follow the input: labels[b, t] = input_ids[b, t] where token t is a target, else IGNORE.
"""
import copy

import torch
from transformers import DynamicCache

from itool.modeling import unwrap

IGNORE = -100


def decoder_hidden(model, input_ids, attention_mask=None, position_ids=None):
    """Last hidden states [B, T, H] from the decoder stack, without the LM head.

    attention_mask may also be a prepared 4D mask (or, for models with sliding-window layers, a
    dict of them by layer type) with matching position_ids: several sequences packed in one row.
    """
    return unwrap(model).get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                        position_ids=position_ids, use_cache=False).last_hidden_state


def head_logits(model, hidden):
    """Logits over the vocabulary [..., V] in fp32 from hidden states [..., H] (with the model's
    final soft-capping, if any)."""
    base = unwrap(model)
    logits = base.get_output_embeddings()(hidden).float()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def head_logprobs(model, hidden, targets):
    """log p(targets) from hidden states [N, H] predicting them, computed in fp32."""
    return -torch.nn.functional.cross_entropy(head_logits(model, hidden), targets, reduction="none")


def cached_hidden(model, input_ids, cache, attention_mask=None, position_ids=None):
    """Last hidden states [B, T, H] of `input_ids` continuing the sequences whose keys and values
    `cache` holds (a transformers Cache, e.g. DynamicCache(config=model.config) to start one).
    The cache is extended in place. Without a mask rows are not masked: pad a batch on the right
    only. A given mask spans the cache's keys and the new ones."""
    return unwrap(model).get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                        past_key_values=cache, use_cache=True).last_hidden_state


def additive_masks(visible, query_positions, key_positions, config, dtype):
    """Additive attention masks [B, 1, q, T] (0 = may attend, the dtype's minimum = may not) from a
    boolean visibility [B, q, T], for rows whose tokens carry their own positions (packed or padded
    rows reuse positions, so slot indices do not tell distances). The eager and sdpa kernels take
    them as they are.

    A model with sliding-window layers gets a dict by layer type: its sliding-window layers also
    hide the keys `sliding_window` or more positions behind the query. The caller makes sure every
    query sees at least itself, so that no row of the softmax is empty."""
    def additive(allowed):
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)[:, None]

    if "sliding_attention" not in (getattr(config, "layer_types", None) or ()):
        return additive(visible)
    near = query_positions[:, :, None] - key_positions[:, None, :] < config.sliding_window
    return {"full_attention": additive(visible), "sliding_attention": additive(visible & near)}


def common_prefix(prompts):
    """Length of the token prefix every prompt shares, short of each prompt's last token (whose
    hidden state each row needs of its own)."""
    limit = min(map(len, prompts)) - 1
    n = 0
    while n < limit and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


def prefixed_hidden(model, prefix, input_ids, attention_mask=None, position_ids=None):
    """decoder_hidden of rows that all begin with the tokens `prefix`, given the rest of each row in
    input_ids [B, T] (and, for packed rows, a prepared mask over prefix + rest and the rest's
    positions): the prefix runs once and its keys and values serve every row.

    It takes gradients: the rows' gradients at the prefix's keys and values add up in its one
    computation, so loss and gradient are those of the full rows (the decoder must not checkpoint
    activations, which drops the cache). The cache keeps every key, sliding-window layers too, so
    that a prepared mask spans them all; the mask hides the ones out of the window."""
    if not prefix:
        return decoder_hidden(model, input_ids, attention_mask, position_ids)
    cache = DynamicCache()  # without the config: plain layers, none cut to the sliding window
    cached_hidden(model, torch.tensor([list(prefix)], device=input_ids.device), cache)
    cache.batch_repeat_interleave(input_ids.shape[0])
    return cached_hidden(model, input_ids, cache, attention_mask, position_ids)


def fork_cache(cache, rows=1):
    """An independent copy of a DynamicCache, its batch repeated `rows` times. Cache layers replace
    their tensors when they grow (torch.cat) instead of writing into them, so the copy shares the
    original's tensors until then: forking copies no keys or values of a one-row prefix."""
    forked = copy.copy(cache)
    forked.layers = [copy.copy(layer) for layer in cache.layers]
    if rows > 1:
        forked.batch_repeat_interleave(rows)
    return forked


def chunked_head_logprobs(model, hidden, targets, chunk=32768):
    """head_logprobs (same values, fp32) computed over vocabulary chunks of `chunk` columns.

    The full [N, V] logits never exist: the forward keeps a running log-sum-exp, the backward
    recomputes each chunk's logits. Per target that saves ~8 passes over 1 MB of fp32 logits
    (Gemma's 262k vocabulary) and their page-faulted allocations, for one more head matmul; on
    the CPU it runs the head ~30 % faster. Needs a frozen head without bias (LoRA leaves it so).
    """
    head = unwrap(model).get_output_embeddings()
    if head.weight.requires_grad or getattr(head, "bias", None) is not None:
        return head_logprobs(model, hidden, targets)
    softcap = getattr(unwrap(model).config, "final_logit_softcapping", None)
    return _ChunkedHeadLogprobs.apply(hidden, head.weight, targets, softcap, chunk)


class _ChunkedHeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk):
        ctx.hidden_dtype = hidden.dtype
        hidden = hidden.to(weight.dtype)
        lse = torch.full(targets.shape, float("-inf"), device=hidden.device)
        target_logits = torch.empty(targets.shape, device=hidden.device)
        for start in range(0, weight.shape[0], chunk):
            logits = _capped((hidden @ weight[start:start + chunk].t()).float(), softcap)
            lse = torch.logaddexp(lse, torch.logsumexp(logits, -1))
            rows = ((targets >= start) & (targets < start + chunk)).nonzero()[:, 0]
            target_logits[rows] = logits[rows, targets[rows] - start]
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.softcap, ctx.chunk = softcap, chunk
        return target_logits - lse

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, targets, lse = ctx.saved_tensors
        grad_hidden = torch.zeros(hidden.shape, device=hidden.device)
        for start in range(0, weight.shape[0], ctx.chunk):
            w = weight[start:start + ctx.chunk]
            logits = _capped((hidden @ w.t()).float(), ctx.softcap)
            # d log p(target) / d logits = onehot(target) - softmax, times the incoming gradient
            d_logits = (logits - lse[:, None]).exp_().mul_(-grad[:, None])
            rows = ((targets >= start) & (targets < start + ctx.chunk)).nonzero()[:, 0]
            d_logits[rows, targets[rows] - start] += grad[rows]
            if ctx.softcap:  # logits = c·tanh(z/c), so dz = dlogits · (1 - (logits/c)²)
                d_logits.mul_(1 - (logits / ctx.softcap) ** 2)
            grad_hidden += (d_logits.to(w.dtype) @ w).float()
        return grad_hidden.to(ctx.hidden_dtype), None, None, None, None


def _capped(logits, softcap):
    return torch.tanh(logits / softcap) * softcap if softcap else logits


def target_logprobs(model, input_ids, attention_mask, labels, head=head_logprobs):
    """Per-token log-probs of the target tokens, flattened [N], and the row each belongs to [N].
    `head` maps (model, hidden [N, H], targets [N]) to log-probs: head_logprobs or chunked_head_logprobs."""
    hidden = decoder_hidden(model, input_ids, attention_mask)
    mask = labels[:, 1:] != IGNORE  # position t-1 predicts token t
    token_logps = head(model, hidden[:, :-1][mask], labels[:, 1:][mask])
    rows = mask.nonzero()[:, 0]
    return token_logps, rows


def collate(examples, pad_id, device=None):
    """Right-padded (input_ids, attention_mask, labels) from (prompt_ids, completion_ids) pairs."""
    width = max(len(p) + len(c) for p, c in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (prompt, completion) in enumerate(examples):
        ids = torch.tensor(list(prompt) + list(completion))
        input_ids[row, :len(ids)] = ids
        attention_mask[row, :len(ids)] = 1
        labels[row, len(prompt):len(ids)] = ids[len(prompt):]
    if device is not None:
        input_ids, attention_mask, labels = input_ids.to(device), attention_mask.to(device), labels.to(device)
    return input_ids, attention_mask, labels
