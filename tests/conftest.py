"""Shared fixtures and helpers: stage scripts loaded as modules, the tiny random model, a small
sample set, temporary checkouts to run make in."""
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_stage(filename):
    """A stage script as a module (its name starts with a digit, so `import` cannot load it)."""
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), REPO / "stages" / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (Gemma 3 270M)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """The tiny model's ops are too small for a second thread to help, and on a busy shared machine
    OpenMP's barriers between two threads slow them down many-fold (used by the test files that
    run the tiny model in-process)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The tiny random Gemma 3 (built once into the repo's base-model cache, seconds)."""
    from itool import modeling

    return modeling.resolve_model("tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from itool import modeling

    return modeling.load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def synthetic_samples():
    """Samples (records.record_samples) of 60 synthetic conversations."""
    from itool import records, synthetic

    return [s for i, r in enumerate(synthetic.generate(60, seed=1)) for s in records.record_samples(r, f"r{i:06d}")]


def copy_checkout(dest):
    """A copy of the project's code (not its data or checkpoints) in `dest`, sharing the venv and
    the base-model cache, so tests can run make without touching the real checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Makefile", "stages", "eval", "requirements.txt"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    (dest / "data").mkdir()
    return dest


def make(checkout, *args, check=True):
    """Run make in `checkout` with the shared base-model cache; returns the CompletedProcess."""
    env = {**os.environ, "ITOOL_BASE_DIR": str(REPO / "checkpoints" / "base")}
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=checkout, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def sequence_logprobs(model, input_ids, attention_mask, labels):
    """(sum of target log-probs, number of target tokens) per row, each [B]: one plain forward per
    batch, the reference that packed rows are checked against."""
    import torch

    from itool.logprobs import target_logprobs

    token_logps, rows = target_logprobs(model, input_ids, attention_mask, labels)
    batch = input_ids.shape[0]
    total = torch.zeros(batch, dtype=token_logps.dtype, device=token_logps.device).index_add(0, rows, token_logps)
    count = torch.zeros(batch, dtype=torch.long, device=rows.device).index_add(0, rows, torch.ones_like(rows))
    return total, count
