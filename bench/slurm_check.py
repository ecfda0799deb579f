"""`make slurm-check`: the SLURM profile against a real SLURM, on this one machine.

Starts a single-node cluster from Debian's packages (slurmctld + slurmd + a private munged, all on loopback,
in a temporary folder; installed with apt-get when missing and running as root), then runs a suite twice
from two fresh copies of the working tree: once with the local profile, once with `--profile profiles/slurm`
(every compute job through sbatch by snakemake-executor-plugin-slurm). It checks that

  * every compute job ran as a SLURM job: SLURM's job-completion record (jobcomp/filetxt, the accounting this
    cluster keeps without a database) lists one COMPLETED job per submitted Snakemake job, named by the
    plugin's run id, and the plugin's per-job logs exist;
  * the SLURM run's tables equal the local run's (the columns that measure time or memory aside: they are
    what differ between two runs anywhere);

then stops the daemons. Writes bench/out/slurm_check.json. Exits non-zero on any failure, printing the
daemons' logs. Nothing outside the temporary folder is touched (the daemons use their own ports, state and
munge socket); --keep leaves the folder for inspection.

    python bench/slurm_check.py [--configfile config/smoke.yaml] [--out bench/out/slurm_check.json] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PROGRAMS = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel", "munged")
# Table columns (or keys of the long details table) that measure the machine rather than the method: they
# differ between any two runs, here or anywhere. Sizes computed from the model (memory_base_bytes) are compared.
MACHINE_WORDS = ("time", "peak", "latency", "resident", "transient", "rss", "throughput")
COPIED_TOP = ("Snakefile", "rules", "config", "src", "data", "prompts", "profiles", "envs", "pyproject.toml")


def log(msg: str) -> None:
    print(f"[slurm-check] {msg}", flush=True)


def ensure_packages() -> None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(
            f"slurm-check needs {', '.join(missing)} (Debian packages {' '.join(PACKAGES)}); install them "
            "as root (apt-get install slurmctld slurmd slurm-client munge) and rerun"
        )
    log(f"installing {' '.join(PACKAGES)} with apt-get (missing: {', '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class LoopbackSlurm:
    """slurmctld + slurmd + munged for this host, configured and kept under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.jobcomp = root / "jobcomp.log"
        self.node = socket.gethostname()
        self.partition = "debug"
        # snakemake-executor-plugin-slurm-jobstep 0.6.1 drops every SLURM_* variable but the job's identity
        # before its inner `srun`, SLURM_CONF too: a site's /etc/slurm/slurm.conf (or configless slurmd)
        # does not notice, this cluster's private config would. A shim srun first on PATH restores it.
        shims = root / "bin"
        shims.mkdir(parents=True, exist_ok=True)
        srun = shims / "srun"
        srun.write_text(f'#!/bin/sh\nexport SLURM_CONF="{self.conf}"\nexec {shutil.which("srun")} "$@"\n')
        srun.chmod(0o755)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{shims}:{os.environ['PATH']}"}

    def write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "munge.key").write_bytes(os.urandom(1024))
        os.chmod(r / "munge.key", 0o600)
        # Memory: leave the OS a quarter, as a site would; the train jobs ask for what zoharness.cluster says.
        lines = {
            "ClusterName": "zoharness-loopback",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={r / 'munge.sock'}",
            "StateSaveLocation": r / "state",
            "SlurmdSpoolDir": r / "spool",
            "SlurmctldPidFile": r / "slurmctld.pid",
            "SlurmdPidFile": r / "slurmd.pid",
            "SlurmctldLogFile": r / "log" / "slurmctld.log",
            "SlurmdLogFile": r / "log" / "slurmd.log",
            "SlurmctldPort": free_port(),
            "SlurmdPort": free_port(),
            # No cgroups here (a container may not delegate them): track processes by /proc, bind nothing.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            "JobAcctGatherType": "jobacct_gather/none",
            # No slurmdbd: the job-completion log is this cluster's accounting (one line per finished job).
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp,
            "MpiDefault": "none",
            "ReturnToService": 2,
            "MinJobAge": 600,  # finished jobs stay visible to squeue (the plugin's status command here)
            "NodeName": f"{self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
            f"RealMemory={total_memory_mb() * 3 // 4} State=UNKNOWN",
            "PartitionName": f"{self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        }
        self.conf.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def start(self) -> None:
        self.write_config()
        r = self.root
        munged = [
            "munged",
            "--force",  # as root, with a key and socket of its own
            f"--socket={r / 'munge.sock'}",
            f"--key-file={r / 'munge.key'}",
            f"--log-file={r / 'log' / 'munged.log'}",
            f"--pid-file={r / 'munged.pid'}",
            f"--seed-file={r / 'munged.seed'}",
        ]
        for cmd in (munged, ["slurmctld"], ["slurmd"]):
            log(f"starting {cmd[0]}")
            subprocess.run(cmd, check=True, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env
            ).stdout.strip()
            if out in ("idle", "mixed", "allocated"):
                log(f"node {self.node} is {out}")
                return
            time.sleep(1)
        raise RuntimeError(f"the node did not come up within 60 s (sinfo says {out!r})")

    def stop(self) -> None:
        subprocess.run(["scancel", "--user", str(os.getuid())], env=self.env, capture_output=True)
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.root / f"{name}.pid"
            if not pid_file.exists():
                continue
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(pid, 0)
                    time.sleep(0.1)
            except (ProcessLookupError, ValueError):
                pass
        log("daemons stopped")

    def completed_jobs(self) -> list[dict]:
        """The job-completion log: one dict per finished job (JobId, JobName, JobState, ...)."""
        if not self.jobcomp.exists():
            return []
        jobs = []
        for line in self.jobcomp.read_text().splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            jobs.append(fields)
        return jobs

    def dump_logs(self) -> None:
        for path in sorted((self.root / "log").glob("*.log")):
            print(f"----- {path} (last 40 lines)", file=sys.stderr)
            print("\n".join(path.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)


def copy_tree(dest: Path) -> None:
    """The working tree's files a run reads (no results, logs or caches: both runs start from nothing)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", *COPIED_TOP],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in files)):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def snakemake(workdir: Path, configfile: str, extra: list[str], env: dict, log_path: Path) -> float:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", configfile, *extra]
    log(f"({workdir.name}) {' '.join(cmd[1:])}")
    start = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(Path(log_path).read_text()[-6000:], file=sys.stderr)
        raise RuntimeError(f"snakemake in {workdir} failed (exit {proc.returncode}); log: {log_path}")
    return seconds


def is_machine(name: str) -> bool:
    name = name.lower()
    return name.endswith("_s") or any(w in name for w in MACHINE_WORDS)


def comparable_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """A table's header and rows without the machine's measurements (columns, or key/value rows)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    keep = [i for i, h in enumerate(header) if not is_machine(h)]
    body = [[r[i] for i in keep] for r in rows[1:]]
    if "key" in header:
        body = [r for r in body if not is_machine(r[header.index("key")])]
    return [header[i] for i in keep], body


def compare_tables(local: Path, slurm: Path) -> dict:
    """Every CSV under results/tables of the local run against the SLURM run's, machine columns aside."""
    out = {}
    for path in sorted((local / "results" / "tables").glob("*.csv")):
        rel = path.relative_to(local)
        other = slurm / rel
        if not other.exists():
            out[str(rel)] = "missing from the SLURM run"
            continue
        a, b = comparable_rows(path), comparable_rows(other)
        out[str(rel)] = "equal" if a == b else "differs"
        out[str(rel) + " compared columns"] = a[0]
    return out


def site_errors(cluster: LoopbackSlurm, workdir: Path, configfile: str, env: dict) -> dict:
    """What a user sees when the site needs a partition or an account the profile does not give (the README's
    troubleshooting quotes these): SLURM's and the plugin's own words, unchanged."""
    out = {}
    train_job = next((workdir / "results").glob("*/*/*/zero_shot/seed0/metrics.json")).relative_to(workdir)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", configfile, "--workflow-profile", "profiles/slurm",
         "--forcerun", str(train_job), "--slurm-status-command", "squeue", str(train_job)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "account" in line.lower()]
    out["no_account"] = {"exit": proc.returncode, "lines": lines[:6]}
    partition = f"PartitionName={cluster.partition}"
    subprocess.run(["scontrol", "update", partition, "Default=NO"], env=cluster.env, check=True)
    try:
        proc = subprocess.run(["sbatch", "--wrap", "true"], env=cluster.env, capture_output=True, text=True)
        out["no_partition"] = {"exit": proc.returncode, "lines": proc.stderr.strip().splitlines()[:3]}
    finally:
        subprocess.run(["scontrol", "update", partition, "Default=YES"], env=cluster.env, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/smoke.yaml")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "slurm_check.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (daemons still stop)")
    args = parser.parse_args(argv)

    ensure_packages()
    root = Path(tempfile.mkdtemp(prefix="zoharness-slurm-"))
    os.chmod(root, 0o700)  # munged refuses a socket folder others can write to
    cluster = LoopbackSlurm(root / "cluster")
    result: dict = {"configfile": args.configfile, "host": socket.gethostname(), "cores": os.cpu_count()}
    ok = False
    try:
        cluster.start()
        result["slurm_version"] = subprocess.run(
            ["sinfo", "--version"], capture_output=True, text=True, env=cluster.env
        ).stdout.strip()
        env = {**cluster.env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        runs = {}
        for name in ("local", "slurm"):
            (root / name).mkdir()
            copy_tree(root / name)
        runs["local_s"] = snakemake(
            root / "local", args.configfile, ["--cores", "all"], env, root / "local.log"
        )
        runs["slurm_s"] = snakemake(
            root / "slurm",
            args.configfile,
            [
                "--workflow-profile",
                "profiles/slurm",
                "--slurm-no-account",  # this cluster keeps no accounts (no slurmdbd)
                "--slurm-status-command",
                "squeue",  # sacct needs slurmdbd; MinJobAge=600 keeps finished jobs in squeue
                "--slurm-init-seconds-before-status-checks",
                "2",
                "--slurm-keep-successful-logs",  # the per-job logs are the evidence
                "--latency-wait",
                "5",  # one machine: no shared-filesystem lag
            ],
            env,
            root / "slurm.log",
        )
        result["seconds"] = {k: round(v, 1) for k, v in runs.items()}
        jobs = cluster.completed_jobs()
        slurm_logs = sorted((root / "slurm" / ".snakemake" / "slurm_logs").rglob("*.log"))
        snakemake_log = (root / "slurm.log").read_text()
        run_id = re.search(r"SLURM run ID: (\S+)", snakemake_log)
        submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", snakemake_log)
        result["slurm_jobs"] = [
            {
                k: j.get(k)
                for k in (
                    "JobId",
                    "Name",
                    "JobState",
                    "Partition",
                    "NodeList",
                    "Tres",
                    "StartTime",
                    "EndTime",
                )
            }
            for j in jobs
        ]
        result["plugin_job_logs"] = [str(p.relative_to(root / "slurm")) for p in slurm_logs]
        result["slurm_run_id"] = run_id.group(1) if run_id else None
        result["submitted_slurm_jobids"] = submitted
        result["tables"] = compare_tables(root / "local", root / "slurm")
        problems = []
        if not jobs:
            problems.append("SLURM recorded no finished job")
        if any(j.get("JobState") != "COMPLETED" for j in jobs):
            problems.append(
                "a SLURM job did not complete: " + ", ".join(j.get("JobState", "?") for j in jobs)
            )
        if sorted(submitted) != sorted(j.get("JobId") for j in jobs):
            problems.append(
                f"the plugin submitted SLURM jobs {submitted}; SLURM's record has {len(jobs)} others"
            )
        if not run_id or any(j.get("Name") != run_id.group(1) for j in jobs):
            problems.append("a SLURM job is not named by this Snakemake run's SLURM run ID")
        if len(slurm_logs) != len(jobs):
            problems.append(f"{len(slurm_logs)} plugin job logs for {len(jobs)} SLURM jobs")
        # Compute rules go through sbatch; tables, figures, splits and the model's preparation run on the
        # submit host (localrule: True).
        rules = sorted(
            {p.relative_to(root / "slurm" / ".snakemake" / "slurm_logs").parts[0] for p in slurm_logs}
        )
        result["rules_through_slurm"] = rules
        if "rule_train" not in rules:
            problems.append("no train job went through SLURM")
        if set(rules) - {
            "rule_train",
            "rule_sensitivity",
            "rule_rephrase",
            "rule_influence_cache",
            "rule_influence_retrieve",
            "rule_influence_tokens",
        }:
            problems.append(f"light rules went through SLURM: {rules}")
        tables = {k: v for k, v in result["tables"].items() if not k.endswith("compared columns")}
        if not tables:
            problems.append("the local run wrote no tables")
        problems += [f"{k}: {v}" for k, v in tables.items() if v != "equal"]
        result["site_errors"] = site_errors(cluster, root / "slurm", args.configfile, env)
        if result["site_errors"]["no_partition"]["exit"] == 0:
            problems.append("sbatch accepted a job with no partition on a cluster without a default one")
        result["problems"] = problems
        ok = not problems
    except Exception as e:  # noqa: BLE001 - reported with the daemons' logs, then re-raised as a failure
        result["problems"] = [f"{type(e).__name__}: {e}"]
        cluster.dump_logs()
    finally:
        cluster.stop()
        result["ok"] = ok
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
        if args.keep or not ok:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(("OK: " if ok else "FAILED: ") + json.dumps(result.get("problems", []) or result["seconds"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
