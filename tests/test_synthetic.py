"""The synthetic data generator: determinism, well-formed records, legal calls, kind shares, copying."""
import re
import time
from collections import Counter

import pytest

from itool import records, synthetic
from itool.toolcalls import format_calls, parse_answer

TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "dict": dict}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISO_TIME = re.compile(r"\d{2}:\d{2}")


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(500, seed=0)


def calls_with_context(record):
    """(tools by name, calls, all user text before the call turn) for each assistant call turn."""
    tools = {t["name"]: t for t in records.tools_from_system(record["system"])}
    user_text = ""
    for turn in record["conversations"]:
        if turn["from"] == "user":
            user_text += "\n" + turn["value"]
        elif turn["from"] == "assistant":
            calls = parse_answer(turn["value"])
            if calls is not None:
                yield tools, calls, user_text, turn["value"]


def shape(record):
    """Kind (a)-(e) of a record, read from its samples and turns only."""
    first = records.record_samples(record, "x")[0]
    if any(t["from"] == "tool" for t in record["conversations"]):
        return "dialogue"
    if first["kind"] == "text":
        return "text"
    return "parallel" if first["n_calls"] > 1 else "single" if first["n_tools"] == 1 else "multiple"


def test_deterministic(data):
    assert synthetic.generate(500, seed=0) == data
    assert synthetic.generate(50, seed=1) != data[:50]


def test_fast_and_sized():
    start = time.perf_counter()
    recs = synthetic.generate(3000, seed=0)
    assert time.perf_counter() - start < 1.5  # >= 2,000 records/s
    n_samples = sum(len(records.record_samples(r, str(i))) for i, r in enumerate(recs))
    assert 3500 <= n_samples <= 4500


def test_records_valid(data):
    for i, rec in enumerate(data):
        records.validate_record(rec, f"record {i}")
        assert rec["conversations"][0]["from"] == "user"
        assert rec["system"] == records.render_system(records.tools_from_system(rec["system"]))
        for turn in rec["conversations"]:
            assert turn["value"].strip()
            if turn["from"] == "user":
                assert "{" not in turn["value"] and "}" not in turn["value"], turn  # no unfilled template


def test_calls_legal(data):
    n = 0
    for rec in data:
        for tools, calls, _, answer in calls_with_context(rec):
            assert format_calls(calls) == answer  # round trip
            assert len({repr(c) for c in calls}) == len(calls), answer  # no repeated call
            for call in calls:
                n += 1
                schema = tools[call.name]["parameters"]
                assert set(schema["required"]) <= set(call.args), answer
                for key, value in call.args.items():
                    prop = schema["properties"][key]
                    assert type(value) is TYPES[prop["type"]], (answer, key)
                    if "enum" in prop:
                        assert value in prop["enum"], (answer, key)
                    if prop["type"] == "array":
                        item_type = TYPES[prop["items"]["type"]]
                        assert value and all(type(v) is item_type for v in value), (answer, key)
                        if "enum" in prop["items"]:
                            assert set(value) <= set(prop["items"]["enum"])
    assert n > 500


def test_kind_shares(data):
    shares = Counter(map(shape, data))
    assert set(shares) == {"single", "multiple", "parallel", "dialogue", "text"}
    for kind, least in {"single": 0.12, "multiple": 0.15, "parallel": 0.12, "dialogue": 0.12, "text": 0.08}.items():
        assert shares[kind] / len(data) >= least, shares
    samples = [s for i, r in enumerate(data) for s in records.record_samples(r, str(i))]
    text = sum(s["kind"] == "text" for s in samples) / len(samples)
    assert 0.15 <= text <= 0.4
    assert max(s["n_tools"] for s in samples) >= 5 and max(s["n_calls"] for s in samples) >= 3
    # parallel calls of the same tool, and of different tools, both occur
    kinds = Counter(len({c.name for c in calls}) > 1
                    for rec in data for _, calls, _, _ in calls_with_context(rec) if len(calls) > 1)
    assert kinds[True] > 10 and kinds[False] > 10
    # dialogues: the tool turn holds JSON results, the turn after it is a text summary
    for rec in data:
        turns = rec["conversations"]
        for t, turn in enumerate(turns):
            if turn["from"] == "tool":
                assert turns[t - 1]["from"] == "assistant" and parse_answer(turns[t - 1]["value"])
                assert turns[t + 1]["from"] == "assistant" and parse_answer(turns[t + 1]["value"]) is None


def test_values_copied_or_converted(data):
    words = 0
    for rec in data:
        for tools, calls, user_text, _ in calls_with_context(rec):
            for call in calls:
                props = tools[call.name]["parameters"]["properties"]
                for key, value in call.args.items():
                    desc = props[key]["description"]
                    if "YYYY-MM-DD" in desc:
                        assert ISO_DATE.fullmatch(value), value
                    elif "HH:MM" in desc:
                        assert ISO_TIME.fullmatch(value), value
                    else:
                        for v in value if isinstance(value, list) else [value]:
                            if isinstance(v, str):  # copied verbatim, or named by an alias ("euros")
                                said = [v, *synthetic.ALIASES.get(v, ())]
                                assert any(a in user_text for a in said), (v, user_text)
                if any(w in user_text.split() for w in synthetic.NUMBER_WORDS[2:]):
                    words += 1
    assert words > 5  # some numbers are written as words and must be converted


def test_catalogue():
    catalogue = synthetic.catalogue()
    assert len(catalogue.tools) >= 150 and len(catalogue.by_domain) >= 30
    names = [t.base for t in catalogue.tools]
    assert len(set(names)) == len(names)
    for tool in catalogue.tools:
        assert tool.desc.endswith(".") and len(tool.desc) < 80 and tool.results
        for p in tool.params:
            if p.kind.startswith("date"):
                assert "YYYY-MM-DD" in p.schema["description"], (tool.base, p.name)
            if p.kind == "time":
                assert "HH:MM" in p.schema["description"], (tool.base, p.name)
    styles = Counter()
    for rec in synthetic.generate(300, seed=3):
        for t in records.tools_from_system(rec["system"]):
            styles[" " in t["name"], "." in t["name"], "-" in t["name"]] += 1
    assert len(styles) >= 4  # snake, dotted, spaced, dashed names all occur


def test_conversions():
    """Spot checks of the text -> value conversions the model has to learn."""
    r = synthetic.random.Random(0)
    gen = synthetic.make_gen("date")[1]
    for _ in range(50):
        value, text = gen(r)
        assert ISO_DATE.fullmatch(value) and text
    assert synthetic.make_gen("pct")[1](r)[0] < 0.2
    value, text = synthetic.make_gen("usd(1000,50000)")[1](r)
    assert str(value) in text.replace(",", "")
    values = {synthetic.make_gen("int(1,12)")[1](r) for _ in range(200)}
    assert any(t == synthetic.NUMBER_WORDS[v] for v, t in values)
