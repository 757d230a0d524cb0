"""BFCL-v3 (make eval): the Berkeley Function-Calling Leaderboard through the `bfcl-eval` package.

    python eval/bfcl.py --model gemma-3-270m [--adapter checkpoints/default/warmup] --out DIR \
        [--categories all|non_live|live|multi_turn|simple,live_simple,...] [--limit N]

Prompts. Prompt mode, in the layout the model was trained on: the system text is
records.render_system(function docs) (ToolACE's instructions and JSON tool list; BFCL's docs are
already {"name", "description", "parameters": {"type": "dict", ...}}), after bfcl-eval's own
language hints (func_doc_language_specific_pre_processing: "Python 3 syntax", Java and JavaScript
types as strings); an entry's own system message follows it. The answer is a call list or text.

Decoding. bfcl-eval's prompt-mode decoder alone decides every verdict, as its eval_runner reads a
prompt-mode model's answers (default_decode_ast_prompting, default_decode_execute_prompting).
Diagnostic only: where that decoder fails on a Python category, the project's grammar
(toolcalls.parse_answer) gets a try, since it also reads the names with spaces or dashes of
ToolACE-style data and call lists broken over lines; the verdict it would give is kept beside the
real one ("grammar_valid", per category "grammar_accuracy") and never enters an aggregate.

Scoring, as bfcl-eval's eval_runner does, with its own code: ast_checker for the AST categories;
relevance / irrelevance pass when a call is / is not decoded; multi-turn entries run turn by
turn like bfcl-eval's prompting inference loop (the model's calls execute on bfcl-eval's
simulated backends, the results come back as one ToolACE-style tool turn, and the model goes on
until it answers without a call or passes --max-steps), then multi_turn_checker compares the
backends' states and results with the ground truth's.

Aggregates, as the paper's Table 1 prints them (see leaderboard()): Non-live (the leaderboard's
non-live overall, irrelevance included), Live, Multi-turn, Relevance, Irrelevance, Overall = the
mean of Non-live, Live and Multi-turn; beside them the AST-only Non-live AST and Live AST, and
their mean, AST (one figure for calling on BFCL: docs/design.md). An
aggregate is given only when every category it covers was scored; otherwise its value over the
categories that were run is kept as "partial" and its missing categories are named.

--limit N scores N items per category, spread evenly over it: the same items on every run.

Outputs in --out: bfcl_generations.jsonl (raw model text; per turn and step for multi-turn),
bfcl_verdicts.jsonl (per item: valid, the checker's error_type and message, the decoded calls,
the diagnostic grammar verdict), bfcl_scores.json (per category accuracy, items and time per
item; the aggregates; what was run) and bfcl.md. A killed run resumes from
.bfcl_generations.partial.jsonl.
"""
import argparse
import copy
import json
import os
import sys
import types
import uuid
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

from eval import common
from itool import toolcalls
from itool.records import RecordError, render_system

# --- bfcl-eval, without its provider SDKs -------------------------------------------------------
# ast_checker imports bfcl_eval.constants.model_config for one flag, `underscore_to_dot` (whether
# a model's function names had "." replaced by "_", as OpenAI-style FC APIs require). That module
# imports every provider SDK bfcl-eval supports. A stand-in module answering False for every model
# (prompt mode keeps the dots) goes into sys.modules first, so the real one is never imported.
# bfcl_eval.constants.eval_config creates result/ and score/ folders under BFCL_PROJECT_ROOT;
# nothing here imports it, but keep those folders out of the package directory if anything does.
os.environ.setdefault("BFCL_PROJECT_ROOT", str(common.REPO / "eval" / "results" / ".bfcl"))
_model_config = types.ModuleType("bfcl_eval.constants.model_config")
_model_config.MODEL_CONFIG_MAPPING = defaultdict(lambda: types.SimpleNamespace(underscore_to_dot=False))
sys.modules.setdefault("bfcl_eval.constants.model_config", _model_config)
try:
    import bfcl_eval
    from bfcl_eval.constants.category_mapping import (MULTI_TURN_FUNC_DOC_FILE_MAPPING, TEST_COLLECTION_MAPPING,
                                                      TEST_FILE_MAPPING)
    from bfcl_eval.constants.default_prompts import (DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC,
                                                     MAXIMUM_STEP_LIMIT)
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from bfcl_eval.model_handler.utils import (default_decode_ast_prompting, default_decode_execute_prompting,
                                               func_doc_language_specific_pre_processing)
    from bfcl_eval.utils import (is_empty_output, is_function_calling_format_output, is_java, is_js,
                                 is_multi_turn, is_relevance_or_irrelevance, load_file, make_json_serializable,
                                 parse_test_category_argument)
except ImportError as e:
    sys.exit(f"bfcl-eval is missing or incomplete ({e}); run `make setup`, or: pip install -r requirements.txt "
             f"&& pip install --no-deps -r requirements-eval-nodeps.txt")

BFCL_DATA = Path(bfcl_eval.__file__).parent / "data"
CHECKER_MODEL = "itool"  # the model name bfcl-eval's checkers see (they only use it as a key)
NO_GOLD_BUDGET = 128  # max new tokens for relevance/irrelevance items, which have no gold answer


# --- data ------------------------------------------------------------------------------------------

def resolve_categories(spec):
    """Category names in leaderboard order from "all", collection names, category names."""
    try:
        _, names = parse_test_category_argument([c.strip() for c in spec.split(",") if c.strip()])
    except Exception:  # bfcl-eval raises a bare Exception for an unknown name
        known = sorted(set(TEST_COLLECTION_MAPPING) | set(TEST_FILE_MAPPING))
        sys.exit(f"--categories {spec}: unknown category; choose from {', '.join(known)}")
    return [c for c in TEST_COLLECTION_MAPPING["all"] if c in names]


@cache
def category_size(category):
    with open(BFCL_DATA / TEST_FILE_MAPPING[category], encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def load_category(category, limit=0):
    """The entries of a category (limited), each with its "ground_truth" (None where the category
    has no answer file: relevance, irrelevance) and, for multi-turn, its function docs."""
    entries = common.spread(distinct_ids(load_file(BFCL_DATA / TEST_FILE_MAPPING[category], sort_by_id=True)), limit)
    answer_file = BFCL_DATA / "possible_answer" / TEST_FILE_MAPPING[category]
    answers = {a["id"]: a["ground_truth"] for a in load_file(answer_file)} if answer_file.is_file() else None
    for entry in entries:
        if answers is not None and entry["id"] not in answers:
            raise RecordError(f"{answer_file}: no answer for {entry['id']}")
        entry["ground_truth"] = None if answers is None else answers[entry["id"]]
        if is_multi_turn(category):
            add_multi_turn_docs(entry)
    return entries


def distinct_ids(entries):
    """The entries, a repeated id suffixed "#2", "#3", ... bfcl-eval 2025.6.8's live_relevance holds
    two different entries under one id (live_relevance_3-3-0) and its runner scores both; outputs
    and verdicts are keyed by id here, so without the suffix one answer would stand for both."""
    seen = Counter()
    for entry in entries:
        seen[entry["id"]] += 1
        if seen[entry["id"]] > 1:
            entry["id"] = f"{entry['id']}#{seen[entry['id']]}"
    return entries


def add_multi_turn_docs(entry):
    """Multi-turn entries name their backend classes; the function docs are per class. The docs
    of functions held out until a later turn (miss_func) move to entry["missed_function"]."""
    docs = []
    for class_name in entry["involved_classes"]:
        docs += load_file(BFCL_DATA / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name])
    missed = {}
    for turn, names in entry.get("missed_function", {}).items():
        missed[turn] = [d for d in docs if d["name"] in names]
        docs = [d for d in docs if d["name"] not in names]
    entry["function"] = docs
    entry["missed_function"] = missed


def language(category):
    # is_java("javascript") is true as well: ask about JavaScript first
    return "JavaScript" if is_js(category) else "Java" if is_java(category) else "Python"


def gold_answer(entry):
    """One answer that bfcl-eval accepts for a single-turn entry, as a Python call list.

    The ground truth lists the allowed values of each parameter, "" allowing it to be left out,
    and so on inside dict values: take the first real value; leave out a parameter that may be
    left out unless the function doc requires it (the data has both).
    """
    docs = {f["name"]: f["parameters"] for f in entry["function"]}

    def first(allowed):
        values = [v for v in allowed if v != ""]
        return resolve(values[0]) if values else None

    def resolve(value):
        if isinstance(value, dict):  # a dict value; its entries are lists of allowed values again
            return {k: first(v) if isinstance(v, list) else v for k, v in value.items()
                    if not isinstance(v, list) or any(x != "" for x in v)}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    calls = []
    for call in entry["ground_truth"]:
        (name, allowed), = call.items()
        doc = docs.get(name, {})
        args = {k: first(v) for k, v in allowed.items()
                if any(x != "" for x in v) and ("" not in v or k in doc.get("required", []))}
        calls.append(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    return f"[{', '.join(calls)}]"


def token_budget(category, cap):
    """Max new tokens for a category: room for its longest gold answer at a generous two
    characters a token, plus slack; at most `cap`. Taken over the whole category, so an item
    gets the same budget whatever --limit is. Short budgets matter for models that never stop on
    their own (a base model), and cost nothing for those that do."""
    if is_relevance_or_irrelevance(category):
        return min(cap, NO_GOLD_BUDGET)
    entries = load_category(category)
    if is_multi_turn(category):
        longest = max(len(", ".join(turn)) for e in entries for turn in e["ground_truth"])
    else:
        longest = max(len(gold_answer(e)) for e in entries)
    return min(cap, 32 + longest // 2)


# --- prompts and decoding --------------------------------------------------------------------------

def entry_system(entry, category):
    """The system text: the tool list in the training layout, then the entry's own system text."""
    functions = func_doc_language_specific_pre_processing(copy.deepcopy(entry["function"]), category)
    system = render_system(functions)
    for message in entry["question"][0]:
        if message["role"] == "system":
            system += "\n" + message["content"]
    return system


def turn_messages(messages):
    return [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]


def decode_ast(text, lang):
    """(calls as [{name: {arg: value}}], None) as bfcl-eval's eval_runner reads a prompt-mode
    answer, or (None, the error type it gives) where its decoder fails or returns no call list."""
    try:
        decoded = default_decode_ast_prompting(text, lang)
    except Exception:  # ast.parse / tree-sitter failures surface as many exception types
        return None, "ast_decoder:decoder_failed"
    if not is_function_calling_format_output(decoded):
        return None, "ast_decoder:decoder_wrong_output_format"
    return decoded, None


def decode_execute(text):
    """The calls of `text` as executable strings ("cd(folder='x')"), as bfcl-eval reads each
    multi-turn step: none where its decoder fails or finds an empty list."""
    try:
        calls = default_decode_execute_prompting(text)
    except Exception:
        return []
    return [] if multi_turn_utils.is_empty_execute_response(calls) else calls


def decode_grammar(text):
    """The calls the project's grammar reads in `text` (it also reads names with spaces or dashes
    and call lists broken over lines), in bfcl-eval's decoded form, or None. Diagnostic only."""
    calls = toolcalls.parse_answer(text.strip())
    return [{call.name: dict(call.args)} for call in calls] if calls else None


# --- single-turn scoring ---------------------------------------------------------------------------

def score_single_turn(entry, category, text):
    """bfcl-eval's verdict on one AST or relevance item, with the decoded calls; beside it the
    verdict the project's grammar would give where bfcl-eval's decoder reads no call list."""
    lang = language(category)
    decoded, decode_error = decode_ast(text, lang)
    verdict = {"id": entry["id"], "category": category, "decoder": "bfcl" if decoded is not None else "none",
               "decoded": decoded, **judge_decoded(entry, category, decoded, decode_error)}
    grammar = decode_grammar(text) if decoded is None and lang == "Python" else None
    if grammar is None:
        return {**verdict, "grammar_valid": verdict["valid"]}
    return {**verdict, "decoder": "grammar", "grammar_decoded": grammar,
            "grammar_valid": judge_decoded(entry, category, grammar, None)["valid"]}


def judge_decoded(entry, category, decoded, decode_error):
    """valid, error_type and error for decoded calls (None: the decoder's `decode_error`)."""
    if is_relevance_or_irrelevance(category):
        has_call = decoded is not None and not is_empty_output(decoded)
        irrelevance = "irrelevance" in category
        valid = has_call != irrelevance
        error_type = None if valid else ("irrelevance_error:decoder_success" if irrelevance
                                         else "relevance_error:decoder_failed")
        return {"valid": valid, "error_type": error_type, "error": None}
    if decoded is None:
        return {"valid": False, "error_type": decode_error, "error": "Invalid syntax. Failed to decode AST."}
    try:
        result = ast_checker(entry["function"], decoded, entry["ground_truth"], language(category), category,
                             CHECKER_MODEL)
    except Exception as e:  # a checker crash on odd output fails the item, visibly, not the run
        return {"valid": False, "error_type": "checker:exception", "error": f"{type(e).__name__}: {e}"}
    return {"valid": result["valid"], "error_type": None if result["valid"] else result.get("error_type"),
            "error": result.get("error") or None}


# --- multi-turn: bfcl-eval's prompting loop --------------------------------------------------------

def backend_name():
    """A fresh model name for bfcl-eval's executor, which keeps backend instances in its module
    globals keyed by model name and entry id: a reused name would continue an old state."""
    return f"itool_{uuid.uuid4().hex}"


def forget_backends(name):
    """Drop the executor's backend instances made under `name` (long-context ones are large)."""
    state = vars(multi_turn_utils)
    for key in [k for k in state if k.startswith(name)]:
        del state[key]


def tool_turn(calls, results):
    """Execution results as one tool turn in the ToolACE layout: [{"name", "results"}, ...]."""
    def as_json(result):
        try:
            return json.loads(result)
        except (TypeError, ValueError):
            return result
    return json.dumps([{"name": call.split("(", 1)[0], "results": as_json(result)}
                       for call, result in zip(calls, results)], ensure_ascii=False)


def dialogue(entry, category, max_steps):
    """One multi-turn entry as a generator: yields prompts, is sent the model's answers, returns
    the answers per turn and step. Each turn's user message comes in, then the model answers
    until it writes no call (or, past max_steps steps, the entry stops: force-terminated)."""
    name = backend_name()
    system = entry_system(entry, category)
    long_context = "long_context" in category or "composite" in category
    messages, turns = [], []
    try:
        for turn, user_messages in enumerate(entry["question"]):
            if str(turn) in entry["missed_function"]:  # miss_func: the held-out docs arrive now
                docs = json.dumps(entry["missed_function"][str(turn)], ensure_ascii=False)
                user_messages = [{"role": "user", "content": f"{docs}\n{DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC}"}]
            messages += turn_messages(user_messages)
            steps = []
            turns.append(steps)
            while True:
                text = yield {"id": entry["id"], "system": system, "messages": list(messages)}
                steps.append(text)
                messages.append({"role": "assistant", "content": text})
                calls = decode_execute(text)
                if not calls:  # no call read: the turn is over, as in bfcl-eval's loop
                    break
                results, _ = multi_turn_utils.execute_multi_turn_func_call(
                    calls, entry["initial_config"], entry["involved_classes"], name, entry["id"],
                    long_context=long_context, is_evaL_run=False)
                messages.append({"role": "tool", "content": tool_turn(calls, results)})
                if len(steps) > max_steps:
                    return turns
        return turns
    finally:
        forget_backends(name)


def run_dialogues(entries, category, generate, max_steps, max_new_tokens, status=print):
    """Run the entries' dialogues in lockstep, so that every step is one batched generate call.
    Yields (entry id, answers per turn and step) as dialogues finish; `status` hears of each round."""
    running = {}
    for entry in entries:
        d = dialogue(entry, category, max_steps)
        running[entry["id"]] = (d, next(d))
    rounds = 0
    while running:
        rounds += 1
        status(f"{category}: round {rounds}, {len(running)} dialogues running")
        ids = list(running)
        texts = generate([running[i][1] for i in ids], max_new_tokens)
        for entry_id, text in zip(ids, texts):
            d = running[entry_id][0]
            try:
                running[entry_id] = (d, d.send(text))
            except StopIteration as done:
                del running[entry_id]
                yield entry_id, done.value


def score_multi_turn(entry, category, turns):
    """bfcl-eval's multi_turn_checker verdict on the model's answers per turn and step, read as
    its eval_runner reads them: the calls of every step that has some."""
    decoded = [[calls for calls in map(decode_execute, steps) if calls] for steps in turns]
    verdict = {"id": entry["id"], "category": category, "steps": sum(map(len, turns)),
               "decoder": dict(Counter(step_decoder(text) for steps in turns for text in steps)), "decoded": decoded}
    if len(turns) != len(entry["ground_truth"]):
        return {**verdict, "valid": False, "error_type": "multi_turn:force_terminated",
                "error": f"stopped after {max(len(s) for s in turns)} steps in turn {len(turns) - 1}"}
    name = backend_name()
    try:
        result = multi_turn_checker(decoded, entry["ground_truth"], entry, category, name)
    except Exception as e:  # as for ast_checker: fail the item visibly
        result = {"valid": False, "error_type": "checker:exception", "error_message": f"{type(e).__name__}: {e}"}
    finally:
        forget_backends(name)
    return {**verdict, "valid": result["valid"], "error_type": result.get("error_type"),
            "error": result.get("error_message")}


def step_decoder(text):
    """Which decoder reads a call in one multi-turn step. The grammar is counted, not used: the
    dialogue went on as bfcl-eval's decoder read it, so no other verdict can be drawn from it."""
    if decode_execute(text):
        return "bfcl"
    return "grammar" if decode_grammar(text) else "none"


# --- the leaderboard ---------------------------------------------------------------------------------
# The paper's Table 1 copies the leaderboard of 10/21/2024, whose generate_leaderboard_csv
# (gorilla, October 2024) computed: Non-live = the unweighted mean of nine sub-scores, the four AST
# ones (simple = the mean of Python, Java and JavaScript simple), four Exec ones and irrelevance;
# Live = the mean of its six categories weighted by size; Multi-turn = the unweighted mean of base,
# miss_func, miss_param and long_context; Overall = the unweighted mean of those three; Relevance =
# live_relevance; Irrelevance = the mean of irrelevance and live_irrelevance. bfcl-eval 2025.6.8
# computes all of these the same way, except that its Non-live has no Exec terms (it no longer
# ships the Exec categories): the mean of the four AST sub-scores and irrelevance.


def leaderboard(accuracy, sizes):
    """Table 1's columns and the AST-only figures from per-category accuracies ({category: value};
    numbers, or numpy arrays of resampled values, which pass through elementwise).

    Each aggregate is {"accuracy", "partial", "missing", "size"}: "accuracy" only when every
    category it covers has a value (None otherwise: the leaderboard would count the missing ones
    as 0), "partial" the same formula over the categories that have one, "missing" the others,
    "size" the full size of its categories. Weights are the full categories' sizes, so a --limit
    run estimates the full benchmark's figure."""
    def leaf(category):
        value = accuracy.get(category)
        return {"accuracy": value, "partial": value, "missing": [] if value is not None else [category],
                "size": sizes[category]}

    def mean(parts, weighted=False):
        present = [p for p in parts if p["partial"] is not None]
        missing = [m for p in parts for m in p["missing"]]
        if not present:
            value = None
        elif weighted:
            value = sum(p["partial"] * p["size"] for p in present) / sum(p["size"] for p in present)
        else:
            value = sum(p["partial"] for p in present) / len(present)
        return {"accuracy": None if missing else value, "partial": value, "missing": missing,
                "size": sum(p["size"] for p in parts)}

    simple = mean([leaf("simple"), leaf("java"), leaf("javascript")])
    non_live_parts = [simple, leaf("multiple"), leaf("parallel"), leaf("parallel_multiple")]
    live_parts = [leaf(c) for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")]
    non_live_ast, live_ast = mean(non_live_parts), mean(live_parts, weighted=True)
    non_live = mean(non_live_parts + [leaf("irrelevance")])
    live = mean(live_parts + [leaf("live_irrelevance"), leaf("live_relevance")], weighted=True)
    multi_turn = mean([leaf(c) for c in TEST_COLLECTION_MAPPING["multi_turn"]])
    return {
        "overall": mean([non_live, live, multi_turn]),      # "Overall Acc"
        "non_live": non_live,                               # "Non_Live Overall Acc"
        "live": live,                                       # "Live Acc"
        "multi_turn": multi_turn,                           # "Multi Turn Acc"
        "relevance": leaf("live_relevance"),                # "Relevance Detection"
        "irrelevance": mean([leaf("irrelevance"), leaf("live_irrelevance")]),  # "Irrelevance Detection"
        "non_live_ast": non_live_ast,                       # "Non-Live AST Acc"
        "live_ast": live_ast,                               # the Live "AST Summary"
        "ast": mean([non_live_ast, live_ast]),              # ours: the two above, equally weighted
    }


def markdown(scores, label):
    agg, coverage, columns = scores["aggregates"], scores["coverage"], common.BFCL_LABELS
    lines = [f"# BFCL-v3: {label}", "", coverage_line(coverage, scores["limit"]), "",
             "| Model | " + " | ".join(columns.values()) + " |",
             "|---|" + "---|" * len(columns),
             f"| {label} | " + " | ".join(common.percent(agg[k]["accuracy"]) for k in columns) + " |", ""]
    partial = [f"{name} {common.percent(agg[k]['partial'])} ({len(agg[k]['missing'])} categories missing)"
               for k, name in columns.items() if agg[k]["accuracy"] is None and agg[k]["partial"] is not None]
    if partial:
        lines += ["– : not every category of the column was run. Partial values, over the categories run only "
                  "(not comparable with the paper: the leaderboard counts a category not run as 0): "
                  + "; ".join(partial) + ".", ""]
    lines += ["| category | accuracy | correct / scored | size | s / item | with project grammar (diagnostic) |",
              "|---|---|---|---|---|---|"]
    for c, s in scores["categories"].items():
        per_item = "–" if s["seconds_per_item"] is None else f"{s['seconds_per_item']:.2f}"
        lines.append(f"| {c} | {common.percent(s['accuracy'])} | {s['correct']} / {s['scored']} | {s['size']} | "
                     f"{per_item} | {common.percent(s['grammar_accuracy'])} |")
    decoder = scores["decoder"]
    lines += ["", "With project grammar: the accuracy if answers that only the project's grammar reads (names "
              "with spaces, a call list broken over lines) were read that way; never part of a headline. "
              "Multi-turn: –, as the dialogue went on as bfcl-eval's decoder read it.",
              f"Answers read by bfcl-eval's decoder {decoder.get('bfcl', 0)}, only by the project grammar "
              f"{decoder.get('grammar', 0)}, by neither {decoder.get('none', 0)} (multi-turn counts every step). "
              f"s / item: generation time per item generated in this run.", ""]
    return "\n".join(lines)


def coverage_line(coverage, limit):
    """What a run covers: its categories and items, against the full benchmark."""
    run = coverage["categories"]
    text = (f"Categories: {len(run)} of {len(run) + len(coverage['missing'])}"
            + (f" (without {', '.join(coverage['missing'])})" if coverage["missing"] else " (all)")
            + f"; items: {coverage['items']} of {coverage['items_full']}")
    return text + (f" ({limit} per category, spread evenly)." if limit else ".")


# --- main ------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_checkpoint_flags(parser)
    parser.add_argument("--categories", default="all", help="comma-separated categories or collections")
    parser.add_argument("--limit", type=int, default=0, help="items per category, spread evenly (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=512,
                        help="cap per answer; each category gets less when its gold answers are short")
    parser.add_argument("--max-steps", type=int, default=MAXIMUM_STEP_LIMIT,
                        help="multi-turn: steps with calls per turn before the entry is force-terminated")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    entries = {c: load_category(c, args.limit) for c in resolve_categories(args.categories)}
    scores = evaluate(entries, common.load_generator(args), args)
    print(markdown(scores, common.label(args)))


def evaluate(entries, generate, args):
    """Generate answers for the entries ({category: entries}), score them, write the outputs to
    args.out; returns the scores. `generate(prompts, max_new_tokens) -> texts` is the model."""
    items = [{**entry, "category": category} for category, group in entries.items() for entry in group]
    return common.evaluate("bfcl", items, generate, args, judge=judge, summarise=summarise, markdown=markdown,
                           answer=answerer(generate, args), inputs=[__file__],
                           settings={"max_steps": args.max_steps, "bfcl_eval": bfcl_eval_version()})


def answerer(generate, args):
    """common.evaluate's answer(): category by category, each with its token budget; single-turn
    entries a few batches at a time, multi-turn ones as their dialogues end (single-turn outputs
    are texts, multi-turn ones the texts per turn and step)."""
    def answer(todo, status):
        for category in dict.fromkeys(entry["category"] for entry in todo):
            entries = [entry for entry in todo if entry["category"] == category]
            status(category)
            budget = token_budget(category, args.max_new_tokens)
            if is_multi_turn(category):
                by_id = {entry["id"]: entry for entry in entries}
                for entry_id, turns in run_dialogues(entries, category, generate, args.max_steps, budget, status):
                    yield [by_id[entry_id]], [turns]
            else:
                yield from common.in_chunks(entries, generate, budget, args.pool_size, prompt=single_turn_prompt)
    return answer


def single_turn_prompt(entry):
    return {"id": entry["id"], "system": entry_system(entry, entry["category"]),
            "messages": turn_messages(entry["question"][0])}


def judge(entry, output):
    category = entry["category"]
    verdict = score_multi_turn(entry, category, output) if is_multi_turn(category) else \
        score_single_turn(entry, category, output)
    return make_json_serializable(verdict)


def bfcl_eval_version():
    from importlib.metadata import version
    return version("bfcl-eval")


def category_scores(verdicts, size, timing):
    """One category's accuracy, the diagnostic grammar accuracy, and the time per item."""
    valid = [v["valid"] for v in verdicts]
    grammar = [v["grammar_valid"] for v in verdicts if "grammar_valid" in v]  # none for multi-turn
    scores = {"accuracy": sum(valid) / len(valid) if valid else None, "correct": sum(valid), "scored": len(valid),
              "size": size, "grammar_accuracy": sum(grammar) / len(grammar) if grammar else None,
              "grammar_correct": sum(grammar) if grammar else None,
              "generated": timing["generated"], "generation_seconds": round(timing["generation_seconds"], 2),
              "scoring_seconds": round(timing["scoring_seconds"], 2),
              "seconds_per_item": timing["generation_seconds"] / timing["generated"] if timing["generated"] else None}
    if verdicts and "steps" in verdicts[0]:  # multi-turn: model answers per entry, what its time goes into
        scores["steps_per_item"] = sum(v["steps"] for v in verdicts) / len(verdicts)
    return scores


def summarise(verdicts, args, timing):
    by_category = defaultdict(list)
    for v in verdicts:
        by_category[v["category"]].append(v)
    categories = {c: category_scores(by_category[c], category_size(c), t) for c, t in timing["groups"].items()}
    accuracy = {c: s["accuracy"] for c, s in categories.items() if s["accuracy"] is not None}
    everything = TEST_COLLECTION_MAPPING["all"]
    decoder = Counter()
    for v in verdicts:
        decoder.update(v["decoder"] if isinstance(v["decoder"], dict) else {v["decoder"]: 1})
    return {
        "benchmark": common.BENCHMARKS["bfcl"], "bfcl_eval": bfcl_eval_version(), "model": args.model,
        "adapter": args.adapter, "limit": args.limit, "categories": categories,
        "aggregates": leaderboard(accuracy, {c: category_size(c) for c in everything}),
        "coverage": {"categories": [c for c in everything if c in accuracy],
                     "missing": [c for c in everything if c not in accuracy],
                     "items": len(verdicts), "items_full": sum(map(category_size, everything))},
        "decoder": dict(decoder), "error_types": dict(Counter(v["error_type"] for v in verdicts if not v["valid"])),
        "seconds": round(timing["seconds"], 1), "seconds_per_item": timing["seconds"] / max(1, len(verdicts)),
    }


if __name__ == "__main__":
    main()
