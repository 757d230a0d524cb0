"""End to end: `make iterate ITER=2` on the tiny random model, in a temporary copy of the repo, runs
every stage for real and leaves every output SPEC.md lists; then make's caching on those real
files: a re-run does nothing, ITER=3 runs only iteration 3, touching stage 06 re-runs 06 of every
iteration and everything downstream of it."""
import re

import pytest

from conftest import copy_checkout, make

RUN = "smoke"
# Tiny budgets: three SFT steps, two hard samples searched with a few
# simulations, one DPO epoch. What is checked is the plumbing, not what the model learns.
VARS = [f"RUN={RUN}", "MODEL=tiny", "SAMPLES=50", "SFT_ARGS=--max-steps 3 --batch-size 2",
        "MCTS_ARGS=--max-samples 2 --simulations 2 --k 2 --max-depth 3 --max-step-tokens 12",
        "DPO_ARGS=--epochs 1"]


def spec_outputs(iterations):
    """SPEC.md's list of the outputs of `make iterate`, as files (the adapter after each third of
    the curriculum only with CURRICULUM=easy2hard: the default mixed warm-up has one phase)."""
    d, c = f"data/{RUN}", f"checkpoints/{RUN}"
    files = [f"{d}/toolace.jsonl", *(f"{d}/splits/{n}" for n in ("easy.jsonl", "medium.jsonl", "hard.jsonl", "rl.jsonl", "test.jsonl", "stats.json"))]
    files += [f"{c}/warmup/adapter_model.safetensors"]
    for k in range(1, iterations + 1):
        files += [f"{d}/iter_{k}/{n}" for n in ("buffer.jsonl", "hard.jsonl", "pairs.jsonl")]
        files += [f"{c}/iter_{k}/adapter_model.safetensors", f"{c}/iter_{k}/adapter_config.json"]
    return files


def planned(checkout, *args):
    """(stage number, iteration or None) of every stage command `make -n` would run."""
    runs = set()
    for line in make(checkout, "-n", *args, *VARS).stdout.splitlines():
        script = re.search(r"stages/(\d\d)_\w+\.py", line)
        if script:
            iteration = re.search(r"--out \S*iter_(\d+)", line)
            runs.add((script.group(1), int(iteration.group(1)) if iteration else None))
    return runs


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    checkout = copy_checkout(tmp_path_factory.mktemp("e2e"))
    with pytest.MonkeyPatch.context() as env:
        # the tiny model's ops are too small for a second thread to help on a busy shared machine
        env.setenv("OMP_NUM_THREADS", "1")
        make(checkout, "iterate", "ITER=2", *VARS)
    return checkout


def test_iterate_produces_every_output_of_the_spec(checkout):
    missing = [f for f in spec_outputs(2) if not (checkout / f).is_file()]
    assert not missing
    for k in (1, 2):
        assert list((checkout / f"data/{RUN}/iter_{k}/trees").glob("*.json")), f"no MCTS tree in iteration {k}"
        assert (checkout / f"data/{RUN}/iter_{k}/pairs.jsonl").read_text().strip(), f"no pair in iteration {k}"
    # iteration 2 continued from iteration 1: its adapter is a different file from the same lineage
    adapters = [(checkout / f"checkpoints/{RUN}/{name}/adapter_model.safetensors").read_bytes()
                for name in ("warmup", "iter_1", "iter_2")]
    assert len(set(adapters)) == 3


def test_a_second_run_rebuilds_nothing(checkout):
    assert make(checkout, "-q", "iterate", "ITER=2", *VARS, check=False).returncode == 0
    assert planned(checkout, "iterate", "ITER=2") == set()


def test_one_more_iteration_runs_only_that_iteration(checkout):
    assert planned(checkout, "iterate", "ITER=3") == {(s, 3) for s in ("03", "04", "05", "06")}


def test_touching_stage_06_reruns_06_of_every_iteration_and_what_follows(checkout):
    (checkout / "stages/06_dpo.py").touch()
    assert planned(checkout, "iterate", "ITER=2") == {("06", 1), ("03", 2), ("04", 2), ("05", 2), ("06", 2)}
