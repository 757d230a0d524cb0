"""BFCL-v3 (make eval): the Berkeley Function-Calling Leaderboard through the `bfcl-eval` package.

    python eval/bfcl.py --model gemma-3-270m [--adapter checkpoints/default/warmup] --out DIR \
        [--categories all|non_live|live|multi_turn|simple,live_simple,...] [--limit N]

Prompts. Prompt mode, in the layout the model was trained on: the system text is
records.render_system(function docs) (ToolACE's instructions and JSON tool list; BFCL's docs are
already {"name", "description", "parameters": {"type": "dict", ...}}), after bfcl-eval's own
language hints (func_doc_language_specific_pre_processing: "Python 3 syntax", Java and JavaScript
types as strings); an entry's own system message follows it. The answer is a call list or text.

Decoding. bfcl-eval's prompt-mode AST decoder reads the answer. Where it fails on a Python
category, the project's grammar (toolcalls.parse_answer) gets a try: it also reads the names
with spaces or dashes of ToolACE-style data, which Python's ast cannot. The counts of each path
are in the scores ("decoder").

Scoring, as bfcl-eval's eval_runner does, with its own code: ast_checker for the AST categories;
relevance / irrelevance pass when a call is / is not decoded; multi-turn entries run turn by
turn like bfcl-eval's prompting inference loop (the model's calls execute on bfcl-eval's
simulated backends, the results come back as one ToolACE-style tool turn, and the model goes on
until it answers without a call or passes --max-steps), then multi_turn_checker compares the
backends' states and results with the ground truth's. The leaderboard's aggregates (Non-live,
Live, Multi-turn, Relevance, Irrelevance, Overall) follow bfcl-eval 2025.6.8; see leaderboard().

--limit N scores N items per category, spread evenly over it: the same items on every run.

Outputs in --out: bfcl_generations.jsonl (raw model text; per turn and step for multi-turn),
bfcl_verdicts.jsonl (per item: valid, the checker's error_type and message, the decoded calls,
the decoder used), bfcl_scores.json (per category and aggregate accuracies, decoder counts,
timing) and bfcl.md. A killed run resumes from .bfcl_generations.partial.jsonl.
"""
import argparse
import copy
import json
import os
import sys
import time
import types
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

import common
import toolcalls
from records import RecordError, atomic_write_json, atomic_write_text, render_system, write_jsonl

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
    from bfcl_eval.model_handler.utils import (decoded_output_to_execution_list, default_decode_ast_prompting,
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
PARTIAL = ".bfcl_generations.partial.jsonl"


# --- data ------------------------------------------------------------------------------------------

def resolve_categories(spec):
    """Category names in leaderboard order from "all", collection names, category names."""
    try:
        _, names = parse_test_category_argument([c.strip() for c in spec.split(",") if c.strip()])
    except Exception:  # bfcl-eval raises a bare Exception for an unknown name
        known = sorted(set(TEST_COLLECTION_MAPPING) | set(TEST_FILE_MAPPING))
        sys.exit(f"--categories {spec}: unknown category; choose from {', '.join(known)}")
    return [c for c in TEST_COLLECTION_MAPPING["all"] if c in names]


def category_size(category):
    with open(BFCL_DATA / TEST_FILE_MAPPING[category], encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def load_category(category, limit=0):
    """The entries of a category (limited), each with its "ground_truth" (None where the category
    has no answer file: relevance, irrelevance) and, for multi-turn, its function docs."""
    entries = common.spread(load_file(BFCL_DATA / TEST_FILE_MAPPING[category], sort_by_id=True), limit)
    answer_file = BFCL_DATA / "possible_answer" / TEST_FILE_MAPPING[category]
    answers = {a["id"]: a["ground_truth"] for a in load_file(answer_file)} if answer_file.is_file() else None
    for entry in entries:
        if answers is not None and entry["id"] not in answers:
            raise RecordError(f"{answer_file}: no answer for {entry['id']}")
        entry["ground_truth"] = None if answers is None else answers[entry["id"]]
        if is_multi_turn(category):
            add_multi_turn_docs(entry)
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


def decode(text, lang):
    """(calls as bfcl-eval's [{name: {arg: value}}], decoder) or (None, "none") when no call list
    can be read. bfcl-eval's decoder first; the project's grammar for what it cannot read."""
    try:
        decoded = default_decode_ast_prompting(text, lang)
        if is_function_calling_format_output(decoded):
            return decoded, "bfcl"
    except Exception:  # ast.parse / tree-sitter failures surface as many exception types
        pass
    if lang == "Python":
        calls = toolcalls.parse_answer(text.strip())
        if calls:
            return [{call.name: dict(call.args)} for call in calls], "project"
    return None, "none"


def decode_execute(text):
    """The calls of `text` as executable strings ("cd(folder='x')"), and the decoder used."""
    decoded, decoder = decode(text, "Python")
    if decoded is None or is_empty_output(decoded):
        return [], decoder
    return decoded_output_to_execution_list(decoded), decoder


# --- single-turn scoring ---------------------------------------------------------------------------

def score_single_turn(entry, category, text):
    """bfcl-eval's verdict on one AST or relevance item, with the decoded calls."""
    lang = language(category)
    decoded, decoder = decode(text, lang)
    verdict = {"id": entry["id"], "category": category, "decoder": decoder, "decoded": decoded}
    if is_relevance_or_irrelevance(category):
        has_call = decoded is not None and not is_empty_output(decoded)
        irrelevance = "irrelevance" in category
        valid = has_call != irrelevance
        error_type = None if valid else ("irrelevance_error:decoder_success" if irrelevance
                                         else "relevance_error:decoder_failed")
        return {**verdict, "valid": valid, "error_type": error_type, "error": None}
    if decoded is None:
        return {**verdict, "valid": False, "error_type": "ast_decoder:decoder_failed",
                "error": "Invalid syntax. Failed to decode AST."}
    try:
        result = ast_checker(entry["function"], decoded, entry["ground_truth"], lang, category, CHECKER_MODEL)
    except Exception as e:  # a checker crash on odd output fails the item, visibly, not the run
        return {**verdict, "valid": False, "error_type": "checker:exception", "error": f"{type(e).__name__}: {e}"}
    return {**verdict, "valid": result["valid"], "error_type": result.get("error_type") if not result["valid"] else None,
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
                calls, _ = decode_execute(text)
                if not calls:
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
    """bfcl-eval's multi_turn_checker verdict on the model's answers per turn and step."""
    verdict = {"id": entry["id"], "category": category}
    decoded, decoders = [], Counter()
    for steps in turns:
        turn_calls = []
        for text in steps:
            calls, decoder = decode_execute(text)
            decoders[decoder] += 1
            if calls:
                turn_calls.append(calls)
        decoded.append(turn_calls)
    verdict.update(decoder=dict(decoders), decoded=decoded)
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


# --- the leaderboard ---------------------------------------------------------------------------------

def leaderboard(accuracy, sizes):
    """The leaderboard's aggregates from per-category accuracies, as bfcl-eval 2025.6.8's
    generate_leaderboard_csv computes them: unweighted means of sub-scores, except that Live
    weighs its categories by size. Weights are the full categories' sizes, so a --limit run
    estimates the full benchmark's figure. A category that was not run is left out of the means
    (the leaderboard would count it as 0) and named in the aggregate's "missing" list."""
    def leaf(category):
        return {"accuracy": accuracy.get(category), "size": sizes[category],
                "missing": [] if category in accuracy else [category]}

    def mean(parts, weighted=False):
        present = [p for p in parts if p["accuracy"] is not None]
        size = sum(p["size"] for p in parts)
        missing = [m for p in parts for m in p["missing"]]
        if not present:
            value = None
        elif weighted:
            value = sum(p["accuracy"] * p["size"] for p in present) / sum(p["size"] for p in present)
        else:
            value = sum(p["accuracy"] for p in present) / len(present)
        return {"accuracy": value, "size": size, "missing": missing}

    simple = mean([leaf("simple"), leaf("java"), leaf("javascript")])
    non_live_ast = [simple, leaf("multiple"), leaf("parallel"), leaf("parallel_multiple")]
    live_ast = [leaf(c) for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")]
    non_live = mean(non_live_ast + [leaf("irrelevance")])
    live = mean(live_ast + [leaf("live_irrelevance"), leaf("live_relevance")], weighted=True)
    multi_turn = mean([leaf(c) for c in TEST_COLLECTION_MAPPING["multi_turn"]])
    return {
        "overall": mean([live, non_live, multi_turn]),
        "non_live": mean(non_live_ast),        # the leaderboard's "Non-Live AST Acc" (Table 1: Non-live)
        "live": live,                          # "Live Acc" (Table 1: Live)
        "multi_turn": multi_turn,              # "Multi Turn Acc"
        "relevance": leaf("live_relevance"),   # "Relevance Detection"
        "irrelevance": mean([leaf("irrelevance"), leaf("live_irrelevance")]),  # "Irrelevance Detection"
        "non_live_overall": non_live,
        "live_ast": mean(live_ast, weighted=True),
    }


AGGREGATE_LABELS = {"overall": "Overall", "non_live": "Non-live", "live": "Live", "multi_turn": "Multi-turn",
                    "relevance": "Relevance", "irrelevance": "Irrelevance"}


def markdown(scores, label):
    def cell(node):
        return common.percent(node["accuracy"]) + ("*" if node["missing"] and node["accuracy"] is not None else "")
    agg = scores["aggregates"]
    lines = [f"# BFCL-v3: {label}", "",
             "| Model | Overall | Non-live | Live | Multi-turn | Rel / Irrel |", "|---|---|---|---|---|---|",
             f"| {label} | {cell(agg['overall'])} | {cell(agg['non_live'])} | {cell(agg['live'])} | "
             f"{cell(agg['multi_turn'])} | {cell(agg['relevance'])} / {cell(agg['irrelevance'])} |", ""]
    if any(node["missing"] for node in agg.values()):
        lines += ["\\* over the categories that were run only (see `missing` in bfcl_scores.json).", ""]
    lines += ["| category | accuracy | correct / scored | size |", "|---|---|---|---|"]
    lines += [f"| {c} | {common.percent(s['accuracy'])} | {s['correct']} / {s['scored']} | {s['size']} |"
              for c, s in scores["categories"].items()]
    decoder = scores["decoder"]
    lines += ["", f"Decoder: bfcl-eval {decoder.get('bfcl', 0)}, project grammar {decoder.get('project', 0)}, "
              f"no call {decoder.get('none', 0)} (answers; multi-turn counts every step). "
              f"Limit {scores['limit'] or 'none'}; {scores['seconds_per_item']:.1f} s per item.", ""]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_checkpoint_flags(parser)
    parser.add_argument("--categories", default="all", help="comma-separated categories or collections")
    parser.add_argument("--limit", type=int, default=0, help="items per category, spread evenly (0 = all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512,
                        help="cap per answer; each category gets less when its gold answers are short")
    parser.add_argument("--max-steps", type=int, default=MAXIMUM_STEP_LIMIT,
                        help="multi-turn: steps with calls per turn before the entry is force-terminated")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    entries = {c: load_category(c, args.limit) for c in resolve_categories(args.categories)}
    generate = common.load_generator(args.model, args.adapter, args.qlora, args.batch_size)
    scores = evaluate(entries, generate, args)
    print(markdown(scores, label(args)))


def label(args):
    return args.adapter or f"{args.model} (base)"


def evaluate(entries, generate, args):
    """Generate answers for the entries ({category: entries}), score them, write the outputs to
    args.out; returns the scores. `generate(prompts, max_new_tokens) -> texts` is the model."""
    out = Path(args.out)
    started = time.time()
    texts = generate_all(entries, generate, out, args)
    seconds = time.time() - started
    generations, verdicts = [], []
    for category, items in entries.items():
        for entry in items:
            output = texts[entry["id"]]
            generations.append({"id": entry["id"], "category": category, "output": output})
            verdicts.append(score_multi_turn(entry, category, output) if is_multi_turn(category)
                            else score_single_turn(entry, category, output))
    scores = summarise(verdicts, entries, args, seconds)
    write_jsonl(out / "bfcl_generations.jsonl", generations)
    write_jsonl(out / "bfcl_verdicts.jsonl", make_json_serializable(verdicts))
    atomic_write_text(out / "bfcl.md", markdown(scores, label(args)))
    atomic_write_json(out / "bfcl_scores.json", scores)  # last: the file make watches
    (out / PARTIAL).unlink(missing_ok=True)
    return scores


def generate_all(entries, generate, out, args):
    """Every entry's model output (single-turn: text; multi-turn: texts per turn and step), taking
    what a killed run with the same settings already generated."""
    from training import fingerprint

    settings = {"model": args.model, "adapter": args.adapter, "qlora": args.qlora, "max_new_tokens": args.max_new_tokens,
                "max_steps": args.max_steps, "bfcl_eval": bfcl_eval_version()}
    # The harness's own files count too: a changed prompt or decoder must not reuse old answers.
    inputs = [__file__, common.__file__] + ([str(Path(args.adapter) / "adapter_model.safetensors")] if args.adapter else [])
    done = common.open_partial(out / PARTIAL, fingerprint(settings, inputs))
    texts = {i: row["output"] for i, row in done.items()}
    total = sum(map(len, entries.values()))
    with tqdm(total=total, initial=sum(e["id"] in texts for es in entries.values() for e in es),
              desc="BFCL", unit="item", dynamic_ncols=True) as bar:
        for category, items in entries.items():
            todo = [e for e in items if e["id"] not in texts]
            if not todo:
                continue
            budget = token_budget(category, args.max_new_tokens)
            bar.set_postfix_str(category)
            if is_multi_turn(category):
                for entry_id, turns in run_dialogues(todo, category, generate, args.max_steps, budget,
                                                     status=bar.set_postfix_str):
                    texts[entry_id] = turns
                    common.append_partial(out / PARTIAL, [{"id": entry_id, "output": turns}])
                    bar.update(1)
                continue
            chunk = 4 * args.batch_size  # a few batches between checkpoints of the partial file
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                prompts = [{"id": e["id"], "system": entry_system(e, category),
                            "messages": turn_messages(e["question"][0])} for e in part]
                rows = [{"id": e["id"], "output": t} for e, t in zip(part, generate(prompts, budget))]
                texts.update((r["id"], r["output"]) for r in rows)
                common.append_partial(out / PARTIAL, rows)
                bar.update(len(part))
    return texts


def bfcl_eval_version():
    from importlib.metadata import version
    return version("bfcl-eval")


def summarise(verdicts, entries, args, seconds):
    by_category = defaultdict(list)
    for v in verdicts:
        by_category[v["category"]].append(v["valid"])
    categories = {}
    for category in entries:
        valid = by_category[category]
        categories[category] = {"accuracy": sum(valid) / len(valid) if valid else None, "correct": sum(valid),
                                "scored": len(valid), "size": category_size(category)}
    accuracy = {c: s["accuracy"] for c, s in categories.items() if s["accuracy"] is not None}
    sizes = {c: category_size(c) for c in TEST_COLLECTION_MAPPING["all"]}
    decoder = Counter()
    for v in verdicts:
        if isinstance(v["decoder"], dict):
            decoder.update(v["decoder"])
        else:
            decoder[v["decoder"]] += 1
    return {
        "benchmark": "BFCL-v3", "bfcl_eval": bfcl_eval_version(), "model": args.model, "adapter": args.adapter,
        "limit": args.limit, "categories": categories, "aggregates": leaderboard(accuracy, sizes),
        "decoder": dict(decoder), "error_types": dict(Counter(v["error_type"] for v in verdicts if not v["valid"])),
        "seconds": round(seconds, 1), "seconds_per_item": seconds / max(1, len(verdicts)),
    }


if __name__ == "__main__":
    main()
