"""The Makefile's caching: what `make -n` would rebuild after a script, a variable or an input changes.

The outputs are stand-in files with ordered timestamps, so these tests check the dependency graph
and the config stamps in seconds without running any stage.
"""
import os
import re

import pytest

from conftest import copy_checkout, make

RUN = "cache"
VARS = [f"RUN={RUN}", "MODEL=tiny"]


def outputs(iterations):
    """Every file target of `make iterate ITER=iterations`, in dependency order."""
    files = [f"data/{RUN}/toolace.jsonl"]
    files += [f"data/{RUN}/splits/{name}" for name in ("easy.jsonl", "medium.jsonl", "hard.jsonl", "rl.jsonl", "test.jsonl", "stats.json")]
    files += [f"checkpoints/{RUN}/warmup/adapter_model.safetensors"]
    for k in range(1, iterations + 1):
        files += [f"data/{RUN}/iter_{k}/{name}" for name in ("buffer.jsonl", "hard.jsonl", "pairs.jsonl")]
        files += [f"checkpoints/{RUN}/iter_{k}/adapter_model.safetensors"]
    return files


def settle(checkout, iterations, *extra):
    """Sources and config stamps at t0, outputs after them in dependency order: all up to date."""
    make(checkout, "-n", "iterate", f"ITER={iterations}", *VARS, *extra)  # writes the config stamps
    t0 = 1_700_000_000
    for path in checkout.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (t0, t0))
    for i, name in enumerate(outputs(iterations), 1):
        path = checkout / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (t0 + i, t0 + i))


def planned(checkout, *args):
    """(stage script, iteration or None) of every command `make -n` would run."""
    result = make(checkout, "-n", *args, *VARS)
    runs = set()
    for line in result.stdout.splitlines():
        script = re.search(r"stages/(\d\d)_\w+\.py", line)
        if script:
            iteration = re.search(r"--out \S*iter_(\d+)", line)
            runs.add((script.group(1), int(iteration.group(1)) if iteration else None))
    return runs


def iteration_stages(k, first="03"):
    return {(s, k) for s in ("03", "04", "05", "06") if s >= first}


@pytest.fixture
def checkout(tmp_path):
    checkout = copy_checkout(tmp_path / "repo")
    settle(checkout, 2)
    return checkout


def test_finished_pipeline_is_up_to_date(checkout):
    assert make(checkout, "-q", "iterate", "ITER=2", *VARS, check=False).returncode == 0
    assert planned(checkout, "iterate", "ITER=2") == set()


def test_one_more_iteration_runs_only_that_iteration(checkout):
    assert planned(checkout, "iterate", "ITER=3") == iteration_stages(3)


def test_touching_a_script_rebuilds_it_and_what_follows(checkout):
    (checkout / "stages/05_mcts.py").touch()
    assert planned(checkout, "iterate", "ITER=2") == iteration_stages(1, "05") | iteration_stages(2)
    settle(checkout, 2)
    (checkout / "stages/06_dpo.py").touch()
    assert planned(checkout, "iterate", "ITER=2") == iteration_stages(1, "06") | iteration_stages(2)
    settle(checkout, 2)
    (checkout / "stages/01_split_difficulty.py").touch()
    runs = planned(checkout, "iterate", "ITER=2")
    assert ("00", None) not in runs and {("01", None), ("02", None)} <= runs and iteration_stages(2) <= runs


def test_touching_a_shared_module_rebuilds_its_users(checkout):
    (checkout / "stages/itool/training.py").touch()  # used by 02 and 06 only
    runs = planned(checkout, "iterate", "ITER=2")
    assert ("02", None) in runs and not {("00", None), ("01", None)} & runs


@pytest.mark.parametrize("variable, first", [
    ("ALPHA=30", "04"), ("STRATIFY=0", "04"), ("FRESH=1", "04"), ("MCTS_ARGS=--simulations 2", "05"), ("BETA=0.3", "06"), ("NLL=0", "06"),
    ("LOSS=simpo", "06"), ("DPO_LR=1e-6", "06"), ("REPLAY=1", "06"),
])
def test_changing_an_iteration_variable_rebuilds_from_its_stage(checkout, variable, first):
    assert planned(checkout, "iterate", "ITER=2", variable) == iteration_stages(1, first) | iteration_stages(2)


def test_fresh_hard_samples_pass_the_earlier_iterations_hard_samples(checkout):
    def searched(*extra):
        lines = make(checkout, "-n", "-B", "iterate", "ITER=3", *VARS, *extra).stdout.splitlines()
        return [re.search(r"--searched ([^-]*)--out", line).group(1).split() if "--searched" in line else []
                for line in lines if "04_select_hard.py" in line]
    assert searched("FRESH=1") == [[], [f"data/{RUN}/iter_1/hard.jsonl"],
                          [f"data/{RUN}/iter_1/hard.jsonl", f"data/{RUN}/iter_2/hard.jsonl"]]
    assert searched() == searched("FRESH=0") == [[], [], []]


def test_replay_passes_the_earlier_iterations_pairs_to_dpo(checkout):
    def replayed(*extra):
        lines = make(checkout, "-n", "-B", "iterate", "ITER=3", *VARS, *extra).stdout.splitlines()
        return [re.findall(r"\S+\.jsonl", line.split("--replay")[1]) if "--replay" in line else []
                for line in lines if "06_dpo.py" in line]
    assert replayed() == [[], [], []]
    assert replayed("REPLAY=1") == [[], [f"data/{RUN}/iter_1/pairs.jsonl"],
                                    [f"data/{RUN}/iter_1/pairs.jsonl", f"data/{RUN}/iter_2/pairs.jsonl"]]


@pytest.mark.parametrize("variable, first", [("SAMPLES=50", "00"), ("SEED=1", "00"), ("LR=1e-4", "02"),
                                             ("CURRICULUM=easy2hard", "02"), ("QLORA=1", "02")])
def test_changing_an_early_variable_rebuilds_everything_after(checkout, variable, first):
    runs = planned(checkout, "iterate", "ITER=2", variable)
    assert {(s, None) for s in ("00", "01", "02") if s >= first} | iteration_stages(1) | iteration_stages(2) == runs


def test_a_variable_changed_back_is_a_new_config(checkout):
    # the stamp records the last value asked for, so returning to it after a run with another value rebuilds
    make(checkout, "-n", "iterate", "ITER=2", "ALPHA=30", *VARS)
    assert ("04", 1) in planned(checkout, "iterate", "ITER=2")


def test_local_data_file_is_an_input(checkout, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text("")
    os.utime(data, (1_600_000_000, 1_600_000_000))
    settle(checkout, 2, f"DATA={data}")
    assert planned(checkout, "data", f"DATA={data}") == set()
    data.touch()  # edited after the run
    assert planned(checkout, "data", f"DATA={data}") == {("00", None)}


def test_help_lists_targets_and_variables(checkout):
    text = make(checkout, "help").stdout
    for target in ("setup", "test", "data", "split", "warmup", "iterate", "eval", "report", "bench", "clean"):
        assert f"  {target} " in text
    for variable, default in (("RUN", "default"), ("MODEL", "gemma-3-270m"), ("ALPHA", "20"), ("LOSS", "dpo")):
        assert re.search(rf"^  {variable} +{default} ", text, re.M)
