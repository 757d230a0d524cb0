"""torchrun support. With NGPU=N the Makefile starts a stage under `torchrun --nproc_per_node=N`:
training stages run data-parallel over the LoRA weights (DDP), the scoring and search stages shard
their samples by rank and rank 0 merges. Without torchrun every helper here is a no-op.
"""
import os

import torch
import torch.distributed as dist


def local_device():
    """This process's device: its GPU under torchrun (LOCAL_RANK), the first GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init():
    """(rank, world size, device); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = local_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def active():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if active() else 0


def world_size():
    return dist.get_world_size() if active() else 1


def is_main():
    return rank() == 0


def barrier():
    if active():
        dist.barrier()


def shard(items):
    """This rank's share of `items` (every world_size-th item, starting at its rank)."""
    return items[rank()::world_size()]


def all_sum(tensor):
    """Sum of `tensor` over ranks (in place); e.g. the target-token count that normalises a loss."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(obj):
    """A list of every rank's `obj` (rank order) on all ranks."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def finish():
    if active():
        dist.barrier()
        dist.destroy_process_group()
