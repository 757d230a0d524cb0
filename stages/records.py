"""ToolACE-format records: validation, tool lists, training samples, and atomic JSON/JSONL files.

A record is {"system": str, "conversations": [{"from": "user"|"assistant"|"tool", "value": str}]},
the system text embedding the tool list as a JSON array. Every assistant turn is one training
sample whose context is the system text plus the turns before it.
"""
import json
import os
from pathlib import Path

from toolcalls import parse_answer

TOOLS_INTRO = "Here is a list of functions in JSON format that you can invoke:"
ROLES = ("user", "assistant", "tool")


class RecordError(ValueError):
    """A malformed input record; the message names the file and the record."""


def render_system(tools):
    """System text in the ToolACE style: instructions, then the tool list as JSON."""
    return (
        "You are an expert in composing function calls. You are given a request and a set of "
        "possible functions. Answer with the function call(s) that fulfil the request, written "
        "as [func_name(param=value, ...), ...] and nothing else. If no function fits the "
        "request, or a required parameter is missing, say so in plain text instead.\n"
        f"{TOOLS_INTRO}\n{json.dumps(tools, ensure_ascii=False)}\n"
    )


def tools_from_system(system):
    """The tool list embedded in a system text, or None when there is none.

    The JSON array normally follows TOOLS_INTRO; other phrasings are handled by trying every '['
    until one decodes to a list of objects that have a "name".
    """
    decoder = json.JSONDecoder()
    start = system.find(TOOLS_INTRO)
    pos = system.find("[", start if start >= 0 else 0)
    while pos >= 0:
        try:
            value, _ = decoder.raw_decode(system, pos)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and value and all(isinstance(t, dict) and "name" in t for t in value):
            return value
        pos = system.find("[", pos + 1)
    return None


def validate_record(record, where):
    """Raise RecordError (naming `where`, e.g. "data.jsonl: record 12") if `record` is malformed."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected an object, got {type(record).__name__}")
    if not isinstance(record.get("system"), str):
        raise RecordError(f"{where}: missing or non-string 'system'")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"{where}: 'conversations' must be a non-empty list")
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise RecordError(f"{where}: turn {t} must be {{'from': one of {ROLES}, 'value': str}}, got {turn!r:.200}")
    if not any(turn["from"] == "assistant" for turn in turns):
        raise RecordError(f"{where}: no assistant turn, so no training sample")
    if tools_from_system(record["system"]) is None:
        raise RecordError(f"{where}: no JSON tool list found in 'system'")


def record_samples(record, conversation_id):
    """One sample per assistant turn: context messages before it and the gold answer."""
    samples = []
    turns = record["conversations"]
    tools = tools_from_system(record["system"])
    for t, turn in enumerate(turns):
        if turn["from"] != "assistant":
            continue
        calls = parse_answer(turn["value"])
        samples.append({
            "id": f"{conversation_id}-{t}",
            "conversation": conversation_id,
            "system": record["system"],
            "messages": [{"role": m["from"], "content": m["value"]} for m in turns[:t]],
            "answer": turn["value"],
            "kind": "text" if calls is None else "call",
            "n_tools": len(tools),
            "tools_chars": len(json.dumps(tools, ensure_ascii=False)),
            "n_calls": 0 if calls is None else len(calls),
        })
    return samples


def check_samples(samples, path):
    """Raise RecordError (naming `path` and the line) unless `samples` is a non-empty list of sample
    dicts as record_samples makes them (at least id, system, messages and answer)."""
    if not samples:
        raise RecordError(f"{path}: no samples")
    for line, sample in enumerate(samples, 1):
        for key, kind in (("id", str), ("system", str), ("messages", list), ("answer", str)):
            if not isinstance(sample, dict) or not isinstance(sample.get(key), kind):
                name = sample.get("id", "?") if isinstance(sample, dict) else "?"
                raise RecordError(f"{path}: line {line}: sample {name} lacks a {kind.__name__} {key!r}")


# --- files -------------------------------------------------------------------------------------

def atomic_write_text(path, text):
    """Write via a temp file and rename, so a killed writer never leaves a file that looks done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path, rows):
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RecordError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
    return rows
