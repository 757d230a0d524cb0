"""Stage 00 (records in) and stage 01 (warm-up/RL split, difficulty thirds)."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, load_stage
from itool import files, records, synthetic


def run_stage(script, *args):
    return subprocess.run([sys.executable, str(REPO / "stages" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split")
    out = run_stage("00_data.py", "--data", "synthetic", "--conversations", 300, "--seed", 3, "--out", tmp / "toolace.jsonl")
    assert out.returncode == 0, out.stderr
    out = run_stage("01_split_difficulty.py", "--records", tmp / "toolace.jsonl", "--out", tmp / "splits", "--seed", 3)
    assert out.returncode == 0, out.stderr
    return tmp / "splits"


def test_split_is_by_conversation(split_dir):
    warm = [s for level in ("easy", "medium", "hard") for s in files.read_jsonl(split_dir / f"{level}.jsonl")]
    rl = files.read_jsonl(split_dir / "rl.jsonl")
    test = files.read_jsonl(split_dir / "test.jsonl")
    conversations = [{s["conversation"] for s in part} for part in (warm, rl, test)]
    assert not conversations[0] & conversations[1] and not conversations[0] & conversations[2]
    assert not conversations[1] & conversations[2]
    assert len(set.union(*conversations)) == 300
    assert (len(conversations[1]), len(conversations[2])) == (45, 78)  # 15 % and 26 %
    # every assistant turn of every conversation is a sample, exactly once
    ids = [s["id"] for s in warm + rl + test]
    assert len(ids) == len(set(ids))
    expected = sum(t["from"] == "assistant" for r in files.read_jsonl(split_dir.parent / "toolace.jsonl")
                   for t in r["conversations"])
    assert len(ids) == expected
    assert json.loads((split_dir / "stats.json").read_text())["test"]["conversations"] == 78


def read_thirds(split_dir):
    return [files.read_jsonl(split_dir / f"{level}.jsonl") for level in ("easy", "medium", "hard")]


def test_thirds_by_kind_hold_the_same_mix_each_ordered_by_difficulty(tmp_path, split_dir):
    """--thirds by-kind: calls, reports (text after a tool result) and replies (text to the user: asks,
    declines) are each cut into their own thirds, so the curriculum does not end on calls and
    reports alone; within a stratum the thirds still go easy to hard."""
    out = run_stage("01_split_difficulty.py", "--records", split_dir.parent / "toolace.jsonl", "--out", tmp_path,
                    "--seed", 3, "--thirds", "by-kind")
    assert out.returncode == 0, out.stderr
    thirds = read_thirds(tmp_path)
    assert json.loads((tmp_path / "stats.json").read_text())["thirds"] == "by-kind"
    def stratum(s):
        return "call" if s["kind"] == "call" else "report" if s["messages"][-1]["role"] == "tool" else "reply"

    for kind in ("call", "report", "reply"):
        parts = [[s for s in third if stratum(s) == kind] for third in thirds]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) > 5, kind
        for lower, upper in zip(parts, parts[1:]):
            assert max(s["difficulty"] for s in lower) <= min(s["difficulty"] for s in upper), kind


def test_thirds_replies_put_asks_and_declines_in_every_third_and_rank_the_rest_together(tmp_path, split_dir):
    """--thirds replies: only the replies are cut into thirds of their own; calls and reports are
    ranked together as in the paper, so the hard third keeps the hardest of them, calls mostly."""
    out = run_stage("01_split_difficulty.py", "--records", split_dir.parent / "toolace.jsonl", "--out", tmp_path,
                    "--seed", 3, "--thirds", "replies")
    assert out.returncode == 0, out.stderr
    thirds = read_thirds(tmp_path)
    def is_reply(s):
        return s["kind"] == "text" and s["messages"][-1]["role"] != "tool"

    for part in ([s for s in third if is_reply(s)] for third in thirds), ([s for s in third if not is_reply(s)]
                                                                            for third in thirds):
        part = list(part)
        assert max(map(len, part)) - min(map(len, part)) <= 1 and min(map(len, part)) > 5
        for lower, upper in zip(part, part[1:]):
            assert max(s["difficulty"] for s in lower) <= min(s["difficulty"] for s in upper)
    rest = [[s for s in third if not is_reply(s)] for third in thirds]
    reports = [sum(s["kind"] == "text" for s in third) for third in rest]
    assert reports[0] > reports[2], reports  # calls and reports ranked together: reports stay mostly easy


def test_thirds_ranked_together_as_in_the_paper_put_text_answers_first(split_dir):
    """The default (--thirds all, the paper's): every sample ranked together."""
    assert json.loads((split_dir / "stats.json").read_text())["thirds"] == "all"
    thirds = read_thirds(split_dir)
    for lower, upper in zip(thirds, thirds[1:]):
        assert max(s["difficulty"] for s in lower) <= min(s["difficulty"] for s in upper)
    text = [sum(s["kind"] == "text" for s in third) for third in thirds]
    assert text[0] > 2 * text[2], text  # what by-kind corrects: the hard third is nearly all calls
    replies = [sum(s["kind"] == "text" and s["messages"][-1]["role"] != "tool" for s in third) for third in thirds]
    assert replies[2] * 5 < replies[0], replies  # and holds almost no ask or decline


def test_thirds_equal_and_harder_on_every_criterion(split_dir):
    thirds = read_thirds(split_dir)
    sizes = [len(t) for t in thirds]
    assert max(sizes) - min(sizes) <= 2  # each kind's thirds differ by at most one
    # each criterion is (weakly) harder on average from one third to the next
    for criterion in ("n_tools", "tools_chars", "n_calls"):
        means = [sum(s[criterion] for s in t) / len(t) for t in thirds]
        assert means == sorted(means), criterion
    stats = json.loads((split_dir / "stats.json").read_text())
    assert [stats[level]["samples"] for level in ("easy", "medium", "hard")] == sizes
    assert stats["hard"]["n_tools"]["max"] >= stats["easy"]["n_tools"]["max"]


def test_difficulty_is_the_mean_of_criterion_ranks():
    samples = [{"id": str(i), "n_tools": t, "tools_chars": c, "n_calls": k}
               for i, (t, c, k) in enumerate([(1, 100, 1), (3, 300, 2), (2, 200, 0), (1, 100, 1), (5, 50, 3), (2, 900, 2)])]
    split = load_stage("01_split_difficulty.py")
    assert split.average_ranks([10, 30, 20, 10]) == [1.5, 4.0, 3.0, 1.5]
    thirds = split.difficulty_thirds(samples)
    # ranks: n_tools [1.5,5,3.5,1.5,6,3.5], chars [2.5,5,4,2.5,1,6], calls [2.5,4.5,1,2.5,6,4.5]
    assert samples[0]["difficulty"] == pytest.approx((1.5 + 2.5 + 2.5) / 3)
    assert [s["id"] for s in thirds["easy"]] == ["0", "3"]
    assert [s["id"] for s in thirds["medium"]] == ["2", "4"]
    assert [s["id"] for s in thirds["hard"]] == ["5", "1"]


def test_split_is_seeded(tmp_path, split_dir):
    run_stage("01_split_difficulty.py", "--records", split_dir.parent / "toolace.jsonl", "--out", tmp_path / "a", "--seed", 3)
    run_stage("01_split_difficulty.py", "--records", split_dir.parent / "toolace.jsonl", "--out", tmp_path / "b", "--seed", 4)
    same = (tmp_path / "a" / "rl.jsonl").read_text() == (split_dir / "rl.jsonl").read_text()
    different = (tmp_path / "b" / "rl.jsonl").read_text() != (split_dir / "rl.jsonl").read_text()
    assert same and different


def write_records(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
@pytest.mark.parametrize("breakage, message", [
    (lambda r: r.pop("system"), "missing or non-string 'system'"),
    (lambda r: r["conversations"][0].update({"from": "robot"}), "turn 0 must be"),
    (lambda r: r.update({"system": "no tools here"}), "turn 1: calls"),  # a tool-less record that calls
    (lambda r: r.update({"system": records.TOOLS_INTRO + "\n[{\"name\": \"f\",}]"}), "not valid JSON"),
    (lambda r: r.update({"conversations": [c for c in r["conversations"] if c["from"] != "assistant"]}), "no assistant turn"),
])
def test_malformed_record_error_names_file_and_record(tmp_path, suffix, breakage, message):
    rows = synthetic.generate(5, seed=0)
    breakage(rows[3])
    path = tmp_path / f"input{suffix}"
    write_records(path, rows)
    out = run_stage("00_data.py", "--data", path, "--out", tmp_path / "out.jsonl")
    assert out.returncode != 0
    assert f"{path}: record 3" in out.stderr and message in out.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "input.jsonl"
    path.write_text(json.dumps(synthetic.generate(1, seed=0)[0]) + "\n{not json\n")
    out = run_stage("00_data.py", "--data", path, "--out", tmp_path / "out.jsonl")
    assert out.returncode != 0 and f"{path}: record 1 (line 2)" in out.stderr


def test_skip_bad_counts_what_it_skips(tmp_path):
    rows = synthetic.generate(6, seed=0)
    rows[1]["conversations"] = "oops"
    rows[4]["system"] = 7
    path = tmp_path / "input.json"
    write_records(path, rows)
    out = run_stage("00_data.py", "--data", path, "--skip-bad", "--out", tmp_path / "out.jsonl")
    assert out.returncode == 0, out.stderr
    assert len(files.read_jsonl(tmp_path / "out.jsonl")) == 4
    stats = json.loads((tmp_path / "data_stats.json").read_text())
    assert stats["skipped"] == 2 and "record 1" in stats["skipped_errors"][0] and "record 4" in stats["skipped_errors"][1]


def test_too_few_conversations_is_a_clear_error(tmp_path):
    files.write_jsonl(tmp_path / "toolace.jsonl",
                      [{"id": f"r{i}", **r} for i, r in enumerate(synthetic.generate(3, seed=0))])
    out = run_stage("01_split_difficulty.py", "--records", tmp_path / "toolace.jsonl", "--out", tmp_path / "splits")
    assert out.returncode != 0 and "too few" in out.stderr
    assert not (tmp_path / "splits").exists()


def test_tools_from_system_finds_the_list_in_other_phrasings():
    tools = [{"name": "get weather", "description": "d", "parameters": {"type": "dict", "properties": {}}}]
    assert records.tools_from_system(records.render_system(tools)) == tools
    other = "Tools [see below]:\n" + json.dumps(tools) + "\nAnswer [briefly]."
    assert records.tools_from_system(other) == tools
    assert records.tools_from_system("no tools [at all]") == []


def test_hub_loading_code_reads_a_local_dataset_folder(tmp_path):
    # DATA=<hub id> goes through datasets.load_dataset, which reads a local dataset folder the same way
    folder = tmp_path / "toolace-like"
    folder.mkdir()
    rows = synthetic.generate(8, seed=5)
    (folder / "data.json").write_text(json.dumps(rows))
    out = run_stage("00_data.py", "--data", folder, "--out", tmp_path / "out.jsonl")
    assert out.returncode == 0, out.stderr
    loaded = files.read_jsonl(tmp_path / "out.jsonl")
    assert [r["conversations"] for r in loaded] == [r["conversations"] for r in rows]
    assert [r["system"] for r in loaded] == [r["system"] for r in rows]
