"""Faults end to end: `make iterate ITER=2` on the tiny model, killed with SIGKILL (make and every
stage it started, the whole process group) at seeded random moments and re-run after each kill
until it completes, ends with the same adapters, buffers, hard samples and pairs as an
uninterrupted run; and after every kill, no file that make would take as fresh is half-written."""
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, copy_checkout, make

RUN = "faults"
# Tiny budgets (the plumbing is what is checked), a training state after every SFT step so that
# a kill inside the easy-to-hard warm-up resumes mid-curriculum, and enough hard samples for 05 to make pairs.
VARS = [f"RUN={RUN}", "MODEL=tiny", "SAMPLES=50", "ALPHA=50", "CURRICULUM=easy2hard", "SFT_ARGS=--max-steps 4 --batch-size 2 --save-every 1",
        "MCTS_ARGS=--max-samples 2 --simulations 3 --k 2 --max-depth 3 --max-step-tokens 12", "DPO_ARGS=--epochs 1"]
KILLS = 3
ADAPTERS = ["warmup/easy", "warmup/medium", "warmup/hard", "warmup", "iter_1", "iter_2"]
DATA_FILES = ["toolace.jsonl", *(f"splits/{n}.jsonl" for n in ("easy", "medium", "hard", "rl")),
              *(f"iter_{k}/{n}.jsonl" for k in (1, 2) for n in ("buffer", "hard", "pairs"))]


def iterate_killed_after(checkout, seconds, log):
    """Start `make iterate` in its own process group and SIGKILL the group after `seconds`; the
    stage it was running when killed (None if it had finished by then: it must have succeeded)."""
    with open(log, "w") as out:
        process = subprocess.Popen(["make", "--no-print-directory", "iterate", "ITER=2", *VARS], cwd=checkout,
                                   env={**os.environ, "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")},
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # make and whatever stage it is running, at once
            process.wait()
            stages = re.findall(r"stages/\d\d_\w+\.py.*?--out (\S+)", log.read_text(), re.S)
            return stages[-1] if stages else "make"
    assert process.returncode == 0, log.read_text()[-3000:]
    return None


def assert_whole(checkout):
    """Every output file is complete: JSON and JSONL parse to the last line, weights and training
    states load. Files whose name starts with "." are the stages' temp and partial files, which
    make never takes as outputs; metrics.jsonl is a log that resuming rewrites, not a target."""
    for root in (checkout / "data" / RUN, checkout / "checkpoints" / RUN):
        for path in root.rglob("*"):
            if path.is_dir() or any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            if path.name == "metrics.jsonl":
                continue
            try:
                if path.suffix == ".json":
                    json.loads(path.read_text())
                elif path.suffix == ".jsonl":
                    text = path.read_text()
                    for line in text.splitlines():
                        json.loads(line)
                    assert not text or text.endswith("\n"), "no newline at the end"
                elif path.suffix == ".safetensors":
                    load_file(str(path))
                elif path.suffix == ".pt":
                    torch.load(path, weights_only=False)
            except Exception as e:
                raise AssertionError(f"{path} is half-written after a kill: {e!r}") from None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted checkout, killed-and-re-run checkout, what each kill interrupted)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # the tiny model's ops gain nothing from a second thread
        # both copies first, so that both runs run the same code even while the repository changes
        whole = copy_checkout(tmp_path_factory.mktemp("whole"))
        killed = copy_checkout(tmp_path_factory.mktemp("killed"))
        started = time.perf_counter()
        make(whole, "iterate", "ITER=2", *VARS)
        duration = time.perf_counter() - started

        rng = random.Random(13)
        kills = []  # the output of the stage each kill interrupted
        for k in range(KILLS):
            # a re-run resumes, so each try has less left to do: aim at the first half of a whole run
            interrupted = iterate_killed_after(killed, rng.uniform(0.1, 0.5) * duration, killed / f"make-{k}.log")
            if interrupted is None:
                break
            kills.append(interrupted)
            assert_whole(killed)
        make(killed, "iterate", "ITER=2", *VARS)
    return whole, killed, kills


def test_kills_landed_while_make_was_running(runs):
    _, killed, kills = runs
    assert len(kills) >= 2, f"the runs finished before most kills (killed: {kills}): the test would check little"
    assert make(killed, "-q", "iterate", "ITER=2", *VARS, check=False).returncode == 0, "make sees stale outputs"


def test_killed_runs_end_with_the_same_adapters(runs):
    whole, killed, _ = runs
    for name in ADAPTERS:
        expected = load_file(str(whole / f"checkpoints/{RUN}/{name}/adapter_model.safetensors"))
        got = load_file(str(killed / f"checkpoints/{RUN}/{name}/adapter_model.safetensors"))
        assert expected.keys() == got.keys(), name
        for key in expected:
            assert torch.allclose(got[key].float(), expected[key].float(), rtol=0, atol=1e-6), f"{name}: {key}"


def test_killed_runs_end_with_the_same_data_buffers_and_pairs(runs):
    whole, killed, _ = runs
    for name in DATA_FILES:
        expected = (whole / f"data/{RUN}/{name}").read_text()
        assert (killed / f"data/{RUN}/{name}").read_text() == expected, name
    assert (whole / f"data/{RUN}/iter_2/pairs.jsonl").read_text().strip(), "no pair: the comparison is empty"
