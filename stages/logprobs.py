"""Log-probabilities of answer tokens, with the LM head applied only where they are needed.

Tool prompts are long and answers short, and Gemma's head spans a 262k vocabulary: running it on
every position would dominate the cost of a step. So the decoder runs on the whole sequence and
the head only on the hidden states that predict a target token.

Labels follow the input: labels[b, t] = input_ids[b, t] where token t is a target, else IGNORE.
"""
import torch

IGNORE = -100


def _unwrap(model):
    """The transformers model under peft's wrapper (LoRA layers stay injected in its modules)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_hidden(model, input_ids, attention_mask=None):
    """Last hidden states [B, T, H] from the decoder stack, without the LM head."""
    return _unwrap(model).get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                        use_cache=False).last_hidden_state


def head_logprobs(model, hidden, targets):
    """log p(targets) from hidden states [N, H] predicting them, computed in fp32."""
    base = _unwrap(model)
    logits = base.get_output_embeddings()(hidden).float()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return -torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def target_logprobs(model, input_ids, attention_mask, labels):
    """Per-token log-probs of the target tokens, flattened [N], and the row each belongs to [N]."""
    hidden = decoder_hidden(model, input_ids, attention_mask)
    mask = labels[:, 1:] != IGNORE  # position t-1 predicts token t
    token_logps = head_logprobs(model, hidden[:, :-1][mask], labels[:, 1:][mask])
    rows = mask.nonzero()[:, 0]
    return token_logps, rows


def sequence_logprobs(model, input_ids, attention_mask, labels):
    """(sum of target log-probs, number of target tokens) per row, each [B]."""
    token_logps, rows = target_logprobs(model, input_ids, attention_mask, labels)
    batch = input_ids.shape[0]
    total = torch.zeros(batch, dtype=token_logps.dtype, device=token_logps.device).index_add(0, rows, token_logps)
    count = torch.zeros(batch, dtype=torch.long, device=rows.device).index_add(0, rows, torch.ones_like(rows))
    return total, count


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
