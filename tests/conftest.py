"""Shared fixtures: the stages' modules on sys.path, the tiny random model, a small sample set."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "stages"))
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


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The tiny random Gemma 3 (built once into the repo's base-model cache, seconds)."""
    import modeling

    return modeling.resolve_model("tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    import modeling

    return modeling.load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def synthetic_samples():
    """Samples (records.record_samples) of 60 synthetic conversations."""
    import records
    import synthetic

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
