"""API-Bank level 1 and level 2 (make eval): the paper's Table 2.

    python eval/api_bank.py --model gemma-3-270m [--adapter DIR] --out DIR \
        [--data-dir eval/data/api-bank | liminghao1630/API-Bank] [--limit N]

Data: level-1-api.json (L-1: the APIs are described, call the right one) and level-2-api.json
(L-2: only ToolSearcher is described; the retrieved API's description comes back as its result)
from --data-dir, a local directory, or else a dataset hub id whose test-data/ holds the files.
Each record is {"file", "id", "instruction", "input", "expected_output"}.

Prompts, in the layout the model was trained on: the API descriptions of the instruction become
a JSON tool list in records.render_system (input_parameters -> "parameters": {"type": "dict",
"properties", "required": all of them}), followed by the instruction's date context ("The
current year is 2023."). The dialogue in `input` becomes turns: "User:" a user turn, "AI:" an
assistant turn, "API-Request: [call]->result" an assistant call turn and a ToolACE-style tool turn.

Score: exact match of the API name and the normalised arguments of the single predicted call
against the expected call (API-Bank's evaluator executes calls instead, which for many gold calls
does not reproduce the gold result offline; see the data README). Normalised: numbers by value
("2023" == 2023), text case- and whitespace-insensitive, list or dict literals written inside a
string parsed. Some expected calls quote a list without escaping its quotes
(health_data='[{'name': 'x'}]'); these are read by splitting at top-level ", key=".

Outputs in --out: api_bank_generations.jsonl, api_bank_verdicts.jsonl (valid, error_type: no_call,
wrong_count, wrong_name, wrong_args; the detail), api_bank_scores.json and api_bank.md.
"""
import argparse
import ast
import json
import re
import sys
from pathlib import Path

from eval import common
from itool import toolcalls
from itool.records import RecordError, render_system

LEVELS = {"L-1": "level-1-api.json", "L-2": "level-2-api.json"}
HUB_DATASET = "liminghao1630/API-Bank"
TYPES = {"str": "string", "int": "integer", "float": "float", "bool": "boolean", "list": "array", "dict": "dict"}
NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?")


# --- data --------------------------------------------------------------------------------------------

def level_file(data_dir, name):
    """The path of one level's file: in the local directory, or fetched from the dataset hub."""
    if Path(data_dir).is_dir():
        path = Path(data_dir) / name
        if not path.is_file():
            sys.exit(f"--data-dir {data_dir}: no {name} there")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(data_dir, f"test-data/{name}", repo_type="dataset"))
    except Exception as e:  # offline, unknown id: say which input failed and what to pass instead
        sys.exit(f"--data-dir {data_dir}: not a directory, and the dataset hub failed ({type(e).__name__}: {e}); "
                 f"pass a local copy, e.g. --data-dir eval/data/api-bank (the repo's own)")


def load_level(path, level):
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(records, list) or not records:
        raise RecordError(f"{path}: expected a non-empty JSON array of records")
    items = []
    for i, record in enumerate(records):
        where = f"{path}: record {i}"
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str)
                                                   for k in ("instruction", "input", "expected_output")):
            raise RecordError(f"{where}: expected an object with string instruction, input and expected_output")
        expected = parse_request(record["expected_output"])
        if expected is None or len(expected) != 1:
            raise RecordError(f"{where}: expected_output is not one API call: {record['expected_output']!r:.200}")
        items.append({"id": f"{level}/{i}", "level": level, "system": system_text(record["instruction"], where),
                      "messages": dialogue(record["input"], where), "expected": expected[0]})
    return items


def system_text(instruction, where):
    """render_system of the instruction's API descriptions (one JSON object per line after
    "API descriptions:"), then the instruction's "The current year is ..." line."""
    _, found, descriptions = instruction.partition("API descriptions:")
    if not found:
        raise RecordError(f"{where}: instruction has no 'API descriptions:'")
    tools = []
    for line in descriptions.strip().splitlines():
        try:
            api = json.loads(line)
            params = api.get("input_parameters", {})
            tools.append({"name": api["name"], "description": api.get("description", ""), "parameters": {
                "type": "dict",
                "properties": {k: {"type": TYPES.get(p.get("type"), "string"), "description": p.get("description", "")}
                               for k, p in params.items()},
                "required": list(params)}})
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
            raise RecordError(f"{where}: unreadable API description {line!r:.200}") from None
    context = re.search(r"The current year is \d+\.", instruction)
    return render_system(tools) + (context.group(0) + "\n" if context else "")


def dialogue(text, where):
    """The input's lines as chat turns; a line with no known prefix continues the turn before."""
    messages = []
    for line in text.splitlines():
        if line.startswith("Generate API Request:"):
            break
        if line.startswith("User:"):
            messages.append({"role": "user", "content": line[len("User:"):].strip()})
        elif line.startswith("AI:"):
            messages.append({"role": "assistant", "content": line[len("AI:"):].strip()})
        elif line.startswith("API-Request:"):
            call, _, result = line[len("API-Request:"):].strip().partition("->")
            name = call.strip().lstrip("[").split("(", 1)[0]
            messages.append({"role": "assistant", "content": call.strip()})
            messages.append({"role": "tool", "content": json.dumps([{"name": name, "results": python_literal(result)}],
                                                                   ensure_ascii=False)})
        elif messages:
            messages[-1]["content"] += "\n" + line
        elif line.strip():
            raise RecordError(f"{where}: input starts with an unknown line {line!r:.100}")
    if not messages or messages[0]["role"] != "user":
        raise RecordError(f"{where}: input has no 'User:' turn first")
    return messages


def python_literal(text):
    """API results are Python reprs ({'name': ...}); as data where they parse, else the text."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text.strip()


# --- calls --------------------------------------------------------------------------------------------

def parse_request(text):
    """The calls of an answer or expected output ("API-Request: " optional), or None for text."""
    text = text.strip()
    if text.startswith("API-Request:"):
        text = text[len("API-Request:"):].strip()
    calls = toolcalls.parse_answer(text)
    if calls is None:
        call = loose_call(text)
        calls = None if call is None else [call]
    return calls


def loose_call(text):
    """One call whose quoted values may hold unescaped quotes: [Name(a='x', b='[{'k': 'v'}]')].
    Arguments are split at ", key=" outside brackets, values unquoted once."""
    match = re.fullmatch(r"\[\s*([A-Za-z_][\w.]*)\((.*)\)\s*\]", text, re.S)
    if not match:
        return None
    name, body = match.groups()
    args = {}
    for part in re.split(r",\s*(?=[A-Za-z_]\w*\s*=)", body) if body.strip() else []:
        key, eq, value = part.partition("=")
        if not eq:
            return None
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        args[key.strip()] = value
    return toolcalls.Call(name, args)


def normalise(value):
    """The form in which two argument values count as equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return toolcalls.canonical(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        if text[:1] in "[{":  # a list or dict written as a string
            literal = python_literal(text)
            if not isinstance(literal, str):
                return normalise(literal)
        if NUMBER.fullmatch(text):  # not "007" or "02139": leading zeros make it an identifier
            return toolcalls.canonical(float(text))
        return text.lower()
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k).lower(): normalise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]).lower())}
    return "none" if value is None else str(value)


def verdict(text, expected):
    """valid, error_type and what differs, for the model's answer against the expected call."""
    calls = parse_request(text)
    if not calls:
        return {"valid": False, "error_type": "no_call", "error": "no call list in the answer"}
    if len(calls) != 1:
        return {"valid": False, "error_type": "wrong_count", "error": f"{len(calls)} calls, expected 1"}
    call = calls[0]
    if call.name != expected.name:
        return {"valid": False, "error_type": "wrong_name", "error": f"{call.name!r}, expected {expected.name!r}"}
    got, want = ({k: normalise(v) for k, v in c.args.items()} for c in (call, expected))
    if got != want:
        diff = {k: {"got": got.get(k), "expected": want.get(k)} for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)}
        return {"valid": False, "error_type": "wrong_args", "error": diff}
    return {"valid": True, "error_type": None, "error": None}


# --- main -----------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_checkpoint_flags(parser)
    parser.add_argument("--data-dir", default=HUB_DATASET, help="directory with level-{1,2}-api.json, or a hub dataset id")
    parser.add_argument("--limit", type=int, default=0, help="records per level, spread evenly (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="the longest expected call is ~100 tokens")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    scores = evaluate(load_items(args.data_dir, args.limit), common.load_generator(args), args)
    print(markdown(scores, common.label(args)))


def load_items(data_dir, limit):
    """Both levels' items, `limit` of each spread evenly over it."""
    return [item for level, name in LEVELS.items()
            for item in common.spread(load_level(level_file(data_dir, name), level), limit)]


def evaluate(items, generate, args):
    """Generate answers for the items, judge them, write the outputs to args.out; returns the
    scores. `generate(prompts, max_new_tokens) -> texts` is the model."""
    return common.evaluate("api_bank", items, generate, args, judge=judge, summarise=summarise, markdown=markdown,
                           inputs=[__file__])


def judge(item, text):
    return {"id": item["id"], "level": item["level"], "expected": toolcalls.format_calls([item["expected"]]),
            **verdict(text, item["expected"])}


def summarise(verdicts, args, timing):
    levels = {}
    for level in LEVELS:
        valid = [v["valid"] for v in verdicts if v["level"] == level]
        levels[level] = {"accuracy": sum(valid) / len(valid) if valid else None, "correct": sum(valid), "scored": len(valid)}
    errors = {}
    for v in verdicts:
        if not v["valid"]:
            errors[v["error_type"]] = errors.get(v["error_type"], 0) + 1
    seconds = timing["generation_seconds"]
    return {"benchmark": common.BENCHMARKS["api_bank"], "model": args.model, "adapter": args.adapter,
            "data": args.data_dir, "limit": args.limit, "levels": levels, "error_types": errors,
            "seconds": round(seconds, 1), "seconds_per_item": seconds / max(1, len(verdicts))}


def markdown(scores, label):
    levels = scores["levels"]
    return "\n".join([
        f"# API-Bank: {label}", "",
        "| Model | " + " | ".join(common.TABLE2.values()) + " |", "|---|---|---|",
        f"| {label} | " + " | ".join(common.percent(levels[level]["accuracy"]) for level in common.TABLE2) + " |", "",
        f"Scored: L-1 {levels['L-1']['correct']} / {levels['L-1']['scored']}, L-2 {levels['L-2']['correct']} / "
        f"{levels['L-2']['scored']} (limit {scores['limit'] or 'none'}); errors {scores['error_types']}; "
        f"{scores['seconds_per_item']:.1f} s per item.", ""])


if __name__ == "__main__":
    main()
