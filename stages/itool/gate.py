"""The call gate: whether an answer to a user opens a call list, decided by a linear classifier on
the base model's hidden state, not by the policy's first-token logits.

The policy's own choice between a call and a text at an answer's first token is badly ordered:
the paper's loss weighs it as one token of thirty, and the warm-up calls on nearly every request,
served or not. The base model's middle layers already tell a request that a tool serves from one
that no tool serves or that lacks a required value (docs/failures.md). The gate reads that state,
after `layer` of the base model's decoder layers at the position that predicts the answer's first
token, standardises it, and scores it with a logistic regression fitted on the warm-up's own
training samples, calls and texts weighted alike (stage 02 --call-gate). Every harness reads the
saved gate beside the adapter and forces the answer's first token: a call-opening token where the
score is over 0, anything else where it is not (the offsets of generation.greedy). It reads the
base model, not the policy, so one gate serves the warm-up and every later iteration alike.
"""
import json
import shutil
from pathlib import Path

import torch
from tqdm import tqdm

from itool import modeling
from itool.files import atomic_write_json

GATE_FILE = "call_gate.json"  # beside an adapter's weights
FORCE = 1e4  # an offset on the call-opening logits that no logit gap outweighs


def default_layer(model):
    """Two thirds of the way up the decoder (layer 12 of Gemma 3 270M's 18)."""
    return max(1, round(2 * modeling.unwrap(model).config.num_hidden_layers / 3))


class _Reached(Exception):
    def __init__(self, hidden):
        self.hidden = hidden


@torch.inference_mode()
def features(model, tokenizer, samples, layer, desc="call gate"):
    """fp32 [N, H]: each sample's hidden state after `layer` decoder layers at its prompt's last
    position (the one that predicts the answer's first token), the prompt in the training layout.
    The forward stops at that layer: the rest of the model is not run."""
    device = next(model.parameters()).device
    decoder = modeling.unwrap(model).model.layers[layer - 1]

    def stop(module, inputs, output):
        raise _Reached(output[0] if isinstance(output, tuple) else output)

    handle = decoder.register_forward_hook(stop)
    rows = []
    try:
        for sample in tqdm(samples, desc=desc, unit="answer", dynamic_ncols=True, leave=False,
                           disable=len(samples) < 8):
            ids = modeling.encode_prompt(tokenizer, sample["system"], sample["messages"])
            try:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    model(input_ids=torch.tensor([ids], device=device))
            except _Reached as reached:
                rows.append(reached.hidden[0, -1].float().cpu())
    finally:
        handle.remove()
    return torch.stack(rows) if rows else torch.zeros(0, modeling.unwrap(model).config.hidden_size)


def fit(X, is_call, weight_decay=0.01, max_iter=300):
    """A logistic regression of call (1) against text (0) on the standardised features X [N, H],
    each class weighing half of the loss whatever its count, an L2 penalty on the weights; as the
    dict that score() and save() take."""
    labels = torch.tensor(is_call, dtype=torch.float32)
    if not 0 < labels.sum() < len(labels):
        raise ValueError(f"the call gate needs calls and texts to tell apart: {int(labels.sum())} of "
                         f"{len(labels)} samples call")
    mean, std = X.mean(0), X.std(0) + 1e-4
    Z = (X - mean) / std
    balance = torch.where(labels == 1, 0.5 / labels.mean(), 0.5 / (1 - labels.mean()))
    weight = torch.zeros(X.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(Z @ weight + bias, labels, weight=balance)
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return {"mean": mean, "std": std, "weight": weight.detach(), "bias": bias.detach().item()}


def score(gate, X):
    """[N]: the gate's logit of a call for each row of X (over 0: the answer opens a call list)."""
    return ((X - gate["mean"]) / gate["std"]) @ gate["weight"] + gate["bias"]


def save(path, gate, layer, info):
    """The gate as JSON, with `layer` and whatever `info` says of its fit."""
    data = {"layer": layer, **info, "bias": gate["bias"],
            **{key: [round(v, 6) for v in gate[key].tolist()] for key in ("mean", "std", "weight")}}
    atomic_write_json(path, data)


def read(adapter):
    """The call gate saved with an adapter, or None where there is none (or no adapter)."""
    path = Path(adapter) / GATE_FILE if adapter else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        gate = {key: torch.tensor(data[key], dtype=torch.float32) for key in ("mean", "std", "weight")}
        gate.update(bias=float(data["bias"]), layer=int(data["layer"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a call gate ({e!r}); delete it or train the adapter again") from e
    if not gate["mean"].shape == gate["std"].shape == gate["weight"].shape or gate["mean"].dim() != 1:
        raise ValueError(f"{path}: not a call gate (mean, std and weight differ in shape); delete it or train again")
    return gate


def carry(adapter, out):
    """Give the adapter trained in `out` from `adapter` the gate `adapter` has (or none): the gate
    reads the base model, so an iteration's policy keeps its warm-up's."""
    source, target = Path(adapter) / GATE_FILE if adapter else None, Path(out) / GATE_FILE
    if source is not None and source.is_file():
        shutil.copyfile(source, target)
    else:
        target.unlink(missing_ok=True)
