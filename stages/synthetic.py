"""Synthetic ToolACE-format training data: seeded, fast, varied.

The catalogue at the bottom of this file lists ~180 tools in 39 domains as a compact text table,
parsed once into BFCL-style JSON schemas plus argument generators. Every argument is drawn as a
pair (value, text): the value goes into the gold call, the text into the user's request, so the
model has to copy or convert it ("five" -> 5, "May 1st, 2025" -> "2025-05-01", "euros" -> "EUR",
"$1,200" -> 1200, "3 pm" -> "15:00"). Record kinds, with their shares in KINDS:

    single    one candidate tool, one call
    multiple  2-5 candidate tools, one call
    parallel  several calls in one list: the same tool several times, or different tools
    dialogue  calls -> tool results (JSON) -> text summary, sometimes a follow-up request
    no_tool   no candidate tool serves the request: the answer is a plain-text refusal
    missing   a required value is not given: the assistant asks for it, and sometimes gets it

    python stages/synthetic.py --n 5 --seed 0       pretty-print records
    python stages/synthetic.py --n 3000 --stats     kind shares, lengths, speed
"""
import argparse
import datetime
import json
import random
import re
import string
import time
from collections import Counter
from typing import NamedTuple

from records import record_samples, render_system, tools_from_system
from toolcalls import Call, format_calls

KINDS = {"single": 0.22, "multiple": 0.25, "parallel": 0.20, "dialogue": 0.19, "no_tool": 0.07, "missing": 0.07}
# How tool names are written in a record. Varying the style per record keeps the model copying
# names from the tool list instead of memorising them; BFCL itself mixes snake_case and dotted.
STYLES = {"snake": 0.55, "dotted": 0.15, "title": 0.15, "kebab": 0.07, "camel": 0.08}
P_OPTIONAL = 0.35  # chance that a request mentions a given optional parameter

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
    return {"type": "string"}, pick(POOLS[kind], "|")[1]


# --- the catalogue, parsed -----------------------------------------------------------------------

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
    return (r.choice(CONTEXTS[tool.domain]) + " " if u < 0.15 else r.choice(OPENERS) if u < 0.25 else "") + text


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
        t = r.choice(BY_DOMAIN[r.choice(domains)] if not unrelated and r.random() < near else TOOLS)
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
    tool = r.choice(TOOLS)
    args = draw(r, tool)
    return [tool], [user(first_turn(r, tool, request(r, tool, args))), call_turn(style, [(tool, args)])]


def build_multiple(r, style):
    tool = r.choice(TOOLS)
    args = draw(r, tool)
    tools = shuffled(r, [tool] + distractors(r, [tool], r.choices([1, 2, 3, 4], [0.4, 0.35, 0.15, 0.1])[0]))
    return tools, [user(first_turn(r, tool, request(r, tool, args))), call_turn(style, [(tool, args)])]


def parallel_items(r, max_calls=4):
    """(items, request text) for several calls in one turn."""
    if r.random() < 0.6:  # the same tool several times
        tool, k = r.choice(PARALLEL_TOOLS), r.randint(2, max_calls)
        p = vary_param(tool)
        if p and r.random() < 0.7:  # one request naming several values: "in Paris and Rome"
            sets = varied(r, draw(r, tool), p, k)
            if len(sets) > 1:
                joined = {**sets[0], p.name: (None, join_and(r, [s[p.name][1] for s in sets]))}
                return [(tool, s) for s in sets], request(r, tool, joined)
        items = list({repr(values(a)): (tool, a) for a in (draw(r, tool) for _ in range(k))}.values())
        if len(items) > 1:
            return items, multi_request(r, items)
    tools = [r.choice(TOOLS)]
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
        tool = r.choice(TOOLS)
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
    want = r.choice(TOOLS)
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
    tool = r.choice(MISSABLE)
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


# --- value pools ---------------------------------------------------------------------------------------
# "value:alias" entries are values a user may name differently; the alias reaches the text only.

POOLS = {
    "city": "Paris, France|Rome|Tokyo|New York, NY|London|Berlin, Germany|Madrid|Sydney, Australia|Toronto|Cairo|"
            "Mumbai, India|São Paulo|Seoul|Mexico City|Chicago, IL|Lagos|Istanbul|Bangkok|Vancouver, BC|Lisbon|"
            "Nairobi, Kenya|Dublin|Oslo|Austin, TX|Cape Town|Buenos Aires|Hanoi|Zurich|Boston, MA|San Francisco",
    "country": "France|Japan|Brazil|Canada|Kenya|Germany|India|Mexico|Australia|Italy|Egypt|Norway|Vietnam|"
               "Argentina|Spain|South Korea|Nigeria|Peru|Ireland|Thailand|New Zealand|Morocco",
    "person": "Alice Martin|Bob Chen|Carlos Diaz|Dana Kim|Elena Petrova|Farid Haddad|Grace Okafor|Hiro Tanaka|"
              "Isabel Rossi|Jamal Wright|Keiko Sato|Liam O'Brien|Maria Garcia|Noah Fischer|Priya Patel|Sven Larsen",
    "author": "Jane Austen|George Orwell|Toni Morrison|Haruki Murakami|Chimamanda Ngozi Adichie|Agatha Christie|"
              "Gabriel García Márquez|J.R.R. Tolkien|Ursula K. Le Guin|Leo Tolstoy|Octavia E. Butler",
    "figure": "Napoleon Bonaparte|Cleopatra|Marie Curie|Nelson Mandela|Genghis Khan|Ada Lovelace|Abraham Lincoln|"
              "Frida Kahlo|Mahatma Gandhi|Queen Victoria|Leonardo da Vinci|Simón Bolívar",
    "company": "Apple|Microsoft|Tesla|Amazon|Nvidia|Toyota|Nestlé|Siemens|Samsung|Netflix|Shopify|Airbus|Unilever|"
               "Spotify|Adobe|Intel",
    "ticker": "AAPL|MSFT|TSLA|AMZN|NVDA|GOOGL|META|NFLX|AMD|INTC|IBM|ORCL|DIS|KO|JPM|V",
    "crypto": "BTC:Bitcoin|ETH:Ethereum|SOL:Solana|ADA:Cardano|XRP|DOGE:Dogecoin|DOT:Polkadot|LTC:Litecoin",
    "currency": "USD:US dollars|EUR:euros|GBP:British pounds|JPY:Japanese yen|CHF:Swiss francs|CAD:Canadian dollars|"
                "AUD:Australian dollars|INR:Indian rupees|CNY:Chinese yuan|MXN:Mexican pesos|BRL|SEK:Swedish kronor",
    "lang": "Spanish|French|German|Japanese|Italian|Portuguese|Korean|Chinese|Arabic|Russian|Dutch|Hindi|Turkish",
    "movie": "Inception|The Godfather|Spirited Away|Parasite|Pulp Fiction|The Matrix|Amélie|Casablanca|Interstellar|"
             "Black Panther|Coco|Jaws|Alien|Arrival|Up|Mad Max",
    "book": "Pride and Prejudice|1984|The Hobbit|Dune|Beloved|Moby-Dick|The Alchemist|Jane Eyre|Brave New World|"
            "The Road|Middlemarch|Things Fall Apart",
    "song": "Bohemian Rhapsody|Imagine|Hey Jude|Billie Jean|Hallelujah|Purple Rain|Respect|Wonderwall|Yesterday|"
            "Clocks|Vogue|Dreams|Superstition|Halo",
    "artist": "Taylor Swift|The Beatles|Adele|Beyoncé|Miles Davis|Radiohead|BTS|Daft Punk|Bob Marley|Coldplay|"
              "Shakira|Ed Sheeran|Nina Simone|Kendrick Lamar",
    "playlist": "Road Trip|Morning Run|Chill Evening|Study Focus|Party Mix|Sunday Cleaning|Rainy Day",
    "team": "Los Angeles Lakers|Boston Celtics|Real Madrid|FC Barcelona|Manchester United|New York Yankees|"
            "Chicago Bulls|Golden State Warriors|Bayern Munich|Juventus|Dallas Cowboys|Toronto Raptors",
    "player": "LeBron James|Lionel Messi|Serena Williams|Cristiano Ronaldo|Stephen Curry|Roger Federer|Usain Bolt|"
              "Simone Biles|Tom Brady|Naomi Osaka|Kylian Mbappé|Shohei Ohtani",
    "dish": "lasagna|pad thai|chicken curry|beef stew|mushroom risotto|tacos al pastor|ramen|shakshuka|paella|"
            "banana bread|falafel|pancakes|chili con carne|miso soup",
    "ingredient": "chicken|tofu|spinach|salmon|chickpeas|rice|eggs|tomatoes|mushrooms|lentils|potatoes|garlic|"
                  "basil|quinoa|avocado|oats",
    "cuisine": "Italian|Mexican|Thai|Japanese|Indian|French|Greek|Lebanese|Ethiopian|Korean|Vietnamese|Spanish",
    "element": "hydrogen|carbon|oxygen|iron|gold|sodium|helium|nitrogen|copper|silver|uranium|calcium",
    "compound": "H2O|CO2|NaCl|C6H12O6|CH4|NH3|H2SO4|C2H5OH|CaCO3|NaHCO3",
    "equation": "H2 + O2 -> H2O|CH4 + O2 -> CO2 + H2O|Fe + O2 -> Fe2O3|N2 + H2 -> NH3|C3H8 + O2 -> CO2 + H2O|"
                "Al + O2 -> Al2O3|Na + Cl2 -> NaCl",
    "species": "Panthera leo|Homo sapiens|Canis lupus|Ailuropoda melanoleuca|Balaenoptera musculus|"
               "Apis mellifera|Quercus robur|Escherichia coli",
    "animal": "African elephant|bald eagle|red fox|giant panda|bottlenose dolphin|monarch butterfly|snow leopard|"
              "green sea turtle|koala|gray wolf",
    "gene": "BRCA1|TP53|EGFR|CFTR|APOE|HBB|MYC|KRAS",
    "email": "alice@example.com|bob.chen@mail.com|team@startup.io|j.wright@company.org|priya.p@school.edu|"
             "support@shop.net|maria.g@example.org",
    "subject": "Quarterly report|Meeting tomorrow|Invoice 4821|Lunch plans|Project update|Welcome aboard|"
               "Trip itinerary",
    "note": "Team standup|Dentist appointment|Budget review|Lunch with Sara|Project kickoff|Yoga class|"
            "Parent-teacher meeting|Quarterly planning|Car service|Book club",
    "job": "software engineer|data analyst|nurse|graphic designer|accountant|teacher|electrician|product manager|"
           "marketing manager|civil engineer|pharmacist|chef",
    "course": "Python|calculus|organic chemistry|world history|linear algebra|microeconomics|creative writing|"
              "statistics|machine learning|photography",
    "airport": "JFK|LAX|LHR|CDG|NRT|SFO|DXB|SIN|FRA|ORD|MAD|SYD|YYZ|AMS|BCN",
    "airline": "Delta|Lufthansa|Air France|Emirates|United|Qantas|KLM",
    "hotel": "Hotel Artemide|The Savoy|Park Hyatt Tokyo|Ritz Paris|Hotel Adlon|Fairmont Banff Springs|"
             "Marina Bay Sands|Hotel Sacher",
    "restaurant": "Le Bernardin|Nobu|Dishoom|Osteria Francescana|Joe's Pizza|The Ivy|Noma|Café du Monde|Sukiyabashi",
    "topic": "climate change|artificial intelligence|electric vehicles|space exploration|public health|"
             "renewable energy|remote work|ocean pollution|quantum computing|housing prices",
    "source": "BBC|Reuters|The Guardian|Al Jazeera|NPR|Le Monde|Associated Press",
    "product": "wireless earbuds|running shoes|coffee maker|laptop stand|yoga mat|electric kettle|"
               "mechanical keyboard|backpack|desk lamp|air fryer|smartwatch|water bottle",
    "store": "Amazon|Walmart|Target|Best Buy|eBay|IKEA|Costco",
    "address": "221B Baker Street, London|1600 Amphitheatre Parkway, Mountain View|350 Fifth Avenue, New York|"
               "5 Avenue Anatole France, Paris|1 Infinite Loop, Cupertino|42 Wallaby Way, Sydney",
    "landmark": "Central Park|the Eiffel Tower|Union Station|Times Square|the British Museum|Shibuya Crossing|"
                "the Louvre|Golden Gate Park|the Colosseum|Brandenburg Gate",
    "station": "Grand Central|Kings Cross|Gare du Nord|Union Station|Alexanderplatz|Amsterdam Centraal|"
               "Milano Centrale|Penn Station",
    "phrase": "Good morning, how are you?|Where is the train station?|Thank you for your help|"
              "I would like a cup of coffee|The meeting starts at noon|Happy birthday|How much does this cost?",
    "foreign": "Wo ist der Bahnhof?|¿Dónde está la biblioteca?|Je voudrais un café|Obrigado pela ajuda|"
               "Dziękuję bardzo|Grazie mille per tutto|Hoe laat is het?|Jag älskar kaffe",
    "word": "serendipity|ephemeral|resilient|ubiquitous|candid|meticulous|gregarious|benevolent|pragmatic|eloquent",
    "condition": "diabetes|asthma|hypertension|migraine|influenza|anemia|arthritis|insomnia",
    "drug": "ibuprofen|amoxicillin|metformin|lisinopril|atorvastatin|paracetamol|omeprazole|cetirizine",
    "symptom": "headache|fever|cough|fatigue|sore throat|back pain|nausea|dizziness",
    "planet": "Mercury|Venus|Mars|Jupiter|Saturn|Uranus|Neptune",
    "star": "Sirius|Betelgeuse|Polaris|Vega|Rigel|Proxima Centauri|Aldebaran",
    "mountain": "Mount Everest|K2|Mont Blanc|Kilimanjaro|Denali|Aconcagua|Mount Fuji|Matterhorn",
    "river": "Nile|Amazon|Danube|Mississippi|Yangtze|Mekong|Rhine|Ganges|Volga|Thames",
    "event": "French Revolution|fall of the Berlin Wall|Apollo 11 moon landing|Battle of Hastings|"
             "Industrial Revolution|Meiji Restoration|Battle of Waterloo|signing of the Magna Carta",
    "empire": "Roman Empire|Ottoman Empire|Mughal Empire|Inca Empire|Byzantine Empire|Han dynasty|Mali Empire",
    "law": "tenant eviction|copyright infringement|data privacy|employment discrimination|breach of contract|"
           "personal injury|medical malpractice",
    "state": "California|New York|Texas|Ontario|England|Bavaria|Queensland|Florida",
    "game": "Minecraft|The Legend of Zelda|Elden Ring|Tetris|Fortnite|Stardew Valley|Hades|Overwatch 2|Celeste",
    "university": "MIT|Stanford University|University of Oxford|ETH Zurich|University of Toronto|"
                  "National University of Singapore|Sorbonne University|University of Cape Town",
    "username": "techdaily|foodie_jane|runner42|travelwithmo|codecat|greenthumb_ella",
    "hashtag": "#WorldCup|#AI|#ClimateAction|#MondayMotivation|#Oscars|#TBT",
    "tz": "America/New_York|Europe/London|Asia/Tokyo|Australia/Sydney|Europe/Berlin|America/Los_Angeles|"
          "Asia/Kolkata|UTC",
}

# --- the catalogue ---------------------------------------------------------------------------------------
# "## domain | context sentences", then per tool:
#   base_name: Description. => result_field=kind ...
#     param:kind~default = Description @ fragment | optional?:kind = ... @ how the request mentions it ({})
#     > request templates ; separated by ; (verb phrases get a wrapper, questions/statements stand alone)
# Kinds: a POOLS key, int(a,b), float(a,b), usd(a,b), year(a,b), date(a,b), date, time, pct, point, coords,
# dims, a PATTERNS key, bool (fragment "yes text / no text"), [enum,value:alias], and kind* for a list.

UNIT_TEMPLATES = ("convert {value} {from_unit} to {to_unit} ; how many {to_unit} is {value} {from_unit}? ; "
                  "what is {value} {from_unit} in {to_unit}? ; change {value} {from_unit} into {to_unit}")
SPORTS_LEAGUES = "[NBA,NFL,MLB,NHL,Premier League,La Liga,Bundesliga,Serie A]"
CATALOGUE = """
## weather | I'm planning a trip this week. ; I want to know what to wear. ; We're thinking of a picnic.
get_current_weather: Get the current weather in a city. => temperature=int(-5,35) condition=[sunny,cloudy,rainy,windy]
  location:city = The city, e.g. 'Paris, France' | unit?:[celsius,fahrenheit]~celsius = Temperature unit @ in {}
  > get the current weather in {location} ; what's the weather like in {location} right now? ; check how warm it is in {location}
  > is it raining in {location}? ; tell me the current conditions in {location}
get_weather_forecast: Get the daily weather forecast for a city. => high=int(0,35) low=int(-10,20) rain_chance=int(0,100)
  location:city = The city name | days:int(1,14) = Number of days to forecast | unit?:[celsius,fahrenheit]~celsius = Temperature unit @ in {}
  > get the {days}-day forecast for {location} ; what will the weather be in {location} over the next {days} days?
  > show me a {days} day weather forecast for {location} ; forecast the weather in {location} for {days} days
get_air_quality: Get the air quality index for a city. => aqi=int(10,180) category=[good,moderate,unhealthy]
  location:city = The city name | pollutant?:[pm25:PM2.5,pm10:PM10,ozone,no2:nitrogen dioxide] = Pollutant to report @ for {}
  > check the air quality in {location} ; how clean is the air in {location} today? ; get the AQI for {location}
get_uv_index: Get the UV index for a city on a date. => uv_index=int(0,11) risk=[low,moderate,high]
  location:city = The city name | date:date = Date in YYYY-MM-DD format
  > what's the UV index in {location} on {date}? ; get the UV index for {location} on {date} ; how strong will the sun be in {location} on {date}?
get_sunrise_sunset: Get sunrise and sunset times for a city and date. => sunrise=time sunset=time
  location:city = The city name | date:date = Date in YYYY-MM-DD format
  > when does the sun rise and set in {location} on {date}? ; get sunrise and sunset times for {location} on {date} ; find out when sunset is in {location} on {date}
get_weather_by_coordinates: Get the current weather at a latitude and longitude. => temperature=int(-5,35) wind_kmh=int(0,60)
  coordinates:coords = Latitude and longitude in degrees | unit?:[celsius,fahrenheit]~celsius = Temperature unit @ in {}
  > get the weather at {coordinates} ; what's the weather at coordinates {coordinates}? ; check conditions at {coordinates}
## finance | I'm planning my budget. ; I'm comparing some options. ; My bank sent me an offer.
calculate_compound_interest: Calculate compound interest on an investment. => final_amount=float(1000,90000) interest=float(100,40000)
  principal:usd(1000,50000) = Initial amount in dollars | rate:pct = Annual interest rate as a decimal, e.g. 0.05 | years:int(1,30) = Investment period in years
  compounds_per_year?:int(1,12)~1 = Times interest compounds per year @ compounded {} times a year
  > calculate the compound interest on {principal} at {rate} for {years} years ; how much will {principal} grow to at {rate} interest over {years} years?
  > if I invest {principal} at an annual rate of {rate} for {years} years, what will I have?
calculate_loan_payment: Calculate the monthly payment for a loan. => monthly_payment=float(100,5000) total_interest=float(500,90000)
  loan_amount:usd(5000,500000) = Loan amount in dollars | annual_rate:pct = Annual interest rate as a decimal | term_years:int(1,30) = Loan term in years
  > what's the monthly payment on a {loan_amount} loan at {annual_rate} over {term_years} years? ; calculate my monthly payment for a {term_years}-year loan of {loan_amount} at {annual_rate}
  > work out the payments on {loan_amount} borrowed for {term_years} years at {annual_rate}
convert_currency: Convert an amount from one currency to another. => converted_amount=float(1,90000) rate=float(0.01,150)
  amount:float(1,5000) = Amount to convert | from_currency:currency = Source currency code, e.g. USD | to_currency:currency = Target currency code, e.g. EUR
  > convert {amount} {from_currency} to {to_currency} ; how much is {amount} {from_currency} in {to_currency}? ; change {amount} {from_currency} into {to_currency}
  > what do {amount} {from_currency} come to in {to_currency}?
calculate_tip: Calculate the tip for a restaurant bill. => tip=float(1,80) total=float(10,400)
  bill_amount:float(10,300) = Bill total | tip_percent:int(10,25) = Tip percentage | split?:int(2,8)~1 = Number of people paying @ split between {} people
  > calculate a {tip_percent}% tip on a bill of {bill_amount} ; how much should I tip on {bill_amount} at {tip_percent} percent? ; work out a {tip_percent} percent tip for a {bill_amount} bill
calculate_roi: Calculate the return on investment as a percentage. => roi_percent=float(-50,300)
  cost:float(100,100000) = Amount invested | final_value:float(100,200000) = Final value of the investment
  > what's the ROI if I invested {cost} and it is now worth {final_value}? ; calculate the return on an investment of {cost} that grew to {final_value}
  > compute ROI for cost {cost} and final value {final_value}
calculate_income_tax: Estimate income tax for a yearly income. => tax=float(1000,90000) effective_rate=float(5,40)
  income:usd(20000,300000) = Annual income in dollars | country:country = Country of tax residence | filing_status?:[single,married]~single = Filing status @ filing as {}
  > estimate income tax on {income} in {country} ; how much tax would I pay on {income} a year in {country}? ; calculate the income tax for someone earning {income} in {country}
## stocks | I'm reviewing my portfolio. ; I'm thinking about investing.
get_stock_price: Get the latest price of a stock. => price=float(5,900) change_percent=float(-5,5)
  symbol:ticker = Stock ticker symbol, e.g. AAPL | exchange?:[NASDAQ,NYSE]~NASDAQ = Stock exchange @ on the {}
  > get the current stock price of {symbol} ; what is {symbol} trading at right now? ; how much is a share of {symbol}? ; look up the price of {symbol}
get_stock_history: Get historical prices of a stock between two dates. => open=float(5,900) close=float(5,900)
  symbol:ticker = Stock ticker | start_date:date = Start date, YYYY-MM-DD | end_date:date = End date, YYYY-MM-DD
  interval?:[daily,weekly,monthly]~daily = Data interval @ with {} data
  > get the price history of {symbol} from {start_date} to {end_date} ; how did {symbol} trade between {start_date} and {end_date}? ; pull {symbol} prices from {start_date} through {end_date}
compare_stocks: Compare key metrics for several stocks. => best_performer=ticker average_return=float(-10,30)
  symbols:ticker* = List of ticker symbols | metric?:[price,pe_ratio:P/E ratio,market_cap:market cap,dividend_yield:dividend yield]~price = Metric to compare @ by {}
  > compare the stocks {symbols} ; how do {symbols} stack up against each other? ; give me a comparison of {symbols}
get_company_financials: Get a company's financial statement for a year. => revenue_billion=float(1,400) net_income_billion=float(-5,100)
  company:company = Company name | year:year(2010,2024) = Fiscal year | statement?:[income,balance_sheet:balance sheet,cash_flow:cash flow]~income = Statement type @ , just the {} statement
  > get the financial statements of {company} for {year} ; show me {company}'s financials for fiscal year {year} ; what were {company}'s results in {year}?
get_dividend_history: Get the dividend payments of a stock. => last_dividend=float(0.1,5) yield_percent=float(0.5,6)
  symbol:ticker = Stock ticker | years?:int(1,10)~5 = How many years back @ for the last {} years
  > show me the dividend history of {symbol} ; what dividends has {symbol} paid? ; get {symbol} dividend payments
## crypto | I hold a bit of crypto. ; I'm new to crypto.
get_crypto_price: Get the current price of a cryptocurrency. => price=float(0.1,70000) change_24h=float(-10,10)
  coin:crypto = Coin symbol, e.g. BTC | currency?:currency~USD = Quote currency @ in {}
  > what's the price of {coin} right now? ; get the current {coin} price ; how much is one {coin} worth?
get_crypto_market_cap: Get the market capitalization of a cryptocurrency. => market_cap_billion=float(1,1300) rank=int(1,50)
  coin:crypto = Coin symbol, e.g. ETH
  > what's the market cap of {coin}? ; get the market capitalization for {coin} ; how big is {coin} by market cap?
convert_crypto: Convert an amount of one cryptocurrency to another. => converted=float(0.01,5000)
  amount:float(0.1,50) = Amount to convert | from_coin:crypto = Source coin symbol | to_coin:crypto = Target coin symbol
  > convert {amount} {from_coin} to {to_coin} ; how much {to_coin} would I get for {amount} {from_coin}? ; swap {amount} {from_coin} into {to_coin}
get_crypto_history: Get daily prices of a cryptocurrency. => high=float(0.1,70000) low=float(0.1,70000)
  coin:crypto = Coin symbol | days:int(2,365) = Number of past days
  > show me {coin} prices over the last {days} days ; get the {days}-day price history of {coin} ; how has {coin} moved in the past {days} days?
## flights | I'm planning a trip. ; I have a work trip coming up. ; My family is visiting.
search_flights: Search for flights between two airports. => cheapest_price=int(80,1500) airline=airline stops=int(0,2)
  origin:airport = Departure airport code, e.g. JFK | destination:airport = Arrival airport code | date:date = Departure date, YYYY-MM-DD
  passengers?:int(2,6)~1 = Number of passengers @ for {} passengers | cabin?:[economy,premium_economy:premium economy,business,first]~economy = Cabin class @ in {} class
  > find flights from {origin} to {destination} on {date} ; search for a flight {origin} to {destination} departing {date}
  > are there any flights from {origin} to {destination} on {date}? ; I need to fly from {origin} to {destination} on {date}.
get_flight_status: Get the live status of a flight. => status=[on_time,delayed,boarding,landed] gate=[A4,B12,C7,D21]
  flight_number:flight = Flight number, e.g. BA117 | date?:date = Flight date, YYYY-MM-DD @ on {}
  > what's the status of flight {flight_number}? ; is flight {flight_number} on time? ; check flight {flight_number}
get_visa_requirements: Check visa requirements for a trip. => visa_required=bool max_stay_days=int(14,180)
  citizenship:country = Traveller's citizenship | destination:country = Destination country
  > do citizens of {citizenship} need a visa for {destination}? ; check the visa requirements to travel from {citizenship} to {destination}
  > what are the visa rules for {destination} if I'm from {citizenship}?
get_travel_advisory: Get the current travel advisory for a country. => level=int(1,4) updated=date
  country:country = Country name
  > is it safe to travel to {country} right now? ; get the travel advisory for {country} ; are there any travel warnings for {country}?
find_car_rental: Find rental cars in a city. => cheapest_daily_rate=int(20,150) available=int(1,40)
  location:city = Pickup city | pickup_date:date = Pickup date, YYYY-MM-DD | days:int(1,14) = Rental length in days
  car_type?:[economy,compact,suv:SUV,van,convertible]~economy = Car category @ , preferably a {}
  > find a rental car in {location} from {pickup_date} for {days} days ; I need to rent a car in {location} on {pickup_date} for {days} days.
  > are there rental cars available in {location} starting {pickup_date} for {days} days?
## hotels | I'm planning a trip. ; We're going on holiday.
search_hotels: Search for available hotels in a city. => hotels_found=int(3,120) cheapest_price=int(40,400)
  location:city = City name | check_in:date = Check-in date, YYYY-MM-DD | check_out:date = Check-out date, YYYY-MM-DD
  guests?:int(1,6)~2 = Number of guests @ for {} guests | max_price?:usd(50,500) = Maximum price per night @ under {} a night
  > find a hotel in {location} from {check_in} to {check_out} ; search hotels in {location}, checking in {check_in} and out {check_out}
  > are there hotels available in {location} between {check_in} and {check_out}?
book_hotel_room: Book a room at a hotel. => confirmation=booking total_price=int(80,3000)
  hotel_name:hotel = Hotel name | check_in:date = Check-in date, YYYY-MM-DD | nights:int(1,14) = Number of nights
  room_type?:[single,double,suite]~double = Room type @ , a {} room
  > book a room at {hotel_name} for {nights} nights from {check_in} ; reserve {nights} nights at {hotel_name} starting {check_in}
  > I'd like to stay at {hotel_name} for {nights} nights beginning {check_in}.
get_hotel_reviews: Get guest reviews for a hotel. => average_rating=float(2,5) review_count=int(10,5000)
  hotel_name:hotel = Hotel name | limit?:int(3,10)~5 = Number of reviews @ , just the top {}
  > show me reviews of {hotel_name} ; what do guests say about {hotel_name}? ; get the latest reviews for {hotel_name}
cancel_booking: Cancel a hotel or travel booking. => cancelled=bool refund=int(0,800)
  booking_id:booking = Booking reference | send_confirmation?:bool~true = Email a confirmation @ and email me a confirmation / without sending a confirmation
  > cancel my booking {booking_id} ; cancel reservation {booking_id} ; can you cancel booking {booking_id}?
## restaurants | We're going out tonight. ; It's my friend's birthday.
find_restaurants: Find restaurants in a city by cuisine. => top_pick=restaurant rating=float(3,5)
  location:city = City name | cuisine:cuisine = Type of cuisine | price?:[cheap,moderate,expensive]~moderate = Price level @ that are {}
  open_now?:bool~false = Only places open now @ that are open now / even if they're closed now
  > find {cuisine} restaurants in {location} ; where can I get {cuisine} food in {location}? ; recommend a {cuisine} place in {location}
  > search for {cuisine} restaurants near {location}
reserve_table: Reserve a table at a restaurant. => confirmed=bool table=int(1,40)
  restaurant:restaurant = Restaurant name | date:date = Reservation date, YYYY-MM-DD | time:time = Time, HH:MM 24-hour | party_size:int(1,12) = Number of people
  > book a table for {party_size} at {restaurant} on {date} at {time} ; reserve {restaurant} for {party_size} people on {date} at {time}
  > can I get a table at {restaurant} for {party_size} on {date} at {time}?
get_menu: Get the menu of a restaurant. => dishes=int(10,80) price_range=[$,$$,$$$]
  restaurant:restaurant = Restaurant name | vegetarian_only?:bool~false = Only vegetarian dishes @ , vegetarian options only / including meat dishes
  > show me the menu at {restaurant} ; what's on the menu at {restaurant}? ; get the menu for {restaurant}
get_restaurant_rating: Get the rating of a restaurant. => rating=float(3,5) reviews=int(20,4000)
  restaurant:restaurant = Restaurant name | location:city = City
  > how good is {restaurant} in {location}? ; get the rating of {restaurant} in {location} ; what's the rating for {restaurant} ({location})?
## math | I'm doing my homework. ; I'm checking a calculation.
calculate_gcd: Find the greatest common divisor of two integers. => gcd=int(1,50)
  num1:int(2,500) = First integer | num2:int(2,500) = Second integer
  > find the GCD of {num1} and {num2} ; what is the greatest common divisor of {num1} and {num2}? ; compute gcd({num1}, {num2})
calculate_lcm: Find the least common multiple of two integers. => lcm=int(2,5000)
  num1:int(2,60) = First integer | num2:int(2,60) = Second integer
  > find the LCM of {num1} and {num2} ; what is the least common multiple of {num1} and {num2}? ; compute the lowest common multiple of {num1} and {num2}
calculate_factorial: Calculate the factorial of a number. => result=int(1,100000)
  number:int(2,15) = A non-negative integer
  > what is the factorial of {number}? ; calculate {number} factorial ; compute the factorial of {number}
solve_quadratic: Solve a quadratic equation ax^2 + bx + c = 0. => roots=float(-10,10)*
  a:int(1,9) = Coefficient of x^2 | b:int(-20,20) = Coefficient of x | c:int(-20,20) = Constant term
  > solve the quadratic equation with a = {a}, b = {b} and c = {c} ; what are the roots when a is {a}, b is {b} and c is {c}?
  > find the roots of a quadratic with coefficients {a}, {b} and {c}
is_prime: Check whether a number is prime. => is_prime=bool
  number:int(2,10000) = The number to check
  > is {number} a prime number? ; check if {number} is prime ; tell me whether {number} is prime
calculate_percentage: Calculate what percentage one number is of another. => percentage=float(0,100)
  part:float(1,500) = The part | whole:float(500,5000) = The whole
  > what percentage of {whole} is {part}? ; calculate {part} as a percentage of {whole} ; what percent is {part} out of {whole}?
calculate_square_root: Calculate the square root of a number. => result=float(1,100)
  number:float(2,10000) = The number | precision?:int(1,6)~2 = Decimal places @ to {} decimal places
  > what's the square root of {number}? ; compute the square root of {number} ; find the square root of {number}
## geometry | I'm working on a geometry problem. ; This is for a woodworking project.
calculate_triangle_area: Calculate the area of a triangle from its base and height. => area=float(1,500)
  base:int(1,50) = Base of the triangle | height:int(1,50) = Height of the triangle | unit?:[cm,m,inches,units]~units = Unit of measure @ in {}
  > find the area of a triangle with a base of {base} and a height of {height} ; what is the area of a triangle whose base is {base} and height is {height}?
  > calculate the area of a triangle, base {base}, height {height}
calculate_circle_area: Calculate the area of a circle. => area=float(1,5000)
  radius:float(0.5,30) = Radius of the circle | unit?:[cm,m,inches]~cm = Unit of the radius @ in {}
  > what's the area of a circle with radius {radius}? ; calculate the area of a circle of radius {radius} ; find the area of a circle whose radius is {radius}
calculate_rectangle_perimeter: Calculate the perimeter of a rectangle. => perimeter=float(4,400)
  length:float(1,100) = Length | width:float(1,100) = Width
  > find the perimeter of a rectangle {length} long and {width} wide ; what's the perimeter of a {length} by {width} rectangle?
  > calculate the perimeter of a rectangle with length {length} and width {width}
calculate_distance_2d: Calculate the distance between two points in a plane. => distance=float(0,30)
  point1:point = First point as [x, y] | point2:point = Second point as [x, y]
  > what's the distance between {point1} and {point2}? ; calculate the distance from point {point1} to point {point2} ; how far apart are the points {point1} and {point2}?
calculate_sphere_volume: Calculate the volume of a sphere. => volume=float(1,100000)
  radius:float(0.5,30) = Radius of the sphere | unit?:[cm,m,inches]~cm = Unit of the radius @ in {}
  > find the volume of a sphere with radius {radius} ; what's the volume of a ball whose radius is {radius}? ; calculate the sphere volume for radius {radius}
calculate_hypotenuse: Calculate the hypotenuse of a right triangle. => hypotenuse=float(1,100)
  side_a:int(1,50) = First leg | side_b:int(1,50) = Second leg
  > find the hypotenuse of a right triangle with legs {side_a} and {side_b} ; what's the hypotenuse if the two sides are {side_a} and {side_b}?
  > calculate the hypotenuse for sides {side_a} and {side_b}
calculate_cylinder_volume: Calculate the volume of a cylinder. => volume=float(1,60000)
  radius:float(0.5,20) = Radius of the base | height:float(1,50) = Height of the cylinder
  > what's the volume of a cylinder with radius {radius} and height {height}? ; calculate the volume of a cylinder {height} tall with a radius of {radius}
  > find the cylinder volume for r = {radius}, h = {height}
## statistics | I'm analysing some survey data. ; This is for my stats class.
calculate_mean: Calculate the average of a list of numbers. => mean=float(0,100)
  numbers:int(1,100)* = The numbers
  > what's the average of {numbers}? ; calculate the mean of {numbers} ; find the mean of these numbers: {numbers}
calculate_standard_deviation: Calculate the standard deviation of a list of numbers. => std_dev=float(0,50)
  numbers:int(1,100)* = The numbers | sample?:bool~false = Use the sample formula @ using the sample formula / using the population formula
  > compute the standard deviation of {numbers} ; what's the standard deviation of {numbers}? ; find the std dev of {numbers}
calculate_median: Find the median of a list of numbers. => median=float(0,100)
  numbers:float(0,100)* = The numbers
  > what's the median of {numbers}? ; find the median of {numbers} ; compute the median value of {numbers}
calculate_probability: Calculate the probability of an event. => probability=float(0,1)
  favorable:int(1,20) = Number of favorable outcomes | total:int(21,100) = Total number of outcomes
  > what's the probability of {favorable} favorable outcomes out of {total}? ; calculate the probability with {favorable} favorable cases among {total}
  > if {favorable} of {total} outcomes are favorable, what is the probability?
calculate_binomial_probability: Calculate a binomial probability. => probability=float(0,1)
  trials:int(2,30) = Number of trials | successes:int(0,10) = Number of successes | p:float(0.1,0.9) = Success probability per trial
  > what's the probability of exactly {successes} successes in {trials} trials with p = {p}? ; calculate the binomial probability of {successes} successes out of {trials} trials, success chance {p}
  > if each try succeeds with probability {p}, how likely are {successes} successes in {trials} tries?
## physics | I'm studying for a physics exam. ; This is for a lab report.
calculate_velocity: Calculate average velocity from distance and time. => velocity=float(0,100)
  distance:float(1,1000) = Distance in meters | time:float(1,100) = Time in seconds
  > what's the velocity of an object that travels {distance} meters in {time} seconds? ; calculate the speed for {distance} m covered in {time} s
  > find the average velocity if the distance is {distance} meters and the time is {time} seconds
calculate_kinetic_energy: Calculate kinetic energy. => energy_joules=float(1,100000)
  mass:float(0.1,2000) = Mass in kilograms | velocity:float(0.5,100) = Velocity in m/s
  > calculate the kinetic energy of a {mass} kg object moving at {velocity} m/s ; what is the kinetic energy of a mass of {mass} kg at {velocity} meters per second?
  > find the kinetic energy for mass {mass} kg and velocity {velocity} m/s
calculate_force: Calculate force from mass and acceleration. => force_newtons=float(1,10000)
  mass:float(0.1,2000) = Mass in kilograms | acceleration:float(0.5,50) = Acceleration in m/s^2
  > what force is needed to accelerate {mass} kg at {acceleration} m/s^2? ; calculate the force for mass {mass} kg and acceleration {acceleration} m/s²
  > compute F = m*a with m = {mass} kg and a = {acceleration}
calculate_projectile_range: Calculate the range of a projectile. => range_m=float(1,1000) max_height_m=float(1,500)
  velocity:float(5,100) = Launch speed in m/s | angle:int(10,80) = Launch angle in degrees | gravity?:float(1.6,9.81)~9.81 = Gravity in m/s^2 @ with gravity {} m/s^2
  > how far does a projectile launched at {velocity} m/s and {angle} degrees travel? ; calculate the range of a projectile with speed {velocity} m/s at an angle of {angle}°
  > find the range for launch velocity {velocity} m/s and angle {angle} degrees
calculate_density: Calculate density from mass and volume. => density=float(1,20000)
  mass:float(0.1,500) = Mass in kg | volume:float(0.01,10) = Volume in cubic meters
  > what's the density of an object with mass {mass} kg and volume {volume} m³? ; calculate the density for {mass} kg in {volume} cubic meters
  > find the density if the mass is {mass} kg and the volume is {volume} m^3
calculate_electric_current: Calculate current with Ohm's law. => current_amps=float(0.01,100)
  voltage:float(1,240) = Voltage in volts | resistance:float(1,1000) = Resistance in ohms
  > what current flows through a {resistance} ohm resistor at {voltage} volts? ; calculate the current for voltage {voltage} V and resistance {resistance} ohms
  > use Ohm's law to find the current with {voltage} V across {resistance} ohms
## chemistry | I'm preparing for a chemistry lab. ; This is for my chemistry homework.
get_element_properties: Get properties of a chemical element. => atomic_number=int(1,100) atomic_mass=float(1,250)
  element:element = Element name | properties?:[atomic_mass:atomic mass,melting_point:melting point,electronegativity,density]* = Properties to return @ , specifically its {}
  > tell me about the element {element} ; what are the properties of {element}? ; look up {element} in the periodic table
calculate_molar_mass: Calculate the molar mass of a compound. => molar_mass=float(1,400)
  formula:compound = Chemical formula, e.g. H2O
  > what's the molar mass of {formula}? ; calculate the molar mass of {formula} ; how many grams per mole is {formula}?
balance_equation: Balance a chemical equation. => balanced=bool coefficients=int(1,9)*
  equation:equation = Unbalanced equation, e.g. 'H2 + O2 -> H2O'
  > balance the equation {equation} ; can you balance {equation}? ; what's the balanced form of {equation}?
calculate_ph: Calculate pH from hydrogen ion concentration. => ph=float(0,14)
  concentration:float(0.001,0.1) = H+ concentration in mol/L
  > what's the pH of a solution with an H+ concentration of {concentration} M? ; calculate the pH for a hydrogen ion concentration of {concentration} mol/L
  > find the pH if [H+] is {concentration}
convert_grams_to_moles: Convert a mass of a compound to moles. => moles=float(0.01,50)
  compound:compound = Chemical formula | grams:float(1,500) = Mass in grams
  > how many moles are in {grams} g of {compound}? ; convert {grams} grams of {compound} to moles ; find the number of moles in {grams} grams of {compound}
## biology | I'm reading about genetics. ; This is for my biology class.
get_species_info: Get information about a species. => family=[Felidae,Canidae,Hominidae,Ursidae] status=[least_concern,vulnerable,endangered]
  species:species = Scientific name | include_habitat?:bool~false = Include habitat details @ including its habitat / without habitat details
  > tell me about {species} ; what do we know about the species {species}? ; look up information on {species}
get_gene_function: Get the function of a gene. => chromosome=int(1,22) length_kb=int(1,200)
  gene:gene = Gene symbol, e.g. TP53 | organism?:[human,mouse,zebrafish,yeast]~human = Organism @ in {}
  > what does the gene {gene} do? ; look up the function of {gene} ; explain the role of the {gene} gene
dna_complement: Get the complementary strand of a DNA sequence. => complement=dna
  sequence:dna = DNA sequence, e.g. ATGC | reverse?:bool~false = Also reverse the strand @ and reverse it / without reversing it
  > find the complement of the DNA sequence {sequence} ; what's the complementary strand of {sequence}? ; give me the complement of {sequence}
calculate_population_growth: Project population growth over time. => final_population=int(100,1000000)
  initial_population:int(10,100000) = Starting population | growth_rate:pct = Yearly growth rate as a decimal | years:int(1,50) = Number of years
  > project a population of {initial_population} growing at {growth_rate} a year for {years} years ; calculate population growth from {initial_population} at {growth_rate} over {years} years
  > if a population of {initial_population} grows {growth_rate} annually, how big is it after {years} years?
## animals | My kids love animals. ; I'm writing a school report.
get_animal_facts: Get facts about an animal. => lifespan_years=int(2,80) diet=[herbivore,carnivore,omnivore]
  animal:animal = Common name of the animal | fact_count?:int(1,5)~3 = Number of facts @ , {} facts please
  > tell me some facts about the {animal} ; what's interesting about the {animal}? ; give me facts on the {animal}
find_pet_adoption: Find pets available for adoption. => matches=int(0,40) nearest_shelter_km=float(0.5,30)
  species:[dog,cat,rabbit,guinea pig] = Kind of pet | location:city = City | max_age?:int(1,10) = Maximum age in years @ no older than {} years
  > find a {species} to adopt in {location} ; are there any {species}s up for adoption in {location}? ; I want to adopt a {species} in {location}.
calculate_dog_age: Convert a dog's age to human years. => human_years=int(10,100)
  dog_years:int(1,16) = Dog's age in years | size?:[small,medium,large]~medium = Dog size @ for a {} dog
  > how old is a {dog_years}-year-old dog in human years? ; convert a dog age of {dog_years} to human years ; my dog is {dog_years}. How old is that in human years?
## sports | I'm a big sports fan. ; My friends and I have a bet going.
get_team_standings: Get league standings for a season. => leader=team games_played=int(10,82)
  league:""" + SPORTS_LEAGUES + """ = League name | season?:year(2015,2024) = Season start year @ for the {} season
  > show me the {league} standings ; who's leading the {league}? ; get the current {league} table
get_player_stats: Get a player's statistics for a season. => games=int(10,82) points_per_game=float(5,35)
  player:player = Player name | season:year(2010,2024) = Season start year | stat_type?:[regular,playoffs]~regular = Season part @ for the {}
  > get {player}'s stats for the {season} season ; how did {player} do in {season}? ; show me {player}'s {season} statistics
get_match_schedule: Get upcoming matches for a team. => next_opponent=team date=date
  team:team = Team name | days_ahead?:int(3,30)~7 = How many days ahead @ for the next {} days
  > when does {team} play next? ; show me the {team} schedule ; get upcoming games for {team}
get_game_result: Get the result of a team's game on a date. => opponent=team score=[2-1,108-101,3-3,24-17,0-1]
  team:team = Team name | date:date = Game date, YYYY-MM-DD
  > what was the score of the {team} game on {date}? ; did {team} win on {date}? ; get the result of {team}'s match on {date}
get_top_scorers: Get the top scorers in a league. => leader=player goals=int(10,40)
  league:""" + SPORTS_LEAGUES + """ = League name | limit?:int(3,20)~10 = Number of players @ , top {} only
  > who are the top scorers in the {league}? ; list the {league} scoring leaders ; get the {league} top scorer list
## cooking | I'm cooking dinner tonight. ; We have guests this weekend. ; I'm trying to eat healthier.
find_recipe: Find a recipe for a dish. => recipe=dish prep_minutes=int(10,120) rating=float(3,5)
  dish:dish = Name of the dish | diet?:[vegetarian,vegan,gluten-free,keto] = Dietary restriction @ that is {}
  max_minutes?:int(10,90) = Maximum cooking time in minutes @ that takes under {} minutes
  > find me a recipe for {dish} ; how do I make {dish}? ; I want to cook {dish} tonight, find a recipe. ; get a {dish} recipe
find_recipes_by_ingredients: Find recipes that use the given ingredients. => top_recipe=dish matches=int(1,50)
  ingredients:ingredient* = Ingredients to use | cuisine?:cuisine = Cuisine style @ in {} style
  > what can I cook with {ingredients}? ; find recipes that use {ingredients} ; I have {ingredients} at home. What can I make?
get_nutrition_info: Get nutrition facts for a food. => calories=int(20,900) protein_g=float(0,60)
  food:ingredient = Food name | serving_grams?:int(50,500)~100 = Serving size in grams @ per {} grams
  > how many calories are in {food}? ; get nutrition facts for {food} ; what's the nutritional value of {food}?
convert_cooking_units: Convert between cooking measurement units. => result=float(0.1,1000)
  value:float(0.25,10) = Quantity | from_unit:[cups,tablespoons,teaspoons,grams,ounces,milliliters] = Unit to convert from
  to_unit:[cups,tablespoons,teaspoons,grams,ounces,milliliters] = Unit to convert to
  > """ + UNIT_TEMPLATES + """
scale_recipe: Scale a recipe to a number of servings. => scale_factor=float(0.5,4)
  dish:dish = Name of the dish | servings:int(1,12) = Servings wanted | original_servings?:int(2,8)~4 = Servings of the original @ (it normally serves {})
  > scale the {dish} recipe to {servings} servings ; adjust my {dish} recipe for {servings} people ; I need the {dish} recipe for {servings} servings.
## music | I'm making a playlist. ; I'm in the mood for music.
search_songs: Search for songs by title. => top_result=song artist=artist
  query:song = Song title or keywords | artist?:artist = Artist name @ by {} | limit?:int(1,20)~10 = Number of results @ , top {} results
  > search for the song {query} ; find the track {query} ; look up {query}
get_artist_top_tracks: Get the most popular tracks of an artist. => top_track=song plays_million=int(10,3000)
  artist:artist = Artist name | limit?:int(3,10)~5 = Number of tracks @ , top {} only
  > what are {artist}'s most popular songs? ; list the top tracks by {artist} ; show me {artist}'s biggest hits
create_playlist: Create a playlist with the given songs. => playlist_id=int(1000,99999) tracks=int(2,4)
  name:playlist = Playlist name | songs:song* = Song titles | public?:bool~false = Make it public @ and make it public / and keep it private
  > create a playlist called "{name}" with {songs} ; make a new playlist named {name} containing {songs} ; put {songs} into a playlist called {name}
get_song_lyrics: Get the lyrics of a song. => lines=int(10,80) language=lang
  song:song = Song title | artist?:artist = Artist name @ by {}
  > show me the lyrics of {song} ; what are the lyrics to {song}? ; get the lyrics for {song}
find_concerts: Find upcoming concerts for an artist. => next_date=date city=city
  artist:artist = Artist name | location?:city = City @ in {} | date_from?:date = Earliest date, YYYY-MM-DD @ after {}
  > when is {artist} playing next? ; find {artist} concerts ; are there any upcoming {artist} shows?
## movies | It's movie night. ; I'm bored this weekend.
get_movie_details: Get details about a movie. => director=person year=year(1940,2024) rating=float(5,9.5)
  title:movie = Movie title | year?:year(1940,2024) = Release year @ from {}
  > tell me about the movie {title} ; who directed {title}? ; get details for the film {title}
find_movies_by_genre: Find movies of a genre. => top_pick=movie count=int(5,200)
  genre:[comedy,drama,horror,science fiction,documentary,thriller,romance,animation] = Movie genre
  release_year?:year(1980,2024) = Release year @ from {} | min_rating?:float(5,9) = Minimum rating out of 10 @ rated at least {}
  > recommend some {genre} movies ; find good {genre} films ; what {genre} movies should I watch?
get_showtimes: Get cinema showtimes for a movie. => first_showing=time cinemas=int(1,12)
  movie:movie = Movie title | location:city = City | date?:date = Date, YYYY-MM-DD @ on {}
  > when is {movie} playing in {location}? ; find showtimes for {movie} in {location} ; where can I watch {movie} in {location}?
get_movie_reviews: Get reviews for a movie. => score=int(20,99) review_count=int(50,900)
  title:movie = Movie title | source?:[critics,audience]~critics = Whose reviews @ from the {}
  > how was {title} reviewed? ; get reviews for {title} ; is {title} any good?
recommend_similar_movies: Recommend movies similar to a given one. => recommendation=movie
  title:movie = Movie title | count?:int(3,10)~5 = Number of suggestions @ , {} suggestions
  > recommend movies like {title} ; what should I watch if I liked {title}? ; suggest films similar to {title}
## books | I'm looking for something to read. ; My book club meets next week.
get_book_info: Get information about a book. => author=author pages=int(100,900) year=year(1800,2024)
  title:book = Book title | author?:author = Author name @ by {}
  > tell me about the book {title} ; what is {title} about? ; get details on {title}
find_books_by_author: List books written by an author. => count=int(2,60) latest=book
  author:author = Author name | sort_by?:[date,popularity]~popularity = Sort order @ sorted by {}
  > what books has {author} written? ; list books by {author} ; show me {author}'s works
check_library_availability: Check whether a library has a book available. => available=bool copies=int(0,6)
  title:book = Book title | library:[Central Library,Eastside Branch,University Library,Northgate Library] = Library branch
  > is {title} available at {library}? ; check if {library} has {title} ; can I borrow {title} from {library}?
get_book_recommendations: Recommend books in a genre. => top_pick=book
  genre:[fantasy,mystery,science fiction,romance,history,biography,thriller] = Book genre | count?:int(3,10)~5 = Number of titles @ , {} titles
  > recommend some {genre} books ; what {genre} books should I read? ; suggest some {genre} reading
## geography | I'm studying for a quiz. ; I'm curious about the world.
get_country_capital: Get the capital city of a country. => capital=city
  country:country = Country name
  > what's the capital of {country}? ; get the capital city of {country} ; tell me the capital of {country}
get_population: Get the population of a country. => population=int(100000,1400000000)
  country:country = Country name | year?:year(1950,2024) = Year @ in {}
  > what's the population of {country}? ; how many people live in {country}? ; get population data for {country}
get_distance_between_cities: Get the distance between two cities. => distance=int(10,18000) flight_hours=float(0.5,20)
  origin:city = First city | destination:city = Second city | unit?:[km,miles]~km = Distance unit @ in {}
  > how far is {origin} from {destination}? ; get the distance between {origin} and {destination} ; what's the distance from {origin} to {destination}?
get_timezone: Get the time zone of a city. => timezone=tz utc_offset=int(-10,12)
  location:city = City name
  > what time zone is {location} in? ; get the time zone for {location} ; which time zone does {location} use?
get_mountain_info: Get facts about a mountain. => elevation=int(1000,8849) country=country
  mountain:mountain = Mountain name | unit?:[meters,feet]~meters = Elevation unit @ in {}
  > how tall is {mountain}? ; tell me about {mountain} ; what's the elevation of {mountain}?
get_river_info: Get facts about a river. => length_km=int(300,6650) countries=int(1,10)
  river:river = River name
  > how long is the {river}? ; tell me about the {river} river ; which countries does the {river} flow through?
## health | I've been feeling off lately. ; My doctor told me to keep track of this.
calculate_bmi: Calculate body mass index. => bmi=float(15,40) category=[underweight,normal,overweight,obese]
  weight_kg:float(40,150) = Weight in kilograms | height_cm:int(140,210) = Height in centimeters
  > calculate the BMI for someone who weighs {weight_kg} kg and is {height_cm} cm tall ; what's my BMI if I'm {height_cm} cm and {weight_kg} kg?
  > compute BMI for {weight_kg} kg and {height_cm} cm
check_drug_interactions: Check interactions between medications. => interactions=int(0,3) severity=[none,mild,moderate,severe]
  drugs:drug* = Medication names
  > can I take {drugs} together? ; check for interactions between {drugs} ; are there any interactions among {drugs}?
check_symptoms: Suggest possible conditions for a set of symptoms. => likely_condition=condition urgency=[low,medium,high]
  symptoms:symptom* = Symptoms | age?:int(5,90) = Patient age @ for a {}-year-old | duration_days?:int(1,14) = Days with symptoms @ lasting {} days
  > I have {symptoms}. What could it be? ; what might cause {symptoms}? ; check these symptoms: {symptoms}
calculate_daily_calories: Estimate daily calorie needs. => calories=int(1400,3500)
  age:int(18,80) = Age in years | weight_kg:float(45,130) = Weight in kilograms | height_cm:int(150,200) = Height in centimeters | gender:[male,female] = Gender
  activity?:[sedentary,light,moderate,active]~moderate = Activity level @ with a {} activity level
  > how many calories does a {age}-year-old {gender} need at {weight_kg} kg and {height_cm} cm? ; estimate daily calories for a {gender}, {age} years old, {weight_kg} kg, {height_cm} cm
  > calculate calorie needs: {gender}, age {age}, {height_cm} cm, {weight_kg} kg
find_doctor: Find doctors by specialty in a city. => top_doctor=person rating=float(3.5,5)
  specialty:[cardiology,dermatology,pediatrics,neurology,orthopedics,psychiatry] = Medical specialty | location:city = City
  accepts_new_patients?:bool~true = Only doctors taking new patients @ who accept new patients / even if they aren't taking new patients
  > find a {specialty} doctor in {location} ; I need a specialist in {specialty} near {location}. ; who are good {specialty} doctors in {location}?
get_medication_info: Get dosage and usage information for a drug. => typical_dose_mg=int(5,1000) prescription=bool
  drug:drug = Medication name | include_side_effects?:bool~false = Include side effects @ including side effects / without the side effects
  > tell me about {drug} ; what is {drug} used for? ; get information on the medication {drug}
## fitness | I'm training for a race. ; I just started going to the gym.
log_workout: Log a workout session. => logged=bool calories=int(50,900)
  activity:[running,cycling,swimming,yoga,rowing,walking] = Activity | duration_minutes:int(10,120) = Duration in minutes | date?:date = Date, YYYY-MM-DD @ on {}
  > log a {duration_minutes}-minute {activity} workout ; record {duration_minutes} minutes of {activity} ; I did {duration_minutes} minutes of {activity}, please log it.
calculate_calories_burned: Estimate calories burned during an activity. => calories=int(50,1200)
  activity:[running,cycling,swimming,yoga,rowing,walking] = Activity | duration_minutes:int(10,120) = Duration in minutes | weight_kg:float(45,130) = Body weight in kg
  > how many calories do I burn {activity} for {duration_minutes} minutes at {weight_kg} kg? ; estimate calories burned from {duration_minutes} minutes of {activity} for a {weight_kg} kg person
  > calculate calories for {activity}, {duration_minutes} min, weight {weight_kg} kg
get_workout_plan: Create a weekly workout plan. => sessions=int(2,6) focus=[strength,cardio,mobility]
  goal:[weight_loss:weight loss,muscle_gain:muscle gain,endurance] = Training goal | days_per_week:int(2,6) = Training days per week
  equipment?:[bodyweight:bodyweight only,dumbbells,full_gym:a full gym]~bodyweight = Available equipment @ using {}
  > make me a workout plan for {goal}, {days_per_week} days a week ; I want to train {days_per_week} days a week for {goal}. Build a plan.
  > create a {days_per_week}-day-per-week plan focused on {goal}
calculate_running_pace: Calculate running pace from distance and time. => pace_min_per_km=float(3,9)
  distance_km:float(1,42.2) = Distance in kilometers | time_minutes:int(5,300) = Time in minutes
  > what's my pace if I ran {distance_km} km in {time_minutes} minutes? ; calculate the running pace for {distance_km} km in {time_minutes} min
  > I ran {distance_km} kilometers in {time_minutes} minutes. What pace is that?
## shopping | I'm shopping for a gift. ; My old one just broke.
search_products: Search an online store for products. => results=int(0,500) cheapest=float(5,900)
  query:product = What to search for | max_price?:usd(20,1000) = Maximum price @ under {} | sort_by?:[price,rating,relevance]~relevance = Sort order @ sorted by {}
  > search for {query} ; find {query} online ; show me some {query} ; I'm looking for {query}.
get_product_reviews: Get customer reviews for a product. => average=float(2,5) count=int(5,9000)
  product:product = Product name | min_rating?:int(1,5) = Minimum star rating @ with at least {} stars
  > show reviews for the {product} ; what do buyers say about the {product}? ; are people happy with the {product}?
add_to_cart: Add a product to the shopping cart. => cart_items=int(1,12) subtotal=float(5,2000)
  product:product = Product name | quantity:int(1,10) = Quantity to add
  > add {quantity} {product} to my cart ; put {quantity} of the {product} in my cart ; I want {quantity} {product} in the basket.
track_order: Track the status of an order. => status=[processing,shipped,out_for_delivery,delivered] eta=date
  order_id:order = Order number, e.g. ORD-12345
  > where is my order {order_id}? ; track order {order_id} ; what's the status of order {order_id}?
compare_prices: Compare a product's price across stores. => best_store=store best_price=float(5,900)
  product:product = Product name | stores?:store* = Stores to compare @ at {}
  > compare prices for a {product} ; where is the {product} cheapest? ; find the best price on a {product}
calculate_shipping_cost: Estimate the cost of shipping a parcel. => cost=float(5,200) days=int(1,14)
  weight_kg:float(0.1,30) = Parcel weight in kg | dimensions:dims = Parcel size in cm | destination:country = Destination country
  > how much does it cost to ship a {weight_kg} kg parcel of {dimensions} to {destination}? ; estimate shipping for a {dimensions} box weighing {weight_kg} kg to {destination}
  > what's the postage on {weight_kg} kg, {dimensions}, going to {destination}?
## calendar | My week is pretty busy. ; I keep forgetting things.
create_event: Create a calendar event. => event_id=int(1000,99999) created=bool
  title:note = Event title | date:date = Date, YYYY-MM-DD | time:time = Start time, HH:MM 24-hour
  duration_minutes?:int(15,180)~60 = Length in minutes @ for {} minutes | location?:address = Where it takes place @ at {}
  > add "{title}" to my calendar on {date} at {time} ; schedule {title} for {date} at {time} ; create an event called {title} on {date} at {time}
  > put {title} in my calendar for {date}, {time}
list_events: List calendar events on a date. => count=int(0,8) first=time
  date:date = Date, YYYY-MM-DD | calendar?:[work,personal,family]~personal = Which calendar @ in my {} calendar
  > what's on my calendar on {date}? ; list my events for {date} ; do I have anything scheduled on {date}?
set_reminder: Set a reminder. => reminder_id=int(100,9999)
  message:note = What to be reminded of | date:date = Date, YYYY-MM-DD | time:time = Time, HH:MM 24-hour
  > remind me about {message} on {date} at {time} ; set a reminder for {message} at {time} on {date} ; create a reminder: {message}, {date}, {time}
find_free_slots: Find free time in the calendar on a date. => first_free=time slots=int(0,6)
  date:date = Date, YYYY-MM-DD | duration_minutes:int(15,120) = Needed length in minutes
  > when am I free for {duration_minutes} minutes on {date}? ; find a {duration_minutes}-minute free slot on {date} ; look for {duration_minutes} free minutes in my calendar on {date}
cancel_event: Cancel a calendar event by title and date. => cancelled=bool
  title:note = Event title | date:date = Date, YYYY-MM-DD | notify_attendees?:bool~true = Tell the attendees @ and notify the attendees / without notifying anyone
  > cancel {title} on {date} ; remove the {title} event on {date} from my calendar ; delete {title} scheduled for {date}
## email | I'm catching up on work. ; I'm cleaning up my inbox.
send_email: Send an email. => message_id=int(10000,99999) sent=bool
  to:email = Recipient address | subject:subject = Subject line | body?:phrase = Message text @ saying "{}"
  > send an email to {to} with the subject "{subject}" ; email {to} about "{subject}" ; write to {to}, subject: {subject}
search_emails: Search emails from a sender. => matches=int(0,40) latest=date
  sender:email = Sender address | unread_only?:bool~false = Only unread messages @ , only unread ones / including read ones
  > find emails from {sender} ; search my inbox for messages from {sender} ; did I get any emails from {sender}?
get_unread_count: Count unread emails in a folder. => unread=int(0,120)
  folder?:[inbox,work,promotions,social]~inbox = Mail folder @ in my {} folder
  > how many unread emails do I have? ; count my unread messages ; check my unread mail
schedule_email: Schedule an email to be sent later. => scheduled=bool
  to:email = Recipient address | subject:subject = Subject line | send_date:date = Date, YYYY-MM-DD | send_time:time = Time, HH:MM 24-hour
  > schedule an email to {to} with subject "{subject}" for {send_date} at {send_time} ; send {to} an email titled {subject} on {send_date} at {send_time}
  > queue an email to {to} ("{subject}") for {send_time} on {send_date}
## language | I'm learning a new language. ; I'm writing to a friend abroad.
translate_text: Translate text into another language. => characters=int(5,80) detected_source=lang
  text:phrase = Text to translate | target_language:lang = Language to translate into | source_language?:lang = Language of the text @ from {}
  > translate "{text}" into {target_language} ; how do you say "{text}" in {target_language}? ; what's "{text}" in {target_language}?
detect_language: Detect the language of a text. => language=lang confidence=float(0.5,1)
  text:foreign = The text
  > what language is "{text}"? ; detect the language of "{text}" ; which language is this: {text}
get_word_definition: Get the definition of a word. => definitions=int(1,6) part_of_speech=[noun,verb,adjective]
  word:word = The word | language?:lang = Language of the definition @ in {}
  > define {word} ; what does "{word}" mean? ; give me the definition of {word}
get_synonyms: Get synonyms of a word. => top=word count=int(1,20)
  word:word = The word | limit?:int(3,10)~5 = Maximum number of synonyms @ , {} at most
  > what are some synonyms for {word}? ; find synonyms of "{word}" ; give me other words for {word}
count_words: Count the words in a text. => words=int(2,12) characters=int(10,60)
  text:phrase = The text | ignore_punctuation?:bool~true = Skip punctuation @ ignoring punctuation / counting punctuation
  > count the words in "{text}" ; how many words are in "{text}"? ; get a word count for "{text}"
## units | I'm following a foreign recipe. ; This is for a science project.
convert_length: Convert a length between units. => result=float(0.01,5000)
  value:float(0.5,1000) = Length to convert | from_unit:[m:meters,km:kilometers,mi:miles,ft:feet,in:inches,cm:centimeters] = Unit to convert from
  to_unit:[m:meters,km:kilometers,mi:miles,ft:feet,in:inches,cm:centimeters] = Unit to convert to
  > """ + UNIT_TEMPLATES + """
convert_weight: Convert a weight between units. => result=float(0.01,5000)
  value:float(0.1,500) = Weight to convert | from_unit:[kg:kilograms,lb:pounds,g:grams,oz:ounces,st:stone] = Unit to convert from
  to_unit:[kg:kilograms,lb:pounds,g:grams,oz:ounces,st:stone] = Unit to convert to
  > """ + UNIT_TEMPLATES + """
convert_temperature: Convert a temperature between scales. => result=float(-50,500)
  value:float(-40,200) = Temperature | from_unit:[celsius:degrees Celsius,fahrenheit:degrees Fahrenheit,kelvin] = Scale to convert from
  to_unit:[celsius:Celsius,fahrenheit:Fahrenheit,kelvin:Kelvin] = Scale to convert to
  > convert {value} {from_unit} to {to_unit} ; what's {value} {from_unit} in {to_unit}? ; how much is {value} {from_unit} in {to_unit}?
convert_volume: Convert a volume between units. => result=float(0.01,5000)
  value:float(0.1,100) = Volume to convert | from_unit:[l:liters,gal:gallons,ml:milliliters,cup:cups,fl_oz:fluid ounces] = Unit to convert from
  to_unit:[l:liters,gal:gallons,ml:milliliters,cup:cups,fl_oz:fluid ounces] = Unit to convert to
  > """ + UNIT_TEMPLATES + """
convert_speed: Convert a speed between units. => result=float(0.1,1000)
  value:float(1,300) = Speed to convert | from_unit:[kmh:km/h,mph:miles per hour,ms:m/s,knots] = Unit to convert from
  to_unit:[kmh:km/h,mph:miles per hour,ms:m/s,knots] = Unit to convert to
  > convert {value} {from_unit} to {to_unit} ; what is {value} {from_unit} in {to_unit}? ; express {value} {from_unit} in {to_unit}
## real_estate | We're thinking about moving. ; I'm looking at houses.
search_properties: Search homes for sale in a city. => listings=int(0,300) median_price=int(100000,2000000)
  location:city = City | property_type:[house,apartment,condo,townhouse] = Type of home
  max_price?:usd(100000,2000000) = Maximum price @ under {} | bedrooms?:int(1,5) = Minimum bedrooms @ with at least {} bedrooms
  > find a {property_type} for sale in {location} ; search for a {property_type} to buy in {location} ; show me {property_type} listings in {location}
estimate_home_value: Estimate the market value of a property. => estimate=int(100000,3000000) confidence=[low,medium,high]
  address:address = Street address | square_feet:int(500,5000) = Living area in square feet
  > estimate the value of the {square_feet} sq ft home at {address} ; how much is my {square_feet} square foot house at {address} worth?
  > what would {address} sell for? It's {square_feet} square feet.
calculate_mortgage: Calculate a monthly mortgage payment. => monthly_payment=float(300,12000)
  home_price:usd(100000,2000000) = Price of the home | down_payment:usd(10000,400000) = Down payment | interest_rate:pct = Annual rate as a decimal | years:int(10,30) = Loan term in years
  > calculate the mortgage on a {home_price} home with {down_payment} down at {interest_rate} over {years} years
  > what would my monthly payment be for a {home_price} house, {down_payment} down, {interest_rate} rate, {years}-year term?
  > estimate mortgage payments: price {home_price}, down payment {down_payment}, rate {interest_rate}, {years} years
find_rentals: Find apartments for rent in a city. => listings=int(0,200) cheapest=int(400,4000)
  location:city = City | max_rent?:usd(500,5000) = Maximum monthly rent @ under {} a month | pets_allowed?:bool = Must allow pets @ that allow pets / with no pets
  > find apartments for rent in {location} ; show me rentals in {location} ; what's available to rent in {location}?
## jobs | I'm looking for a new job. ; I'm thinking about a career change.
search_jobs: Search job listings. => openings=int(0,500) top_company=company
  title:job = Job title | location:city = City | remote?:bool = Remote jobs only @ that are remote / that are on-site
  > find {title} jobs in {location} ; are there any {title} openings in {location}? ; search for {title} positions near {location}
get_salary_estimate: Estimate the salary for a job. => median=int(30000,200000)
  title:job = Job title | location:city = City | years_experience?:int(0,20) = Years of experience @ with {} years of experience
  > how much does a {title} make in {location}? ; what's the average salary for a {title} in {location}? ; estimate the pay for a {title} in {location}
get_company_reviews: Get employee reviews of a company. => rating=float(2.5,4.8) reviews=int(50,9000)
  company:company = Company name | category?:[culture,pay,work_life_balance:work-life balance,management] = Review topic @ about {}
  > what do employees say about {company}? ; get reviews of {company} as an employer ; is {company} a good place to work?
get_required_skills: List the skills needed for a job. => top_skill=course skills=int(3,12)
  title:job = Job title
  > what skills does a {title} need? ; list the skills required for a {title} ; what should I learn to become a {title}?
## education | I'm going back to school. ; My daughter is applying to college.
find_courses: Find courses on a subject. => courses=int(1,80) average_weeks=int(2,16)
  subject:course = Subject | level?:[beginner,intermediate,advanced] = Difficulty @ at {} level | online?:bool = Online only @ online / in person
  > find courses on {subject} ; I want to learn {subject}. What courses are there? ; search for {subject} classes
get_university_ranking: Get a university's world ranking. => rank=int(1,500) score=float(40,100)
  university:university = University name | year?:year(2015,2024) = Ranking year @ for {}
  > what's the world ranking of {university}? ; how is {university} ranked? ; get the ranking of {university}
calculate_gpa: Calculate a GPA from a list of grades. => gpa=float(1,4)
  grades:float(1,4)* = Grade points on a 4.0 scale
  > calculate my GPA with grades {grades} ; what's the GPA for {grades}? ; my grades are {grades}. What's my GPA?
get_admission_requirements: Get admission requirements for a program. => min_gpa=float(2.5,4) deadline=date
  university:university = University name | program:course = Program or subject
  > what do I need to get into {program} at {university}? ; get the admission requirements for {program} at {university} ; what are {university}'s requirements for {program}?
## transport | I'm new in town. ; I'm running late.
get_directions: Get directions between two places. => duration_minutes=int(5,120) distance_km=float(0.5,40)
  origin:landmark = Starting point | destination:landmark = Destination | mode?:[driving:car,walking:foot,transit:public transport,cycling:bike]~driving = Travel mode @ by {}
  > how do I get from {origin} to {destination}? ; give me directions from {origin} to {destination} ; route me from {origin} to {destination}
get_train_schedule: Get train departures between two stations. => next_departure=time duration_minutes=int(20,300)
  from_station:station = Departure station | to_station:station = Arrival station | date?:date = Travel date, YYYY-MM-DD @ on {}
  > when is the next train from {from_station} to {to_station}? ; show trains from {from_station} to {to_station} ; get the train schedule between {from_station} and {to_station}
find_parking: Find parking near a place. => spots=int(0,80) price_per_hour=float(1,12)
  location:landmark = Place to park near | hours?:int(1,10) = Hours needed @ for {} hours
  > find parking near {location} ; where can I park near {location}? ; look for a parking spot close to {location}
estimate_taxi_fare: Estimate the taxi fare between two places. => fare=float(5,120) minutes=int(5,90)
  pickup:landmark = Pickup place | dropoff:landmark = Drop-off place | ride_type?:[standard,xl:XL,premium]~standard = Ride type @ for a {} ride
  > how much is a taxi from {pickup} to {dropoff}? ; estimate the fare from {pickup} to {dropoff} ; what would a cab from {pickup} to {dropoff} cost?
calculate_fuel_cost: Calculate the fuel cost of a trip. => cost=float(5,500) liters=float(1,300)
  distance_km:float(10,2000) = Trip distance in km | consumption:float(4,15) = Fuel use in liters per 100 km | fuel_price:float(1,2.5) = Price per liter
  > how much will fuel cost for {distance_km} km at {consumption} L/100km with fuel at {fuel_price} per liter?
  > calculate the fuel cost: {distance_km} km, {consumption} L per 100 km, {fuel_price} per liter
  > what will a {distance_km} km drive cost if my car uses {consumption} L/100km and fuel is {fuel_price} a liter?
## news | I haven't read the news in days. ; I'm writing an article.
get_latest_news: Get the latest news on a topic. => articles=int(1,50) top_source=source
  topic:topic = News topic | source?:source = News outlet @ from {} | limit?:int(3,10)~5 = Number of articles @ , {} articles
  > what's the latest news on {topic}? ; get recent news about {topic} ; any updates on {topic}?
get_headlines: Get top headlines for a country. => count=int(5,30) top_source=source
  country:country = Country | category?:[business,sports,technology,health,science] = News category @ about {}
  > show me today's headlines in {country} ; what are the top stories in {country}? ; get the news headlines for {country}
search_news: Search news articles since a date. => matches=int(0,300) latest=date
  query:topic = Search terms | from_date:date = Earliest date, YYYY-MM-DD | to_date?:date = Latest date, YYYY-MM-DD @ until {}
  > find news about {query} since {from_date} ; search articles on {query} from {from_date} ; what was reported about {query} after {from_date}?
## games | I'm bored. ; We're having a game night.
get_game_info: Get information about a video game. => release_year=year(1985,2024) rating=float(5,10)
  game:game = Game title | platform?:[PC,PlayStation,Xbox,Switch] = Platform @ on {}
  > tell me about {game} ; what is {game} like? ; get details on the game {game}
roll_dice: Roll dice and return the results. => total=int(1,120)
  count:int(1,6) = Number of dice | sides?:int(4,20)~6 = Sides per die @ , each with {} sides
  > roll {count} dice ; throw {count} dice for me ; can you roll {count} dice?
get_game_leaderboard: Get the leaderboard of a game. => leader=username score=int(1000,99999)
  game:game = Game title | top?:int(3,20)~10 = Number of entries @ , top {}
  > show the {game} leaderboard ; who's at the top of the {game} rankings? ; get the leaderboard for {game}
get_game_price: Get the price of a game on a platform. => price=float(5,70) on_sale=bool
  game:game = Game title | platform:[PC,PlayStation,Xbox,Switch] = Platform
  > how much is {game} on {platform}? ; check the price of {game} for {platform} ; what does {game} cost on {platform}?
## history | I'm reading a history book. ; I'm preparing a history presentation.
get_historical_event: Get a summary of a historical event. => year=year(1000,1990) location=country
  event:event = Event name | detail_level?:[brief,detailed]~brief = Level of detail @ , keep it {}
  > tell me about the {event} ; what happened during the {event}? ; summarize the {event}
get_events_on_date: List historical events that happened on a date. => events=int(1,20)
  date:date(1800,1999) = Date, YYYY-MM-DD
  > what happened on {date}? ; list historical events from {date} ; what events took place on {date}?
get_historical_figure: Get a short biography of a historical figure. => born=year(100,1950) died=year(200,2013)
  name:figure = Person's name
  > who was {name}? ; tell me about {name} ; give me a short biography of {name}
get_empire_info: Get facts about an empire or dynasty. => founded=year(100,1600) ended=year(500,1925)
  empire:empire = Empire or dynasty name
  > tell me about the {empire} ; when did the {empire} rise and fall? ; how long did the {empire} last?
## law | I have a legal question. ; A friend asked me about this.
search_case_law: Search court cases on a legal topic. => cases=int(0,200) landmark_year=year(1950,2023)
  topic:law = Legal topic | jurisdiction:state = State or region | year_from?:year(1950,2020) = Earliest year @ since {}
  > find case law on {topic} in {jurisdiction} ; search {jurisdiction} court cases about {topic} ; are there any {jurisdiction} cases on {topic}?
get_statute_of_limitations: Get the statute of limitations for a claim. => years=int(1,10)
  claim_type:law = Type of claim | jurisdiction:state = State or region
  > what's the statute of limitations for {claim_type} in {jurisdiction}? ; how long do I have to file a {claim_type} claim in {jurisdiction}?
  > check the limitation period for {claim_type} in {jurisdiction}
get_legal_template: Get a legal document template. => template_id=int(100,999) pages=int(1,12)
  document_type:[lease,nda:NDA,will,power_of_attorney:power of attorney,employment_contract:employment contract] = Document type
  jurisdiction?:state = State or region @ for {}
  > get me a {document_type} template ; I need a {document_type} template. ; find a template for a {document_type}
find_lawyer: Find lawyers by practice area in a city. => top_lawyer=person rating=float(3.5,5)
  practice_area:[family,immigration,criminal,tax,employment] = Practice area | location:city = City
  > find a {practice_area} lawyer in {location} ; I need a {practice_area} attorney near {location}. ; who are the best {practice_area} lawyers in {location}?
## space | I love stargazing. ; My son is into astronomy.
get_planet_info: Get facts about a planet. => moons=int(0,95) distance_from_sun_au=float(0.4,30)
  planet:planet = Planet name
  > tell me about {planet} ; how many moons does {planet} have? ; get facts about the planet {planet}
get_moon_phase: Get the moon phase on a date. => phase=[new_moon,waxing_crescent,first_quarter,full_moon,waning_gibbous] illumination=int(0,100)
  date:date = Date, YYYY-MM-DD | location?:city = Observer's city @ in {}
  > what's the moon phase on {date}? ; will there be a full moon on {date}? ; get the lunar phase for {date}
get_star_info: Get facts about a star. => distance_ly=float(4,700) magnitude=float(-1.5,2)
  star:star = Star name
  > how far away is {star}? ; tell me about the star {star} ; get information on {star}
calculate_orbital_period: Calculate an orbital period with Kepler's third law. => period_days=float(50,90000)
  semi_major_axis_au:float(0.3,40) = Semi-major axis in AU | star_mass?:float(0.1,3)~1.0 = Star mass in solar masses @ around a star of {} solar masses
  > what's the orbital period of a planet {semi_major_axis_au} AU from its star? ; calculate the orbital period for a semi-major axis of {semi_major_axis_au} AU
  > how long is a year for a planet at {semi_major_axis_au} AU?
## smart_home | I'm about to go to bed. ; I just got home.
set_thermostat: Set the thermostat temperature. => set_to=int(16,28)
  temperature:int(16,28) = Target temperature in Celsius | room?:[living room,bedroom,kitchen,office] = Room @ in the {} | mode?:[heat,cool,auto]~auto = Mode @ in {} mode
  > set the thermostat to {temperature} degrees ; make it {temperature} degrees ; change the temperature to {temperature}
control_lights: Turn the lights in a room on or off. => lights_on=bool
  room:[living room,bedroom,kitchen,office,hallway] = Room | on:bool = True to switch on @ on / off | brightness?:int(10,100) = Brightness percent @ at {}% brightness
  > turn {on} the lights in the {room} ; switch the {room} lights {on} ; can you turn the {room} lights {on}?
lock_door: Lock or unlock a door. => locked=bool
  door:[front,back,garage] = Which door | lock:bool = True to lock, False to unlock @ lock / unlock
  > {lock} the {door} door ; can you {lock} the {door} door? ; I need you to {lock} the {door} door.
start_vacuum: Start the robot vacuum. => started=bool minutes=int(10,90)
  room:[living room,bedroom,kitchen,office,whole house] = Room to clean | mode?:[quiet,standard,turbo]~standard = Suction mode @ in {} mode
  > start the vacuum in the {room} ; vacuum the {room} ; run the robot vacuum in the {room}
## utilities | Quick one. ; I need this for a form.
generate_password: Generate a random password. => strength=[strong,very_strong]
  length:int(8,32) = Password length | include_symbols?:bool~true = Use symbols @ with symbols / without symbols
  > generate a {length}-character password ; make me a password {length} characters long ; create a random password of length {length}
get_current_time: Get the current time in a time zone. => time=time
  timezone:tz = IANA time zone, e.g. Europe/Paris
  > what time is it in {timezone}? ; get the current time for {timezone} ; tell me the time in the {timezone} time zone
days_between_dates: Count the days between two dates. => days=int(1,900)
  start_date:date = Start date, YYYY-MM-DD | end_date:date = End date, YYYY-MM-DD | include_end?:bool~false = Count the end date too @ , counting the last day / , not counting the last day
  > how many days are there between {start_date} and {end_date}? ; count the days from {start_date} to {end_date} ; calculate the number of days between {start_date} and {end_date}
calculate_age: Calculate age from a birth date. => age=int(9,85)
  birth_date:date(1940,2015) = Birth date, YYYY-MM-DD
  > how old is someone born on {birth_date}? ; calculate the age of a person born {birth_date} ; I was born on {birth_date}. How old am I?
random_number: Generate a random integer in a range. => number=int(0,1000)
  min:int(0,50) = Lower bound | max:int(60,1000) = Upper bound
  > give me a random number between {min} and {max} ; pick a random integer from {min} to {max} ; generate a random number in the range {min} to {max}
## social | I run a small business account. ; I'm trying to grow my audience.
get_user_posts: Get recent posts from a social media user. => posts=int(0,50) latest=date
  username:username = Account name | limit?:int(3,20)~10 = Number of posts @ , the last {}
  > show me recent posts from {username} ; what has {username} posted lately? ; get the latest posts by {username}
create_post: Publish a post on social media. => post_id=int(10000,99999)
  message:phrase = Post text | platform:[twitter:Twitter,facebook:Facebook,linkedin:LinkedIn,instagram:Instagram] = Platform
  > post "{message}" on {platform} ; share "{message}" to my {platform} ; publish this on {platform}: {message}
get_trending_hashtags: Get trending hashtags in a country. => top_hashtag=hashtag volume=int(1000,900000)
  country:country = Country | limit?:int(3,10)~5 = Number of hashtags @ , top {}
  > what's trending in {country}? ; get trending hashtags for {country} ; show me the top hashtags in {country}
"""

TOOLS, CONTEXTS = parse_catalogue(CATALOGUE)
BY_DOMAIN = {}
for _t in TOOLS:
    BY_DOMAIN.setdefault(_t.domain, []).append(_t)
PARALLEL_TOOLS = [t for t in TOOLS if any(p.required for p in t.params)]
MISSABLE = [t for t in PARALLEL_TOOLS if all(p.kind != "bool" for p in t.params if p.required)]

if __name__ == "__main__":
    main()
