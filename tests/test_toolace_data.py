"""Real ToolACE records in (stage 00): every tool-list layout ToolACE uses, tool-less dialogues,
call names resolved against the record's own tools, and what is rejected (naming file, record and
turn) or, with --skip-bad, skipped and counted. The excerpts below are cut from real records."""
import json
import subprocess
import sys
from collections import Counter

import pytest

from conftest import REPO, copy_checkout, make
from itool import records
from itool.files import read_jsonl
from itool.toolcalls import parse_answer

SAMPLE = REPO / "eval" / "data" / "toolace" / "toolace_sample.json"

HEAD = ("You are an expert in composing functions. You are given a question and a set of possible functions. \n"
        "If none of the function can be used, point it out.\n")
OWN_SYNTAX = ("\n\nPlease use the following format to call the tool:\n[api_name:['key1':value_1,'key2':value_2]]\n"
              "Do not include parameters not mentioned by the user or not present in the historical conversation.")


def layout_system(section):
    return HEAD + records.LAYOUT_INTRO + "\n" + section + OWN_SYNTAX


YAML = """tool_name: Search Tweets
definition: Search for tweets on Twitter
arguments:
    parameter_name: q
    description: Search query
    type: string
    parameter_name: tweet_search_mode
    description: Popular or latest tweets
    type: string
    enum:
        popular
        
required:
    q
results:
    parameter_name: tweets
    description: List of search results
    type: array
"""
YAML_DASHED = """tool_name: Get Industry List
definition: Retrieve a list of industries from the database
arguments:
- parameter_name: alias
  description: The alias of the industry
  type: string
required:
- alias
"""
MARKDOWN = """- **tool_name**: statistic/list-uefa-5year-rankings
- **definition**: Retrieve UEFA 5-year rankings for football clubs, optionally filtered by domain.
- **arguments**:
    - **parameter_name**: domain
    - **description**: Filter by domain (e.g., com, de, be, etc.).
    - **type**: string
- **required**:
  - domain
- **results**:
    - **parameter_name**: rankings
    - **description**: List of UEFA 5-year rankings for football clubs.
    - **type**: array
"""
XML = """<tool_name>LegalRecordVerification.verifyApplicantHistory</tool_name>
<definition>Verifies the applicant's history.</definition>
<arguments>
    <parameter_name>applicantDetails</parameter_name>
    <description>Details of the applicant.</description>
    <type>dict</type>
    <properties>
        <parameter_name>firstName</parameter_name>
        <description>First name of the applicant.</description>
        <type>string</type>
    </properties>
    <parameter_name>checkType</parameter_name>
    <description>Type of the check.</description>
    <type>string</type>
</arguments>
<required>
applicantDetails
</required>
<results>
    <parameter_name>verified</parameter_name>
    <type>boolean</type>
</results>
"""
HTML = """<table border='1'>
<tr><th>tool_name</th><th>definition</th><th>arguments</th><th>required</th><th>results</th></tr>
<tr><td>Get All Servers</td><td>Retrieve a list of all Minecraft servers</td><td>[{'parameter_name': 'limit', 'description': 'The maximum number of servers to return', 'type': 'int'}]</td><td>['limit']</td><td>[{'parameter_name': 'servers', 'type': 'array'}]</td></tr>
<tr><td>user/login</td><td>Authenticate a user</td><td>[{'parameter_name': 'username', 'type': 'string'}, {'parameter_name': 'password', 'type': 'string'}]</td><td>['username', 'password']</td><td>[]</td></tr>
</table>
"""
LATEX = r"""\begin{tabular}{|l|l|l|l|l|}
\hline
tool_name & definition & arguments & required & results \\ \hline
Autocomplete Search & Search for titles & people by name. & [{'parameter_name': 'search_value', 'description': 'For example searching for \\"The sha\\" finds \\"The Shawshank Redemption\\" & more.', 'type': 'string'}] & ['search_value'] & [{'type': 'array'}] \\ \hline
Get User Aliases & Retrieve a list of user aliases. & [{'parameter_name': 'id', 'description': 'The Steam ID of the user', 'type': 'string'}] & ['id'] & [] \\ \hline
\end{tabular}
"""
JSON_OBJECTS = """{"tool_name": "Get Giveaway Details", "definition": "Retrieve details about a giveaway.", "arguments": [{"parameter_name": "id", "description": "The ID of the giveaway.", "type": "string"}], "required": ["id"], "results": [{"parameter_name": "giveaway", "type": "dict"}]}
{"tool_name": "Warzone User Info", "definition": "Retrieve information about a user.", "arguments": [{"parameter_name": "user", "type": "string"}], "required": ["user"], "results": []}
"""


def params(tool):
    return list(tool["parameters"]["properties"]), tool["parameters"]["required"]


@pytest.mark.parametrize("section, expected", [
    (YAML, [("Search Tweets", ["q", "tweet_search_mode"], ["q"])]),
    (YAML_DASHED, [("Get Industry List", ["alias"], ["alias"])]),
    (MARKDOWN, [("statistic/list-uefa-5year-rankings", ["domain"], ["domain"])]),
    (XML, [("LegalRecordVerification.verifyApplicantHistory", ["applicantDetails", "checkType"], ["applicantDetails"])]),
    (HTML, [("Get All Servers", ["limit"], ["limit"]), ("user/login", ["username", "password"], ["username", "password"])]),
    (LATEX, [("Autocomplete Search", ["search_value"], ["search_value"]), ("Get User Aliases", ["id"], ["id"])]),
    (JSON_OBJECTS, [("Get Giveaway Details", ["id"], ["id"]), ("Warzone User Info", ["user"], ["user"])]),
])
def test_each_layout_gives_names_parameters_and_length(section, expected):
    system = layout_system(section)
    tools, chars = records.read_tool_list(system)
    assert [(t["name"], *params(t)) for t in tools] == expected
    assert chars == len(section.strip())  # the list as written, for the difficulty criterion
    assert tools[0]["description"]


def test_layouts_mix_in_one_list_and_the_system_text_stays_untouched():
    section = "\n".join([HTML, MARKDOWN, YAML, LATEX, JSON_OBJECTS.strip(), "", XML])
    record = {"system": layout_system(section), "conversations": [
        {"from": "user", "value": "Top UEFA clubs?"}, {"from": "assistant", "value": "Which domain do you mean?"}]}
    records.validate_record(record, "mixed")
    [sample] = records.record_samples(record, "r0")
    assert sample["system"] == record["system"]
    assert sample["n_tools"] == 9 and sample["tools_chars"] == len(section.strip()) and sample["kind"] == "text"
    assert records.tool_names(record["system"])[:3] == ["Get All Servers", "user/login", "statistic/list-uefa-5year-rankings"]


def test_json_layouts():
    tools = [{"name": "/forex/signal", "description": "d", "parameters": {"type": "dict", "properties": {}}}]
    listed = json.dumps(tools)
    assert records.read_tool_list(HEAD + records.TOOLS_INTRO + "\n" + listed + ". \nShould you decide...") == (tools, len(listed))
    chinese = "你是工具调用方面的专家。以下是可以调用的工具的JSON格式列表:\n" + json.dumps(tools, ensure_ascii=False) + "。\n不得包含其他文字。"
    assert records.tools_from_system(chinese) == tools
    # tool-less dialogues: an empty list after the intro, or no list at all
    assert records.read_tool_list(HEAD + records.TOOLS_INTRO + "\n[]. \nShould you decide to return [func1(a=1)]") == ([], 2)
    assert records.read_tool_list(HEAD + "When invoking tools, ensure the output only contains the tool names.") == ([], 0)


@pytest.mark.parametrize("system, message", [
    (HEAD + records.TOOLS_INTRO + '\n[{"name": "f", "description": "d",}]', "not valid JSON"),
    (HEAD + records.TOOLS_INTRO + '\n[{"description": "no name"}]', 'objects with a "name"'),
    (layout_system("Some prose about tools.\n"), "line 1 of it, 'Some prose about tools.', starts no known layout"),
    (layout_system(YAML + "\nand then prose\n"), "line 20 of it, 'and then prose'"),
    (layout_system(HTML.replace("</table>", "")), "has no '</table>'"),
    (layout_system(HTML.replace("<td>user/login</td>", "")), "has 4 cells for 5 columns"),
    (layout_system('{"tool_name": "f", "definition": "d",\n'), "not valid JSON"),
    (layout_system("tool_name: \ndefinition: a tool without a name\n"), "a tool without a name"),
])
def test_unreadable_tool_lists_are_named(system, message):
    with pytest.raises(records.RecordError) as info:
        records.read_tool_list(system)
    assert message in str(info.value) and info.value.reason == "unreadable tool list"


# --- assistant turns ---------------------------------------------------------------------------

TOOLS = [{"name": "Is Mobile?", "description": "d", "parameters": {"type": "dict", "properties": {"phone": {"type": "string"}}}},
         {"name": "Get User's Messages", "description": "d", "parameters": {"type": "dict", "properties": {}}}]


def record_with(answer, tools=TOOLS, system=None):
    return {"system": system or records.render_system(tools), "conversations": [
        {"from": "user", "value": "Is +44-207-9460234 a mobile number?"}, {"from": "assistant", "value": answer}]}


def test_calls_resolve_against_the_record_tool_names():
    record = record_with('[Is Mobile?(phone="+44-207-9460234"), Get User\'s Messages()]')
    records.validate_record(record, "r")
    [sample] = records.record_samples(record, "r0")
    assert (sample["kind"], sample["n_calls"], sample["n_tools"]) == ("call", 2, 2)


@pytest.mark.parametrize("answer, reason, message", [
    ('[Is Mobile?(phone="+44-207-9460234")', "call does not parse", "expected ',' or ']' at position 36"),
    ('[Is Mobile?(phone="+44-207-9460234"))]', "call does not parse", "expected ',' or ']'"),
    ("[Is Mobile?:['phone':'+44']]", "call does not parse", "expected '(' at position 10"),
    ('Is_Mobile(phone="+44")', "call does not parse", "expected '['"),
    ('[Is Mobile(phone="+44")]', "unknown function", "calls 'Is Mobile', which is not in the record's tool list"),
    ('[Is Mobile?(phone="+44"), get_weather(city="Rome")]', "unknown function", "calls 'get_weather'"),
])
def test_bad_assistant_turns_are_named(answer, reason, message):
    with pytest.raises(records.RecordError) as info:
        records.validate_record(record_with(answer), "data.json: record 7")
    assert str(info.value).startswith("data.json: record 7: turn 1: ") and message in str(info.value)
    assert info.value.reason == reason


def test_tool_less_dialogues_are_records_and_may_not_call():
    system = HEAD + records.TOOLS_INTRO + "\n[]. \nShould you decide to return the function call(s)."
    text = record_with("I cannot directly call any functions because there are no available functions.", system=system)
    records.validate_record(text, "r")
    assert records.record_samples(text, "r0")[0]["n_tools"] == 0
    with pytest.raises(records.RecordError, match="it has no tools"):
        records.validate_record(record_with('[get_weather(city="Rome")]', system=system), "r")


def test_a_call_in_the_record_own_syntax_is_rejected_as_such():
    # ToolACE's records of the "Here are the tools you can use:" kind ask for a call syntax of their own
    record = {"system": layout_system(LATEX), "conversations": [
        {"from": "user", "value": "Aliases of Steam user 76561198025104164?"},
        {"from": "assistant", "value": "[Get User Aliases:['id':76561198025104164]]"}]}
    with pytest.raises(records.RecordError, match="turn 1: a call in the record's own syntax") as info:
        records.validate_record(record, "r")
    assert info.value.reason == "call in a record-specific syntax"
    record["conversations"][1]["value"] = '[Get User Aliases(id="76561198025104164")]'  # the grammar's syntax is fine
    records.validate_record(record, "r")


# --- stage 00 ----------------------------------------------------------------------------------

def run_data(*args):
    return subprocess.run([sys.executable, str(REPO / "stages" / "00_data.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def test_make_data_stops_on_bad_turns_and_skip_bad_counts_them(tmp_path):
    rows = [record_with('[Is Mobile?(phone="+44")]'), record_with('[Is Mobile?(phone="+44"'),
            record_with("It is a landline."), record_with('[Is Mobile(phone="+44")]')]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(rows))
    out = run_data("--data", path, "--out", tmp_path / "toolace.jsonl")
    assert out.returncode != 0 and not (tmp_path / "toolace.jsonl").exists()
    assert f"{path}: record 1: turn 1: an attempted call list that does not parse" in out.stderr
    assert f"{path}: record 3: turn 1: calls 'Is Mobile'" in out.stderr and "SKIP_BAD=1" in out.stderr

    out = run_data("--data", path, "--skip-bad", "--out", tmp_path / "toolace.jsonl")
    assert out.returncode == 0, out.stderr
    kept = read_jsonl(tmp_path / "toolace.jsonl")
    assert [r["conversations"] for r in kept] == [rows[0]["conversations"], rows[2]["conversations"]]
    stats = json.loads((tmp_path / "data_stats.json").read_text())
    assert stats["skipped"] == 2 and stats["skipped_by_reason"] == {"call does not parse": 1, "unknown function": 1}
    assert "record 1: turn 1" in stats["skipped_errors"][0] and "record 3: turn 1" in stats["skipped_errors"][1]


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.exists():
        pytest.skip(f"the real ToolACE sample is not at {SAMPLE} (the shared folder beside the repository)")
    return json.loads(SAMPLE.read_text())


def test_the_real_toolace_sample_loads(sample):
    reasons, samples, layouts = Counter(), [], Counter()
    for i, record in enumerate(sample):
        try:
            records.validate_record(record, f"record {i}")
        except records.RecordError as e:
            reasons[e.reason] += 1
            assert records.LAYOUT_END in record["system"]  # only records that prescribe their own syntax
            continue
        layouts[records.LAYOUT_INTRO in record["system"]] += 1
        names = records.tool_names(record["system"])
        for s in records.record_samples(record, f"r{i}"):
            samples.append(s)
            calls = parse_answer(s["answer"], names)
            assert calls is None or all(c.name in names for c in calls)
            # no call list falls through to text: an answer opening a bracket is a call of the record
            assert s["kind"] == "call" or not s["answer"].lstrip().startswith("[")
    assert set(reasons) == {"call in a record-specific syntax"} and sum(reasons.values()) < 0.05 * len(sample)
    assert layouts[True] >= 10  # records whose tools are in the other layouts are in
    assert any(s["n_tools"] == 0 for s in samples)  # tool-less text dialogues are in
    assert any(s["kind"] == "call" and "/" in s["answer"].split("(")[0] for s in samples)  # "/forex/signal"


def test_make_iterate_runs_on_the_real_toolace_sample(sample, tmp_path):
    """The paper's own data end to end (tiny model, tiny budgets): loaded with its record-specific
    calls skipped and counted, split, warmed up, searched and trained on."""
    checkout = copy_checkout(tmp_path)
    variables = ["RUN=real", "MODEL=tiny", f"DATA={SAMPLE}", "SKIP_BAD=1", "SFT_ARGS=--max-steps 3 --batch-size 2",
                 "MCTS_ARGS=--max-samples 2 --simulations 2 --k 2 --max-depth 3 --max-step-tokens 12",
                 "DPO_ARGS=--epochs 1"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        make(checkout, "iterate", "ITER=1", *variables)
    stats = json.loads((checkout / "data/real/data_stats.json").read_text())
    assert stats["records"] + stats["skipped"] == len(sample)
    assert stats["skipped_by_reason"] == {"call in a record-specific syntax": stats["skipped"]}
    assert (checkout / "checkpoints/real/iter_1/adapter_model.safetensors").is_file()
    assert read_jsonl(checkout / "data/real/iter_1/pairs.jsonl")
