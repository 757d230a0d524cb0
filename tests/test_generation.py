"""Batched generation (stages/itool/generation.py, eval/common.py): rows of different prompts in one
KV cache give the numbers of separate plain forwards; the fast greedy generator gives the texts of
transformers' `model.generate`; plain `generate` stops at the end of the turn."""
import pytest
import torch

from eval import common
from itool import generation, modeling, records, synthetic
from itool.logprobs import decoder_hidden


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fp32_model(tiny_model_dir):
    # fp32, so that batched and separate computations agree to rounding
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()
    generation.use_grouped_attention(model)
    return model


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir):
    return modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()


def plain_last_hidden(model, ids):
    return decoder_hidden(model, torch.tensor([ids]))[0, -1]


@torch.inference_mode()
def test_rows_of_different_prompts_match_separate_forwards(fp32_model, reference_model):
    generator = torch.Generator().manual_seed(0)
    # 300 > the tiny model's sliding window of 256: the window is applied by position
    prompts = [torch.randint(10, 1000, (n,), generator=generator).tolist() for n in (300, 17, 280, 5)]
    rows, last = generation.prefill(fp32_model, prompts, max_tokens=400)  # two chunks, joined
    for prompt, hidden in zip(prompts, last):
        assert torch.allclose(hidden, plain_last_hidden(reference_model, prompt), atol=1e-4)
    extra = [[11, 12, 13], [14], [], [15, 16]]  # ragged: padding lands in the middle of rows
    hidden = rows.extend(extra)
    for prompt, tokens, row in zip(prompts, extra, hidden):
        if tokens:
            assert torch.allclose(row[len(tokens) - 1], plain_last_hidden(reference_model, prompt + tokens), atol=1e-4)
    forks = rows.select([0, 0, 3])  # two continuations of prompt 0, one of prompt 3
    forks.extend([[20], [21], [22]])
    hidden = forks.extend([[23], [24], [25]])
    for base, tokens, row in zip([0, 0, 3], [[20, 23], [21, 24], [22, 25]], hidden):
        expected = plain_last_hidden(reference_model, prompts[base] + extra[base] + tokens)
        assert torch.allclose(row[-1], expected, atol=1e-4)
    # a long input runs in pieces (here of 64 tokens per row): the same states
    pieces = generation.Rows.empty(fp32_model, 2)
    hidden = pieces.extend([prompts[0], prompts[3]], chunk_tokens=100)
    assert torch.allclose(hidden[0, len(prompts[0]) - 1], plain_last_hidden(reference_model, prompts[0]), atol=1e-4)
    assert torch.allclose(hidden[1, len(prompts[3]) - 1], plain_last_hidden(reference_model, prompts[3]), atol=1e-4)
    # the original rows are untouched by their forks
    hidden = rows.extend([[30], [31], [32], [33]])
    assert torch.allclose(hidden[0, -1], plain_last_hidden(reference_model, prompts[0] + extra[0] + [30]), atol=1e-4)


@torch.inference_mode()
def test_the_spare_room_of_the_cache_is_never_attended(fp32_model, reference_model):
    """Attention reads each SlotLayer's whole buffer (filled slots and spare room) and masks the
    spare room: junk written there changes nothing, before and after the buffer grows."""
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, 1000, (n,), generator=generator).tolist() for n in (40, 9)]
    rows, _ = generation.prefill(fp32_model, prompts)
    forks = rows.select([0, 1])
    for layer in forks.layers:
        assert layer.key_buffer.shape[2] > layer.length  # spare room there is
        layer.key_buffer[:, :, layer.length:] = 1e4
        layer.value_buffer[:, :, layer.length:] = -1e4
    fed = [[], []]
    for step in range(generation.GROWTH + 3):  # past the buffer's first growth
        tokens = [[100 + step], [200 + step]]
        hidden = forks.extend(tokens)
        fed = [f + t for f, t in zip(fed, tokens)]
        if step in (0, generation.GROWTH + 2):
            for prompt, extra, row in zip(prompts, fed, hidden):
                assert torch.allclose(row[-1], plain_last_hidden(reference_model, prompt + extra), atol=1e-4)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter with random, clearly non-zero weights (a fresh one is the identity)."""
    model = modeling.load_model(tiny_model_dir, trainable=True, device=torch.device("cpu"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def prompts_of(samples):
    return [{"system": s["system"], "messages": s["messages"]} for s in samples]


def test_fast_greedy_gives_the_texts_of_model_generate(tiny_model_dir, tiny_tokenizer, adapter_dir):
    """On real prompts of varied lengths, with rows stopping at different steps (a stop set
    that random weights hit often), in batches of several rows: the same texts."""
    samples = [s for i, r in enumerate(synthetic.generate(12, seed=4)) for s in records.record_samples(r, str(i))]
    prompts = prompts_of(samples[:14])
    stops = common.stop_ids(tiny_tokenizer) | {t for t in range(len(tiny_tokenizer)) if t % 9 == 0}

    def loaded(merge):
        model = modeling.load_model(tiny_model_dir, adapter=str(adapter_dir), device=torch.device("cpu")).float()
        return model.merge_and_unload() if merge else model

    fast = common.make_generator(loaded(merge=True), tiny_tokenizer, batch_size=5, stops=stops)
    reference = common.make_generator(loaded(merge=False), tiny_tokenizer, batch_size=5, reference=True, stops=stops)
    with torch.inference_mode():
        got, expected = fast(prompts, 24), reference(prompts, 24)
    assert got == expected
    lengths = {len(tiny_tokenizer(t).input_ids) for t in expected}
    assert len(lengths) > 3  # the rows did stop at different steps


def test_a_call_offset_moves_the_first_token_of_answers_to_a_user_and_nothing_else(tiny_model_dir, tiny_tokenizer,
                                                                                  adapter_dir):
    """A large offset opens every answer to a user with a call list, a large negative one none;
    answers after a tool result are untouched; fast and reference paths agree under an offset."""
    samples = [s for i, r in enumerate(synthetic.generate(12, seed=4)) for s in records.record_samples(r, str(i))]
    prompts = prompts_of(samples[:14])
    to_user = [p["messages"][-1]["role"] == "user" for p in prompts]
    assert any(to_user) and not all(to_user)
    model = modeling.load_model(tiny_model_dir, adapter=str(adapter_dir), device=torch.device("cpu")).float()
    unmerged = modeling.load_model(tiny_model_dir, adapter=str(adapter_dir), device=torch.device("cpu")).float()
    model = model.merge_and_unload()
    with torch.inference_mode():
        plain = common.make_generator(model, tiny_tokenizer, batch_size=5)(prompts, 4)
        calls = common.make_generator(model, tiny_tokenizer, batch_size=5, call_offset=100.0)(prompts, 4)
        texts = common.make_generator(model, tiny_tokenizer, batch_size=5, call_offset=-100.0)(prompts, 4)
        reference = common.make_generator(unmerged, tiny_tokenizer, batch_size=5, reference=True,
                                          call_offset=100.0)(prompts, 4)
    assert not any(t.startswith("[") for t in plain)  # random weights: the offset is what opens the lists
    for user, p, c, t in zip(to_user, plain, calls, texts):
        assert c.startswith("[") == user and not t.startswith("[")
        if not user:
            assert c == t == p
    assert reference == calls


def test_the_matching_offset_calls_as_often_as_the_golds():
    margins, is_call = [-2.0, -1.0, 0.5, 3.0, 1.5], [False, True, True, False, True]
    offset = generation.matching_offset(margins, is_call)
    assert sum(m + offset > 0 for m in margins) == sum(is_call) == 3
    tied = [0.5, 0.5, 0.5, 1.0, 2.0]  # no cut gives 3 calls: the nearest count, 2
    offset = generation.matching_offset(tied, [True, True, True, False, False])
    assert sum(m + offset > 0 for m in tied) == 2
    assert generation.matching_offset([-1.0, 2.0], [True, True]) is None


def test_plain_peft_generate_stops_at_end_of_turn(tiny_model_dir, tiny_tokenizer, adapter_dir):
    """A user loading base + adapter with plain transformers and peft: generation ends at the
    model's <end_of_turn>, not at max_new_tokens."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    end_of_turn = modeling.end_of_turn_id(tiny_tokenizer)

    class EndAtThird(LogitsProcessor):  # random weights never choose it: force it at step 3
        def __init__(self, start):
            self.start = start

        def __call__(self, input_ids, scores):
            if input_ids.shape[1] - self.start == 2:
                scores[:] = -float("inf")
                scores[:, end_of_turn] = 0
            return scores

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir)
    ids = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                             return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(input_ids=ids, max_new_tokens=20, do_sample=False,
                         logits_processor=LogitsProcessorList([EndAtThird(ids.shape[1])]))
    new = out[0, ids.shape[1]:].tolist()
    assert new[-1] == end_of_turn and len(new) == 3


@torch.inference_mode()
def test_a_prompt_that_extends_a_kept_one_is_continued_from_it(fp32_model, monkeypatch):
    """A multi-turn dialogue's next prompt extends its last one: only the new tokens are computed,
    and the answers are those of a fresh prefill."""
    generator = torch.Generator().manual_seed(3)
    first = torch.randint(10, 1000, (300,), generator=generator).tolist()
    second = first + torch.randint(10, 1000, (40,), generator=generator).tolist()
    other = torch.randint(10, 1000, (120,), generator=generator).tolist()
    stops = {7, 8, 9}
    cache = generation.PrefixCache(min_tokens=100)
    generation.greedy(fp32_model, [first], stops, 6, cache=cache)
    assert list(cache.entries) == [tuple(first)]
    prefilled, real_prefill = [], generation.prefill
    monkeypatch.setattr(generation, "prefill", lambda model, prompts, *a: prefilled.extend(prompts) or
                        real_prefill(model, prompts, *a))
    continued = generation.greedy(fp32_model, [second, other], stops, 6, cache=cache)
    assert prefilled == [other]  # `second` continued from `first`'s cache
    assert list(cache.entries) == [tuple(other), tuple(second)]  # `first` gave way to its continuation
    monkeypatch.setattr(generation, "prefill", real_prefill)
    assert continued == generation.greedy(fp32_model, [second, other], stops, 6)
