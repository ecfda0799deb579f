"""Rephrased vs original examples' influence (zoharness.influence.rephrased) on constructed score files:
the comparison finds a planted difference, finds none where there is none, pairs examples by id, and
refuses inputs that cannot be compared."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from zoharness.influence.rephrased import rephrase_influence, rephrased_ids, write_rephrase_influence
from zoharness.io import DataError

N, Q = 200, 5


def _scores(path, train_ids, matrix, label="MeZO+OAT", variant="mezo_oat_rephrase", queries=None):
    meta = {
        "model": "m", "task": "sst2", "variant": variant, "label": label, "seed": 0, "queries": "test",
        "query_ids": queries or [f"test:{i}" for i in range(Q)], "train_ids": train_ids, "ks": [64],
        "exact": False, "planted_ids": [], "target": "predicted",
    }  # fmt: skip
    save_file(
        {"k64": np.ascontiguousarray(matrix, dtype=np.float32)},  # save_file writes raw memory order
        str(path),
        metadata={"zoharness.influence_scores": json.dumps(meta)},
    )
    return path


def _rephrased(path, ids, rephrased):
    path.write_text(
        "".join(
            json.dumps({"uid": u, "used": "rephrased" if u in rephrased else "original"}) + "\n" for u in ids
        )
    )
    return path


def test_a_shift_of_the_rephrased_examples_is_found_and_no_shift_is_not(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"train:{i}" for i in range(N)]
    chosen = set(ids[::10])  # 20 rephrased
    mask = np.isin(ids, sorted(chosen))
    base = rng.normal(size=(Q, N))
    shifted = base + 2.0 * mask  # rephrased examples 2 units more helpful for every query
    jsonl = _rephrased(tmp_path / "r.jsonl", ids, chosen)
    table, _ = rephrase_influence(_scores(tmp_path / "s.safetensors", ids, shifted), jsonl)
    signed = table.iloc[0]
    assert signed["n_rephrased"] == 20 and signed["n_original"] == 180
    assert (
        signed["ci_low"] < 2.0 < signed["ci_high"] + 0.5
        and signed["ci_low"] > 1.0
        and signed["p_mann_whitney"] < 1e-6
    )
    none, _ = rephrase_influence(_scores(tmp_path / "n.safetensors", ids, base), jsonl)
    assert none.iloc[0]["ci_low"] < 0 < none.iloc[0]["ci_high"]


def test_paired_change_against_mezo_matches_examples_by_id(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"train:{i}" for i in range(N)]
    chosen = set(ids[:20])
    mask = np.isin(ids, sorted(chosen))
    mezo = rng.normal(size=(Q, N))
    oat = mezo + 1.0 * mask + rng.normal(scale=0.01, size=(Q, N))
    order = np.arange(N)[::-1]  # the baseline lists the examples in another order: pairing is by id
    base = _scores(tmp_path / "m.safetensors", [ids[i] for i in order], mezo[:, order], "MeZO", "mezo")
    table = write_rephrase_influence(
        _scores(tmp_path / "o.safetensors", ids, oat), _rephrased(tmp_path / "r.jsonl", ids, chosen),
        tmp_path / "t.csv", tmp_path / "t.md", base,
    )  # fmt: skip
    paired = table[table["comparison"] == "OAT minus MeZO, per example"].iloc[0]
    assert paired["difference"] == pytest.approx(1.0, abs=0.02)
    assert "pairs each example with itself in the MeZO run" in (tmp_path / "t.md").read_text()


def test_inputs_that_cannot_be_compared_are_refused(tmp_path):
    ids = [f"train:{i}" for i in range(N)]
    scores = _scores(tmp_path / "s.safetensors", ids, np.random.default_rng(2).normal(size=(Q, N)))
    with pytest.raises(DataError, match=r"0 of the 200 examples .* at least 2 of each"):
        rephrase_influence(scores, _rephrased(tmp_path / "r.jsonl", ids, set()))
    with pytest.raises(DataError, match=r"1 of the 200 examples .* at least 2 of each"):
        rephrase_influence(scores, _rephrased(tmp_path / "r1.jsonl", ids, {ids[0]}))
    other = _scores(
        tmp_path / "o.safetensors",
        ids,
        np.random.default_rng(2).normal(size=(Q, N)),
        queries=[f"test:{i + 9}" for i in range(Q)],
    )
    with pytest.raises(DataError, match="different queries"):
        rephrase_influence(scores, _rephrased(tmp_path / "r2.jsonl", ids, {ids[0], ids[1]}), other)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uid": "train:0"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: not a rephrased-set line"):
        rephrased_ids(bad)
