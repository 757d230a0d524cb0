"""No evaluation item reaches the training data.

The synthetic generator's catalogue and phrasings are written by hand, and some of its function
names are the generic ones that BFCL also uses (calculate_triangle_area, get_current_weather). What
must never happen is that a benchmark's text leaks in: a BFCL question, an API-Bank dialogue, a record of the
ToolACE sample (the yardstick) or a function description copied into a request, an answer or a tool doc. The check is the usual one
for leakage: no run of N_WORDS consecutive words is shared with any evaluation text.
"""
import json
import re

import pytest

from conftest import REPO
from itool import synthetic

N_WORDS = 12  # long enough that common English ("find the area of a triangle with a base of") does not count
SEEDS = (0, 1)
RECORDS = 3000


def word_runs(text, n=N_WORDS):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, list):
        for y in x:
            yield from strings(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from strings(y)


def bfcl_texts():
    bfcl_eval = pytest.importorskip("bfcl_eval")
    from pathlib import Path
    files = sorted((Path(bfcl_eval.__file__).parent / "data").glob("BFCL_v3_*.json"))
    assert files, "bfcl-eval ships no BFCL_v3 data files"
    for path in files:
        for line in path.read_text().splitlines():
            item = json.loads(line)
            yield from strings(item.get("question"))
            yield from strings(item.get("function"))


def api_bank_texts():
    for path in sorted((REPO / "eval" / "data" / "api-bank").glob("level-*.json")):
        yield from strings(json.loads(path.read_text()))


def toolace_texts():
    yield from strings(json.loads((REPO / "eval" / "data" / "toolace" / "toolace_sample.json").read_text()))


@pytest.fixture(scope="module")
def evaluation_runs():
    runs = set()
    for text in list(bfcl_texts()) + list(api_bank_texts()) + list(toolace_texts()):
        runs |= word_runs(text)
    assert len(runs) > 10_000  # the evaluation data was found and read
    return runs


@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_data_shares_no_run_of_words_with_bfcl_api_bank_or_toolace(evaluation_runs, seed):
    leaks = []
    for record in synthetic.generate(RECORDS, seed):
        # The system prompt's instruction is the one ToolACE and BFCL use, shared on purpose; of its tool docs,
        # each string (a description, an enum value) on its own, not the JSON schema's words around them.
        docs = list(strings(json.loads(record["system"].split("you can invoke:\n", 1)[1])))
        for text in docs + [turn["value"] for turn in record["conversations"]]:
            shared = word_runs(text) & evaluation_runs
            if shared:
                leaks.append((text[:120], " ".join(sorted(shared)[0])))
    assert not leaks, f"{len(leaks)} synthetic texts share {N_WORDS} words with BFCL, API-Bank or ToolACE: {leaks[:3]}"


def test_the_check_finds_a_leak(evaluation_runs):
    """A BFCL question pasted into a request is caught (the test above can fail)."""
    question = next(t for t in bfcl_texts() if len(t.split()) > 20)
    assert word_runs("Hello. " + question) & evaluation_runs
