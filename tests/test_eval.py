"""Evaluation (eval/): bfcl-eval's checkers score what a scripted stand-in for the model writes (the
gold answers, or wrong ones), and the verdicts agree with bfcl-eval's own functions called as its
eval_runner calls them; the multi-turn loop runs on bfcl-eval's backends, API-Bank scoring, the
Table 1 aggregation against bfcl-eval's own, partial runs, resuming, the report, and `make eval`.
The paired comparison has its own tests (test_compare.py).

No test here needs a model except the make smoke test (the tiny random one).
"""
import ast
import json
import subprocess
import sys
import types

import pytest

from conftest import REPO, copy_checkout, make
from eval import api_bank, bfcl, common, report, summarize
from itool.records import tools_from_system

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
    assert scores["aggregates"]["non_live_ast"]["accuracy"] == 1.0 and scores["aggregates"]["live_ast"]["accuracy"] == 1.0
    assert scores["aggregates"]["non_live"]["accuracy"] is None  # irrelevance, part of Non-live, was not run
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


def on_lines(answer):
    """A call list broken over lines after each call: Python's ast, so bfcl-eval's decoder, cannot
    read it once the brackets are stripped; the project's grammar can."""
    return answer.replace("), ", "),\n")


def test_headlines_use_bfcl_decoder_alone_and_the_grammar_is_a_diagnostic(tmp_path):
    assert bfcl.decode_ast("[math.factorial(number=5)]", "Python") == ([{"math.factorial": {"number": 5}}], None)
    assert bfcl.decode_ast('[Get Weather(city="Paris")]', "Python") == (None, "ast_decoder:decoder_failed")
    assert bfcl.decode_grammar('[Get Weather(city="Paris", days=2)]') == [{"Get Weather": {"city": "Paris", "days": 2}}]
    assert bfcl.decode_grammar("I cannot do that.") is None

    parallel = [e for e in bfcl.load_category("parallel", limit=4) if len(e["ground_truth"]) > 1][:2]
    relevance = {c: bfcl.load_category(c, limit=2) for c in ("irrelevance", "live_relevance")}
    answers = {e["id"]: on_lines(bfcl.gold_answer(e)) for e in parallel}
    answers.update({e["id"]: '[Get Weather(city="Paris")]' for es in relevance.values() for e in es})
    scores = bfcl.evaluate({"parallel": parallel, **relevance}, scripted(answer_by_id(answers)), args_for(tmp_path))

    categories = scores["categories"]
    assert {c: (s["accuracy"], s["grammar_accuracy"]) for c, s in categories.items()} == {
        "parallel": (0.0, 1.0), "irrelevance": (1.0, 0.0), "live_relevance": (0.0, 1.0)}
    assert scores["aggregates"]["irrelevance"]["partial"] == 1.0  # the headline side, not the grammar's
    verdicts = [json.loads(line) for line in (tmp_path / "bfcl_verdicts.jsonl").read_text().splitlines()]
    assert {v["decoder"] for v in verdicts} == {"grammar"} and all(v["decoded"] is None for v in verdicts)
    assert {v["error_type"] for v in verdicts if v["category"] == "parallel"} == {"ast_decoder:decoder_failed"}
    assert scores["decoder"] == {"grammar": len(verdicts)}
    assert "| parallel | 0.00 | 0 / 2 | 200 |" in (tmp_path / "bfcl.md").read_text()


# --- the verdicts against bfcl-eval's eval_runner -----------------------------------------------------

def eval_runner_valid(category, raw_entries, outputs, answers, model_name):
    """Per entry, whether bfcl-eval's eval_runner passes `outputs` (the raw model output of each
    of `raw_entries`, as read from its data files), calling its functions the way ast_file_runner,
    relevance_file_runner and multi_turn_runner do for a prompt-mode model. Such a model's handler
    (OSSHandler) decodes with default_decode_ast_prompting and default_decode_execute_prompting."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting, default_decode_execute_prompting
    from bfcl_eval.utils import is_java, is_js

    language = "Python"
    if is_java(category):
        language = "Java"
    if is_js(category):
        language = "JavaScript"
    valid = []
    for entry, output in zip(raw_entries, outputs):
        if bfcl.is_relevance_or_irrelevance(category):
            try:
                contain_call = not bfcl.is_empty_output(default_decode_ast_prompting(output, language="Python"))
            except Exception:
                contain_call = False
            valid.append(not contain_call if "irrelevance" in category else contain_call)
        elif bfcl.is_multi_turn(category):
            truth = answers[entry["id"]]
            if len(output) != len(truth):
                valid.append(False)
                continue
            decoded = []
            for steps in output:
                turn = []
                for step in steps:
                    try:
                        calls = default_decode_execute_prompting(step)
                    except Exception:
                        continue
                    if not is_empty_execute_response(calls):
                        turn.append(calls)
                decoded.append(turn)
            test_entry = {k: v for k, v in entry.items() if k != "function"}
            valid.append(bfcl.multi_turn_checker(decoded, truth, test_entry, category, model_name)["valid"])
        else:
            try:
                decoded = default_decode_ast_prompting(output, language)
            except Exception:
                valid.append(False)
                continue
            if not bfcl.is_function_calling_format_output(decoded):
                valid.append(False)
                continue
            valid.append(bfcl.ast_checker(entry["function"], decoded, answers[entry["id"]], language, category,
                                          model_name)["valid"])
    return valid


def raw_category(category):
    """A category's entries and answers as bfcl-eval's runner loads them (sorted by id)."""
    from bfcl_eval.utils import load_file

    entries = load_file(bfcl.BFCL_DATA / bfcl.TEST_FILE_MAPPING[category], sort_by_id=True)
    answer_file = bfcl.BFCL_DATA / "possible_answer" / bfcl.TEST_FILE_MAPPING[category]
    answers = {a["id"]: a["ground_truth"] for a in load_file(answer_file)} if answer_file.is_file() else {}
    return entries, answers


def single_turn_answer(entry, category, k):
    """The k-th fixture answer of a category: for the AST categories gold, wrong values, the gold
    over several lines (bfcl-eval's decoder fails where it has several calls; the project's grammar
    reads it) or text; for relevance ones text, a call, or a call whose name has spaces."""
    if bfcl.is_relevance_or_irrelevance(category):
        return ["No function here can answer that.", f"[{entry['function'][0]['name']}(x=1)]",
                '[Get Weather(city="Paris")]'][k % 3]
    if category in ("java", "javascript"):
        return scalar_answer(entry, mutate=k % 2 == 1)
    gold = bfcl.gold_answer(entry)
    kind = ["gold", "wrong", "lines", "text"][k % 4]
    if kind == "wrong" and all(call.keywords for call in ast.parse(gold, mode="eval").body.elts):
        return with_wrong_values(gold)
    return {"gold": gold, "lines": on_lines(gold)}.get(kind, "I need more details before I can do that.")


def test_verdicts_agree_with_bfcl_eval_runner(tmp_path):
    picks = {"simple": 8, "parallel": 8, "parallel_multiple": 4, "live_multiple": 8, "live_parallel": 8,
             "irrelevance": 6, "live_irrelevance": 6, "live_relevance": 0, "java": None, "javascript": None}
    entries, raw, answers = {}, {}, {}
    for category, limit in picks.items():
        raw_entries, answers[category] = raw_category(category)
        ours = bfcl.load_category(category)
        if limit is None:  # Java, JavaScript: the entries whose gold the test can write in their syntax
            positions = [i for i, e in enumerate(ours) if len(e["ground_truth"]) == 1 and scalar_answer(e)][:4]
        else:
            positions = common.spread(range(len(ours)), limit)
        entries[category] = [ours[i] for i in positions]
        raw[category] = [raw_entries[i] for i in positions]
        assert all(o["id"].split("#")[0] == r["id"] for o, r in zip(entries[category], raw[category]))
    # Answers keyed by the question too: live_relevance has two entries under one id.
    fixture = {c: [single_turn_answer(e, c, k) for k, e in enumerate(es)] for c, es in entries.items()}
    by_question = {(r["id"], r["question"][0][-1]["content"]): answer
                   for c in entries for r, answer in zip(raw[c], fixture[c])}
    model = scripted(lambda p: by_question[p["id"].split("#")[0], p["messages"][-1]["content"]])
    scores = bfcl.evaluate(entries, model, args_for(tmp_path / "single"))
    verdicts = [json.loads(line) for line in (tmp_path / "single" / "bfcl_verdicts.jsonl").read_text().splitlines()]

    for category in entries:
        reference = eval_runner_valid(category, raw[category], fixture[category], answers[category], "reference")
        ours = [v["valid"] for v in verdicts if v["category"] == category]
        assert ours == reference, category
        assert scores["categories"][category]["accuracy"] == sum(reference) / len(reference), category
    # The fixture holds what it claims: both decoders' cases, passes and failures, the repeated id.
    assert {v["decoder"] for v in verdicts} == {"bfcl", "grammar", "none"}
    assert any(not v["valid"] and v["grammar_valid"] for v in verdicts if v["category"] == "parallel")
    assert {v["valid"] for v in verdicts if v["decoder"] == "bfcl"} == {True, False}
    repeated = len(raw["live_relevance"]) - len({e["id"] for e in raw["live_relevance"]})
    assert len(entries["live_relevance"]) == bfcl.category_size("live_relevance") and repeated == 1

    # One multi-turn entry, twice: its gold calls, then the same with one turn's calls over several
    # lines, which bfcl-eval's decoder cannot read, so that turn executes nothing.
    category = "multi_turn_base"
    raw_entries, truth = raw_category(category)
    position, entry = next((i, e) for i, e in enumerate(bfcl.load_category(category)) if keyword_only(e)
                           and any(len(calls) > 1 for calls in e["ground_truth"]))
    broken = [[on_lines(", ".join(calls))] if len(calls) > 1 else calls for calls in entry["ground_truth"]]
    for name, turns in {"gold": entry["ground_truth"], "broken": broken}.items():
        bfcl.evaluate({category: [entry]}, multi_turn_model({entry["id"]: turns}), args_for(tmp_path / name))
        generated = json.loads((tmp_path / name / "bfcl_generations.jsonl").read_text())["output"]
        verdict = json.loads((tmp_path / name / "bfcl_verdicts.jsonl").read_text())
        reference_name = bfcl.backend_name()
        try:
            reference = eval_runner_valid(category, [raw_entries[position]], [generated], truth, reference_name)
        finally:
            bfcl.forget_backends(reference_name)
        assert [verdict["valid"]] == reference == [name == "gold"], name


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


def keyword_calls(calls, docs):
    """Gold calls with their positional arguments named (bfcl-eval's decoder keeps only keyword
    arguments), from the function docs' parameter order."""
    params = {d["name"]: list(d["parameters"].get("properties", {})) for d in docs}
    named = []
    for text in calls:
        call = ast.parse(text, mode="eval").body
        name = ast.unparse(call.func)
        args = [f"{k}={ast.unparse(v)}" for k, v in zip(params[name], call.args)]
        args += [f"{kw.arg}={ast.unparse(kw.value)}" for kw in call.keywords]
        named.append(f"{name}({', '.join(args)})")
    return named


def test_multi_turn_end_to_end_reports_time_and_accuracy_per_category(tmp_path, monkeypatch):
    """The command line, summary and report of a multi-turn run, with a scripted generator in
    place of load_generator's model: per category accuracy, time per item and steps per item."""
    golds = {}
    for category in bfcl.TEST_COLLECTION_MAPPING["multi_turn"]:
        for e in bfcl.load_category(category, limit=2):
            docs = e["function"] + [d for ds in e["missed_function"].values() for d in ds]
            golds[e["id"]] = [keyword_calls(calls, docs) for calls in e["ground_truth"]]
    generate = multi_turn_model(golds)
    monkeypatch.setattr(bfcl.common, "load_generator", lambda *args, **kwargs: generate)
    out = tmp_path / "warmup"
    run_main(bfcl, monkeypatch, "--out", str(out), "--categories", "multi_turn", "--limit", "2")
    run_main(summarize, monkeypatch, "--dir", str(out))
    run_main(report, monkeypatch, "--results", str(tmp_path), "--resamples", "200")

    categories = json.loads((out / "bfcl_scores.json").read_text())["categories"]
    assert list(categories) == bfcl.TEST_COLLECTION_MAPPING["multi_turn"]
    for category, s in categories.items():
        asked = sum(i.startswith(category + "_") for i in generate.asked)
        assert (s["accuracy"], s["scored"], s["generated"]) == (1.0, 2, 2), category
        assert s["steps_per_item"] == asked / 2 and s["seconds_per_item"] > 0 and s["grammar_accuracy"] is None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["table1"]["multi_turn"] == 1.0 and summary["table1"]["overall"] is None
    assert summary["bfcl_seconds_per_item"]["multi_turn_base"] == categories["multi_turn_base"]["seconds_per_item"]
    text = (tmp_path / "report.md").read_text()
    times = text[text.index("## Generation time per item (s)"):]
    assert "| multi_turn_long_context | " in times and "| category | warmup |" in times


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
    theirs = {}
    for name in ("data_overall.csv", "data_non_live.csv", "data_live.csv"):
        header, row = (line.split(",") for line in (tmp_path / name).read_text().splitlines())
        theirs[name] = dict(zip(header, row))
    for key, (name, column) in {
            "overall": ("data_overall.csv", "Overall Acc"), "non_live": ("data_non_live.csv", "Non_Live Overall Acc"),
            "live": ("data_overall.csv", "Live Acc"), "multi_turn": ("data_overall.csv", "Multi Turn Acc"),
            "relevance": ("data_overall.csv", "Relevance Detection"),
            "irrelevance": ("data_overall.csv", "Irrelevance Detection"),
            "non_live_ast": ("data_overall.csv", "Non-Live AST Acc"), "live_ast": ("data_live.csv", "AST Summary")}.items():
        assert f"{100 * ours[key]['accuracy']:.2f}%" == theirs[name][column], key
        assert ours[key]["missing"] == [] and ours[key]["partial"] == ours[key]["accuracy"]
    # The paper's Overall is the mean of its Non-live, Live and Multi-turn columns.
    assert ours["overall"]["accuracy"] == pytest.approx(
        (ours["non_live"]["accuracy"] + ours["live"]["accuracy"] + ours["multi_turn"]["accuracy"]) / 3)
    # Non-live holds irrelevance; Non-live AST does not.
    changed = bfcl.leaderboard({**accuracy, "irrelevance": accuracy["irrelevance"] + 0.5}, sizes)
    assert changed["non_live"]["accuracy"] == pytest.approx(ours["non_live"]["accuracy"] + 0.1)
    assert changed["non_live_ast"]["accuracy"] == ours["non_live_ast"]["accuracy"]


def test_an_aggregate_over_some_of_its_categories_is_only_partial():
    sizes = {c: bfcl.category_size(c) for c in bfcl.TEST_COLLECTION_MAPPING["all"]}
    partial = bfcl.leaderboard({"simple": 0.5, "multiple": 1.0, "irrelevance": 0.25}, sizes)
    assert partial["non_live"]["accuracy"] is None and "parallel" in partial["non_live"]["missing"]
    assert partial["non_live"]["partial"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert partial["overall"]["accuracy"] is None and partial["overall"]["partial"] == partial["non_live"]["partial"]
    assert partial["live"] == {"accuracy": None, "partial": None, "size": sum(sizes[c] for c in sizes if c.startswith("live")),
                               "missing": ["live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                                           "live_irrelevance", "live_relevance"]}
    assert partial["irrelevance"]["accuracy"] is None and partial["irrelevance"]["partial"] == 0.25


def test_a_partial_run_says_what_it_covers_and_prints_no_overall(tmp_path, monkeypatch):
    entries = {c: bfcl.load_category(c, limit=2) for c in ("simple", "irrelevance")}
    gold = {e["id"]: bfcl.gold_answer(e) for e in entries["simple"]}
    bfcl.evaluate(entries, scripted(lambda p: gold.get(p["id"], "No function fits.")), args_for(tmp_path, "--limit", "2"))
    run_main(summarize, monkeypatch, "--dir", str(tmp_path), "--name", "partial")

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["table1"] == {"overall": None, "non_live": None, "live": None, "multi_turn": None,
                                 "relevance": None, "irrelevance": None}
    assert summary["partial"]["overall"]["accuracy"] == 1.0 and "multi_turn_base" in summary["partial"]["overall"]["missing"]
    assert summary["bfcl_coverage"]["categories"] == ["simple", "irrelevance"] and summary["bfcl_coverage"]["items"] == 4
    table = (tmp_path / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| partial |"))
    full = sum(map(bfcl.category_size, bfcl.TEST_COLLECTION_MAPPING["all"]))
    assert row.split(" | ")[1:8] == [f"4 / {full}", "–", "–", "–", "–", "–", "–"]
    assert "Overall 100.00 (15 categories missing)" in table and "Partial values" in table
    assert "BFCL categories run: 2 of 17; not run: parallel, multiple," in table and "(2 per category" in table


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    entries = {"simple": bfcl.load_category("simple", limit=6)}
    gold = {e["id"]: bfcl.gold_answer(e) for e in entries["simple"]}
    args = args_for(tmp_path, "--pool-size", "1")  # generations are saved every 4 items

    def killed(prompts, max_new_tokens=None):
        if killed.asked:
            raise KeyboardInterrupt
        killed.asked += [p["id"] for p in prompts]
        return [gold[p["id"]] for p in prompts]
    killed.asked = []
    with pytest.raises(KeyboardInterrupt):
        bfcl.evaluate(entries, killed, args)
    assert not (tmp_path / "bfcl_scores.json").exists() and common.partial_file(tmp_path, "bfcl").exists()

    rest = scripted(answer_by_id(gold))
    scores = bfcl.evaluate(entries, rest, args)
    assert sorted(killed.asked + rest.asked) == sorted(gold) and not set(killed.asked) & set(rest.asked)
    assert scores["categories"]["simple"]["accuracy"] == 1.0 and not common.partial_file(tmp_path, "bfcl").exists()


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

def write_fixture_run(directory, name, level, items=10):
    """A checkpoint's verdict files and summary.json, where every BFCL category has `items` items
    of which the first round(items * level) are right (Live: one more), API-Bank L-1 `level` and
    L-2 half of it; the project grammar would add one item to simple's accuracy for iter_2."""
    directory.mkdir()
    bfcl_rows, categories = [], {}
    for c in bfcl.TEST_COLLECTION_MAPPING["all"]:
        right = round(items * level) + c.startswith("live")
        bfcl_rows += [{"id": f"{c}_{i}", "category": c, "valid": i < right} for i in range(items)]
        grammar = right + (name == "iter_2" and c == "simple")
        categories[c] = {"accuracy": right / items, "correct": right, "scored": items, "size": bfcl.category_size(c),
                         "grammar_accuracy": grammar / items, "seconds_per_item": 1.5}
    api_rows = [{"id": f"{lv}/{i}", "level": lv, "valid": i < round(items * share)}
                for lv, share in (("L-1", level), ("L-2", level / 2)) for i in range(items)]
    (directory / "bfcl_verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bfcl_rows))
    (directory / "api_bank_verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in api_rows))
    sizes = {c: bfcl.category_size(c) for c in categories}
    bfcl_scores = {"model": "gemma-3-270m", "adapter": None if name == "base" else f"checkpoints/x/{name}",
                   "limit": items, "categories": categories, "seconds_per_item": 1.5,
                   "aggregates": bfcl.leaderboard({c: s["accuracy"] for c, s in categories.items()}, sizes),
                   "coverage": {"categories": list(categories), "missing": [], "items": len(bfcl_rows),
                                "items_full": sum(sizes.values())}}
    api_scores = {"model": "gemma-3-270m", "limit": items, "seconds_per_item": 1.0,
                  "levels": {lv: {"accuracy": sum(r["valid"] for r in api_rows if r["level"] == lv) / items}
                             for lv in ("L-1", "L-2")}}
    (directory / "summary.json").write_text(json.dumps(summarize.summary(name, bfcl_scores, api_scores)))


def section(text, heading):
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end > 0 else len(text)]


def test_report_puts_checkpoints_side_by_side_with_paired_differences_and_plots(tmp_path, monkeypatch):
    levels = {"iter_2": 0.5, "base": 0.0, "iter_10": 0.6, "warmup": 0.3, "iter_1": 0.4, "my-adapter": 0.2}
    for name, level in levels.items():
        write_fixture_run(tmp_path / name, name, level)
    run_main(report, monkeypatch, "--results", str(tmp_path), "--resamples", "2000")

    text = (tmp_path / "report.md").read_text()
    table = section(text, "| Checkpoint |").splitlines()[2:8]
    assert [r.split(" | ")[0][2:] for r in table] == ["base", "warmup", "iter_1", "iter_2", "iter_10", "my-adapter"]
    warmup = table[1].split(" | ")
    assert warmup[1] == f"170 / {sum(map(bfcl.category_size, bfcl.TEST_COLLECTION_MAPPING['all']))}"
    assert warmup[3] == "30.00" and warmup[-3] == "20.00"  # Non-live; API-Bank L2 (1.5 of 10 rounds to 2)
    assert warmup[-2:] == ["–", "– |"]  # no held-out split, no ToolACE yardstick scored
    assert "| live_simple | 10.00 | 40.00 | 50.00 | 60.00 | 70.00 | 30.00 |" in section(text, "## BFCL-v3 per category")
    assert section(text, "## Diagnostic").count("| simple |") == 1 and "| simple | 0.00 | 30.00 | 40.00 | 60.00 |" in text
    assert "| multi_turn_base | 1.50 | 1.50 |" in section(text, "## Generation time per item")

    headings = [line[4:] for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["warmup vs base", "iter_1 vs warmup", "iter_2 vs warmup", "iter_2 vs iter_1",
                        "iter_10 vs warmup", "iter_10 vs iter_2", "my-adapter vs warmup"]
    step = section(text, "### iter_1 vs warmup")
    # One more item right in each of 17 categories of 10: nothing per category, a gain overall.
    assert "| simple | 10 | 30.00 | 40.00 | +10.00 [+0.00, +30.00] | no difference |" in step
    overall = next(line for line in step.splitlines() if line.startswith("| Overall |")).split(" | ")
    assert overall[1:4] == ["170", "33.33", "43.33"] and overall[-1] == "higher |"
    assert "| L-1 | 10 | 30.00 | 40.00 |" in step and "| all items | 20 |" in step
    png = (tmp_path / "accuracy_vs_iteration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_ladder_shows_each_rung_against_the_warm_up_and_what_the_search_taught(tmp_path, monkeypatch):
    results, data = tmp_path / "results", tmp_path / "data"
    results.mkdir()
    for name, level in {"base": 0.0, "warmup_mixed": 0.2, "warmup": 0.3, "iter_1": 0.4, "other": 0.9}.items():
        write_fixture_run(results / name, name, level)
        held_out = [{"id": f"h{i}", "category": "call", "valid": i < 100 * level} for i in range(100)]
        (results / name / "heldout_verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out))
    audit = {"pairs": 120, "samples": 40, "decisive": 0.99, "chosen_gold": 0.9, "chosen_malformed": 0.0,
             "rejected_malformed": 0.25, "by_kind": {"call": {"pairs": 20, "samples": 5, "decisive": 1.0,
             "chosen_gold": 1.0, "chosen_malformed": 0.0, "rejected_malformed": 0.1, "text_over_call": 0,
             "call_over_text": 2}}}
    (data / "iter_1").mkdir(parents=True)
    (data / "iter_1" / "pairs_audit.json").write_text(json.dumps(audit))
    run_main(report, monkeypatch, "--results", str(results), "--checkpoints", "iter_1", "warmup", "base",
             "warmup_mixed", "--data", str(data), "--out", str(tmp_path / "ladder"), "--resamples", "2000")

    text = (tmp_path / "ladder" / "report.md").read_text()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in section(text, "## Against").splitlines()
            if line.startswith("| ") and not line.startswith("| checkpoint")}
    assert list(rows) == ["base", "warmup_mixed", "warmup", "iter_1"]  # the ladder's order; "other" left out
    assert rows["warmup"][0] == "30.00" and rows["warmup"][1] == "–"  # held-out; no ToolACE scored
    assert rows["iter_1"][0].startswith("40.00 (+10.00 [+") and rows["base"][0].startswith("0.00 (-30.00 [-")
    low, high = rows["iter_1"][0].split("[")[1].rstrip("])").split(", ")
    assert 0 < float(low) < 10 < float(high)  # ten items right in 100 more: a gain, interval above zero
    assert rows["warmup_mixed"][4].startswith("25.00 (-10.00")  # BFCL AST: the mean of non-live 20 and live 30
    assert rows["warmup_mixed"][5].startswith("15.00 (-10.00")  # API-Bank, both levels: 2+1 vs 3+2 of 20
    assert "Items scored by both: Held-out 100, BFCL non-live AST" in text
    audit_rows = section(text, "## What the search taught").splitlines()
    assert "| iter_1 | all | 120 | 40 | 99.00 | 90.00 | 0.00 | 25.00 | – | – |" in audit_rows  # an older audit
    assert "| iter_1 | call | 20 | 5 | 100.00 | 100.00 | 0.00 | 10.00 | 0 | 2 |" in audit_rows
    with pytest.raises(SystemExit, match="iter_9/summary.json: missing"):
        run_main(report, monkeypatch, "--results", str(results), "--checkpoints", "iter_9")


# --- the command line with the tiny model, and make's wiring ------------------------------------------

def run_main(module, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    module.main()


def test_cli_end_to_end_with_the_tiny_model(tmp_path, api_bank_dir, tiny_model_dir, monkeypatch):
    out = tmp_path / "base"
    flags = ["--model", "tiny", "--out", str(out), "--limit", "1", "--max-new-tokens", "4", "--pool-size", "2"]
    run_main(bfcl, monkeypatch, *flags, "--categories", "simple,irrelevance")
    run_main(api_bank, monkeypatch, *flags, "--data-dir", str(api_bank_dir))
    run_main(summarize, monkeypatch, "--dir", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bfcl_categories"].keys() == {"simple", "irrelevance"}
    assert summary["table2"].keys() == {"L-1", "L-2"}
    assert summary["limit"] == {"bfcl": 1, "api_bank": 1, "heldout": None, "toolace": None}
    generations = [json.loads(line) for line in (out / "bfcl_generations.jsonl").read_text().splitlines()]
    assert [g["id"] for g in generations] == ["simple_0", "irrelevance_0"]
    assert all(isinstance(g["output"], str) for g in generations)
    assert "| base |" in (out / "table.md").read_text()

    with pytest.raises(SystemExit, match="adapter_model.safetensors missing"):
        run_main(bfcl, monkeypatch, *flags, "--adapter", str(tmp_path / "missing"))


def test_make_eval_runs_each_benchmark_when_its_inputs_change(tmp_path):
    checkout = copy_checkout(tmp_path)
    variables = ["MODEL=tiny", "RUN=t", "LIMIT=3", "CATEGORIES=simple,live", f"API_BANK={tmp_path / 'api'}"]
    make(checkout, "split", "RUN=t", "SAMPLES=60")  # the held-out split's test.jsonl
    commands = " ".join(make(checkout, "-n", "eval", *variables, "SAMPLES=60").stdout.replace("\n", " ; ").split())
    assert "eval/bfcl.py --model tiny --qlora auto --out eval/results/t/base --limit 3 --categories simple,live" in commands
    assert f"eval/api_bank.py --model tiny --qlora auto --out eval/results/t/base --limit 3 --data-dir {tmp_path / 'api'}" in commands
    assert "eval/summarize.py --dir eval/results/t/base --name base" in commands
    assert "eval/heldout.py --model tiny --qlora auto --out eval/results/t/base" in commands
    assert "--samples data/t/splits/test.jsonl" in commands
    variables.append("SAMPLES=60")

    results = checkout / "eval" / "results" / "t" / "base"  # stand-ins, newer than every input
    results.mkdir(parents=True)
    for name in ("bfcl_scores.json", "api_bank_scores.json", "heldout_scores.json", "summary.json"):
        (results / name).touch()
    assert make(checkout, "-q", "eval", *variables, check=False).returncode == 0
    rerun = make(checkout, "-n", "eval", *variables[:2], "LIMIT=4", *variables[3:]).stdout
    assert "eval/bfcl.py" in rerun and "eval/api_bank.py" in rerun
    make(checkout, "-n", "eval", *variables)  # back to LIMIT=3 in the stamps
    for name in ("bfcl_scores.json", "api_bank_scores.json", "heldout_scores.json", "summary.json"):
        (results / name).touch()
    rerun = make(checkout, "-n", "eval", *variables[:3], "CATEGORIES=simple", *variables[4:]).stdout
    assert "eval/bfcl.py" in rerun and "eval/api_bank.py" not in rerun

    adapter = checkout / "my_adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").touch()
    commands = " ".join(make(checkout, "-n", "eval", *variables, f"CKPT={adapter}/").stdout.split())
    assert f"--adapter {adapter}/ --out eval/results/t/my_adapter" in commands


def test_make_ladder_scores_every_rung_with_the_yardstick_then_reports_them(tmp_path):
    checkout = copy_checkout(tmp_path)
    yardstick = tmp_path / "mine.json"
    yardstick.write_text("[]")
    variables = ["MODEL=tiny", "RUN=t", "SAMPLES=60", "ITER=1", "LIMIT=3", f"YARDSTICK={yardstick}",
                 "YARDSTICK_LIMIT=7"]
    make(checkout, "split", *variables)
    stdout = make(checkout, "-n", "ladder", *variables).stdout.replace("\\\n", " ")  # continued lines joined
    commands = [" ".join(line.split()) for line in stdout.splitlines()]
    text = " ; ".join(commands)
    assert "--out checkpoints/t/warmup_easy2hard --curriculum easy2hard" in text  # the other curriculum's warm-up
    assert f"stages/00_data.py --data {yardstick} --skip-bad --out data/yardsticks/mine/toolace.jsonl" in text
    for rung in ("base", "warmup_easy2hard", "warmup", "iter_1"):
        assert f"--out eval/results/t/{rung} --samples data/yardsticks/mine/toolace.jsonl --name toolace " \
               f"--limit 7" in text
        assert f"eval/bfcl.py --model tiny --qlora auto {'' if rung == 'base' else f'--adapter checkpoints/t/{rung}/ '}" \
               f"--out eval/results/t/{rung} --limit 3" in text
    assert commands[-1].endswith("eval/report.py --results eval/results/t --checkpoints base warmup_easy2hard warmup "
                                 "iter_1 --data data/t --checkpoints-dir checkpoints/t --out eval/results/t/ladder")
    paper = make(checkout, "-n", "ladder", *variables, "CURRICULUM=easy2hard").stdout.replace("\\\n", " ")
    assert "--out checkpoints/t/warmup_mixed --curriculum mixed" in " ".join(paper.split())  # and the reverse
    assert "--checkpoints base warmup_mixed warmup iter_1" in paper
    only = make(checkout, "-n", "ladder", *variables, "LADDER=warmup iter_1").stdout
    assert "warmup_easy2hard" not in only and "--results eval/results/t --checkpoints warmup iter_1" in only


def test_bfcl_cli_rejects_unknown_category(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "eval" / "bfcl.py"), "--out", str(tmp_path),
                             "--categories", "simple,nonsense"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown category" in result.stderr
