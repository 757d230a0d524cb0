"""Evaluation (eval/): bfcl-eval's checkers score what a scripted stand-in for the model writes (the
gold answers, or wrong ones), the multi-turn loop runs on bfcl-eval's backends, API-Bank scoring,
the leaderboard aggregation against bfcl-eval's own, resuming, the report, and `make eval`.

No test here needs a model except the make smoke test (the tiny random one).
"""
import ast
import json
import subprocess
import sys
import types

import pytest

from conftest import REPO, copy_checkout, make

sys.path.insert(0, str(REPO / "eval"))
import api_bank  # noqa: E402
import bfcl  # noqa: E402
import report  # noqa: E402
import summarize  # noqa: E402
from records import tools_from_system  # noqa: E402

PYTHON_AST = ["simple", "multiple", "parallel", "parallel_multiple",
              "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"]


def scripted(answer):
    """A stand-in for the model: `answer(prompt)` for each prompt; remembers what it was asked."""
    def generate(prompts, max_new_tokens=None):
        generate.asked += [p["id"] for p in prompts]
        return [answer(p) for p in prompts]
    generate.asked = []
    return generate


def args_for(tmp_path, *flags):
    return bfcl.parse_args(["--out", str(tmp_path), *flags])


# --- wrong answers: the same calls with every value changed ---------------------------------------

def wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 3 + 7919
    if isinstance(value, str):
        return value + "Qx"  # bfcl compares strings without case, spaces or punctuation; still an identifier
    if isinstance(value, (list, tuple)):
        return [wrong(v) for v in value] or ["qx"]
    if isinstance(value, dict):
        return {k: wrong(v) for k, v in value.items()}
    return "qx"


def with_wrong_values(answer):
    calls = []
    for call in ast.parse(answer, mode="eval").body.elts:
        args = {kw.arg: wrong(ast.literal_eval(kw.value)) for kw in call.keywords}
        assert args, f"{answer}: a call without arguments cannot get wrong values"
        calls.append(f"{ast.unparse(call.func)}({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    return f"[{', '.join(calls)}]"


# --- Java and JavaScript answers: values in the languages' literal syntax --------------------------

def literal(value, doc_type):
    if isinstance(value, bool):
        return "true" if value else "false"
    if doc_type == "long":
        return f"{value}L"
    if doc_type == "float" and isinstance(value, float):
        return f"{value}f"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value) if doc_type == "String" else value  # "any": a variable name


def scalar_answer(entry, mutate=False):
    """The gold call in Java/JavaScript syntax, or None when a value is a collection."""
    (name, allowed), = entry["ground_truth"][0].items()
    props = entry["function"][0]["parameters"]["properties"]
    args = []
    for key, values in allowed.items():
        value = next(v for v in values if v != "")
        if isinstance(value, (list, dict)):
            return None
        args.append(f"{key}={literal(wrong(value) if mutate else value, props[key]['type'])}")
    return f"[{name}({', '.join(args)})]"


def scalar_entries(category, n=3):
    return [e for e in bfcl.load_category(category) if len(e["ground_truth"]) == 1 and scalar_answer(e)][:n]


# --- BFCL single-turn --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ast_slices():
    """Three items spread over each Python AST category, two or three Java and JavaScript ones."""
    slices = {c: bfcl.load_category(c, limit=3) for c in PYTHON_AST}
    slices["java"] = scalar_entries("java")
    slices["javascript"] = scalar_entries("javascript")
    return slices


def answer_by_id(answers):
    return lambda prompt: answers[prompt["id"]]


def test_gold_answers_score_100_and_wrong_values_0(ast_slices, tmp_path):
    gold, bad = {}, {}
    for category, entries in ast_slices.items():
        for e in entries:
            if category in ("java", "javascript"):
                gold[e["id"]], bad[e["id"]] = scalar_answer(e), scalar_answer(e, mutate=True)
            else:
                gold[e["id"]], bad[e["id"]] = bfcl.gold_answer(e), with_wrong_values(bfcl.gold_answer(e))

    scores = bfcl.evaluate(ast_slices, scripted(answer_by_id(gold)), args_for(tmp_path / "gold"))
    assert {c: s["accuracy"] for c, s in scores["categories"].items()} == {c: 1.0 for c in ast_slices}
    assert scores["aggregates"]["non_live"]["accuracy"] == 1.0 and scores["aggregates"]["live_ast"]["accuracy"] == 1.0
    assert scores["decoder"] == {"bfcl": sum(map(len, ast_slices.values()))}

    scores = bfcl.evaluate(ast_slices, scripted(answer_by_id(bad)), args_for(tmp_path / "bad"))
    assert {c: s["accuracy"] for c, s in scores["categories"].items()} == {c: 0.0 for c in ast_slices}
    verdicts = [json.loads(line) for line in (tmp_path / "bad" / "bfcl_verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == sum(map(len, ast_slices.values()))
    assert all(not v["valid"] and v["error_type"] and v["decoded"] for v in verdicts)
    assert not any(v["error_type"].startswith(("ast_decoder", "checker")) for v in verdicts)  # wrong, not unreadable


def test_relevance_rules(tmp_path):
    entries = {c: bfcl.load_category(c, limit=3) for c in ("irrelevance", "live_irrelevance", "live_relevance")}
    text = scripted(lambda p: "None of the functions can answer that: they do not cover the request.")
    call = scripted(lambda p: f"[{tools_from_system(p['system'])[0]['name']}(x=1)]")
    scores = bfcl.evaluate(entries, text, args_for(tmp_path / "text"))["categories"]
    assert (scores["irrelevance"]["accuracy"], scores["live_irrelevance"]["accuracy"],
            scores["live_relevance"]["accuracy"]) == (1.0, 1.0, 0.0)
    scores = bfcl.evaluate(entries, call, args_for(tmp_path / "call"))["categories"]
    assert (scores["irrelevance"]["accuracy"], scores["live_irrelevance"]["accuracy"],
            scores["live_relevance"]["accuracy"]) == (0.0, 0.0, 1.0)


def test_prompt_is_the_training_layout():
    entry = bfcl.load_category("live_simple", limit=40)[1]
    system = bfcl.entry_system(entry, "live_simple")
    tools = tools_from_system(system)
    assert [t["name"] for t in tools] == [f["name"] for f in entry["function"]]
    assert tools[0]["description"].endswith("Note that the provided function is in Python 3 syntax.")
    assert "Python 3 syntax" not in entry["function"][0]["description"]  # the checker sees the original docs


def test_project_grammar_reads_what_bfcl_decoder_cannot():
    calls, decoder = bfcl.decode('[Get Weather(city="Paris", days=2)]', "Python")
    assert (calls, decoder) == ([{"Get Weather": {"city": "Paris", "days": 2}}], "project")
    assert bfcl.decode("[math.factorial(number=5)]", "Python") == ([{"math.factorial": {"number": 5}}], "bfcl")
    assert bfcl.decode("I cannot do that.", "Python") == (None, "none")


# --- BFCL multi-turn --------------------------------------------------------------------------------

def keyword_only(entry):
    return all(not ast.parse(call, mode="eval").body.args for turn in entry["ground_truth"] for call in turn)


def multi_turn_model(golds):
    """Each turn: the turn's gold calls as one call list, then, after the tool results, a text
    answer (so the loop moves on); text where the gold turn has no call."""
    def answer(prompt):
        turn = sum(m["role"] == "user" for m in prompt["messages"]) - 1
        calls = golds[prompt["id"]][turn]
        return f"[{', '.join(calls)}]" if prompt["messages"][-1]["role"] == "user" and calls else "Done."
    return scripted(answer)


def test_multi_turn_gold_is_valid_and_a_changed_argument_is_not(tmp_path):
    entry = next(e for e in bfcl.load_category("multi_turn_base", limit=20) if keyword_only(e))
    gold = entry["ground_truth"]
    # Change the first string argument of the last call of a turn that moves or writes something.
    turn = next(t for t, calls in enumerate(gold) if calls and "'" in calls[-1]
                and calls[-1].split("(")[0] in ("mv", "cp", "mkdir", "touch", "echo", "post_tweet"))
    changed = [list(calls) for calls in gold]
    head, quote, rest = changed[turn][-1].partition("'")
    changed[turn][-1] = f"{head}{quote}x{rest}"

    generate = multi_turn_model({entry["id"]: gold})
    scores = bfcl.evaluate({"multi_turn_base": [entry]}, generate, args_for(tmp_path / "gold"))
    assert scores["categories"]["multi_turn_base"]["accuracy"] == 1.0
    assert len(generate.asked) == 2 * len(gold)  # per turn: the calls, then the closing text
    generations = json.loads((tmp_path / "gold" / "bfcl_generations.jsonl").read_text())
    assert [len(steps) for steps in generations["output"]] == [2] * len(gold)

    scores = bfcl.evaluate({"multi_turn_base": [entry]}, multi_turn_model({entry["id"]: changed}),
                           args_for(tmp_path / "changed"))
    verdict = json.loads((tmp_path / "changed" / "bfcl_verdicts.jsonl").read_text())
    assert scores["categories"]["multi_turn_base"]["accuracy"] == 0.0
    assert verdict["error_type"] in ("multi_turn:instance_state_mismatch", "multi_turn:execution_response_mismatch")
    assert not [k for k in vars(bfcl.multi_turn_utils) if k.startswith("itool_")]  # backends released


def test_multi_turn_categories_with_gold_calls_score_100(tmp_path):
    entries = {c: [e for e in bfcl.load_category(c, limit=12) if keyword_only(e)][:2]
               for c in bfcl.TEST_COLLECTION_MAPPING["multi_turn"]}
    golds = {e["id"]: e["ground_truth"] for es in entries.values() for e in es}
    scores = bfcl.evaluate(entries, multi_turn_model(golds), args_for(tmp_path))
    assert {c: s["accuracy"] for c, s in scores["categories"].items()} == {c: 1.0 for c in entries}
    # miss_func: the held-out function docs arrive as a user turn, which the gold then uses
    miss_func = next(e for e in entries["multi_turn_miss_func"])
    assert miss_func["missed_function"] and not any(d["name"] in [m["name"] for ms in miss_func["missed_function"].values() for m in ms]
                                                    for d in miss_func["function"])


def test_a_call_loop_is_force_terminated(tmp_path):
    entry = bfcl.load_category("multi_turn_base", limit=1)[0]
    looping = scripted(lambda p: "[pwd()]")
    scores = bfcl.evaluate({"multi_turn_base": [entry]}, looping, args_for(tmp_path, "--max-steps", "3"))
    verdict = json.loads((tmp_path / "bfcl_verdicts.jsonl").read_text())
    assert scores["categories"]["multi_turn_base"]["accuracy"] == 0.0
    assert verdict["error_type"] == "multi_turn:force_terminated" and len(looping.asked) == 4


# --- aggregation, resuming ------------------------------------------------------------------------------

def test_leaderboard_matches_bfcl_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("BFCL_PROJECT_ROOT", str(tmp_path))  # its eval_config makes folders there on import
    from bfcl_eval.eval_checker.eval_runner_helper import generate_leaderboard_csv

    categories = bfcl.TEST_COLLECTION_MAPPING["all"]
    sizes = {c: bfcl.category_size(c) for c in categories}
    accuracy = {c: (i * 37 % 101) / 100 for i, c in enumerate(categories)}
    ours = bfcl.leaderboard(accuracy, sizes)

    config = types.SimpleNamespace(display_name="itool", url="", org="", license="", input_price=None,
                                   output_price=None, underscore_to_dot=False)
    monkeypatch.setitem(bfcl._model_config.MODEL_CONFIG_MAPPING, "itool", config)
    table = {"itool": {c: {"accuracy": accuracy[c], "total_count": sizes[c]} for c in categories}}
    generate_leaderboard_csv(table, tmp_path)
    header, row = (line.split(",") for line in (tmp_path / "data_overall.csv").read_text().splitlines())
    theirs = dict(zip(header, row))
    for key, column in {"overall": "Overall Acc", "non_live": "Non-Live AST Acc", "live": "Live Acc",
                        "multi_turn": "Multi Turn Acc", "relevance": "Relevance Detection",
                        "irrelevance": "Irrelevance Detection"}.items():
        assert f"{100 * ours[key]['accuracy']:.2f}%" == theirs[column], key
        assert ours[key]["missing"] == []

    partial = bfcl.leaderboard({"simple": 0.5, "multiple": 1.0}, sizes)
    assert partial["non_live"]["accuracy"] == 0.75 and "parallel" in partial["non_live"]["missing"]
    assert partial["live"]["accuracy"] is None and partial["overall"]["accuracy"] == 0.75


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    entries = {"simple": bfcl.load_category("simple", limit=6)}
    gold = {e["id"]: bfcl.gold_answer(e) for e in entries["simple"]}
    args = args_for(tmp_path, "--batch-size", "1")  # generations are saved every 4 items

    def killed(prompts, max_new_tokens=None):
        if killed.asked:
            raise KeyboardInterrupt
        killed.asked += [p["id"] for p in prompts]
        return [gold[p["id"]] for p in prompts]
    killed.asked = []
    with pytest.raises(KeyboardInterrupt):
        bfcl.evaluate(entries, killed, args)
    assert not (tmp_path / "bfcl_scores.json").exists() and (tmp_path / bfcl.PARTIAL).exists()

    rest = scripted(answer_by_id(gold))
    scores = bfcl.evaluate(entries, rest, args)
    assert sorted(killed.asked + rest.asked) == sorted(gold) and not set(killed.asked) & set(rest.asked)
    assert scores["categories"]["simple"]["accuracy"] == 1.0 and not (tmp_path / bfcl.PARTIAL).exists()


# --- API-Bank -------------------------------------------------------------------------------------------

API_DESCRIPTIONS = (
    '{"name": "RecordHealthData", "description": "Records health data.", "input_parameters": {"user_id": {"type": "str", '
    '"description": "User id."}, "time": {"type": "str", "description": "Time."}, "health_data": {"type": "list", '
    '"description": "Data."}}, "output_parameters": {"status": {"type": "str", "description": "Status."}}}\n'
    '{"name": "QueryStock", "description": "Queries a stock price.", "input_parameters": {"stock_code": {"type": "str", '
    '"description": "Stock code."}, "days": {"type": "int", "description": "Days back."}}, "output_parameters": {}}')
INSTRUCTION = ("\nGenerate an API request in the format of [ApiName(key1='value1', key2='value2', ...)] based on the "
               "previous dialogue context.\nThe current year is 2023.\n\nAPI descriptions:\n")
LEVEL_1 = [
    {"file": "a.jsonl", "id": 0, "instruction": INSTRUCTION + API_DESCRIPTIONS,
     "input": "User: Record my blood pressure 120/80, user 12345, at 9:30 on October 13.\nAI: Sure.\nGenerate API Request:\n",
     "expected_output": "API-Request: [RecordHealthData(user_id='12345', time='2023-10-13 09:30:00', "
                        "health_data='[{'name': 'blood_pressure', 'value': '120/80'}]')]"},
    {"file": "a.jsonl", "id": 1, "instruction": INSTRUCTION + API_DESCRIPTIONS,
     "input": "User: Price of MSFT over the last 3 days?\nAI: Let me check.\nGenerate API Request:\n",
     "expected_output": "API-Request: [QueryStock(stock_code='MSFT', days='3')]"},
]
LEVEL_2 = [
    {"file": "b.jsonl", "id": 0, "instruction": INSTRUCTION + '{"name": "ToolSearcher", "description": "Searches tools.", '
     '"input_parameters": {"keywords": {"type": "str", "description": "Keywords."}}, "output_parameters": {}}',
     "input": "User: Stock price of Tesla?\nAI: Let me search.\nAPI-Request: [ToolSearcher(keywords='stock price')]->"
              "{'name': 'QueryStock', 'description': 'Queries a stock price.', 'input_parameters': {'stock_code': "
              "{'type': 'str', 'description': 'Stock code.'}}}\nGenerate API Request:\n",
     "expected_output": "API-Request: [QueryStock(stock_code='TSLA')]"},
]


@pytest.fixture()
def api_bank_dir(tmp_path):
    data = tmp_path / "api-bank"
    data.mkdir()
    (data / "level-1-api.json").write_text(json.dumps(LEVEL_1))
    (data / "level-2-api.json").write_text(json.dumps(LEVEL_2))
    return data


def load_api_bank(data):
    return [item for level, name in api_bank.LEVELS.items() for item in api_bank.load_level(data / name, level)]


def test_api_bank_prompts_follow_the_training_layout(api_bank_dir):
    items = load_api_bank(api_bank_dir)
    tools = tools_from_system(items[0]["system"])
    assert [t["name"] for t in tools] == ["RecordHealthData", "QueryStock"]
    assert tools[1]["parameters"] == {"type": "dict", "required": ["stock_code", "days"], "properties": {
        "stock_code": {"type": "string", "description": "Stock code."}, "days": {"type": "integer", "description": "Days back."}}}
    assert items[0]["system"].rstrip().endswith("The current year is 2023.")
    retrieval = items[2]["messages"]
    assert [m["role"] for m in retrieval] == ["user", "assistant", "assistant", "tool"]
    assert json.loads(retrieval[3]["content"])[0]["results"]["name"] == "QueryStock"


def test_api_bank_scores_gold_right_and_changed_calls_wrong(api_bank_dir, tmp_path):
    items = load_api_bank(api_bank_dir)
    answers = {  # right: the expected calls written as a model trained on ToolACE would write them
        "L-1/0": '[RecordHealthData(user_id=12345, time="2023-10-13 09:30:00", '
                 'health_data=[{"name": "Blood_Pressure", "value": "120/80"}])]',
        "L-1/1": '[QueryStock(stock_code="msft", days=3)]',
        "L-2/0": "API-Request: [QueryStock(stock_code='TSLA')]",
    }
    args = api_bank.parse_args(["--out", str(tmp_path / "gold"), "--data-dir", str(api_bank_dir)])
    scores = api_bank.evaluate(items, scripted(answer_by_id(answers)), args)
    assert {k: v["accuracy"] for k, v in scores["levels"].items()} == {"L-1": 1.0, "L-2": 1.0}

    wrong_answers = {
        "L-1/0": '[RecordHealthData(user_id=12345, time="2023-10-13 09:30:00", health_data=[{"name": "blood_pressure", "value": "130/80"}])]',
        "L-1/1": '[QueryStock(stock_code="MSFT")]',  # a missing argument
        "L-2/0": "[ToolSearcher(keywords='stock price')]",
    }
    args = api_bank.parse_args(["--out", str(tmp_path / "bad"), "--data-dir", str(api_bank_dir)])
    scores = api_bank.evaluate(items, scripted(answer_by_id(wrong_answers)), args)
    assert {k: v["accuracy"] for k, v in scores["levels"].items()} == {"L-1": 0.0, "L-2": 0.0}
    assert scores["error_types"] == {"wrong_args": 2, "wrong_name": 1}
    expected = items[1]["expected"]
    assert api_bank.verdict("I need the stock code first.", expected)["error_type"] == "no_call"
    assert api_bank.verdict("[QueryStock(stock_code='MSFT', days=3), QueryStock(stock_code='MSFT', days=3)]",
                            expected)["error_type"] == "wrong_count"
    assert not api_bank.verdict("[QueryStock(stock_code='MSFT', days=30)]", expected)["valid"]


def test_api_bank_bad_record_names_file_and_record(tmp_path):
    path = tmp_path / "level-1-api.json"
    path.write_text(json.dumps([LEVEL_1[0], {**LEVEL_1[1], "expected_output": "I cannot do that."}]))
    with pytest.raises(api_bank.RecordError, match=r"level-1-api.json: record 1: expected_output"):
        api_bank.load_level(path, "L-1")


# --- summaries and the report -------------------------------------------------------------------------

def fixture_summary(name, level):
    """A checkpoint's summary whose every accuracy is `level` (Live a bit higher)."""
    categories = {c: {"accuracy": level + (0.1 if c.startswith("live") else 0.0), "correct": 0, "scored": 1, "size": 1}
                  for c in bfcl.TEST_COLLECTION_MAPPING["all"]}
    sizes = {c: bfcl.category_size(c) for c in categories}
    bfcl_scores = {"model": "gemma-3-270m", "adapter": None if name == "base" else f"checkpoints/x/{name}", "limit": 5,
                   "categories": categories, "seconds_per_item": 1.0,
                   "aggregates": bfcl.leaderboard({c: s["accuracy"] for c, s in categories.items()}, sizes)}
    api_scores = {"model": "gemma-3-270m", "limit": 5, "seconds_per_item": 1.0,
                  "levels": {"L-1": {"accuracy": level}, "L-2": {"accuracy": level / 2}}}
    return summarize.summary(name, bfcl_scores, api_scores)


def test_report_puts_checkpoints_side_by_side_and_plots(tmp_path, monkeypatch):
    levels = {"iter_2": 0.5, "base": 0.0, "iter_10": 0.6, "warmup": 0.3, "iter_1": 0.4, "my-adapter": 0.2}
    for name, level in levels.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(fixture_summary(name, level)))
    monkeypatch.setattr(sys, "argv", ["report.py", "--results", str(tmp_path)])
    report.main()

    text = (tmp_path / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "Overall" not in line and "category" not in line]
    assert [r.split(" | ")[0][2:] for r in rows[:6]] == ["base", "warmup", "iter_1", "iter_2", "iter_10", "my-adapter"]
    assert rows[1].split(" | ")[2] == "30.00" and rows[1].split(" | ")[-1] == "15.00 |"  # warm-up: Non-live, L2
    assert "| live_simple | 10.00 | 40.00 | 50.00 | 60.00 | 70.00 | 30.00 |" in text
    png = (tmp_path / "accuracy_vs_iteration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# --- the command line with the tiny model, and make's wiring ------------------------------------------

def run_main(module, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    module.main()


def test_cli_end_to_end_with_the_tiny_model(tmp_path, api_bank_dir, tiny_model_dir, monkeypatch):
    out = tmp_path / "base"
    common = ["--model", "tiny", "--out", str(out), "--limit", "1", "--max-new-tokens", "4", "--batch-size", "2"]
    run_main(bfcl, monkeypatch, *common, "--categories", "simple,irrelevance")
    run_main(api_bank, monkeypatch, *common, "--data-dir", str(api_bank_dir))
    run_main(summarize, monkeypatch, "--dir", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bfcl_categories"].keys() == {"simple", "irrelevance"}
    assert summary["table2"].keys() == {"L-1", "L-2"} and summary["limit"] == {"bfcl": 1, "api_bank": 1}
    generations = [json.loads(line) for line in (out / "bfcl_generations.jsonl").read_text().splitlines()]
    assert [g["id"] for g in generations] == ["simple_0", "irrelevance_0"]
    assert all(isinstance(g["output"], str) for g in generations)
    assert "| base |" in (out / "table.md").read_text()

    with pytest.raises(SystemExit, match="no adapter_model.safetensors"):
        run_main(bfcl, monkeypatch, *common, "--adapter", str(tmp_path / "missing"))


def test_make_eval_runs_each_benchmark_when_its_inputs_change(tmp_path):
    checkout = copy_checkout(tmp_path)
    variables = ["MODEL=tiny", "RUN=t", "LIMIT=3", "CATEGORIES=simple,live", f"API_BANK={tmp_path / 'api'}"]
    commands = " ".join(make(checkout, "-n", "eval", *variables).stdout.replace("\n", " ; ").split())
    assert "eval/bfcl.py --model tiny --qlora auto --out eval/results/t/base --limit 3 --categories simple,live" in commands
    assert f"eval/api_bank.py --model tiny --qlora auto --out eval/results/t/base --limit 3 --data-dir {tmp_path / 'api'}" in commands
    assert "eval/summarize.py --dir eval/results/t/base --name base" in commands

    results = checkout / "eval" / "results" / "t" / "base"  # stand-ins, newer than every input
    results.mkdir(parents=True)
    for name in ("bfcl_scores.json", "api_bank_scores.json", "summary.json"):
        (results / name).touch()
    assert make(checkout, "-q", "eval", *variables, check=False).returncode == 0
    rerun = make(checkout, "-n", "eval", *variables[:2], "LIMIT=4", *variables[3:]).stdout
    assert "eval/bfcl.py" in rerun and "eval/api_bank.py" in rerun
    make(checkout, "-n", "eval", *variables)  # back to LIMIT=3 in the stamps
    for name in ("bfcl_scores.json", "api_bank_scores.json", "summary.json"):
        (results / name).touch()
    rerun = make(checkout, "-n", "eval", *variables[:3], "CATEGORIES=simple", *variables[4:]).stdout
    assert "eval/bfcl.py" in rerun and "eval/api_bank.py" not in rerun

    adapter = checkout / "my_adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").touch()
    commands = " ".join(make(checkout, "-n", "eval", *variables, f"CKPT={adapter}/").stdout.split())
    assert f"--adapter {adapter}/ --out eval/results/t/my_adapter" in commands


def test_bfcl_cli_rejects_unknown_category(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "eval" / "bfcl.py"), "--out", str(tmp_path),
                             "--categories", "simple,nonsense"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown category" in result.stderr
