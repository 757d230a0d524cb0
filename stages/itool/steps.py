"""MCTS steps: an answer cut into one call of a call list, or one sentence of prose.

Text whose first non-space character is "[" is cut as a call list, one step per call; anything
else as prose, one step per sentence. A cut lies right after the separator that ends a step (the
top-level "," between calls; the ".", "!" or "?" ending a sentence, with any closing quotes), so
the whitespace after it leads the next step. That is where tokenizers cut too: " B(" and " I"
carry their leading space, so a step's tokens never straddle a cut (see `token_steps`).

The rule needs no lookahead beyond one character, so a half-generated answer is cut the way its
finished version will be: a call cut is final at its comma; a sentence cut once the whitespace
after it has appeared ("3.5" and "a.b" are never cut). After the "]" that closes a call list
there is no further cut: whatever follows belongs to the last step.

Tool names may hold quotes or brackets (ToolACE has "Bob's Tool" and "Weather (Detailed)"):
given the record's tool `names`, a known name at the start of a call is skipped as a whole.
"""

_QUOTES = ('"', "'")
_CLOSERS = "\"')]}\u201d\u2019\u00bb"  # may follow sentence-end punctuation: He said "no."
_ABBREVIATIONS = {"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "vs", "approx", "etc"}


def _skip_space(text, i):
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _known_name_end(text, i, names):
    """Index just past a known tool name starting at i and followed by "(", else i."""
    best = i
    for name in names:
        if name and text.startswith(name, i):
            after = _skip_space(text, i + len(name))
            if after < len(text) and text[after] == "(" and i + len(name) > best:
                best = i + len(name)
    return best


def _call_cuts(text, names):
    """Cuts of a (maybe partial) call list: after each top-level ","."""
    depth, quote = 0, None
    i = _skip_space(text, 0)
    at_call_start = False
    while i < len(text):
        if at_call_start:
            i = _known_name_end(text, _skip_space(text, i), names)
            at_call_start = False
            continue
        ch = text[i]
        i += 1
        if quote:
            if ch == "\\":
                i += 1  # the escaped character can be neither a quote nor a bracket
            elif ch == quote:
                quote = None
        elif ch in _QUOTES:
            quote = ch
        elif ch in "([{":
            depth += 1
            at_call_start = depth == 1
        elif ch in ")]}":
            depth -= 1
            if depth <= 0:  # the list is closed
                return
        elif ch == "," and depth == 1:
            yield i
            at_call_start = True


def _sentence_cuts(text):
    """Cuts of prose: after ".", "!" or "?" (and closing quotes) when whitespace follows."""
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch not in ".!?" or (ch == "." and _abbreviation_before(text, i - 1)):
            continue
        while i < len(text) and text[i] in ".!?" + _CLOSERS:
            i += 1
        if i < len(text) and text[i].isspace():
            yield i


def _abbreviation_before(text, dot):
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:dot].lstrip("\"'([").lower() in _ABBREVIATIONS


def is_call_list(text):
    """Whether `text` is cut as a call list (its first non-space character is "[")."""
    return text.lstrip().startswith("[")


def step_cuts(text, names=()):
    """Positions in `text` where a step ends and the next begins, in order."""
    return _call_cuts(text, names) if is_call_list(text) else _sentence_cuts(text)


def split_steps(text, names=()):
    """Cut an answer into steps whose concatenation is exactly `text`.

    Works on partial text too: the complete steps, then the unfinished remainder (if any).
    """
    steps, start = [], 0
    for end in step_cuts(text, names):
        steps.append(text[start:end])
        start = end
    if start < len(text):
        steps.append(text[start:])
    return steps


def first_step_end(text, start=0, names=()):
    """End of the first step of `text` that ends after `start` (None while it is unfinished)."""
    return next((end for end in step_cuts(text, names) if end > start), None)


# --- token ids ------------------------------------------------------------------------------------

def token_cut(text_lengths, cut, first):
    """The smallest token count k >= first whose decoded text reaches `cut`, else None.

    text_lengths[k] is the length of the text the first k tokens decode to, or None where that
    text is not a prefix of the whole (a character split across byte tokens): a cut there would
    straddle a token, so the step ends at the next clean boundary instead.
    """
    for k in range(first, len(text_lengths)):
        if text_lengths[k] is not None and text_lengths[k] >= cut:
            return k
    return None


def prefix_lengths(ids, decode):
    """text_lengths for `token_cut`: len(decode(ids[:k])) for k = 0..len(ids), None where unclean."""
    full = decode(ids)
    lengths = []
    for k in range(len(ids) + 1):
        text = decode(ids[:k])
        lengths.append(len(text) if full.startswith(text) else None)
    return lengths


def token_steps(ids, decode, names=()):
    """Cut the token ids of an answer into steps, each ending at the first token boundary at or
    after a text cut, so prefix ids + step ids are always the answer's own ids."""
    lengths = prefix_lengths(ids, decode)
    bounds = [0]
    for cut in step_cuts(decode(ids), names):
        k = token_cut(lengths, cut, bounds[-1] + 1)
        if k is None or k >= len(ids):
            break
        bounds.append(k)
    bounds.append(len(ids))
    return [ids[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
