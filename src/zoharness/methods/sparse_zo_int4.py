"""sparse-ZO-int4 (SensZOQ, arXiv 2406.02913): MeZO's ZO-SGD on a static mask of "sensitive" weights
(top squared gradients on pre-training text, 0.1% of the linear layers' entries), every other weight
frozen in 4 bit.

The mask is an input file built once per (model, corpus, density, selection) by the `mask` rule
(rules/methods/sparse_zo_int4.smk) and shared by every task. The base is quantized when the run is
built; the masked entries live outside it as a float32 delta (zoharness.sparse.layers says exactly how
the forward adds it). The ZO step is zo.ZOSGD unchanged, over the deltas only, so the noise convention,
the log and the bit-exact replay are MeZO's.

Defaults: ε, batch and steps are MeZO's (Table 15); density 1e-3 and global top-k on C4 squared
gradients are SensZOQ's; NF4 with blocksize 64 is bitsandbytes'/QLoRA's default. The paper's learning
rates are not given in a form we could use: suites set lr (the sparse delta tolerates a far larger lr
than the full model, since the perturbation has 1000x fewer coordinates).
"""

from dataclasses import dataclass

from zoharness.methods import added_later, require
from zoharness.methods import mezo as _dense
from zoharness.trainer import Trainer

LABEL = "sparse-ZO-int4"
VERSION = 1
# Scheduler sizing (zoharness.cluster): a 4-bit base (a quarter of float16 weights) plus the sparse float deltas
# and the mask (SensZOQ: < 8 GiB for Llama-2-7B)
MEMORY_FACTOR = 0.35
CAUSAL_ONLY = "SensZOQ's sensitivity mask and 4-bit base follow its causal-LM recipe"
# Files the run needs besides the model and split (the train rule passes them as --input NAME=PATH).
INPUTS = ("mask",)
# Its own subcommands (sensitivity, mask, mask-table, sparse-figures) and reports live in its package.
COMMANDS = "zoharness.sparse.commands"
# the dense method its figures draw at density 1 (named by its module: ids are file names)
COMPARE_WITH = _dense.__name__.rpartition(".")[2]
# The sparse delta tolerates a far larger lr than the full model (see the docstring).
SMOKE_PARAMS = {"lr": 1e-1, "batch_size": 4, "steps": 5}

MASK_CORPORA = ("wiki-passages", "c4", "task", "random")


@dataclass(frozen=True)
class Params:
    lr: float = 1e-6  # MeZO Table 15; tune per suite
    eps: float = 1e-3  # MeZO Table 15
    batch_size: int = 16  # MeZO Table 15
    steps: int = 20000  # MeZO Table 15
    density: float = 1e-3  # SensZOQ: 0.1% of the eligible entries
    mask: str = "wiki-passages"  # sensitivity corpus (C4 stand-in offline) | c4 | task | random
    selection: str = "global"  # global top-k (SensZOQ) | per_matrix
    base: str = "nf4"  # nf4 | fp4 (bitsandbytes) | dense (no quantization: the ablation)
    quant_blocksize: int = 64  # bitsandbytes / QLoRA default
    noise_threads: int = 1  # the deltas are small: one thread draws them fastest
    queries: int = added_later(1)  # ZO-Bench's query budget q (zoharness.zo): 1 = MeZO's step

    def __post_init__(self):
        from zoharness.sparse import BASES, SELECTIONS, check_density

        require(self.lr > 0, f"sparse_zo_int4.lr must be > 0, got {self.lr}")
        require(self.eps > 0, f"sparse_zo_int4.eps must be > 0, got {self.eps}")
        require(self.batch_size >= 1, f"sparse_zo_int4.batch_size must be >= 1, got {self.batch_size}")
        require(self.steps >= 1, f"sparse_zo_int4.steps must be >= 1, got {self.steps}")
        try:
            check_density(self.density)
        except ValueError as e:
            raise ValueError(f"sparse_zo_int4.{e}") from None
        require(
            self.mask in MASK_CORPORA, f"sparse_zo_int4.mask must be one of {MASK_CORPORA}, got {self.mask!r}"
        )
        require(
            self.selection in SELECTIONS,
            f"sparse_zo_int4.selection must be one of {SELECTIONS}, got {self.selection!r}",
        )
        require(self.base in BASES, f"sparse_zo_int4.base must be one of {BASES}, got {self.base!r}")
        require(
            self.quant_blocksize in (64, 128, 256, 512, 1024, 2048, 4096),
            f"sparse_zo_int4.quant_blocksize must be a power of two in [64, 4096], got {self.quant_blocksize}",
        )
        require(
            self.noise_threads >= 0, f"sparse_zo_int4.noise_threads must be >= 0, got {self.noise_threads}"
        )
        require(self.queries >= 1, f"sparse_zo_int4.queries must be >= 1, got {self.queries}")


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    return params.steps


def mask_corpus(params: Params, task: str, suite: str) -> str:
    """The corpus segment of the mask's path: task-gradient masks are per task and per suite (they read
    the suite's split); the others are shared by every task and suite."""
    return f"task-{task}-{suite}" if params.mask == "task" else params.mask


def mask_stem(params: Params, model: str, task: str, suite: str) -> str:
    from zoharness.sparse import mask_name

    name = mask_name(format(params.density, "g"), params.selection)
    return f"resources/masks/{model}/{mask_corpus(params, task, suite)}/{name}"


class SparseZO(Trainer):
    """ZOSGD over the deltas, plus the memory accounting of the sparse model."""

    can_replay = True

    def __init__(self, model, params: Params, seed: int, mask_path: str):
        import torch

        from zoharness.sparse import layers, mask
        from zoharness.zo import ZOSGD

        indices, meta = mask.load(mask_path, model)
        deltas = layers.sparsify(model, indices, params.base, params.quant_blocksize)
        self.zo = ZOSGD(
            model,
            deltas,
            lr=params.lr,
            eps=params.eps,
            run_seed=seed,
            cache=False,
            threads=params.noise_threads or torch.get_num_threads(),
            queries=params.queries,
        )
        self.model, self.params, self.mask_meta = model, params, meta
        self.memory = layers.memory_by_component(model)

    def step(self, batch, index: int) -> dict:
        return self.zo.step(batch, index)

    def replay(self, record: dict) -> None:
        self.zo.replay(record)

    def defer(self, on: bool) -> None:
        self.zo.defer(on)

    def settle(self) -> None:
        self.zo.settle()

    def save(self, out_dir) -> None:
        """The trained state: each layer's mask indices and delta values (the base is the model's
        quantized weights, rebuilt from the model and `quant_blocksize`)."""
        from pathlib import Path

        import torch
        from safetensors.torch import save_file

        from zoharness.sparse.layers import SparseDeltaLinear

        self.settle()
        tensors = {}
        for name, m in self.model.named_modules():
            if isinstance(m, SparseDeltaLinear) and m.delta.numel():
                tensors[f"{name}.index"] = m.index.to(torch.int32).cpu().contiguous()
                tensors[f"{name}.delta"] = m.delta.detach().cpu().contiguous()
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        save_file(
            tensors, str(Path(out_dir) / "sparse_delta.safetensors"), metadata={"base": self.params.base}
        )

    def trajectory_header(self) -> dict:
        header = self.zo.trajectory_header()
        header["zo"]["sparse"] = {
            "base": self.params.base,
            "quant_blocksize": self.params.quant_blocksize,
            "delta_dtype": "float32",
            "forward": "y = x (B + S(delta))^T + b, B = dequantize_4bit(codes) or the dense weight",
        }
        return header

    def extra_metrics(self) -> dict:
        return {
            **self.zo.extra_metrics(),
            "sparse_base": self.params.base,
            "sparse_mask": self.params.mask,
            "sparse_density": self.params.density,
            "sparse_selected": sum(t.numel() for t in self.zo.noise.tensors),
            "mask_score_mass_coverage": self.mask_meta.get("score_mass_coverage"),
            **{f"memory_{k}_bytes": v for k, v in self.memory.items()},
        }


def build(model, params: Params, seed: int, mask: str):
    return SparseZO(model, params, seed, mask)


def smoke_inputs(model, examples: list, out_dir) -> dict[str, str]:
    """A stand-in mask for the tests: 5% of the eligible entries of `model`, chosen at random."""
    from pathlib import Path

    from zoharness.sparse import mask

    path = Path(out_dir) / "mask.safetensors"
    shapes = mask.eligible_shapes(model)
    mask.save(path, mask.select(mask.random_scores(shapes, 0), 0.05), shapes, {})
    return {"mask": str(path)}
