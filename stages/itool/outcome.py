"""Is an answer correct? The outcome O of the search (stage 05) and the held-out test's verdict.

A call-list gold is matched by the same calls with the same values (order-free for parallel calls;
toolcalls.answers_match). An answer that attempts a call list but does not parse is never
correct, nor is text holding what no answer can contain: control characters, undecodable bytes or
the strings of special tokens (`<unused4260>`, `<start_of_turn>`, ...), nor text with a call
written into it (`name(key=`: a refusal that goes on "... calculated.hypotenuse(side_a=...)" is a
half-made call, not a refusal; no text answer of ToolACE or of the synthetic data holds one).

A text gold is not matched by "any text". Text answers in tool-use data have a job, and a correct
answer does the same job; which job follows from the dialogue and the gold (`intent`):

  report   the turn before is a tool result: the answer restates it. Correct when it states the
           facts the gold states, the tool result's values that appear in the gold (numbers by
           value, text case-insensitively), at least 80 % of them (all of up to four);
  ask      a required value is missing: the gold asks for it. Correct when the answer asks too
           and names every parameter the gold names (by its name or its description's head);
  decline  no function fits: the gold says so. Correct when the answer declines too (wording is
           free: there is nothing more to get right);
  other    anything else (chit-chat in ToolACE): correct when it holds half of the gold's content
           words.

The synthetic data knows why each text answer is text (a declined request, a missing parameter,
a summary of tool results) and `intent` recovers that for every synthetic answer (tested). For
ToolACE's free-written answers the same rule is a tolerant comparison with the gold: the job must
match and the gold's key content must be there, in any wording.
"""
import math
import re
import unicodedata

from itool.records import tools_from_system
from itool.toolcalls import looks_like_call, parse_answer, same_calls

_SPECIAL = re.compile(r"<(unused\d+|start_of_turn|end_of_turn|bos|eos|pad|mask|unk|start_of_image|end_of_image|"
                      r"image_soft_token)>|<\|[a-z_]+\|>")
_DECLINE = re.compile(
    r"\bnone of\b|\bno (suitable |available |appropriate |relevant |matching |such |provided )?(function|tool|api)s?\b"
    r"|\bcan ?not\b|\bcan't\b|\bunable to\b|\bnot able to\b|\bnot possible\b|\boutside\b|\bbeyond\b"
    r"|\bdo(es)? not (support|provide|have|cover|allow|offer|include|match)|\bdo(es)?n't (support|provide|have|cover)"
    r"|\bnot (supported|covered|available)\b|\blacks?\b", re.I)
_REQUEST = re.compile(
    r"\?|\b(please|kindly) (provide|specify|give|tell|share|let me know|confirm|send|enter|clarify|indicate)\b"
    r"|\bcould you\b|\bcan you (please )?(provide|tell|give|specify|share|confirm)\b|\blet me know\b"
    r"|\bneed (the|to know|more|your)\b|\brequires? (the|more|your|additional)\b", re.I)
_STOPWORDS = set("""the a an and or of to in on for with at by from is are was were be been it its this that
these those you your i me my we our can could would will shall should may might do does did have has had not no
yes here there what which who whom when where how please also just so than then them they their as if but about
into over such any all some more most other only own same too very""".split())
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_CALL_INSIDE = re.compile(r"[A-Za-z_][\w.\-]*\(\s*[A-Za-z_]\w*\s*=")  # a name, "(", a keyword argument


# --- what an answer is ------------------------------------------------------------------------------

def tool_names(system):
    return [tool["name"] for tool in tools_from_system(system) or [] if isinstance(tool.get("name"), str)]


def is_clean(text):
    """Text an answer can contain: no control characters (but newlines and tabs), no undecodable
    bytes (U+FFFD), no unassigned or private-use characters, no special-token strings."""
    if "\ufffd" in text or _SPECIAL.search(text):
        return False
    return all(ch in "\n\t\r" or unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn") for ch in text)


def answer_kind(text, names=()):
    """"call" (a call list that parses), "malformed" (an attempted call list that does not, text
    with a call written into it, or text no answer can contain) or "text"."""
    if parse_answer(text, names) is not None:
        return "call"
    if looks_like_call(text) or _CALL_INSIDE.search(text) or not is_clean(text) or not text.strip():
        return "malformed"
    return "text"


# --- the job of a text answer -------------------------------------------------------------------------

def _words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def _has_phrase(text, phrase):
    return bool(phrase) and re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", text) is not None


def parameter_keys(tools):
    """{parameter: the phrases that name it}: its name, its name as words ("start_date",
    "startDate" -> "start date") and the head of its description (up to the first comma,
    bracket, "e.g." or format hint: "Departure date in YYYY-MM-DD format" -> "departure date")."""
    keys = {}
    for tool in tools:
        properties = ((tool.get("parameters") or {}).get("properties") or {}) if isinstance(tool, dict) else {}
        for name, spec in properties.items() if isinstance(properties, dict) else ():
            spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").replace(".", " ")
            phrases = {name.lower(), " ".join(spaced.lower().split())}
            description = spec.get("description", "") if isinstance(spec, dict) else ""
            head = re.split(r",|\(|;|\be\.g\.|\bin (?:YYYY|HH|hh|yyyy)|\bformat\b|\.\s", description)[0]
            head = re.sub(r"^(the|a|an)\s+", "", head.strip(), flags=re.I).lower()
            if 1 <= len(head.split()) <= 5:
                phrases.add(head)
            keys[f"{tool.get('name')}.{name}"] = {p for p in phrases if len(p) >= 3}
    return keys


def named_parameters(text, keys):
    lowered = text.lower()
    return {param for param, phrases in keys.items() if any(_has_phrase(lowered, p) for p in phrases)}


def intent(text, messages, tools):
    """"report", "ask", "decline" or "other": the job of a text answer in its dialogue."""
    if messages and messages[-1]["role"] == "tool":
        return "report"
    requests = _REQUEST.search(text) is not None
    if requests and named_parameters(text, parameter_keys(tools)):
        return "ask"
    if _DECLINE.search(text):
        return "decline"
    return "ask" if requests else "other"


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif value is not None and not isinstance(value, bool):
        yield value


def tool_facts(messages):
    """The values of the tool results just before the answer: numbers, and texts of 2+ characters."""
    import json

    facts = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        try:
            data = json.loads(message["content"])
        except (ValueError, TypeError):
            continue
        for leaf in _leaves(data):
            if isinstance(leaf, (int, float)):
                facts.append(float(leaf))
            elif isinstance(leaf, str) and len(leaf.strip()) >= 2:
                facts.append(" ".join(leaf.replace("_", " ").lower().split()))
    return facts


def _numbers(text):
    found = set()
    for match in _NUMBER.findall(text):
        try:
            found.add(float(match.replace(",", "")))
        except ValueError:
            pass
    return found


def stated(facts, text):
    """The facts that `text` states: numbers by value, text as a phrase (case, "_" and spacing
    ignored)."""
    numbers = _numbers(text)
    lowered = " ".join(text.replace("_", " ").lower().split())
    return {f for f in facts if (f in numbers if isinstance(f, float) else _has_phrase(lowered, f))}


def content_recall(predicted, gold):
    words = {w for w in _words(gold) if len(w) >= 3 and w not in _STOPWORDS}
    if not words:
        return 1.0
    return len(words & set(_words(predicted))) / len(words)


def text_matches(predicted, gold, messages, tools):
    """The rule for a text gold (see the module's doc); `predicted` is clean text, not a call."""
    job = intent(gold, messages, tools)
    if intent(predicted, messages, tools) != job:
        return False
    if job == "decline":
        return True
    if job == "ask":
        keys = parameter_keys(tools)
        asked = named_parameters(gold, keys)
        if asked:
            return asked <= named_parameters(predicted, keys)
    if job == "report":
        facts = stated(tool_facts(messages), gold)
        if facts:
            return len(stated(facts, predicted)) >= math.ceil(0.8 * len(facts))
    return content_recall(predicted, gold) >= 0.5


# --- verdicts ---------------------------------------------------------------------------------------

def is_correct(predicted, sample):
    """Whether `predicted` is a correct answer to `sample` (system, messages, answer)."""
    tools = tools_from_system(sample["system"]) or []
    names = [t["name"] for t in tools if isinstance(t.get("name"), str)]
    gold_calls = parse_answer(sample["answer"], names)
    kind = answer_kind(predicted, names)
    if gold_calls is not None:
        return kind == "call" and same_calls(parse_answer(predicted, names), gold_calls)
    return kind == "text" and text_matches(predicted, sample["answer"], sample["messages"], tools)


def equivalent(a, b, sample):
    """Two answers to `sample` that are one answer in different words or formatting: each is
    correct with the other as the gold. Such answers never form a preference pair."""
    return is_correct(a, {**sample, "answer": b}) and is_correct(b, {**sample, "answer": a})
