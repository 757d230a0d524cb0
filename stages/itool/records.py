"""ToolACE-format records: the schema, validation, tool lists and training samples.

A record is {"system": str, "conversations": [{"from": "user"|"assistant"|"tool", "value": str}]}.
Every assistant turn is one training sample whose context is the system text plus the turns
before it. The system text holds the record's tool list in one of ToolACE's layouts:

- a JSON array of {"name", "description", "parameters"} after "Here is a list of functions in JSON
  format that you can invoke:" (or its Chinese twin; "[]" means no tools), or anywhere else;
- after "Here are the tools you can use:", up to "Please use the following format to call the
  tool:", a sequence of tool blocks, each in any of: a JSON object keyed "tool_name" (or an array
  of them), an HTML <table>, a LaTeX tabular, `tool_name:` lines (YAML-like), a markdown list of
  `- **tool_name**:` items, or XML-like `<tool_name>` tags. Every block gives "tool_name",
  "definition", "arguments" and "required" (and "results", not read); they become tool dicts of
  the JSON layout. A record with no tool list at all is a tool-less dialogue.
"""
import ast
import itertools
import json
import re

from itool.files import RecordError  # noqa: F401 (where the stages import it from)
from itool.toolcalls import looks_like_call, parse_answer, parse_calls

TOOLS_INTRO = "Here is a list of functions in JSON format that you can invoke:"
JSON_INTROS = (TOOLS_INTRO, "以下是可以调用的工具的JSON格式列表:")
LAYOUT_INTRO = "Here are the tools you can use:"
LAYOUT_END = "Please use the following format to call the tool:"
ROLES = ("user", "assistant", "tool")


def render_system(tools):
    """System text in the ToolACE style: instructions, then the tool list as JSON."""
    return (
        "You are an expert in composing function calls. You are given a request and a set of "
        "possible functions. Answer with the function call(s) that fulfil the request, written "
        "as [func_name(param=value, ...), ...] and nothing else. If no function fits the "
        "request, or a required parameter is missing, say so in plain text instead.\n"
        f"{TOOLS_INTRO}\n{json.dumps(tools, ensure_ascii=False)}\n"
    )


# --- tool lists ----------------------------------------------------------------------------------

def tools_from_system(system):
    """The tool list of a system text as tool dicts with at least a "name" ([] when it has none).

    Raises RecordError when a tool list is announced but cannot be read in any layout.
    """
    return read_tool_list(system)[0]


def tool_names(system):
    """The names of a system text's tools, in list order (what parse_calls takes as `names`)."""
    return [tool["name"] for tool in tools_from_system(system)]


def read_tool_list(system):
    """(tools, chars): the tool list and its length in characters as written in the system text
    (the difficulty criterion "string length of the tool list"); ([], 0) when it has none."""
    for intro in JSON_INTROS:
        at = system.find(intro)
        if at >= 0:
            return _json_after(system, at + len(intro), intro)
    at = system.find(LAYOUT_INTRO)
    if at >= 0:
        start = at + len(LAYOUT_INTRO)
        end = system.find(LAYOUT_END, start)
        section = system[start:end if end >= 0 else len(system)]
        return _read_blocks(section), len(section.strip())
    return _json_anywhere(system)


def _is_tool_array(value):
    return isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] for t in value)


def _json_after(system, start, intro):
    pos = _skip_space(system, start)
    try:
        value, end = json.JSONDecoder().raw_decode(system, pos)
    except json.JSONDecodeError as e:
        raise RecordError(f"the tool list after {intro!r} is not valid JSON ({e.msg} at character {e.pos})",
                          "unreadable tool list") from None
    if not _is_tool_array(value):
        raise RecordError(f"the tool list after {intro!r} is not a JSON array of objects with a \"name\"",
                          "unreadable tool list")
    return value, end - pos


def _json_anywhere(system):
    """Other phrasings: the first '[' that decodes to a non-empty array of named objects."""
    decoder = json.JSONDecoder()
    pos = system.find("[")
    while pos >= 0:
        try:
            value, end = decoder.raw_decode(system, pos)
        except json.JSONDecodeError:
            value = None
        if value and _is_tool_array(value):
            return value, end - pos
        pos = system.find("[", pos + 1)
    return [], 0


def _skip_space(text, pos):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _line_at(text, pos):
    end = text.find("\n", pos)
    return text[pos:] if end < 0 else text[pos:end]


def _read_blocks(section):
    """The tools of a "Here are the tools you can use:" section: blocks in any layout, in order."""
    tools, pos = [], _skip_space(section, 0)
    first = pos
    while pos < len(section):
        reader = next((read for start, read in _BLOCK_READERS if start.match(section, pos)), None)
        if reader is None:
            line = section.count("\n", first, pos) + 1
            raise RecordError(f"cannot read the tool list: line {line} of it, {_line_at(section, pos)!r:.80}, "
                              "starts no known layout", "unreadable tool list")
        block_tools, pos = reader(section, pos)
        tools += block_tools
        pos = _skip_space(section, pos)
    return tools


def _tool(name, definition, arguments, required):
    """A tool dict of the JSON layout from the fields every other layout gives."""
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"a tool without a name in the tool list: {name!r:.80}", "unreadable tool list")
    tool = {"name": name.strip(), "description": definition if isinstance(definition, str) else ""}
    if isinstance(arguments, list) and all(isinstance(a, dict) and "parameter_name" in a for a in arguments):
        properties = {a["parameter_name"]: {k: v for k, v in a.items() if k != "parameter_name"} for a in arguments}
        tool["parameters"] = {"type": "dict", "properties": properties,
                              "required": required if isinstance(required, list) else []}
    return tool  # arguments that cannot be read leave "parameters" out: a call needs only the name


def _literal(text):
    """A Python literal cell of an HTML or LaTeX table ([{'parameter_name': ...}]), None if unreadable."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        return None


def _read_json_block(section, pos):
    """{"tool_name": ..., "definition": ..., "arguments": [...], ...}, or an array of them."""
    try:
        value, end = json.JSONDecoder().raw_decode(section, pos)
    except json.JSONDecodeError as e:
        raise RecordError(f"a JSON tool in the tool list is not valid JSON ({e.msg}): {_line_at(section, pos)!r:.80}",
                          "unreadable tool list") from None
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise RecordError(f"a JSON tool in the tool list is not an object: {_line_at(section, pos)!r:.80}",
                          "unreadable tool list")
    return [_tool(item.get("tool_name", item.get("name")), item.get("definition", item.get("description")),
                  item.get("arguments"), item.get("required")) for item in items], end


def _block_end(section, pos, closing):
    end = section.find(closing, pos)
    if end < 0:
        raise RecordError(f"a table in the tool list has no {closing!r}: {_line_at(section, pos)!r:.80}",
                          "unreadable tool list")
    return end + len(closing)


def _read_table_rows(header, rows):
    """Tools of table rows whose columns the header names (tool_name, definition, arguments, ...)."""
    tools = []
    for cells in rows:
        if len(cells) != len(header):
            raise RecordError(f"a table row of the tool list has {len(cells)} cells for {len(header)} columns: "
                              f"{' | '.join(cells)!r:.80}", "unreadable tool list")
        row = dict(zip(header, cells))
        tools.append(_tool(row.get("tool_name"), row.get("definition"), _literal(row.get("arguments", "")),
                           _literal(row.get("required", ""))))
    return tools


def _read_html_block(section, pos):
    """<table> with a <th> header row and one <tr><td>... row per tool."""
    end = _block_end(section, pos, "</table>")
    rows = re.findall(r"<tr>(.*?)</tr>", section[pos:end], re.S)
    cells = [[c.strip() for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S)] for row in rows]
    if not cells or "tool_name" not in cells[0]:
        raise RecordError(f"an HTML table in the tool list has no tool_name column: {_line_at(section, pos)!r:.80}",
                          "unreadable tool list")
    return _read_table_rows(cells[0], cells[1:]), end


def _latex_cells(row, header):
    """Cells of a tabular row. Text may hold " & " too, which makes more pieces than columns: the
    first cutting whose literal columns (arguments, required, results) all read wins, so a
    definition or a literal holding " & " stays whole (a name holding it would be cut short)."""
    pieces = row.split(" & ")
    literal_columns = [i for i, name in enumerate(header) if name in ("arguments", "required", "results")]
    if len(pieces) <= len(header):
        return [p.strip() for p in pieces]
    for cuts in itertools.combinations(range(1, len(pieces)), len(header) - 1):
        bounds = (0,) + cuts + (len(pieces),)
        cells = [" & ".join(pieces[a:b]).strip() for a, b in zip(bounds, bounds[1:])]
        if all(not cells[i] or _literal(cells[i]) is not None for i in literal_columns):
            return cells
    return pieces  # the row's cell count then fails, naming it


def _read_latex_block(section, pos):
    r"""\begin{tabular}{|l|...|} \hline header \\ \hline row \\ \hline ... \end{tabular}"""
    end = _block_end(section, pos, "\\end{tabular}")
    inner = section[pos:end - len("\\end{tabular}")].partition("\n")[2]
    # a row ends with "\\" (and "\hline") at the end of its line; "\\" inside a cell is an escape
    pieces = re.split(r"\\\\[ \t]*(?:\\hline)?[ \t]*(?:\n|$)", inner)
    rows = [re.sub(r"^(?:\s*\\hline)+", "", piece).strip() for piece in pieces]
    rows = [row for row in rows if row]
    if not rows or "tool_name" not in rows[0]:
        raise RecordError(f"a LaTeX table in the tool list has no tool_name column: {_line_at(section, pos)!r:.80}",
                          "unreadable tool list")
    header = [c.strip() for c in rows[0].split("&")]
    return _read_table_rows(header, [_latex_cells(row, header) for row in rows[1:]]), end


# One line of a line-based block: (column, key, value), key None for a bare list item. The column
# is where the key starts after indentation and any "- " bullet, so nesting compares across layouts.
_XML_LINE = re.compile(r"(\s*)<([\w$.-]+)>(.*?)(?:</\2>)?\s*$")
_MARKDOWN_LINE = re.compile(r"(\s*(?:- )?)\*\*(.+?)\*\*:\s?(.*)$")
_YAML_LINE = re.compile(r"(\s*(?:- )?)([A-Za-z_$][\w$.-]*):(?:\s+(.*))?$")
_BARE_LINE = re.compile(r"(\s*(?:- )?)(.*?)\s*$")


def _line_entry(line):
    if re.match(r"\s*</[\w$.-]+>\s*$", line):
        return None  # an XML closing tag
    for pattern in (_XML_LINE, _MARKDOWN_LINE, _YAML_LINE):
        m = pattern.match(line)
        if m:
            return len(m.group(1)), m.group(2), (m.group(3) or "").strip()
    m = _BARE_LINE.match(line)
    return len(m.group(1)), None, m.group(2)


def _read_line_block(section, pos):
    """`tool_name: X` / `- **tool_name**: X` / `<tool_name>X</tool_name>` and the lines under it, up to
    a blank line or the start of another block."""
    lines, end = [], pos
    while end < len(section):
        line = _line_at(section, end)
        # an empty line ends the block; a line of spaces does not (ToolACE has them inside blocks)
        if not line or (lines and any(start.match(section, end) for start, _ in _BLOCK_READERS)):
            break
        lines.append(line)
        end += len(line) + 1
    entries = [e for e in map(_line_entry, lines) if e is not None]
    top = entries[0][0]
    fields, arguments, required, part = {}, [], [], None
    column_of_arguments = None  # deeper "parameter_name" lines describe a dict argument's fields
    for column, key, value in entries:
        if key is not None and column == top:
            part = key
            fields.setdefault(key, value)
            if key == "required" and value.startswith("["):
                required += _literal(value) or []
        elif part == "arguments" and key == "parameter_name" and column_of_arguments in (None, column):
            column_of_arguments = column
            arguments.append({"parameter_name": value})
        elif part == "arguments" and key in ("description", "type") and arguments \
                and column == column_of_arguments and key not in arguments[-1]:
            arguments[-1][key] = value
        elif part == "required" and key is None and value:
            required.append(value)
    return [_tool(fields.get("tool_name"), fields.get("definition"), arguments, required)], min(end, len(section))


_BLOCK_READERS = (
    (re.compile(r'(?:\[\s*)?\{\s*"'), _read_json_block),
    (re.compile(r"<table\b"), _read_html_block),
    (re.compile(r"\\begin\{tabular\}"), _read_latex_block),
    (re.compile(r"(?:- \*\*tool_name\*\*:|tool_name:|<tool_name>)"), _read_line_block),
)


# --- records and samples -------------------------------------------------------------------------

def validate_record(record, where):
    """Raise RecordError (naming `where`, e.g. "data.jsonl: record 12", and the turn) if `record` is
    malformed: wrong structure, a tool list no layout reads, an assistant turn that attempts a call
    list (toolcalls.looks_like_call) the grammar cannot parse, or a call to a function the record's
    tool list does not hold."""
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
    try:
        names = tool_names(record["system"])
    except RecordError as e:
        raise RecordError(f"{where}: {e}", e.reason) from None
    own_syntax = LAYOUT_END in record["system"]
    for t, turn in enumerate(turns):
        if turn["from"] == "assistant":
            check_answer(turn["value"], names, f"{where}: turn {t}", own_syntax)


def check_answer(answer, names, where, own_syntax=False):
    """Raise RecordError unless `answer` is text or a call list of calls to `names`. `own_syntax`:
    the system text prescribes a call syntax of its own, which the error then names as the cause."""
    if not looks_like_call(answer):
        return
    try:
        calls = parse_calls(answer, names)
    except (ValueError, RecursionError) as e:  # ValueError: CallSyntaxError, or a 5,000-digit int
        if own_syntax:
            raise RecordError(f"{where}: a call in the record's own syntax (its system text prescribes one after "
                              f"{LAYOUT_END!r}), which the grammar does not read ({e}): {answer!r:.120}",
                              "call in a record-specific syntax") from None
        raise RecordError(f"{where}: an attempted call list that does not parse ({e}): {answer!r:.120}",
                          "call does not parse") from None
    for call in calls:
        if call.name not in names:
            held = f"its tools are {names!r:.200}" if names else "it has no tools"
            raise RecordError(f"{where}: calls {call.name!r}, which is not in the record's tool list ({held})",
                              "unknown function")


def record_samples(record, conversation_id):
    """One sample per assistant turn: context messages before it and the gold answer."""
    samples = []
    turns = record["conversations"]
    tools, tools_chars = read_tool_list(record["system"])
    names = [tool["name"] for tool in tools]
    for t, turn in enumerate(turns):
        if turn["from"] != "assistant":
            continue
        calls = parse_answer(turn["value"], names)
        samples.append({
            "id": f"{conversation_id}-{t}",
            "conversation": conversation_id,
            "system": record["system"],
            "messages": [{"role": m["from"], "content": m["value"]} for m in turns[:t]],
            "answer": turn["value"],
            "kind": "text" if calls is None else "call",
            "n_tools": len(tools),
            "tools_chars": tools_chars,
            "n_calls": 0 if calls is None else len(calls),
        })
    return samples


def answers_user(sample):
    """Whether a sample (or prompt) answers the user's turn rather than a tool result: where the
    answer chooses between a call and text (after a tool result the context says text is due)."""
    return bool(sample["messages"]) and sample["messages"][-1]["role"] == "user"


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
