"""One source of truth for the recipe: a stage run by hand with no flags trains what `make` trains.
Every Makefile variable that feeds a stage's flag has the stage's own default as its default."""
import re

import pytest

from conftest import REPO, load_stage


def make_defaults():
    """{VARIABLE: default} of the Makefile's `VARIABLE ?= value#  comment` lines."""
    found = {}
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"([A-Z_]+)\s*\?=([^#]*)", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


REQUIRED = {"00_data.py": ["--out", "x"], "01_split_difficulty.py": ["--records", "x", "--out", "x"],
            "02_sft.py": ["--splits-dir", "x", "--out", "x"], "03_perplexity.py": ["--samples", "x", "--out", "x"],
            "04_select_hard.py": ["--buffer", "x", "--samples", "x", "--out", "x"],
            "05_mcts.py": ["--samples", "x", "--out", "x", "--trees-dir", "x"], "06_dpo.py": ["--pairs", "x", "--out", "x"]}


def stage_defaults(script):
    return vars(load_stage(script).parse_args(REQUIRED[script]))


# (Makefile variable, stage script, the stage's argument, the make value as that argument holds it)
AS_FLAG = {"1": True, "0": False}
LINKS = [("MODEL", s, "model", str) for s in ("02_sft.py", "03_perplexity.py", "05_mcts.py", "06_dpo.py")] + \
        [("QLORA", s, "qlora", str) for s in ("02_sft.py", "03_perplexity.py", "05_mcts.py", "06_dpo.py")] + \
        [("SEED", s, "seed", int) for s in ("00_data.py", "01_split_difficulty.py", "02_sft.py", "05_mcts.py",
                                            "06_dpo.py")] + [
    ("DATA", "00_data.py", "data", str), ("SAMPLES", "00_data.py", "conversations", int),
    ("SKIP_BAD", "00_data.py", "skip_bad", AS_FLAG.get), ("SHARES", "01_split_difficulty.py", "shares", str),
    ("THIRDS", "01_split_difficulty.py", "thirds", str),
    ("LR", "02_sft.py", "lr", float), ("CURRICULUM", "02_sft.py", "curriculum", str),
    ("DECISION", "02_sft.py", "decision_weight", float),
    # CALL_OFFSET=1 passes rl.jsonl; the stage's default, no file, is CALL_OFFSET=0
    ("CALL_OFFSET", "02_sft.py", "call_offset_samples", lambda value: None if value == "0" else "rl.jsonl"),
    ("CALL_GATE", "02_sft.py", "call_gate", AS_FLAG.get),
    ("ALPHA", "04_select_hard.py", "alpha", float), ("STRATIFY", "04_select_hard.py", "stratify", AS_FLAG.get),
    ("LOSS", "06_dpo.py", "loss", str), ("DPO_LR", "06_dpo.py", "lr", float),
]


@pytest.mark.parametrize("variable, script, dest, convert", LINKS, ids=lambda x: x if isinstance(x, str) else "")
def test_a_stage_run_by_hand_trains_what_make_trains(variable, script, dest, convert):
    assert convert(make_defaults()[variable]) == stage_defaults(script)[dest], \
        f"make's {variable} and {script}'s --{dest.replace('_', '-')} disagree"


def test_left_empty_make_leaves_the_stage_its_own_default():
    """BETA and NLL empty: make passes no flag, so the stage's per-loss default holds either way."""
    defaults = make_defaults()
    assert defaults["BETA"] == "" and defaults["NLL"] == ""
    dpo = stage_defaults("06_dpo.py")
    assert dpo["beta"] == 0.1 and dpo["nll_weight"] == 1.0
