import os
import shutil
import sys
from pathlib import Path

import pytest

# No test may reach the network: the hub is off, and models/tokenizers come from local folders.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def model_refs(tmp_path_factory):
    """Prepared tiny models (random init, byte-level tokenizer; roberta: a masked LM), built once per session."""
    from zoharness.models import prepare

    root = tmp_path_factory.mktemp("models")
    return {
        arch: prepare(f"tiny-{arch}", f"tiny:{arch}", root / f"tiny-{arch}")
        and root / f"tiny-{arch}" / "model_ref.json"
        for arch in ("llama", "opt", "roberta")
    }


@pytest.fixture()
def tiny(model_refs):
    from zoharness import models

    return models.load(model_refs["llama"])


@pytest.fixture(scope="session")
def small_split():
    from zoharness.data import make_split

    return make_split("sst2", DATA, seed=0, num_train=24, num_dev=8, num_test=12)


@pytest.fixture()
def workdir(tmp_path):
    """A copy of the workflow (data linked), so runs never touch the repository's results/."""
    for name in ("Snakefile", "rules", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "data").symlink_to(ROOT / "data")
    return tmp_path
