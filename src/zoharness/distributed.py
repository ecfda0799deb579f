"""Full fine-tuning of a model larger than one GPU: FSDP over the job's GPUs (MeZO fine-tuned OPT-13B with
FSDP on 4 A100s), one process per GPU started by `torchrun` from the train rule.

torch's own FSDP2 (`torch.distributed.fsdp.fully_shard`) shards each transformer block (the classes a Hugging
Face model lists in `_no_split_modules`): every process holds a 1/N slice of those weights, their gradients
and AdamW state; the embeddings, tied head and final norm (a few percent of a large model) stay whole on
every process, their gradients averaged explicitly. The batch is split across the processes (example i of a batch goes to
process i mod N): the per-process mean losses average to the batch's mean loss, and FSDP's gradient
reduce-scatter averages them the same way, so a step is the single-device step up to the order of additions.
Every process evaluates the same prompts (FSDP's forwards gather weights collectively), and only process 0
writes the run's artifacts; the others write into a scratch folder that is removed at the end.

On CPU the same code runs with the gloo backend, which is how the tests check it (tests/test_fsdp.py).
"""

from __future__ import annotations

import os

import torch

RANK_ENV, WORLD_ENV, LOCAL_RANK_ENV = "RANK", "WORLD_SIZE", "LOCAL_RANK"


def world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) outside torchrun."""
    return int(os.environ.get(RANK_ENV, 0)), int(os.environ.get(WORLD_ENV, 1))


def launched() -> bool:
    return world()[1] > 1


def init(device_type: str) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU); the device this process computes on."""
    import torch.distributed as dist

    if device_type == "cuda":
        local = int(os.environ.get(LOCAL_RANK_ENV, 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return device


def shard(model, device: torch.device):
    """FSDP2 over all processes for each transformer block (the classes in `_no_split_modules`): nearly all of
    the weights. The rest (embeddings, the tied LM head, final norms) stays whole on every process, because
    the objective calls the backbone and the vocabulary head separately (zoharness.scoring), outside any
    forward of the root module; its gradients are averaged by average_replicated_grads."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world()[1],))
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    sharded = [m for m in model.modules() if type(m).__name__ in blocks]
    if not sharded:
        raise ValueError(f"{type(model).__name__} names no transformer blocks (_no_split_modules) to shard")
    for module in sharded:  # each block's slice moves to the mesh's device; the full block never does
        fully_shard(module, mesh=mesh)
    model.to(device)  # the replicated rest
    return model


def is_sharded(p) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)


def param_groups(params: list) -> list:
    """An optimizer's parameters: one list as usual; under FSDP two groups, the sharded and the replicated
    ones (a fused or foreach step cannot mix DTensors and tensors in one call)."""
    sharded = [p for p in params if is_sharded(p)]
    if not sharded:
        return params
    return [{"params": sharded}, {"params": [p for p in params if not is_sharded(p)]}]


def average_replicated_grads(params: list) -> None:
    """Average the gradients of the parameters every process holds whole (FSDP averages the sharded ones)."""
    for p in params:
        if p.grad is not None and not is_sharded(p):
            p.grad.copy_(_all_reduce(p.grad.detach().clone()).to(p.grad.device) / world()[1])


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over the processes (on the process's GPU under NCCL, which reduces device tensors only)."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(t)
    return t.cpu()


def mean(value: float) -> float:
    """The average of a float over the processes (a batch's loss from the per-process means)."""
    return float(_all_reduce(torch.tensor([float(value)], dtype=torch.float64)).item()) / world()[1]


def total(value: int) -> int:
    return int(_all_reduce(torch.tensor([int(value)], dtype=torch.int64)).item())


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def finish() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
