"""What the two training loops (02 SFT, 06 DPO) share: their flags, the model they train, the
optimiser and schedule, micro-batches, the end of a step (with the guard against a non-finite loss
or gradient), resumable training state and the metrics log.

Resuming is exact on a CPU: the state holds the trainable weights, optimiser, scheduler, step,
RNG states and a fingerprint of the run's settings, and the data order is a function of the seed,
so a stage killed and re-run ends with the same weights as one that was never interrupted.
"""
import json
import math
import os
import random
import resource
import sys
from pathlib import Path

import torch

from itool import distributed, modeling

# Flags that change how a run is saved and logged, not what it computes: a state saved under other
# values of these still resumes.
NOT_SETTINGS = ("out", "save_every", "log_every")


# --- flags and model ------------------------------------------------------------------------------

def add_flags(parser, unit):
    """The flags 02 and 06 share, with one name and meaning in both; `unit` is what a step is made
    of ("samples", "pairs"). A stage sets its own defaults where they differ (set_defaults)."""
    group = parser.add_argument_group("training")
    group.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (paper: 5e-5)")
    group.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (paper: 0.01)")
    group.add_argument("--warmup-ratio", type=float, default=0.05, help="share of the steps with linear lr warm-up")
    group.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm to this")
    group.add_argument("--epochs", type=int, default=1, help="passes over the data")
    group.add_argument("--batch-size", type=int, default=8, help=f"{unit} per optimizer step")
    group.add_argument("--micro-batch-tokens", type=int, default=0,
                       help="padded tokens per forward/backward pass, a longer one runs alone (0: 2048 on the CPU, "
                            "where more gains nothing; 8192 on CUDA)")
    group.add_argument("--lora-r", type=int, default=8, help="LoRA rank of a fresh adapter")
    group.add_argument("--lora-alpha", type=float, default=16, help="LoRA alpha of a fresh adapter")
    group.add_argument("--gradient-checkpointing", choices=("auto", "1", "0"), default="auto",
                       help="recompute activations in backward, memory for time (auto: for models over 1B parameters)")
    group.add_argument("--save-every", type=int, default=20, help="steps between resumable training states")
    group.add_argument("--log-every", type=int, default=5, help="steps between metrics lines")


def settings(args):
    """The flags that make a run what it is (for its fingerprint)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}


def micro_batch_tokens(args, device):
    return args.micro_batch_tokens or (8192 if device.type == "cuda" else 2048)


def trainable_model(model_dir, args, device, qlora, adapter=None):
    """The model to train: LoRA on every linear projection (`adapter` continued, or a fresh one of
    --lora-r and --lora-alpha), with --gradient-checkpointing and the --attn kernel."""
    model = modeling.load_model(model_dir, adapter=adapter, trainable=True, qlora=qlora, device=device,
                                lora_r=args.lora_r, lora_alpha=args.lora_alpha)
    base = model.get_base_model()
    n_params = sum(p.numel() for p in base.parameters())
    if args.gradient_checkpointing == "1" or (args.gradient_checkpointing == "auto" and n_params > 1e9):
        # an 8B model's activations do not fit a GPU next to its weights otherwise
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    modeling.set_fast_kernels(model, device, args.attn)
    return model


def checkpoints_activations(model):
    """Whether the model recomputes activations in backward (--gradient-checkpointing), which
    drops any KV cache a forward is given."""
    return any(getattr(module, "gradient_checkpointing", False) for module in model.modules())


# --- steps ----------------------------------------------------------------------------------------

def micro_batches(lengths, max_tokens, sizes=None, max_size=None):
    """Index lists over `lengths`, in length order, each of at most `max_tokens` padded tokens (its
    count times its longest) and, given `sizes`, of a total size of at most `max_size`; an item over
    either limit goes alone. No items make no micro-batch: a rank whose share of a step is empty
    (fewer samples than ranks) only adds zero gradients to the step's sum."""
    batches, batch, width, size = [], [], 0, 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        item = sizes[i] if sizes else 0
        if batch and (max(width, lengths[i]) * (len(batch) + 1) > max_tokens or (sizes and size + item > max_size)):
            batches.append(batch)
            batch, width, size = [], 0, 0
        batch.append(i)
        width, size = max(width, lengths[i]), size + item
    return batches + [batch] if batch else batches


class NonFiniteLoss(RuntimeError):
    pass


def finish_step(optimizer, scheduler, max_grad_norm, state_path, loss_finite=True):
    """End an optimizer step: sum the gradients across ranks (each rank's is its share of the
    step's loss), clip them, update the weights and the learning rate, zero the gradients. A
    non-finite loss on any rank or a non-finite gradient norm stops every rank before the update,
    naming the step and the last good training state. Returns the gradient norm before clipping."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    step = scheduler.last_epoch + 1  # the schedule counts the steps taken, resumed ones included
    nonfinite = torch.tensor(0.0 if loss_finite else 1.0, dtype=torch.float64)
    for p in params:
        if p.grad is None:  # a rank without a sample in this step
            p.grad = torch.zeros_like(p)
        distributed.all_sum(p.grad)
    distributed.all_sum(nonfinite)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if nonfinite.item() or not torch.isfinite(grad_norm):
        what = "the loss is not finite" if nonfinite.item() else f"the gradient norm is {grad_norm.item()}"
        raise NonFiniteLoss(f"{what} at step {step}; stopping before the update. The last good training state is "
                            f"{state_path} (re-run to resume from it, e.g. with a lower learning rate).")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item()


# --- optimiser, schedule, state, metrics ------------------------------------------------------------

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


def trainable_state(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_state(path, *, model, optimizer, scheduler, step, fingerprint, extra=None):
    """Everything a resumed run needs, written atomically."""
    state = {
        "fingerprint": fingerprint,
        "step": step,
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


