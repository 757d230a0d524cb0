"""Pieces shared by the two training loops (02 SFT, 06 DPO): optimiser and schedule, resumable
training state, metrics log, and the guard against a non-finite loss.

Resuming is exact on a CPU: the state holds the trainable weights, optimiser, scheduler, step,
RNG states and a fingerprint of the run's settings, and the data order is a function of the seed,
so a stage killed and re-run ends with the same weights as one that was never interrupted.
"""
import hashlib
import json
import math
import os
import random
import resource
import sys
from pathlib import Path

import torch


def make_optimizer(model, lr, weight_decay):
    params = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW exists for CUDA only; foreach is the fast path on the CPU
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999),
                             fused=params[0].is_cuda or None)


def warmup_cosine(optimizer, warmup_steps, total_steps, min_ratio=0.1):
    """Linear warm-up to the peak lr, then cosine decay to min_ratio × peak at total_steps."""
    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fingerprint(settings, inputs=()):
    """Hash of a run's settings and its input files' sizes and mtimes: a saved state is resumed
    only by a run with the same fingerprint, never by one whose data or flags changed."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in inputs:
        st = os.stat(path)
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def trainable_state(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_state(path, *, model, optimizer, scheduler, step, position, fingerprint, extra=None):
    """Everything a resumed run needs, written atomically."""
    state = {
        "fingerprint": fingerprint,
        "step": step,
        "position": position,
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path, *, model, optimizer, scheduler, fingerprint):
    """Restore a saved state into model/optimizer/scheduler; returns it, or None if there is no
    state for this exact run (missing file or a different fingerprint)."""
    path = Path(path)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["fingerprint"] != fingerprint:
        print(f"{path}: saved by a run with other settings or data; starting afresh", file=sys.stderr)
        return None
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state


def open_metrics(path, resume_step):
    """Metrics JSONL opened for appending; on resume, lines logged after the saved step (by the
    killed run) are dropped so the log reads as one uninterrupted run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume_step and path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line).get("step", 0) <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))
    elif path.exists():
        path.unlink()
    return open(path, "a", buffering=1)


def log_metrics(file, record):
    file.write(json.dumps(record) + "\n")


def peak_memory_mib(device):
    """Peak memory so far: allocated CUDA memory on a GPU, the process's max RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class NonFiniteLoss(RuntimeError):
    pass


def finish_step(params, optimizer, clip, step, state_path, loss_finite=True):
    """End an optimizer step: sum the gradients across ranks (each rank's is its share of the
    step's loss), clip them, and update the weights, then zero the gradients. A non-finite loss
    on any rank or a non-finite gradient norm stops every rank before the update, naming the step
    and the last good training state. Returns the gradient norm before clipping."""
    import distributed

    nonfinite = torch.tensor(0.0 if loss_finite else 1.0, dtype=torch.float64)
    for p in params:
        if p.grad is None:  # a rank without a sample in this step
            p.grad = torch.zeros_like(p)
        distributed.all_sum(p.grad)
    distributed.all_sum(nonfinite)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    if nonfinite.item() or not torch.isfinite(grad_norm):
        what = "the loss is not finite" if nonfinite.item() else f"the gradient norm is {grad_norm.item()}"
        raise NonFiniteLoss(f"{what} at step {step}; stopping before the update. The last good training state is "
                            f"{state_path} (re-run to resume from it, e.g. with a lower learning rate).")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item()


def check_finite(loss, step, state_path):
    """Stop on a NaN/inf loss before it reaches the weights; the last saved state is kept."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(
            f"loss is {loss.item()} at step {step}; stopping before the update. The last good training "
            f"state is {state_path} (re-run to resume from it, e.g. with a lower learning rate).")
