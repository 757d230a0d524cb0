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
           facts the gold states (the tool result's values that appear in the gold: numbers by
           value, text case-insensitively), at least 80 % of them (all of up to four), each with
           the gold's polarity ("it is not sunny" does not state "sunny"), and speaks of failure
           only where the gold does; a gold that restates no value is matched by half of the
           content words of its first sentence;
  ask      a required value is missing: the gold asks for it, or says it is missing. Correct when
           the answer does too and names every parameter the gold names (by its name or its
           description's head), leaving out those the user's turns already name;
  decline  no function fits: the gold says so. Correct when the answer says so too (wording is
           free: there is nothing more to get right), without claiming to have done the task;
  other    anything else (chit-chat in ToolACE): correct when it holds half of the gold's content
           words.

A decline is recognised by what it says, not by a keyword: an inability of the assistant ("I
can't", "I have no way to", "that's not something I can help with"), or of the tools ("none of
the functions can", "there is no tool for", "isn't supported by my tools", "beyond the scope of
the available functions"). "Outside" alone, "cannot wait" or a refusal followed by a claim that
the task is done ("Your taxi is booked") are not declines. tests/verdict_corpus.jsonl holds the
hand-written cases (every job, both ways) that the rule is held to.

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
_TOOLS = r"(?:functions?|tools?|apis?|capabilit(?:y|ies))"
_TOOLS_DECLINE = re.compile(  # the tools cannot serve the request
    r"\bnone of (?:the|my|these|those|them|our)\b"
    r"|\bno (?:\w+ ){0,2}" + _TOOLS + r"\b(?! (?:call )?(?:is |was )?needed)"
    r"|\bquestion lacks the parameters required by the (?:available |provided |listed )?functions?\b"
    r"|\bthey (?:can ?not|can't|do not|don't) (?:fulfil|fulfill|help|serve|handle|be used|do|support|cover)\b"
    r"|\b" + _TOOLS + r" (?:\w+ ){0,6}(?:do(?:es)? not|don't|doesn't|can ?not|can't|are not able to|is not able to)"
    r" (?:\w+ )?(?:support|provide|cover|include|allow|offer|handle|do|perform|help|retrieve|fetch|give|have|let|enable"
    r"|book|serve|match|apply|relate|deal|address|fit)"
    r"|\b(?:is|are|'s|'re)(?: not|n't) (?:supported|possible|covered|something (?:i|we) can)"
    r"|\bnot (?:supported|covered) by\b|\bnot something (?:i|we) can\b"
    r"|\b(?:beyond|outside)(?: of)? (?:what|my|our|the (?:scope|capabilit|abilit|reach|range|provided|available|given))"
    r"|\bcan ?not (?:be )?(?:make (?:a|any|the) (?:function )?call|fulfil|fulfill|done|performed|fulfilled|completed)",
    re.I)
_SELF_DECLINE = re.compile(  # the assistant cannot
    r"\b(?:i|we)(?:'m| am|'re| are)(?: \w+)? (?:unable|not able) to\b"
    r"|\b(?:i|we) (?:\w+ )?(?:can ?not|can't|could ?not|couldn't|won't be able to|have no way to|have no means to)"
    r"(?! wait\b)(?! help (?:but|it)\b)(?! find (?!(?:a|an|any|the) (?:\w+ )?(?:function|tool|api)))"
    r"|\b(?:i|we) (?:\w+ )?do(?: not|n't) have (?:[\w-]+ ){0,3}?(?:way|means|ability|access|functions?|tools?|apis?"
    r"|capability|capabilities|option|permission)"
    r"|\bno way (?:for me |for us )?to\b|\bunable to (?:help|assist|do|perform|fulfil|fulfill|complete|process|handle)",
    re.I)
_DONE = re.compile(  # a claim that the task is done: no decline says it
    r"\b(?:has|have|had) been (?:\w+ )?(?:booked|scheduled|sent|created|completed|done|set|reserved|placed|converted"
    r"|updated|added|cancell?ed|ordered|submitted|processed|made|arranged|confirmed)\b"
    r"|\b(?:is|are) (?:now )?(?:booked|scheduled|reserved|confirmed|on (?:its|their) way)\b"
    r"|\bi(?:'ve| have) (?:\w+ )?(?:booked|sent|created|scheduled|done|completed|made|placed|set up|reserved|ordered)\b"
    r"|\bsuccessfully\b", re.I)
_REQUEST = re.compile(
    r"\?|\b(?:please|kindly) (?:provide|specify|give|tell|share|let me know|confirm|send|enter|clarify|indicate|supply)"
    r"|\bcould you\b|\bcan you (?:please )?(?:provide|tell|give|specify|share|confirm)\b|\blet me know\b"
    r"|\bneeds? (?:the|to know|more|your)\b|\brequires? (?:the|more|your|additional)\b"
    r"|\bmay i (?:know|have|ask)\b|\bi(?:'d| would) need\b", re.I)
_MISSING = re.compile(  # a required value said to be missing (ToolACE's asks often say only that)
    r"\bmissing\b|\blacks?\b|\blacking\b|\b(?:is|are) required\b|\brequires? (?:the|a|an|your|you)\b"
    r"|\brequired (?:argument|parameter|field|information|value|detail|input)s?\b"
    r"|\bnot (?:been )?(?:provided|specified|given|mentioned|included|supplied)\b"
    r"|\b(?:did ?n[o']t|didn't|do(?:es)? ?n[o']t|don't|doesn't) (?:provide|specify|give|mention|supply)\b", re.I)
_CLOSING = re.compile(  # an offer to help further closes many answers; it asks for nothing
    r"\bfeel free\b|\bdon't hesitate\b|\bdo not hesitate\b|\blet me know if\b"
    r"|\bif you (?:have|need|want|would like|'d like)\b", re.I)
_FAILURE = re.compile(
    r"\b(?:could ?n[o']t|couldn't|can ?not|can't|failed|fails|failure|unable|not able|wasn't able|error|unsuccessful)\b",
    re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|without)\b|n't\b", re.I)
_CLAUSE = re.compile(r"[.;:!?\n]|,\s+(?:but|and|while|whereas)\b|\s(?:but|whereas|while|however)\s", re.I)
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
    bytes (U+FFFD), no unassigned or private-use characters, no special-token strings, and no
    run of letters glued together from two scripts ("𒄯needforthisresult": the tail of a 262k
    vocabulary, never a word of any language)."""
    if "\ufffd" in text or _SPECIAL.search(text):
        return False
    if not all(ch in "\n\t\r" or unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn") for ch in text):
        return False
    # runs of letters; Greek letters stand in Latin words as symbols ("Δv", "µm")
    return not any(len(scripts(word) - {"GREEK"}) > 1 for word in re.findall(r"[^\W\d_]+", text))


_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH", "IDEOGRAPHIC"}


def scripts(word):
    """The scripts of a word's letters, by the first word of their Unicode names (the East Asian
    scripts, which mix within a word, as one)."""
    found = set()
    for ch in word:
        if unicodedata.category(ch).startswith("L") and ord(ch) > 0x24F:  # Latin letters and their accents: Latin
            script = unicodedata.name(ch, "UNKNOWN").split()[0].split("-")[0]
            found.add("CJK" if script in _EAST_ASIAN else script)
        elif ch.isalpha():
            found.add("LATIN")
    return found


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
    return bool(phrase) and re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"s?(?![a-z0-9])", text) is not None


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


def _plain(text):
    return text.replace("\u2019", "'").replace("\u2018", "'")


def sentences(text):
    """`text` cut after each sentence's end and at line breaks (a list item is a sentence)."""
    return [part for part in re.split(r"(?<=[.!?])\s+|\n+", text) if part.strip()]


def asked_parameters(text, keys):
    """The parameters `text` asks for or says are missing: those named in a sentence that asks
    (not a closing offer of more help) or says a value is missing."""
    return {param for part in sentences(_plain(text)) if not _CLOSING.search(part)
            and (_REQUEST.search(part) or _MISSING.search(part)) for param in named_parameters(part, keys)}


def intent(text, messages, tools):
    """"report", "ask", "decline" or "other": the job of a text answer in its dialogue. A text
    that says no tool fits declines, even where it also names what the request lacks; one that
    asks for a parameter, or says it is missing, asks; "I can't" alone declines."""
    if messages and messages[-1]["role"] == "tool":
        return "report"
    text = _plain(text)
    done = _DONE.search(text) is not None
    if _TOOLS_DECLINE.search(text) and not done:
        return "decline"
    requests = any(_REQUEST.search(part) for part in sentences(text) if not _CLOSING.search(part))
    if asked_parameters(text, parameter_keys(tools)):
        return "ask"
    if _SELF_DECLINE.search(text) and not done:
        return "decline"
    return "ask" if requests and not done else "other"


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


def _negated(before):
    """Whether the words just before a fact (up to three, within its clause) negate it."""
    clause = _CLAUSE.split(before)[-1]
    return _NEGATION.search(" ".join(clause.split()[-3:])) is not None


def stated(facts, text):
    """{fact: negated} for the facts that `text` states: numbers by value, text as a phrase (case,
    "_" and spacing ignored). A fact is negated ("it is not sunny") when every mention of it is."""
    text = " ".join(_plain(text).replace("_", " ").split())
    lowered = text.lower()
    mentions = {}
    for value, start in _number_mentions(text):
        mentions.setdefault(value, []).append(start)
    found = {}
    for f in facts:
        if isinstance(f, float):
            starts = mentions.get(f, [])
        else:
            starts = [m.start() for m in re.finditer(r"(?<![a-z0-9])" + re.escape(f) + r"(?![a-z0-9])", lowered)] if f else []
        if starts:
            found[f] = all(_negated(text[:start]) for start in starts)
    return found


def _stem(word):
    for suffix in ("ing", "ed", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[:-len(suffix)]
    return word


def content_words(text):
    return {_stem(w) for w in _words(text) if len(w) >= 3 and w not in _STOPWORDS}


def content_recall(predicted, gold):
    words = content_words(gold)
    if not words:
        return 1.0
    return len(words & content_words(predicted)) / len(words)


def unsupported(predicted, messages, gold):
    """What a report states that neither the exchange it answers (the last user turn, the calls
    and their results) nor the gold holds: numbers (list markers aside) and capitalised words
    inside a sentence ("matches 18" from an earlier search, "For Nigeria: 182.5 cups" from an
    earlier request). A report restates; it has no source for anything else."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    source = " ".join([gold] + [m["content"] for m in messages[last_user:]])
    source_numbers = {value for value, _ in _number_mentions(source)}
    text = re.sub(r"(?m)^\s*\d+[.)]\s", " ", _plain(predicted))  # "1. ", "2) ": list markers
    extra = [value for value, _ in _number_mentions(text) if value not in source_numbers]
    words = set(_words(source))
    for part in sentences(text):
        for word in re.findall(r"(?<=\s)[A-Z][A-Za-z]{2,}\b", part.strip()):  # not the sentence's first word
            if word.lower() not in words:
                extra.append(word)
    return extra


def _number_mentions(text):
    """(value, start) of every number in `text`."""
    found = []
    for match in _NUMBER.finditer(text):
        try:
            found.append((float(match.group().replace(",", "")), match.start()))
        except ValueError:
            pass
    return found


def first_sentence(text):
    """The gold's first sentence with three content words or more ("Sure!" says nothing), else
    the whole text."""
    return next((part for part in sentences(text) if len(content_words(part)) >= 3), text)


def text_matches(predicted, gold, messages, tools):
    """The rule for a text gold (see the module's doc); `predicted` is clean text, not a call."""
    job = intent(gold, messages, tools)
    if intent(predicted, messages, tools) != job:
        return False
    if job == "decline":
        return True
    if job == "ask":
        keys = parameter_keys(tools)
        named = asked_parameters(gold, keys)
        # a gold that also names the values the user gave ("`hls_url` (provided), `output_format`
        # (missing)") asks only for the others
        given = named_parameters(" ".join(m["content"] for m in messages if m["role"] == "user"), keys)
        asked = (named - given) or named
        if asked:
            return asked <= asked_parameters(predicted, keys)
    if job == "report":
        if (_FAILURE.search(_plain(predicted)) is None) != (_FAILURE.search(_plain(gold)) is None):
            return False  # one says the call failed, the other does not
        if unsupported(predicted, messages, gold):
            return False  # a value or a name that neither the dialogue nor the gold holds
        facts = stated(tool_facts(messages), gold)
        if facts:
            said = stated(list(facts), predicted)
            agreeing = [f for f, negated in facts.items() if f in said and said[f] == negated]
            return len(agreeing) >= math.ceil(0.8 * len(facts))
        return content_recall(predicted, first_sentence(gold)) >= 0.5
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
