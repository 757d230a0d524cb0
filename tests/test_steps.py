"""MCTS steps (stages/itool/steps.py): cutting answers into calls and sentences, on text and on token
ids, so that a step's tokens are exactly the tokens the policy produces for it."""
import pytest
from hypothesis import given, settings, strategies as st

from itool import records, synthetic
from itool.steps import first_step_end, split_steps, token_steps
from itool.toolcalls import Call, format_calls, parse_calls

CALLS = settings(max_examples=100, deadline=None)
FAST = settings(max_examples=200, deadline=None)

names = st.text("abXY09_.- ", min_size=1, max_size=12).filter(lambda s: s.strip(" ") == s)
idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,8}", fullmatch=True)
texts = st.text(max_size=12) | st.text("\"',()[]{}=:\\/\n ab", max_size=12)
values = st.recursive(st.none() | st.booleans() | st.integers() | texts,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=6)
calls_lists = st.lists(st.builds(Call, names, st.dictionaries(idents, values, max_size=3)), min_size=1, max_size=4)
any_text = st.text(max_size=60) | st.text("[](){}\"',=:\\ \n.-aTe1", max_size=40) | st.text(".!?\"') \nab3", max_size=30)


@CALLS
@given(calls_lists)
def test_a_formatted_call_list_is_one_step_per_call(calls):
    text = format_calls(calls)
    steps = split_steps(text)
    assert "".join(steps) == text
    assert len(steps) == len(calls)
    for step, call in zip(steps, calls):
        assert parse_calls("[" + step.strip("[], ") + "]") == [call]
        assert not step.endswith(" ")  # the separator's space leads the next step


@CALLS
@given(calls_lists, st.data())
def test_the_complete_steps_of_a_prefix_are_final(calls, data):
    text = format_calls(calls)
    full = split_steps(text)
    cut = data.draw(st.integers(0, len(text)))
    steps = split_steps(text[:cut])
    assert "".join(steps) == text[:cut]
    complete = max(len(steps) - 1, 0)
    assert steps[:complete] == full[:complete]
    end = first_step_end(text[:cut])
    assert end is None or text[:end] == full[0]


@FAST
@given(any_text)
def test_steps_concatenate_to_the_text(text):
    steps = split_steps(text)
    assert "".join(steps) == text
    assert all(steps)
    # the first cut ends the first step; a call step may end right at the end of the text ("[A(),")
    assert first_step_end(text) in ((len(steps[0]),) if len(steps) > 1 else (None, len(text)))


@pytest.mark.parametrize("text, steps", [
    ('[A(x=1), B(y="a, b")]', ["[A(x=1),", ' B(y="a, b")]']),
    ("[A()]", ["[A()]"]),
    ("  [A(),B()]\n", ["  [A(),", "B()]\n"]),
    ('[Func Name(s="x), y"), get.weather-v2(d={"a": [1, 2]}),\n  C(s=\'it\\\'s, ok\')]',
     ['[Func Name(s="x), y"),', ' get.weather-v2(d={"a": [1, 2]}),', "\n  C(s='it\\'s, ok')]"]),
    (r'[A(s="\", "), B()]', [r'[A(s="\", "),', " B()]"]),
    ("[A()] and more, text", ["[A()] and more, text"]),  # after the closing "]": no cut
    ("Sure. I can't do that! Ok", ["Sure.", " I can't do that!", " Ok"]),
    ('He said "no." Then left?  Yes!\nBye.', ['He said "no."', " Then left?", "  Yes!", "\nBye."]),
    ("It costs 3.5 dollars. Fine", ["It costs 3.5 dollars.", " Fine"]),
    ("Use e.g. Paris or Dr. Who. Done", ["Use e.g. Paris or Dr. Who.", " Done"]),
    ("Wait... what?! Really", ["Wait...", " what?!", " Really"]),
    ("No punctuation at all", ["No punctuation at all"]),
    ("", []),
])
def test_split_steps(text, steps):
    assert split_steps(text) == steps


@pytest.mark.parametrize("text, steps", [
    ('[A(x=1), B(y="a, ', ["[A(x=1),", ' B(y="a, ']),
    ("[A(x=1),", ["[A(x=1),"]),
    ("[A(x=1), ", ["[A(x=1),", " "]),
    ("[A(x=1", ["[A(x=1"]),
    ("Sure. I ca", ["Sure.", " I ca"]),
    ("Sure.", ["Sure."]),  # might still become "Sure.5"
])
def test_split_steps_on_partial_text(text, steps):
    assert split_steps(text) == steps


def test_first_step_end_after_start():
    text = '[A(x=1), B(y="a, b"), C()]'
    assert first_step_end(text) == 8
    assert first_step_end(text, start=8) == 21
    assert first_step_end(text, start=21) is None  # the last step ends with the answer
    assert first_step_end(text[:18], start=8) is None  # B's step is not finished yet
    assert first_step_end("One. Two. Thr", start=4) == 9


def test_known_names_with_quotes_and_brackets_are_skipped():
    names = ["Bob's Tool", "Weather (Detailed)"]
    text = '[Bob\'s Tool(x="a, b"), Weather (Detailed)(city="Oslo"), C()]'
    assert split_steps(text, names) == ['[Bob\'s Tool(x="a, b"),', ' Weather (Detailed)(city="Oslo"),', " C()]"]
    # without the names, the apostrophe opens a string that swallows the first comma
    assert len(split_steps(text)) != 3


# --- token ids -----------------------------------------------------------------------------------

def test_token_steps_of_every_synthetic_gold_answer_rebuild_its_ids(tiny_tokenizer):
    """For every gold answer of a synthetic set: prefix ids + step ids = the ids of the whole
    answer, each step decodes to the text step split_steps cuts, and no step is empty."""
    decode = tiny_tokenizer.decode
    samples = [s for i, r in enumerate(synthetic.generate(120, seed=3)) for s in records.record_samples(r, str(i))]
    for sample in samples:
        ids = tiny_tokenizer(sample["answer"], add_special_tokens=False).input_ids
        steps = token_steps(ids, decode)
        assert [t for step in steps for t in step] == ids
        assert all(steps)
        texts = [decode(sum(steps[:i + 1], [])) for i in range(len(steps))]
        cut_texts = split_steps(sample["answer"])
        assert len(steps) == len(cut_texts), sample["answer"]
        assert texts == ["".join(cut_texts[:i + 1]) for i in range(len(cut_texts))]


def test_a_cut_inside_a_token_moves_to_the_token_end():
    # toy tokens: "[A()," is one token and ", B" straddles the cut after the comma
    pieces = ["[A()", ", B", "()]"]
    decode = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    assert token_steps([0, 1, 2], decode) == [[0, 1], [2]]  # ", B" ends past the cut: the step takes it
