"""The outcome rule (stages/itool/outcome.py): what counts as a correct answer in the search and on
the held-out test. Hand-written cases for each rule, and the synthetic data's own reasons for text."""
import json
import re
from pathlib import Path

import pytest

from itool import records, synthetic
from itool.outcome import answer_kind, equivalent, intent, is_clean, is_correct

TOOLS = [
    {"name": "convert_length", "description": "Convert a length between units.",
     "parameters": {"type": "dict", "properties": {
         "value": {"type": "float", "description": "The length to convert"},
         "from_unit": {"type": "string", "description": "Unit to convert from, e.g. cm"},
         "to_unit": {"type": "string", "description": "Unit to convert to, e.g. m"}},
         "required": ["value", "from_unit", "to_unit"]}},
    {"name": "get_weather", "description": "Current weather for a city.",
     "parameters": {"type": "dict", "properties": {"city": {"type": "string", "description": "City name"}},
                    "required": ["city"]}},
]
SYSTEM = records.render_system(TOOLS)


def sample(answer, messages=None):
    return {"system": SYSTEM, "messages": messages or [{"role": "user", "content": "Convert 466 of it."}],
            "answer": answer}


# --- calls ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("predicted, correct", [
    ("[get_weather(city='Paris')]", True),  # quoting is form, not content
    ('[get_weather(city="Rome")]', False),
    ('[get_weather(city="Paris"), get_weather(city="Paris")]', False),
    ("[get_weather(city=Paris)]", False),  # an attempted call that does not parse
    ("The weather in Paris is nice.", False),
])
def test_a_call_gold_needs_the_same_calls(predicted, correct):
    assert is_correct(predicted, sample('[get_weather(city="Paris")]')) is correct


def test_parallel_calls_match_in_any_order():
    gold = '[get_weather(city="Paris"), get_weather(city="Oslo")]'
    assert is_correct('[get_weather(city="Oslo"), get_weather(city="Paris")]', sample(gold))


# --- what no answer can be ------------------------------------------------------------------------

DECLINE = "None of the available functions can book a taxi. They can only convert lengths."


@pytest.mark.parametrize("predicted", [
    "[convert_length(value=466.0, to_unit=cm)]",  # malformed call: it does not parse, so it is no "text"
    "(convert_length: 466 cm)",
    "None of the functions can book a taxi.<unused4260>",
    "223.7.<unused4260>modelresult[223.7]",
    "None of the functions can book a taxi.\x07",
    "None of the functions can book a taxi \ufffd",
    "",
    # a decline that goes on into a call: a half-made call, not a refusal (search pair r000590-1)
    'None of the functions can book a taxi. Here it is: calculated.hypotenuse(side_a="first")',
    "No function books taxis. Here are the result(years=3): learned[get_weather(city=\"Paris\"], results",
])
def test_malformed_calls_and_unclean_text_are_never_correct(predicted):
    assert answer_kind(predicted) == "malformed"
    assert not is_correct(predicted, sample(DECLINE))


@pytest.mark.parametrize("predicted", [
    "None of the functions can book a taxi; get_weather only reports the weather.",  # a name, no call
    "I can't book a taxi (the tools convert lengths and report weather).",
    "No tool books taxis, and convert_length (value = 466) would not help either.",
])
def test_text_that_names_a_function_without_calling_it_stays_text(predicted):
    assert answer_kind(predicted) == "text"
    assert is_correct(predicted, sample(DECLINE))


def test_clean_text_keeps_newlines_and_unicode():
    assert is_clean("Line one.\n\tLine two: 21 °C in São Paulo 東京タワー, Привет, a Δv of 9.5 km/s, 5 µm")
    assert not is_clean("<start_of_turn>model")
    # a run of letters glued from two scripts is the vocabulary's tail, not a word (a checkpoint's answer)
    assert not is_clean("Here's what I've found: cancelled: true, results: cancelled.𒄯needforthisresult")
    assert not is_clean("I would like to set the temperature.我可以set home thermostat")  # Han glued to Latin


# --- text golds: decline, ask, report, other --------------------------------------------------------

@pytest.mark.parametrize("predicted, correct", [
    ("I'm sorry, I can't do that: no function books taxis.", True),
    ("There is no suitable tool for this request.", True),
    ("Sure! Your taxi is booked for 5 pm.", False),  # pretends to have done it
    ("What pickup city should I use?", False),  # asks instead of declining
])
def test_a_declined_request_is_matched_by_any_decline(predicted, correct):
    assert is_correct(predicted, sample(DECLINE)) is correct


ASK = "Could you tell me the unit to convert to? convert_length requires it."


@pytest.mark.parametrize("predicted, correct", [
    ("Which unit to convert to should I use?", True),
    ("Please provide the to_unit.", True),  # the parameter by its name
    ("Could you tell me the length to convert?", False),  # asks for another parameter
    ("None of the functions can do this.", False),  # declines instead of asking
    ("Sure, converting now.", False),
])
def test_a_missing_parameter_must_be_asked_for_by_name(predicted, correct):
    assert is_correct(predicted, sample(ASK)) is correct


REPORT_DIALOGUE = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": '[get_weather(city="Paris")]'},
    {"role": "tool", "content": json.dumps([{"name": "get_weather",
                                             "results": {"temperature": 21.5, "condition": "sunny"}}])},
]
REPORT = "For Paris: temperature 21.5, condition sunny."


@pytest.mark.parametrize("predicted, correct", [
    ("It is sunny and 21.5 degrees in Paris right now.", True),
    ("It is sunny in Paris.", False),  # leaves out the temperature
    ("It is 22 degrees and sunny.", False),  # a wrong value
    ("I could not get the weather.", False),
])
def test_a_report_must_state_the_facts_the_gold_states(predicted, correct):
    assert intent(REPORT, REPORT_DIALOGUE, TOOLS) == "report"
    assert is_correct(predicted, sample(REPORT, REPORT_DIALOGUE)) is correct


@pytest.mark.parametrize("predicted, correct", [
    ("Tags organise content so that it is easier to find.", True),
    ("I like trains very much.", False),
])
def test_other_text_needs_half_of_the_gold_content_words(predicted, correct):
    gold = "Tags help organise content and make it easier to find."
    messages = [{"role": "user", "content": "What are tags for?"}]
    assert intent(gold, messages, TOOLS) == "other"
    assert is_correct(predicted, sample(gold, messages)) is correct


def test_equivalent_answers():
    s = sample('[get_weather(city="Paris")]')
    assert equivalent('[get_weather(city="Paris")]', "[get_weather(city='Paris')]", s)
    assert equivalent(DECLINE, "Sorry, no function can do that.", s)
    assert not equivalent("Which unit to convert to?", "Which length to convert?", s)
    assert not equivalent('[get_weather(city="Paris")]', '[get_weather(city="Rome")]', s)


# --- the synthetic data's own reasons ------------------------------------------------------------------

def template(text):
    return re.compile(".*".join(re.escape(part) for part in re.split(r"\{[A-Za-z]+\}", text)), re.S)


def test_intent_recovers_why_every_synthetic_text_answer_is_text():
    """The generator answers in text for three reasons: a summary of tool results, a missing
    parameter (ASKS), a request no tool serves (REFUSALS); every gold is correct against itself."""
    asks = [template(t) for t in synthetic.ASKS]
    declines = [template(t) for t in synthetic.REFUSALS + synthetic.GENERAL_REFUSALS]
    seen = set()
    for i, record in enumerate(synthetic.generate(600, seed=11)):
        for s in records.record_samples(record, str(i)):
            if s["kind"] != "text":
                continue
            if s["messages"][-1]["role"] == "tool":
                reason = "report"
            elif any(a.fullmatch(s["answer"]) for a in asks):
                reason = "ask"
            else:
                assert any(d.fullmatch(s["answer"]) for d in declines), s["answer"]
                reason = "decline"
            assert intent(s["answer"], s["messages"], records.tools_from_system(s["system"])) == reason, s["answer"]
            assert is_correct(s["answer"], s)
            seen.add(reason)
    assert seen == {"report", "ask", "decline"}


# --- the corpus: hand-written answers with the verdict a reader gives them -----------------------

CORPUS = json.loads((Path(__file__).parent / "data" / "verdict_corpus.json").read_text(encoding="utf-8"))


def test_the_corpus_covers_every_job_both_ways():
    jobs = {(intent(CORPUS["contexts"][c["context"]]["answer"], CORPUS["contexts"][c["context"]]["messages"],
                    records.tools_from_system(CORPUS["contexts"][c["context"]]["system"]) or []), c["correct"])
            for c in CORPUS["cases"]}
    assert jobs == {(job, verdict) for job in ("report", "ask", "decline", "other") for verdict in (True, False)}
    assert len(CORPUS["cases"]) >= 80


@pytest.mark.parametrize("case", CORPUS["cases"], ids=lambda c: f"{c['context']}:{c['answer'][:40]}")
def test_the_rule_gives_the_readers_verdict(case):
    """Every case as a reader judges it; a known miss (the rule's documented limit) must still
    miss, so that the list of misses stays true."""
    verdict = is_correct(case["answer"], CORPUS["contexts"][case["context"]])
    if case.get("known_miss"):
        assert verdict is not case["correct"], f"no longer a miss: drop known_miss ({case['why']})"
    else:
        assert verdict is case["correct"], case["why"]


def test_every_gold_of_the_corpus_is_correct_against_itself():
    for name, context in CORPUS["contexts"].items():
        assert is_correct(context["answer"], context), name
