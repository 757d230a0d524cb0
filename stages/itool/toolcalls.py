"""Function-call answers: parse, print and compare (steps.py cuts them into MCTS steps).

An assistant answer (ToolACE data, BFCL benchmark) is either plain text or a call list:

    calls := "[" call ("," call)* "]"
    call  := name "(" [arg ("," arg)*] ")"    name: letters, digits, spaces, "_", ".", "-"
    arg   := ident "=" value                   ident: letters, digits, "_", ".", "-", "$"
                                               (a letter, "_" or "$" first)
    value := string | number | bool | null | "[" [value ("," value)*] "]"
           | "{" [string ":" value ("," string ":" value)*] "}"

Whitespace between tokens is free. Strings take double or single quotes and JSON escapes (an
unknown escape such as "\\d" is kept verbatim, as Python does). A number with "." or an exponent
is a float, otherwise an int. bool is True/False/true/false, null is None/null. An empty list
"[]" is not a call list: like BFCL, we read it as "no call", i.e. a text answer.
Function names may contain spaces and dashes, so this is not Python and `ast.parse` cannot read
it; a small recursive-descent parser over the string with a position index does instead.

ToolACE's tool names go further: "/forex/signal", "Get Users' Messages", "Current Weather
Conditions (Detailed)", "Is Mobile?", "Search & Product Details". No grammar for names can tell
where such a name ends, but the record's own tool list can: given `names`, a known name at the
start of a call, followed by optional spaces and "(", is the call's name (the longest such name
wins); any other name is read by the grammar above. Argument names take "-" and "$" for the same
reason ("sort-by", "$expand").
"""
import json
import math
import re
from collections import Counter
from typing import NamedTuple


class Call(NamedTuple):
    name: str
    args: dict  # insertion-ordered; values are str/int/float/bool/None/list/dict


class CallSyntaxError(ValueError):
    """Text that is not a call list; `pos` is the 0-based character position of the problem."""

    def __init__(self, message, pos):
        super().__init__(f"{message} at position {pos}")
        self.pos = pos


_WORDS = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/",
            "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_QUOTES = ('"', "'")


def _is_digit(ch):
    return ch.isdigit() and ch.isascii()  # isdigit() alone would also take "²"


def _is_name_char(ch):
    return ch.isalnum() or ch in "_.- "


def _is_ident_char(ch):
    return ch.isalnum() or ch in "_."


def _is_arg_name_char(ch):
    return ch.isalnum() or ch in "_.-$"


def _is_arg_name(s):
    return (s[:1].isalpha() or s[:1] in ("_", "$")) and all(map(_is_arg_name_char, s))


class _Parser:
    def __init__(self, text, names=()):
        self.text = text
        self.pos = 0
        self.names = sorted({n for n in names if n}, key=len, reverse=True)  # "A (B)" before "A"

    def fail(self, message):
        raise CallSyntaxError(message, self.pos)

    def skip_while(self, accept):
        while self.pos < len(self.text) and accept(self.text[self.pos]):
            self.pos += 1

    def peek(self):
        """Skip whitespace, then return the next character ("" at the end) without taking it."""
        self.skip_while(str.isspace)
        return self.text[self.pos:self.pos + 1]

    def take(self, chars):
        """Take the next character, no whitespace skipped, if it is one of `chars`."""
        if self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
            return True
        return False

    def expect(self, token):
        if self.peek() != token:
            self.fail(f"expected {token!r}")
        self.pos += 1

    def sequence(self, close, item, allow_empty=True):
        """Comma-separated items up to `close`; the opening bracket is already taken."""
        items = []
        if allow_empty and self.peek() == close:
            self.pos += 1
            return items
        while True:
            items.append(item())
            if self.peek() == close:
                self.pos += 1
                return items
            if self.peek() != ",":
                self.fail(f"expected ',' or {close!r}")
            self.pos += 1

    def calls(self):
        self.expect("[")
        calls = self.sequence("]", self.call, allow_empty=False)
        if self.peek():
            self.fail("expected end of text")
        return calls

    def call(self):
        self.peek()
        name = self.known_name()
        if name is None:
            start = self.pos
            self.skip_while(_is_name_char)
            name = self.text[start:self.pos].rstrip(" ")  # in "Name (" the space is not the name's
            if not name:
                self.fail("expected a function name")
        self.expect("(")
        args = {}
        self.sequence(")", lambda: self.arg(args))
        return Call(name, args)

    def known_name(self):
        """A name of `names` at pos that "(" follows (spaces between allowed), taken; else None."""
        for name in self.names:
            if self.text.startswith(name, self.pos):
                after = self.pos + len(name)
                while after < len(self.text) and self.text[after].isspace():
                    after += 1
                if self.text[after:after + 1] == "(":
                    self.pos += len(name)
                    return name
        return None

    def arg(self, args):
        self.peek()
        start = self.pos
        key = self.arg_name()
        if key in args:  # an error in Python, and BFCL reads these answers as Python
            self.pos = start
            self.fail(f"duplicate argument {key!r}")
        self.expect("=")
        args[key] = self.value()

    def arg_name(self):
        start = self.pos
        if not (self.text[start:start + 1].isalpha() or self.take("_$")):
            self.fail("expected an argument name")
        self.skip_while(_is_arg_name_char)
        return self.text[start:self.pos]

    def word(self):
        """A bare word such as true or None."""
        start = self.pos
        self.skip_while(_is_ident_char)
        return self.text[start:self.pos]

    def value(self):
        ch = self.peek()
        start = self.pos
        if ch in _QUOTES:
            return self.string()
        if ch == "[":
            self.pos += 1
            return self.sequence("]", self.value)
        if ch == "{":
            self.pos += 1
            entries = {}
            self.sequence("}", lambda: self.entry(entries))
            return entries
        if ch == "-" or _is_digit(ch):
            return self.number()
        if ch.isalpha():
            word = self.word()
            if word in _WORDS:
                return _WORDS[word]
        self.pos = start
        self.fail("expected a value")

    def entry(self, entries):
        if self.peek() not in _QUOTES:
            self.fail("expected a string key")
        key = self.string()
        self.expect(":")
        entries[key] = self.value()  # a repeated key: the last one wins, as in JSON and Python

    def number(self):
        start = self.pos
        self.take("-")
        self.digits()
        is_float = self.take(".")
        if is_float:
            self.skip_while(_is_digit)  # maybe none: "2." is a float in Python
        if self.take("eE"):
            is_float = True
            self.take("+-")
            self.digits()
        literal = self.text[start:self.pos]
        if not is_float:
            return int(literal)
        if not math.isfinite(float(literal)):  # 1e999 could not be printed back
            self.pos = start
            self.fail("number out of range")
        return float(literal)

    def digits(self):
        start = self.pos
        self.skip_while(_is_digit)
        if self.pos == start:
            self.fail("expected a digit")

    def string(self):
        quote = self.text[self.pos]
        self.pos += 1
        chars = []
        while not self.take(quote):
            if self.pos >= len(self.text):
                self.fail(f"expected closing {quote}")
            ch = self.text[self.pos]
            self.pos += 1
            chars.append(self.escape() if ch == "\\" else ch)
        return "".join(chars)

    def escape(self):
        """What an escape stands for; pos is just past the backslash."""
        ch = self.text[self.pos:self.pos + 1]
        if not ch:
            self.fail("expected an escaped character")
        self.pos += 1
        if ch != "u":
            return _ESCAPES.get(ch, "\\" + ch)
        code = self.hex4()
        # JSON writes a character beyond the BMP as a surrogate pair: \ud83d\ude00
        if 0xD800 <= code < 0xDC00 and self.text.startswith("\\u", self.pos):
            self.pos += 2
            low = self.hex4()
            if 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
            self.pos -= 6  # not a pair after all: read the second escape on its own
        return chr(code)

    def hex4(self):
        digits = self.text[self.pos:self.pos + 4]
        if len(digits) < 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            self.fail("expected 4 hex digits")
        self.pos += 4
        return int(digits, 16)


def parse_calls(text: str, names=None) -> list[Call]:
    """The calls of `text`, which must be exactly one call list; raises CallSyntaxError.

    `names`, the record's tool names, lets a call name hold any character (see the module's doc).
    """
    return _Parser(text, names or ()).calls()


def parse_answer(text: str, names=None) -> list[Call] | None:
    """The calls if `text` is a call list, else None: a text answer. Never raises."""
    try:
        return parse_calls(text, names)
    except (ValueError, RecursionError):  # ValueError also covers ints of > 4300 digits
        return None


_OPENERS = "[{(<"
_EMPTY_LIST = re.compile(r"\[\s*\]")
_BARE_CALL = re.compile(r"[^\W\d][\w.-]*\(")  # a letter or "_" first: "3(a)" is prose


def looks_like_call(text: str) -> bool:
    """Whether `text` is an attempted call list, well-formed or not.

    The rule: its first non-space character opens a bracket ("[", "{", "(" or "<"), or it begins
    with a bare function name and "(" (letters, digits, "_", ".", "-": `get_weather(city="Rome")`).
    The empty list "[]" is not an attempt: it means "no call", as in BFCL. In ToolACE, text answers
    begin with a word, markdown ("#", "**", "1.") or a quote, while call attempts begin with a
    bracket: the grammar's "[Name(...)]" and the ad-hoc syntaxes some records ask for instead
    ("{Name|{'k'-"v"}}", "(<Name>=>{...})", "[Name:['k':v]]"). So an answer that fails to parse and
    opens a bracket is a malformed call, not prose. Prose that opens with a bracket (a markdown link
    "[see here](...)", an aside "(Note: ...)") is misread as a call: ToolACE has none.
    """
    head = text.strip()
    if head and head[0] in _OPENERS:  # "" is in every string: test the first character
        return not _EMPTY_LIST.fullmatch(head)
    return bool(_BARE_CALL.match(head))


def format_value(value) -> str:
    """Canonical printing of one value; parse_calls reads it back to an identical value."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot print non-finite float {value!r}")
        return repr(float(value))  # shortest round-tripping form: 2.5, 1e-07, -0.0, 2.0
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(format_value, value)) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys must be strings")
        entries = (f"{format_value(k)}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(entries) + "}"
    raise TypeError(f"cannot print a {type(value).__name__}")


def format_calls(calls: list[Call], names=None) -> str:
    """Canonical call list: [Name(a="x", b=2.5), Other()].

    A name outside the grammar (say "/forex/signal") prints only when it is one of `names`, and
    reads back only with them: parse_calls(format_calls(calls, names), names) == calls.
    """
    if not calls:
        raise ValueError("a call list needs at least one call")  # "[]" would read back as text
    known = set(names or ())
    return "[" + ", ".join(_format_call(call, known) for call in calls) + "]"


def _format_call(call, known):
    name, args = call
    in_grammar = all(map(_is_name_char, name))
    printable = name and name.strip() == name and (in_grammar or (name in known and name.isprintable()))
    if not printable:
        hint = "" if in_grammar or name in known else " (not in the grammar: pass the tool names)"
        raise ValueError(f"invalid function name {name!r}{hint}")
    for key in args:
        if not _is_arg_name(key):
            raise ValueError(f"invalid argument name {key!r}")
    return f"{name}(" + ", ".join(f"{k}={format_value(v)}" for k, v in args.items()) + ")"


def canonical(value) -> str:
    """A hashable key that is equal for equal values: 2 == 2.0, but True != 1 and "2" != 2.

    Python itself says True == 1 == 1.0, so plain values cannot serve as keys; the key is the
    canonical printing of the value with integral floats made ints and dict keys sorted.
    """
    return format_value(_normalised(value))


def _normalised(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)  # also makes -0.0 equal to 0
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {key: _normalised(value[key]) for key in sorted(value)}
    return value


def same_calls(a: list[Call], b: list[Call]) -> bool:
    """Whether a and b hold the same calls, in any order (parallel calls are unordered)."""
    def key(call):
        return call[0], canonical(call[1])
    return Counter(map(key, a)) == Counter(map(key, b))


def answers_match(predicted: str, gold: str, names=None) -> bool:
    """Outcome check: the same calls as a gold call list, or any text for a gold text answer.

    `names` (the record's tool names) is passed to the parser for both answers.
    """
    gold_calls = parse_answer(gold, names)
    predicted_calls = parse_answer(predicted, names)
    if gold_calls is None:
        return predicted_calls is None
    return predicted_calls is not None and same_calls(predicted_calls, gold_calls)
