"""NGPU=2 on the CPU (torchrun, gloo): `make iterate ITER=1 NGPU=2` on the tiny model runs 02, 03, 05
and 06 with two ranks; each stage is then re-run as one process on the very inputs the two-rank
stage had, and the outputs must agree: the same adapters (data-parallel training is the same
update), the same buffer rows and the same set of pairs (sharded scoring and search, merged on
rank 0)."""
import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, copy_checkout, make

RUN = "ddp"
# one sample per forward in both runs, so that both compute the same per-sample numbers in bf16
SFT_FLAGS = ["--max-steps", "4", "--batch-size", "4", "--micro-batch-tokens", "1", "--lr", "2e-3"]
MCTS_FLAGS = ["--max-samples", "4", "--simulations", "2", "--k", "2", "--max-depth", "3", "--max-step-tokens", "12",
              "--batch-samples", "2"]  # two batches: one per rank
DPO_FLAGS = ["--epochs", "1", "--batch-size", "4", "--micro-batch-tokens", "1"]
VARS = [f"RUN={RUN}", "MODEL=tiny", "SAMPLES=40", "ALPHA=50", f"SFT_ARGS={' '.join(SFT_FLAGS)}",
        f"MCTS_ARGS={' '.join(MCTS_FLAGS)}", f"DPO_ARGS={' '.join(DPO_FLAGS)}"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    checkout = copy_checkout(tmp_path_factory.mktemp("ddp"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # two ranks on two cores
        result = make(checkout, "iterate", "ITER=1", "NGPU=2", *VARS)
    assert result.stdout.count("torchrun") == 4, "02, 03, 05 and 06 should each start under torchrun"
    return checkout


def single_process(checkout, script, *flags):
    """Run one stage as a single process, in the checkout, on the tiny model."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")}
    subprocess.run([str(REPO / ".venv/bin/python"), f"stages/{script}", "--model", "tiny", *flags],
                   cwd=checkout, env=env, check=True, capture_output=True, text=True)


def same_adapter(expected_dir, got_dir, atol):
    expected = load_file(str(expected_dir / "adapter_model.safetensors"))
    got = load_file(str(got_dir / "adapter_model.safetensors"))
    assert expected.keys() == got.keys()
    worst = max((expected[k].float() - got[k].float()).abs().max().item() for k in expected)
    assert worst <= atol, f"largest weight difference {worst}"


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_warmup_with_two_ranks_trains_the_adapter_of_one_process(checkout, tmp_path):
    single_process(checkout, "02_sft.py", "--splits-dir", f"data/{RUN}/splits", "--out", str(tmp_path), *SFT_FLAGS)
    # the adapter moved away from its zero-initialised B matrices, and both runs moved it alike
    moved = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert any(t.abs().max() > 0 for k, t in moved.items() if "lora_B" in k)
    same_adapter(tmp_path, checkout / f"checkpoints/{RUN}/warmup", atol=1e-5)
    loss = [m["loss"] for m in rows(checkout / f"checkpoints/{RUN}/warmup/metrics.jsonl")]
    assert loss == pytest.approx([m["loss"] for m in rows(tmp_path / "metrics.jsonl")], abs=1e-4)


def test_sharded_buffer_merges_into_the_single_process_buffer(checkout, tmp_path):
    out = tmp_path / "buffer.jsonl"
    single_process(checkout, "03_perplexity.py", "--adapter", f"checkpoints/{RUN}/warmup",
                   "--samples", f"data/{RUN}/splits/rl.jsonl", "--out", str(out))
    two_ranks = {r["id"]: r for r in rows(checkout / f"data/{RUN}/iter_1/buffer.jsonl")}
    one = {r["id"]: r for r in rows(out)}
    assert len(one) > 1 and two_ranks.keys() == one.keys()
    for sample_id, row in one.items():
        assert two_ranks[sample_id]["length"] == row["length"]
        assert two_ranks[sample_id]["perplexity"] == pytest.approx(row["perplexity"], rel=1e-3)


def test_sharded_search_merges_into_the_single_process_pairs(checkout, tmp_path):
    out = tmp_path / "pairs.jsonl"
    single_process(checkout, "05_mcts.py", "--adapter", f"checkpoints/{RUN}/warmup",
                   "--samples", f"data/{RUN}/iter_1/hard.jsonl", "--out", str(out),
                   "--trees-dir", str(tmp_path / "trees"), "--seed", "0", *MCTS_FLAGS)
    key = lambda p: (p["id"], p["prefix"], p["chosen"], p["rejected"], round(p["q_chosen"], 4))  # noqa: E731
    two_ranks, one = rows(checkout / f"data/{RUN}/iter_1/pairs.jsonl"), rows(out)
    assert one, "the search made no pair: the comparison would be empty"
    assert sorted(map(key, two_ranks)) == sorted(map(key, one))
    trees = sorted(p.name for p in (checkout / f"data/{RUN}/iter_1/trees").glob("*.json"))
    assert trees == sorted(p.name for p in (tmp_path / "trees").glob("*.json"))


def test_dpo_with_two_ranks_trains_the_adapter_of_one_process(checkout, tmp_path):
    single_process(checkout, "06_dpo.py", "--adapter", f"checkpoints/{RUN}/warmup",
                   "--pairs", f"data/{RUN}/iter_1/pairs.jsonl", "--out", str(tmp_path), "--seed", "0", *DPO_FLAGS,
                   "--nll-weight", "1", "--lr", "2e-5")  # make's NLL (its token count is the whole step's on
    # every rank) and DPO_LR
    same_adapter(tmp_path, checkout / f"checkpoints/{RUN}/iter_1", atol=1e-5)
    warmup = load_file(str(checkout / f"checkpoints/{RUN}/warmup/adapter_model.safetensors"))
    trained = load_file(str(checkout / f"checkpoints/{RUN}/iter_1/adapter_model.safetensors"))
    assert any(not torch.equal(warmup[k], trained[k]) for k in warmup), "DPO left the adapter unchanged"


def test_warmup_with_fewer_samples_per_step_than_ranks(tmp_path):
    """--batch-size 1 under two ranks: every step leaves one rank without a sample; that rank adds a
    zero gradient and the update is still the single process's."""
    checkout = copy_checkout(tmp_path / "checkout")
    make(checkout, "split", "RUN=tiny-steps", "SAMPLES=30")
    flags = ["--model", "tiny", "--splits-dir", "data/tiny-steps/splits", "--max-steps", "3", "--batch-size", "1",
             "--lr", "2e-3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")}
    two = subprocess.run([str(REPO / ".venv/bin/torchrun"), "--standalone", "--nproc_per_node=2", "stages/02_sft.py",
                          *flags, "--out", str(tmp_path / "two")], cwd=checkout, env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    single_process(checkout, "02_sft.py", *flags[2:], "--out", str(tmp_path / "one"))
    same_adapter(tmp_path / "one", tmp_path / "two", atol=1e-5)
