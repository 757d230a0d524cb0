"""Synthetic ToolACE-format training data: seeded, fast, varied.

The tools, by domain, and the pools of values their arguments are drawn from are data, in
synthetic_catalogue.txt beside this module (its header gives the format): read at first use and
parsed into BFCL-style JSON schemas plus argument generators. Every argument is drawn as a
pair (value, text): the value goes into the gold call, the text into the user's request, so the
model has to copy or convert it ("five" -> 5, "May 1st, 2025" -> "2025-05-01", "euros" -> "EUR",
"$1,200" -> 1200, "3 pm" -> "15:00"). Record kinds, with their shares in KINDS:

    single    one candidate tool, one call
    multiple  2-5 candidate tools, one call
    parallel  several calls in one list: the same tool several times, or different tools
    dialogue  calls -> tool results (JSON) -> text summary, sometimes a follow-up request
    no_tool   no candidate tool serves the request: the answer is a plain-text refusal
    missing   a required value is not given: the assistant asks for it, and sometimes gets it

    python -m itool.synthetic --n 5 --seed 0        pretty-print records
    python -m itool.synthetic --n 3000 --stats      kind shares, lengths, speed
"""
import argparse
import datetime
import json
import random
import re
import string
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import NamedTuple

from itool.records import record_samples, render_system, tools_from_system
from itool.toolcalls import Call, format_calls

KINDS = {"single": 0.22, "multiple": 0.25, "parallel": 0.20, "dialogue": 0.19, "no_tool": 0.07, "missing": 0.07}
# How tool names are written in a record. Varying the style per record keeps the model copying
# names from the tool list instead of memorising them; BFCL itself mixes snake_case and dotted.
STYLES = {"snake": 0.55, "dotted": 0.15, "title": 0.15, "kebab": 0.07, "camel": 0.08}
P_OPTIONAL = 0.35  # chance that a request mentions a given optional parameter
DATA_FILE = Path(__file__).with_name("synthetic_catalogue.txt")  # value pools and the tool catalogue

# --- argument values: each generator returns (value for the call, text for the request) ----------

NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
MONTHS = "January February March April May June July August September October November December".split()
ALIASES = {}  # value -> other ways a user may name it ({"EUR": {"euros"}}); the tests read this


def number_text(r, n, words_ok):
    if words_ok and 0 <= n < len(NUMBER_WORDS) and r.random() < 0.25:
        return NUMBER_WORDS[n]
    return f"{n:,}" if n >= 1000 and r.random() < 0.4 else str(n)


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def date_text(r, d):
    m, day, y = MONTHS[d.month - 1], d.day, d.year
    return r.choice([f"{m} {day}, {y}", f"{day} {m} {y}", f"{m} {ordinal(day)}, {y}",
                     f"the {ordinal(day)} of {m}, {y}", f"{m[:3]} {day}, {y}", d.isoformat()])


def time_text(r, h, m):
    if (h, m) == (12, 0) and r.random() < 0.3:
        return "noon"
    h12, ampm = (h - 1) % 12 + 1, r.choice(["am", "AM"] if h < 12 else ["pm", "PM"])
    return r.choice([f"{h12}{f':{m:02d}' if m else ''} {ampm}", f"{h12}:{m:02d} {ampm}", f"{h:02d}:{m:02d}"])


def join_and(r, texts):
    """'A and B', 'A, B and C'; semicolons when an item has a comma of its own ('Paris, France')."""
    if len(texts) < 2:
        return "".join(texts)
    sep = "; " if any("," in t for t in texts) else ", "
    oxford = "," if len(texts) > 2 and sep == ", " and r.random() < 0.3 else ""
    return sep.join(texts[:-1]) + oxford + " and " + texts[-1]


def pick(spec, sep):
    """A choice among 'value:alias' items; the text is the alias 60% of the time (always when the
    value is an identifier like muscle_gain, which nobody types)."""
    items = [tuple(x.split(":")) if ":" in x else (x, x) for x in spec.split(sep)]
    for v, a in items:
        if a != v:
            ALIASES.setdefault(v, set()).add(a)

    def gen(r):
        value, alias = r.choice(items)
        return value, alias if alias != value and ("_" in value or r.random() < 0.6) else value
    return [v for v, _ in items], gen


def ranged(name, lo, hi):
    """int(a,b), float(a,b), usd(a,b), year(a,b), date(a,b) -> (schema type, generator)."""
    if name == "float":
        def gen(r):
            value = max(lo, round(r.uniform(lo, hi), 3 if hi <= 1 else 1 if hi > 100 else r.choice([1, 2])))
            return value, str(int(value)) if value.is_integer() and r.random() < 0.5 else str(value)
        return "float", gen
    lo, hi = int(lo), int(hi)
    if name == "usd":
        step = 10 ** max(0, len(str(hi)) - 3)  # round amounts: $48,300 rather than $48,317
        def gen(r):
            n = r.randint(lo // step, hi // step) * step
            return n, r.choice([f"${n:,}", f"${n}", f"{n:,} dollars", f"{n} USD"])
        return "integer", gen
    if name == "date":
        start, end = datetime.date(lo, 1, 1).toordinal(), datetime.date(hi, 12, 31).toordinal()
        return "string", lambda r: (lambda d: (d.isoformat(), date_text(r, d)))(
            datetime.date.fromordinal(r.randint(start, end)))
    if name == "year":
        return "integer", lambda r: (lambda y: (y, str(y)))(r.randint(lo, hi))
    return "integer", lambda r: (lambda n: (n, number_text(r, n, hi <= 20 and n <= 12)))(r.randint(lo, hi))


def pct(r):
    k = r.randint(2, 24) / 2  # 1% .. 12% in half-percent steps; the value is a decimal: 0.045
    return round(k / 100, 4), r.choice([f"{k:g}%", f"{k:g} percent"])


def hhmm(r):
    h, m = r.randint(7, 21), r.choice([0, 0, 15, 30, 45])
    return f"{h:02d}:{m:02d}", time_text(r, h, m)


def coords(r):
    lat, lon = round(r.uniform(-60, 70), 2), round(r.uniform(-170, 170), 2)
    return {"latitude": lat, "longitude": lon}, r.choice([f"({lat}, {lon})", f"latitude {lat}, longitude {lon}"])


def point(r):
    x, y = r.randint(-10, 10), r.randint(-10, 10)
    return [x, y], f"({x}, {y})"


def dims(r):
    d = [r.randint(5, 80) for _ in range(3)]
    return dict(zip(["length", "width", "height"], d)), " x ".join(map(str, d)) + " cm"


def verbatim(fn):
    return lambda r: (lambda s: (s, s))(fn(r))


SPECIAL = {  # kind -> (JSON schema, generator)
    "date": ({"type": "string"}, ranged("date", 2024, 2026)[1]),
    "time": ({"type": "string"}, hhmm),
    "pct": ({"type": "float"}, pct),
    "bool": ({"type": "boolean"}, lambda r: (lambda b: (b, str(b)))(r.random() < 0.5)),
    "point": ({"type": "array", "items": {"type": "integer"}}, point),
    "coords": ({"type": "dict", "properties": {"latitude": {"type": "float"}, "longitude": {"type": "float"}}},
               coords),
    "dims": ({"type": "dict", "properties": {k: {"type": "integer"} for k in ("length", "width", "height")}}, dims),
    # identifiers users paste as they are
    "flight": ({"type": "string"}, verbatim(lambda r: r.choice(["AA", "BA", "LH", "AF", "UA", "EK", "QF"])
                                            + str(r.randint(10, 999)))),
    "order": ({"type": "string"}, verbatim(lambda r: f"ORD-{r.randint(10000, 99999)}")),
    "booking": ({"type": "string"}, verbatim(lambda r: r.choice(["BK", "HX", "RZ"]) + str(r.randint(100000, 999999)))),
    "dna": ({"type": "string"}, verbatim(lambda r: "".join(r.choices("ACGT", k=r.randint(8, 16))))),
}


def list_gen(item, lo=2, hi=4):
    def gen(r):
        values, texts = [], []
        for _ in range(3 * hi):  # distinct items; the retries cover small pools
            v, t = item(r)
            if v not in values:
                values.append(v)
                texts.append(t)
            if len(values) == hi or (len(values) >= lo and r.random() < 0.4):
                break
        return values, join_and(r, texts)
    return gen


def make_gen(kind):
    """A catalogue kind -> (JSON schema without description, generator)."""
    if kind.endswith("*"):
        schema, item = make_gen(kind[:-1])
        return {"type": "array", "items": schema}, list_gen(item)
    if kind.startswith("["):  # enum: [celsius,fahrenheit], with aliases: [kg:kilograms,lb:pounds]
        values, gen = pick(kind[1:-1], ",")
        return {"type": "string", "enum": values}, gen
    m = re.fullmatch(r"(\w+)\((-?[\d.]+),(-?[\d.]+)\)", kind)
    if m:
        type_, gen = ranged(m.group(1), float(m.group(2)), float(m.group(3)))
        return {"type": type_}, gen
    if kind in SPECIAL:
        return SPECIAL[kind]
    return {"type": "string"}, pick(read_data_file()[0][kind], "|")[1]


# --- the data file: value pools and the tool catalogue, parsed at first use ----------------------

class Param(NamedTuple):
    name: str
    required: bool
    kind: str
    schema: dict  # what the model sees
    gen: object   # rng -> (value, text)
    frag: str     # how an optional value is mentioned: "in {}"; booleans: "yes text / no text"


class Tool(NamedTuple):
    base: str     # snake_case; a record's name style is applied on top
    domain: str
    desc: str
    params: tuple
    templates: tuple
    results: tuple  # (field, generator) pairs for the fake tool output


def parse_param(spec):
    head, _, rest = spec.partition(" = ")
    desc, _, frag = rest.partition(" @ ")
    name, _, kind = head.partition(":")
    kind, _, default = kind.partition("~")
    if kind == "bool":  # the text of a boolean is the phrase that sets it: "on" / "off"
        texts = frag.split(" / ")
        schema, gen = {"type": "boolean"}, lambda r: (lambda b: (b, texts[not b]))(r.random() < 0.5)
    else:
        schema, gen = make_gen(kind)
    schema = {"type": schema["type"], "description": desc, **{k: v for k, v in schema.items() if k != "type"}}
    if default:
        cast = {"integer": int, "float": float, "boolean": lambda s: s == "true"}.get(schema["type"], str)
        schema["default"] = cast(default)
    return Param(name.rstrip("?"), not name.endswith("?"), kind, schema, gen, frag)


def parse_catalogue(text):
    rows, contexts, domain = [], {}, None
    for line in text.strip().splitlines():
        body = line.strip()
        if line.startswith("## "):  # ## domain | context sentence ; ...
            domain, _, ctx = body[3:].partition(" | ")
            contexts[domain] = ctx.split(" ; ")
        elif not line.startswith(" "):  # name: Description. => result fields
            head, _, results = body.partition(" => ")
            base, _, desc = head.partition(": ")
            rows.append([base, domain, desc, [], [], results])
        elif body.startswith("> "):
            rows[-1][4] += body[2:].split(" ; ")
        else:
            rows[-1][3] += body.split(" | ")
    tools = []
    for base, dom, desc, params, templates, results in rows:
        params = tuple(map(parse_param, params))
        required = {p.name for p in params if p.required}
        for t in templates:  # every template must carry every required value, and nothing else
            fields = {f for _, f, _, _ in string.Formatter().parse(t) if f}
            assert fields == required, f"{base}: template {t!r} has {fields}, needs {required}"
        res = tuple((f, make_gen(k)[1]) for f, k in (x.split("=") for x in results.split()))
        tools.append(Tool(base, dom, desc, params, tuple(templates), res))
    return tools, contexts


class Catalogue(NamedTuple):
    tools: list      # every tool, in catalogue order
    contexts: dict   # domain -> sentences a user may open a request with
    by_domain: dict  # domain -> its tools
    parallel: list   # the tools with a required parameter: those a turn may call several times
    missable: list   # of those, the ones whose required values can be asked for (none is a boolean)


@cache
def read_data_file():
    """(value pools {kind: "value|value:alias|..."}, catalogue text) of DATA_FILE."""
    lines = [line for line in DATA_FILE.read_text(encoding="utf-8").splitlines()
             if line != "#" and not line.startswith("# ")]
    _, pools_text, catalogue_text = re.split(r"^=== (?:pools|tools)$", "\n".join(lines), flags=re.M)
    pools, kind = {}, None
    for line in pools_text.splitlines():
        if line.startswith(" "):  # a long pool goes on over several lines, each cut after a "|"
            pools[kind] += line.strip()
        elif line:
            kind, _, spec = line.partition(": ")
            pools[kind] = spec
    return pools, catalogue_text


@cache
def catalogue():
    """The data file's tools, parsed at first use rather than at import."""
    tools, contexts = parse_catalogue(read_data_file()[1])
    by_domain = {}
    for tool in tools:
        by_domain.setdefault(tool.domain, []).append(tool)
    parallel = [t for t in tools if any(p.required for p in t.params)]
    missable = [t for t in parallel if all(p.kind != "bool" for p in t.params if p.required)]
    return Catalogue(tools, contexts, by_domain, parallel, missable)


def tool_name(tool, style):
    words = tool.base.split("_")
    if style == "dotted":
        return f"{tool.domain}.{tool.base.removeprefix('get_')}"
    if style == "title":
        return " ".join(w.capitalize() for w in words)
    if style == "kebab":
        return "-".join(words)
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return tool.base


def tool_schema(tool, style):
    return {"name": tool_name(tool, style), "description": tool.desc,
            "parameters": {"type": "dict", "properties": {p.name: p.schema for p in tool.params},
                           "required": [p.name for p in tool.params if p.required]}}


# --- the user's words ----------------------------------------------------------------------------

ASKING = ["{}.", "{}", "Please {}.", "Can you {}?", "Could you {}?", "Could you please {}?", "I need you to {}.",
          "I'd like you to {}.", "{}, please.", "Would you {} for me?", "Hey, {}.", "Go ahead and {}.", "Kindly {}.",
          "Quick task: {}."]
SELF = ["Help me {}.", "Can you help me {}?", "I want to {}.", "I'd like to {}."]  # not with "show me ..."
OPENERS = ["Hi! ", "Hello. ", "Hey there. ", "Good morning! ", "I have a quick request. ", "Question for you. "]
SET_PHRASES = ["Use {text} for the {noun}.", "Set the {noun} to {text}.", "The {noun} should be {text}.",
               "{Noun}: {text}."]
NEXT_VERB = ["Also, {}.", "Then {}.", "And please {}.", "After that, {}.", "Also, can you {}?", "Next, {}.",
             "Plus, {}."]
NEXT_SENTENCE = ["Also, {}", "And {}", "Then, {}", "One more: {}"]
LIST_INTROS = ["I need a few things:", "Please do the following:", "A few requests:", "Can you handle these?"]


def cap(s):
    return s[:1].upper() + s[1:]


def describe(p):
    """A parameter's description as a noun phrase: 'Stock ticker symbol, e.g. AAPL' -> 'stock ticker symbol'."""
    d = re.sub(r"(, e\.g\..*|,? (in )?(YYYY|HH).*| format)$|^The ", "", p.schema["description"])
    return d[:1].lower() + d[1:] if d[1:2].islower() else d


def noun(name):
    """A parameter name as words: 'weight_kg' -> 'weight in kg'."""
    words = name.split("_")
    if len(words) > 1 and words[-1] in ("kg", "cm", "km", "minutes"):
        return " ".join(words[:-1]) + " in " + words[-1]
    return " ".join(words)


def phrase(r, tool, args, inline=False):
    """(the request for one call, extra sentences): a template filled with the required values,
    optional values attached at its end (before a final ? or .) or said in sentences after it."""
    texts = {k: t for k, (_, t) in args.items()}
    core = r.choice(tool.templates).format(**texts)
    end = core[-1] if core[-1] in "?." else ""
    core, after = core[:len(core) - len(end)], []
    for p in tool.params:
        if p.required or p.name not in args:
            continue
        if p.kind != "bool" and not inline and r.random() < 0.2:
            after.append(r.choice(SET_PHRASES).format(noun=noun(p.name), Noun=cap(noun(p.name)),
                                                      text=mention(p, texts[p.name])))
            continue
        frag = texts[p.name] if p.kind == "bool" else p.frag.format(texts[p.name])
        core += frag if frag.startswith(",") else " " + frag
    return core + end, after


def is_sentence(core):
    return core.endswith(("?", "."))


def wrap(r, core):
    """A whole user sentence: questions and statements stand alone, verb phrases get a frame."""
    if is_sentence(core):
        return cap(core)
    frames = ASKING if re.search(r"\bme\b", core) else ASKING + SELF
    return cap(r.choice(frames).format(core))


def request(r, tool, args):
    core, after = phrase(r, tool, args)
    return " ".join([wrap(r, core)] + after)


def multi_request(r, items):
    """One user turn asking for several calls: a numbered list, one sentence, or several."""
    cores = [phrase(r, t, a, inline=True)[0] for t, a in items]
    u = r.random()
    if u < 0.2:
        return r.choice(LIST_INTROS) + "\n" + "\n".join(f"{i}. {cap(c)}" for i, c in enumerate(cores, 1))
    if u < 0.5 and not any(map(is_sentence, cores)):
        return cap(r.choice(ASKING[2:]).format(join_and(r, cores)))
    out = [wrap(r, cores[0])]
    for c in cores[1:]:
        out.append(r.choice(NEXT_SENTENCE if is_sentence(c) else NEXT_VERB).format(c))
    return " ".join(out)


def first_turn(r, tool, text):
    """Sometimes open with a greeting or a sentence of context, as real users do."""
    u = r.random()
    if u < 0.15:
        return r.choice(catalogue().contexts[tool.domain]) + " " + text
    return (r.choice(OPENERS) if u < 0.25 else "") + text


def user(text):
    """A user turn, with "a" before a vowel sound made "an" (templates say "a {product}")."""
    return {"from": "user", "value": re.sub(r"\ba (?=(?!one\b|u[ns]\w)[aeiou]\w\w|(8|11|18)\b|8\d+\b)", "an ", text)}


def mention(p, text):
    """A value said on its own ("What about ...?"): free text goes in quotes."""
    return f'"{text}"' if p.kind in ("phrase", "foreign") else text


# --- arguments, calls, results -------------------------------------------------------------------

def draw(r, tool, p_optional=P_OPTIONAL):
    """{param: (value, text)}: required ones always, optional ones sometimes, in schema order."""
    args, seen = {}, set()
    for p in tool.params:
        if not p.required and r.random() >= p_optional:
            continue
        for _ in range(6):  # distinct values, so origin != destination and from_unit != to_unit
            value, text = p.gen(r)
            if repr(value) not in seen:
                break
        seen.add(repr(value))
        args[p.name] = (value, text)
    return args


def values(args):
    return {k: v for k, (v, _) in args.items()}


def varied(r, args, p, k):
    """Up to k argument sets that differ only in parameter p (for "in Paris and Rome")."""
    sets, seen = [args], {repr(args[p.name][0])}
    for _ in range(4 * k):
        value, text = p.gen(r)
        if repr(value) not in seen and len(sets) < k:
            seen.add(repr(value))
            sets.append({**args, p.name: (value, text)})
    return sets


def vary_param(tool):
    """A required scalar whose kind no other parameter shares, so a list of its values is unambiguous."""
    kinds = [q.kind for q in tool.params]
    return next((p for p in tool.params if p.required and kinds.count(p.kind) == 1
                 and p.schema["type"] in ("string", "integer", "float")), None)


def call_turn(style, items):
    calls = [Call(tool_name(t, style), values(a)) for t, a in items]
    return {"from": "assistant", "value": format_calls(calls)}


def show(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(map(show, v))
    return str(v).replace("_", " ")


def summary(r, items, results):
    """1-3 sentences restating the tool output, one per call, named after the call's main value."""
    out = []
    for (tool, args), res in zip(items, results):
        body = ", ".join(f"{f.replace('_', ' ')} {show(v)}" for f, v in res.items())
        subject = next((args[p.name][1] for p in tool.params if p.required and p.schema["type"] == "string"), None)
        if subject:
            out.append(r.choice(["For {s}: {b}.", "Here's what I found for {s}: {b}.", "Results for {s}: {b}."])
                       .format(s=subject, b=body))
        else:
            out.append(r.choice(["The result: {b}.", "Done: {b}.", "I got {b}."]).format(b=body))
    if len(out) == 1 and r.random() < 0.3:
        out.insert(0, r.choice(["Here you go.", "Sure!", "Done."]))
    return " ".join(out)


def exchange(r, style, items, turns, with_results=True):
    """Append the call turn, then (optionally) the tool output and the assistant's summary of it."""
    turns.append(call_turn(style, items))
    if with_results:
        results = [{f: g(r)[0] for f, g in t.results} for t, _ in items]
        payload = [{"name": tool_name(t, style), "results": res} for (t, _), res in zip(items, results)]
        turns.append({"from": "tool", "value": json.dumps(payload, ensure_ascii=False)})
        turns.append({"from": "assistant", "value": summary(r, items, results)})


# Domains whose tools could stand in for each other (convert_volume can do "2 cups to ml"): a
# no-tool record never offers a tool from the requested tool's group.
RELATED = [{"finance", "crypto", "stocks"}, {"units", "cooking"}, {"flights", "hotels"}, {"health", "fitness"},
           {"geography", "transport", "weather"}, {"math", "geometry", "statistics", "physics"},
           {"animals", "biology"}, {"shopping", "games"}, {"news", "social"}, {"books", "education"}]


def distractors(r, avoid, k, near=0.5, unrelated=False):
    """k tools not in `avoid`, each from one of avoid's domains with probability `near` (the
    harder choice); with `unrelated`, none from those domains or their RELATED groups."""
    names, domains, out = {t.base for t in avoid}, sorted({t.domain for t in avoid}), []
    banned = {d for dom in domains for g in RELATED + [{dom}] if dom in g for d in g} if unrelated else set()
    while len(out) < k:
        t = r.choice(catalogue().by_domain[r.choice(domains)] if not unrelated and r.random() < near
                     else catalogue().tools)
        if t.base not in names and t.domain not in banned:
            names.add(t.base)
            out.append(t)
    return out


def shuffled(r, tools):
    tools = list(tools)
    r.shuffle(tools)
    return tools


def unique_tools(items):
    return list({t.base: t for t, _ in items}.values())


# --- record kinds: each returns (candidate tools, turns) -----------------------------------------

def build_single(r, style):
    tool = r.choice(catalogue().tools)
    args = draw(r, tool)
    return [tool], [user(first_turn(r, tool, request(r, tool, args))), call_turn(style, [(tool, args)])]


def build_multiple(r, style):
    tool = r.choice(catalogue().tools)
    args = draw(r, tool)
    tools = shuffled(r, [tool] + distractors(r, [tool], r.choices([1, 2, 3, 4], [0.4, 0.35, 0.15, 0.1])[0]))
    return tools, [user(first_turn(r, tool, request(r, tool, args))), call_turn(style, [(tool, args)])]


def parallel_items(r, max_calls=4):
    """(items, request text) for several calls in one turn."""
    if r.random() < 0.6:  # the same tool several times
        tool, k = r.choice(catalogue().parallel), r.randint(2, max_calls)
        p = vary_param(tool)
        if p and r.random() < 0.7:  # one request naming several values: "in Paris and Rome"
            sets = varied(r, draw(r, tool), p, k)
            if len(sets) > 1:
                joined = {**sets[0], p.name: (None, join_and(r, [s[p.name][1] for s in sets]))}
                return [(tool, s) for s in sets], request(r, tool, joined)
        items = list({repr(values(a)): (tool, a) for a in (draw(r, tool) for _ in range(k))}.values())
        if len(items) > 1:
            return items, multi_request(r, items)
    tools = [r.choice(catalogue().tools)]
    items = [(t, draw(r, t)) for t in tools + distractors(r, tools, r.randint(1, min(2, max_calls - 1)), near=0.3)]
    return items, multi_request(r, items)


def build_parallel(r, style):
    items, text = parallel_items(r)
    needed = unique_tools(items)
    tools = shuffled(r, needed + distractors(r, needed, r.choice([0, 0, 1, 2])))
    return tools, [user(first_turn(r, items[0][0], text)), call_turn(style, items)]


FOLLOW_SAME = ["What about {}?", "And for {}?", "Now do the same for {}.", "How about {}?", "Great, now {}, please.",
               "Thanks. Can you check {} too?"]
FOLLOW_NEW = ["Thanks! ", "Great. ", "Perfect, thanks. ", "OK. ", "", "Thank you. One more thing: "]


def build_dialogue(r, style):
    if r.random() < 0.65:
        tool = r.choice(catalogue().tools)
        items = [(tool, draw(r, tool))]
        text = request(r, tool, items[0][1])
    else:
        items, text = parallel_items(r, max_calls=3)
    turns = [user(first_turn(r, items[0][0], text))]
    exchange(r, style, items, turns)
    needed = unique_tools(items)
    if r.random() < 0.5:  # a follow-up request
        tool, args = items[-1]
        p = vary_param(tool)
        sets = varied(r, args, p, 2) if p and r.random() < 0.5 else []
        if len(sets) == 2:  # the same tool with one value changed: "What about Rome?"
            turns.append(user(r.choice(FOLLOW_SAME).format(mention(p, sets[1][p.name][1]))))
            follow = (tool, sets[1])
        else:
            tool = distractors(r, needed, 1)[0]
            needed.append(tool)
            follow = (tool, draw(r, tool))
            turns.append(user(r.choice(FOLLOW_NEW) + request(r, tool, follow[1])))
        exchange(r, style, [follow], turns, with_results=r.random() < 0.6)
    return shuffled(r, needed + distractors(r, needed, r.choice([0, 1, 2]))), turns


GENERAL = ["Tell me a joke about cats.", "Write a haiku about autumn.", "Who painted the Mona Lisa?",
           "Explain how photosynthesis works.", "Can you help me write a cover letter?",
           "What's the meaning of the word 'saudade'?", "Summarize the plot of Hamlet.",
           "Give me tips for sleeping better.", "What should I name my new puppy?", "How do vaccines work?"]
REFUSALS = ["None of the available functions can {want}. They can only {have}.",
            "I'm sorry, but none of the provided functions can {want}, so I can't help with this request.",
            "The functions I have can {have}, but none of them can {want}.",
            "I can't do that: there is no function to {want}. The available ones only {have}."]
GENERAL_REFUSALS = ["None of the available functions can help with that. They can only {have}.",
                    "I'm sorry, but that is outside what the provided functions do: they only {have}.",
                    "There is no suitable function for this request; the available ones only {have}."]


def verb(tool):
    return tool.desc[:1].lower() + tool.desc[1:].rstrip(".")


def build_no_tool(r, style):
    want = r.choice(catalogue().tools)
    tools = distractors(r, [want], r.choices([1, 2, 3], [0.45, 0.35, 0.2])[0], unrelated=True)
    fill = {"want": verb(want), "have": join_and(r, [verb(t) for t in tools[:2]])}
    if r.random() < 0.2:  # chit-chat or general knowledge, not a tool request at all
        text, answer = r.choice(GENERAL), r.choice(GENERAL_REFUSALS).format(**fill)
    else:
        text, answer = request(r, want, draw(r, want)), r.choice(REFUSALS).format(**fill)
    return tools, [user(text), {"from": "assistant", "value": answer}]


ASKS = ["Sure, I can do that. What {nouns} should I use?", "I need the {nouns} to do this. Could you provide {it}?",
        "Could you tell me the {nouns}? {name} requires {it}.", "To {want}, I need to know the {nouns}.",
        "Happy to help. Which {nouns} do you mean?", "Please give me the {nouns} first."]
GIVEN = ["The {noun} is {text}.", "Use {text} as the {noun}.", "{Noun}: {text}."]
ANSWERS = ["{text}", "{text}, please.", "The {noun} is {text}.", "Use {text}.", "It's {text}."]


def build_missing(r, style):
    """The request names the tool's purpose and some values; the assistant asks for the rest."""
    tool = r.choice(catalogue().missable)
    args = draw(r, tool, p_optional=0)
    req = [p for p in tool.params if p.required]
    missing = r.sample(req, 1 if len(req) == 1 or r.random() < 0.7 else 2)
    text = wrap(r, verb(tool)) + "".join(
        " " + r.choice(GIVEN).format(noun=describe(p), Noun=cap(describe(p)), text=mention(p, args[p.name][1]))
        for p in req if p not in missing)
    ask = r.choice(ASKS).format(nouns=join_and(r, [describe(p) for p in missing]), want=verb(tool),
                                it="it" if len(missing) == 1 else "them", name=tool_name(tool, style))
    turns = [user(text), {"from": "assistant", "value": ask}]
    if r.random() < 0.6:  # the user answers, and the call follows
        if len(missing) == 1:
            p = missing[0]
            reply = r.choice(ANSWERS).format(text=mention(p, args[p.name][1]), noun=describe(p))
        else:
            reply = cap(join_and(r, [f"the {describe(p)} is {mention(p, args[p.name][1])}" for p in missing])) + "."
        turns += [user(reply), call_turn(style, [(tool, args)])]
    return shuffled(r, [tool] + distractors(r, [tool], r.choice([0, 0, 1, 2]))), turns


BUILDERS = {"single": build_single, "multiple": build_multiple, "parallel": build_parallel,
            "dialogue": build_dialogue, "no_tool": build_no_tool, "missing": build_missing}


def generate(n_records, seed):
    """n_records ToolACE-format records; the same seed gives the same records."""
    r = random.Random(seed)
    records = []
    for _ in range(n_records):
        style = r.choices(list(STYLES), list(STYLES.values()))[0]
        tools, turns = BUILDERS[r.choices(list(KINDS), list(KINDS.values()))[0]](r, style)
        records.append({"system": render_system([tool_schema(t, style) for t in tools]), "conversations": turns})
    return records


# --- CLI -----------------------------------------------------------------------------------------

def shape(record):
    """A record's kind as read back from its samples and turns (no_tool and missing look alike)."""
    first = record_samples(record, "x")[0]
    if any(t["from"] == "tool" for t in record["conversations"]):
        return "dialogue"
    if first["kind"] == "text":
        return "text answer first (no_tool / missing)"
    return "parallel" if first["n_calls"] > 1 else "single" if first["n_tools"] == 1 else "multiple"


def print_stats(records, seconds):
    import statistics
    samples = [s for i, rec in enumerate(records) for s in record_samples(rec, str(i))]
    print(f"{len(records)} records, {len(samples)} samples, {len(records) / seconds:,.0f} records/s")
    for k, n in Counter(map(shape, records)).most_common():
        print(f"  {k:40s} {n / len(records):6.1%}")
    print(f"  text answers: {sum(s['kind'] == 'text' for s in samples) / len(samples):.1%} of samples")
    prompt = {s["id"]: len(s["system"]) + sum(len(m["content"]) for m in s["messages"]) for s in samples}
    for name, xs in [("prompt chars, single-turn", [prompt[s["id"]] for s in samples if len(s["messages"]) == 1]),
                     ("prompt chars, all samples", list(prompt.values())),
                     ("answer chars, all samples", [len(s["answer"]) for s in samples])]:
        q = statistics.quantiles(xs, n=20)
        print(f"  {name:26s} mean {statistics.mean(xs):5.0f}  p5 {q[0]:5.0f}  p50 {q[9]:5.0f}  "
              f"p95 {q[18]:5.0f}  max {max(xs)}")


def main():
    parser = argparse.ArgumentParser(description="Print synthetic ToolACE-format records.")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", action="store_true", help="print kind shares and lengths instead")
    args = parser.parse_args()
    start = time.perf_counter()
    records = generate(args.n, args.seed)
    if args.stats:
        return print_stats(records, time.perf_counter() - start)
    for i, rec in enumerate(records):
        print(f"=== record {i}")
        for t in tools_from_system(rec["system"]):
            print("  tool:", json.dumps(t, ensure_ascii=False))
        for turn in rec["conversations"]:
            print(f"  {turn['from']}: {turn['value']}")
        print()


if __name__ == "__main__":
    main()
