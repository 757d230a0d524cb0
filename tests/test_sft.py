"""Stage 02 (warm-up SFT) on the tiny random Gemma: curriculum plan, loss masking, learning, exact
resume after a kill, the NaN guard, QLoRA, and adapters that plain peft loads."""
import json
import math
import random
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from conftest import copy_checkout, load_stage, make
from itool import logprobs, modeling, training
from itool.files import read_jsonl, write_jsonl

sft = load_stage("02_sft.py")

LEVELS = ("easy", "medium", "hard")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def splits(tmp_path_factory, synthetic_samples):
    """easy/medium/hard.jsonl of 12 short samples each (the shortest are the easiest here)."""
    short = sorted(synthetic_samples, key=lambda s: len(s["system"]) + len(json.dumps(s["messages"])) + len(s["answer"]))
    out = tmp_path_factory.mktemp("splits")
    for k, level in enumerate(LEVELS):
        write_jsonl(out / f"{level}.jsonl", short[12 * k:12 * (k + 1)])
    return out


def run(splits, out, *flags):
    sft.main(["--model", "tiny", "--splits-dir", str(splits), "--out", str(out), "--batch-size", "4",
              "--lr", "1e-2", "--log-every", "1", "--curriculum", "easy2hard", *flags])
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def adapter_tensors(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


# --- the step plan (no model) -----------------------------------------------------------------

def fake_encoded(sizes, seed=0):
    rng = random.Random(seed)
    return {level: [([1] * rng.randint(5, 50), [2] * rng.randint(1, 5)) for _ in range(n)]
            for level, n in zip(LEVELS, sizes)}


def test_plan_is_easy_then_medium_then_hard_with_every_sample_once_per_epoch():
    encoded = fake_encoded((10, 7, 9))
    plan = sft.plan_steps(encoded, "easy2hard", epochs=2, batch_size=4, max_steps=0, seed=0)
    phases = [phase for phase, _ in plan]
    assert phases == ["easy"] * 6 + ["medium"] * 4 + ["hard"] * 6
    for phase, units in plan:
        assert {level for level, _ in units} == {phase} and 1 <= len(units) <= 4
    for level in LEVELS:
        seen = [i for phase, units in plan if phase == level for _, i in units]
        assert sorted(seen) == sorted(list(range(len(encoded[level]))) * 2)


def test_mixed_plan_takes_the_same_number_of_steps_over_the_union():
    encoded = fake_encoded((10, 7, 9))
    curriculum = sft.plan_steps(encoded, "easy2hard", epochs=1, batch_size=4, max_steps=0, seed=0)
    mixed = sft.plan_steps(encoded, "mixed", epochs=1, batch_size=4, max_steps=0, seed=0)
    assert len(mixed) == len(curriculum)
    units = sorted(u for _, batch in mixed for u in batch)
    assert units == sorted((level, i) for level in LEVELS for i in range(len(encoded[level])))
    assert any(len({level for level, _ in batch}) > 1 for _, batch in mixed)
    assert all(len(batch) <= 4 for _, batch in mixed)


def test_max_steps_keeps_every_phase_in_proportion():
    encoded = fake_encoded((40, 40, 80))
    plan = sft.plan_steps(encoded, "easy2hard", epochs=1, batch_size=4, max_steps=8, seed=0)
    assert [phase for phase, _ in plan] == ["easy"] * 2 + ["medium"] * 2 + ["hard"] * 4
    assert len(sft.plan_steps(encoded, "mixed", epochs=1, batch_size=4, max_steps=8, seed=0)) == 8


def test_batches_group_similar_lengths():
    rng = random.Random(1)
    lengths = [rng.randint(10, 1000) for _ in range(256)]
    batches = sft.length_bucketed_batches(lengths, 32, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(256))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    shuffled = list(range(256))
    rng.shuffle(shuffled)
    padded_random = sum(8 * max(lengths[i] for i in shuffled[k:k + 8]) for k in range(0, 256, 8))
    assert padded < 0.8 * padded_random


def test_micro_batches_stay_within_the_token_budget():
    examples = [([1] * n, [2] * 3) for n in (10, 200, 40, 90, 300, 15, 60)]
    groups = sft.micro_batches(examples, 256)
    assert sorted(map(id, (e for g in groups for e in g))) == sorted(map(id, examples))
    for group in groups:
        width = max(len(p) + len(c) for p, c in group)
        assert len(group) == 1 or width * len(group) <= 256


def test_no_examples_make_no_micro_batch():
    # a rank's share of a step is empty when the step has fewer samples than ranks (NGPU=2,
    # --batch-size 1); an empty micro-batch would reach collate, which cannot pad nothing
    assert sft.micro_batches([], 256) == []
    assert sft.micro_batches([([1] * 5, [2])], 256) == [[([1] * 5, [2])]]


# --- the loss -----------------------------------------------------------------------------------

def test_only_answer_tokens_carry_loss(tiny_model_dir, tiny_tokenizer, synthetic_samples):
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu"))
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    pad, cpu = tiny_tokenizer.pad_token_id, torch.device("cpu")
    examples = [modeling.encode_sample(tiny_tokenizer, s, eot) for s in synthetic_samples[:3]]
    input_ids = logprobs.collate(examples, pad)[0]
    with torch.no_grad():
        ours = sft.answer_nll(model, examples, pad, cpu)[0].item()
        # reference: the full LM head on every position, cross-entropy on the answer tokens only
        logits = model(input_ids=input_ids).logits.float()[:, :-1]
        per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
        is_answer = torch.zeros_like(per_token, dtype=torch.bool)
        for row, (prompt, answer) in enumerate(examples):
            is_answer[row, len(prompt) - 1:len(prompt) + len(answer) - 1] = True
        assert ours == pytest.approx(per_token[is_answer].sum().item(), rel=1e-3)
        assert per_token[:, :-1].sum().item() > 2 * ours  # prompt tokens would weigh a lot: they must not count

        # the last prompt token counted as an answer token changes the loss
        moved = [(prompt[:-1], prompt[-1:] + answer) for prompt, answer in examples]
        assert sft.answer_nll(model, moved, pad, cpu)[0].item() != pytest.approx(ours, rel=1e-4)
        # each row scores the same alone as padded in a batch: no attention mask is needed
        alone = sum(sft.answer_nll(model, [e], pad, cpu)[0].item() for e in examples)
        assert alone == pytest.approx(ours, rel=1e-3)


def test_a_shared_prefix_runs_once_with_the_loss_and_gradient_of_full_rows(tiny_model_dir, tiny_tokenizer,
                                                                          synthetic_samples, monkeypatch):
    """The micro-batch's common system-prompt head is computed once (logprobs.prefixed_hidden) and
    its keys and values serve every row, gradients included; gradient checkpointing, which would
    drop that cache, turns the sharing off."""
    torch.manual_seed(0)
    # in fp32: bf16 rounds a sum over rows differently from the rows' separate terms
    model = modeling.load_model(tiny_model_dir, trainable=True, device=torch.device("cpu")).float()
    with torch.no_grad():  # a fresh adapter's B is zero, which would leave every A without a gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    pad, cpu = tiny_tokenizer.pad_token_id, torch.device("cpu")
    examples = [modeling.encode_sample(tiny_tokenizer, s, eot) for s in synthetic_samples[:4]]
    shared = logprobs.common_prefix([prompt for prompt, _ in examples])
    assert shared > 20  # the system prompt's head

    fed = []
    real = logprobs.cached_hidden
    monkeypatch.setattr(logprobs, "cached_hidden", lambda m, ids, *rest: fed.append(ids.shape) or real(m, ids, *rest))

    def loss_and_grads(share):
        model.zero_grad()
        loss = sft.answer_nll(model, examples, pad, cpu, shared if share else 0)[0]
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    full_loss, full_grads = loss_and_grads(False)
    assert fed == []
    shared_loss, shared_grads = loss_and_grads(True)
    longest = max(len(p) + len(a) for p, a in examples)
    assert fed[0][0] == 1 and fed[1][0] == 4 and fed[0][1] + fed[1][1] == longest  # prefix once, then the rows
    assert shared_loss == pytest.approx(full_loss, rel=1e-5)
    assert all(torch.allclose(shared_grads[n], full_grads[n], rtol=1e-4, atol=1e-5) for n in full_grads)
    assert any(full_grads[n].abs().sum() > 0 for n in full_grads if "lora_A" in n)

    model.train()
    optimizer = training.make_optimizer(model, 0.0, 0.0)
    scheduler = training.warmup_cosine(optimizer, 1, 2)

    def step():
        return sft.train_step(model, optimizer, scheduler, [examples], 1, pad, cpu, SimpleNamespace(max_grad_norm=1.0),
                              None)

    step_loss, _, _, spared = step()
    assert step_loss == pytest.approx(full_loss, rel=2e-4) and spared == 3 * shared  # the step runs in bf16
    # checkpointed layers drop the cache: the shared head would silently vanish, so a step does not share
    model.get_base_model().activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert sft.answer_nll(model, examples, pad, cpu, shared)[0].item() != pytest.approx(full_loss, rel=2e-4)
    step_loss, _, _, spared = step()
    assert step_loss == pytest.approx(full_loss, rel=2e-4) and spared == 0


def test_chunked_head_matches_the_full_head(tiny_model_dir):
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu"))
    torch.manual_seed(0)
    vocab = model.config.vocab_size
    targets = torch.randint(0, vocab, (7,))
    for softcap in (None, 3.0):
        model.config.final_logit_softcapping = softcap
        hidden = (torch.randn(7, model.config.hidden_size) * 4).to(torch.bfloat16).requires_grad_()
        full = logprobs.head_logprobs(model, hidden, targets)
        (full * torch.arange(1.0, 8.0)).sum().backward()
        full_grad, hidden.grad = hidden.grad, None
        chunked = logprobs.chunked_head_logprobs(model, hidden, targets, chunk=300)  # uneven last chunk
        (chunked * torch.arange(1.0, 8.0)).sum().backward()
        assert torch.allclose(chunked, full, atol=1e-4)
        assert torch.allclose(hidden.grad.float(), full_grad.float(), rtol=2e-2, atol=1e-3)
        assert hidden.grad.dtype == torch.bfloat16


def test_decision_weights_give_calls_and_texts_the_same_total_and_skip_reports():
    encoded = {"easy": [([1], [2], True)] * 6 + [([1], [2], None)] * 3, "medium": [([1], [2], False)] * 2,
               "hard": [([1], [2], True)] * 2}
    weights = sft.decision_weights(encoded, 3.0)
    assert ("easy", 6) not in weights and len(weights) == 10  # reports carry no decision
    calls = [w for (level, i), w in weights.items() if encoded[level][i][2]]
    texts = [w for (level, i), w in weights.items() if not encoded[level][i][2]]
    assert set(calls) == {3.0} and sum(texts) == pytest.approx(sum(calls)) == 24.0
    assert sft.decision_weights(encoded, 0.0) == {}
    assert sft.decision_weights({**encoded, "medium": []}, 3.0) == {}  # one class only: nothing to balance


def test_the_decision_term_is_the_weighted_first_answer_token_and_a_step_on_it_raises_it(
        tiny_model_dir, tiny_tokenizer, synthetic_samples):
    """The decision term is weight x -log p(the gold's first answer token): for a text gold the
    token its text begins with, so no token but the gold's own can lower it (a term that read
    "anything but a call" would let an answer that opens with "(" win it). One plain SGD step on it
    raises that token's probability, for a call and for a text gold."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    pad, cpu = tiny_tokenizer.pad_token_id, torch.device("cpu")
    first_turns = [s for s in synthetic_samples if len(s["messages"]) == 1]
    for opens_call in (False, True):
        sample = next(s for s in first_turns if s["answer"].startswith("[") == opens_call)
        other = next(s for s in first_turns if s is not sample and len(s["answer"]) > 20)
        torch.manual_seed(0)
        model = modeling.load_model(tiny_model_dir, trainable=True, device=cpu).float()
        with torch.no_grad():  # a fresh adapter's B is zero: give the step something to move
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1)
        prompt, answer = modeling.encode_sample(tiny_tokenizer, sample, eot)
        # a row without a decision weight beside it: only the weighted row's first token counts
        group = [modeling.encode_sample(tiny_tokenizer, other, eot) + (0.0,), (prompt, answer, 3.0)]

        def p_first():
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
            return logits.softmax(-1)[answer[0]].item()

        before = p_first()
        nll, decision = sft.answer_nll(model, group, pad, cpu)
        assert decision.item() == pytest.approx(-3.0 * math.log(before), rel=1e-3)
        assert nll.item() == pytest.approx(sft.answer_nll(model, [g[:2] for g in group], pad, cpu)[0].item(), rel=1e-6)
        decision.backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 0.05 * p.grad
        assert p_first() > before
        assert sft.answer_nll(model, [g[:2] for g in group], pad, cpu)[1].item() == 0.0  # no weights: no term


# --- runs of the stage on the tiny model ----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(splits, tmp_path_factory):
    """An uninterrupted easy2hard run: 2 epochs of each third, state saved every 2 steps."""
    out = tmp_path_factory.mktemp("run")
    metrics = run(splits, out, "--epochs", "2", "--save-every", "2")
    return out, metrics


def mean_answer_nll(model_dir, adapter, splits, tokenizer):
    model = modeling.load_model(model_dir, adapter=adapter, device=torch.device("cpu"))
    eot = modeling.end_of_turn_id(tokenizer)
    examples = [modeling.encode_sample(tokenizer, s, eot) for level in LEVELS for s in read_jsonl(splits / f"{level}.jsonl")]
    with torch.no_grad():
        nll = sft.answer_nll(model, examples, tokenizer.pad_token_id, torch.device("cpu"))[0].item()
    return nll / sum(len(answer) for _, answer in examples)


def test_loss_decreases_and_curriculum_runs_in_order(trained, splits, tiny_model_dir, tiny_tokenizer):
    out, metrics = trained
    assert [m["phase"] for m in metrics] == ["easy"] * 6 + ["medium"] * 6 + ["hard"] * 6
    before = mean_answer_nll(tiny_model_dir, None, splits, tiny_tokenizer)
    after = mean_answer_nll(tiny_model_dir, str(out), splits, tiny_tokenizer)
    assert after < before - 0.1  # a random 2-layer model with tiny tied embeddings moves slowly
    for m in metrics:
        assert m["tokens_per_s"] > 0 and m["peak_memory_mib"] > 0 and m["lr"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 18 and summary["skipped_too_long"] == 0
    assert summary["decoder_tokens_per_s"] < summary["tokens_per_s"]  # each micro-batch's prompt head ran once
    assert not (out / "train_state.pt").exists()


def test_a_decision_weighted_run_logs_the_decision_loss(trained, splits, tmp_path):
    metrics = run(splits, tmp_path, "--decision-weight", "2", "--max-steps", "6")
    assert len(metrics) == 6 and sum(m["decision_loss"] for m in metrics) > 0
    assert all("decision_loss" not in m for m in trained[1])  # the paper's loss alone by default


def test_the_call_offset_makes_greedy_call_as_often_as_the_unseen_golds(splits, synthetic_samples, tmp_path):
    """--call-offset-samples: saved beside the adapter, and under it greedy's first tokens open a
    call list on the unseen samples' answers to a user as often as their golds do; a run without
    the flag removes an earlier run's offset."""
    from eval import common

    unseen = tmp_path / "rl.jsonl"
    write_jsonl(unseen, synthetic_samples[36:])
    out = tmp_path / "out"
    run(splits, out, "--max-steps", "3", "--call-offset-samples", str(unseen))
    saved = json.loads((out / modeling.CALL_OFFSET_FILE).read_text())
    to_user = [s for s in synthetic_samples[36:] if s["messages"][-1]["role"] == "user"]
    golds = sum(s["kind"] == "call" for s in to_user)
    assert 0 < golds < len(to_user) and saved["answers"] == len(to_user)
    assert saved["call_share_with"] == saved["gold_call_share"] == round(golds / len(to_user), 4)
    assert saved["call_share_without"] != saved["call_share_with"] and modeling.read_call_offset(out) == saved["offset"]

    tokenizer, model = modeling.load_policy(SimpleNamespace(model="tiny", adapter=str(out), qlora="0"),
                                            torch.device("cpu"))
    generate = common.make_generator(model, tokenizer, call_offset=modeling.read_call_offset(out))
    firsts = generate([{"system": s["system"], "messages": s["messages"]} for s in to_user], 1)
    assert abs(sum(t.startswith("[") for t in firsts) - golds) <= 1  # bf16 rounding may tip one tie

    run(splits, out, "--max-steps", "3")
    assert not (out / modeling.CALL_OFFSET_FILE).exists() and modeling.read_call_offset(out) == 0.0
    (out / modeling.CALL_OFFSET_FILE).write_text('{"offset": "high"}')
    with pytest.raises(ValueError, match=modeling.CALL_OFFSET_FILE):
        modeling.read_call_offset(out)


def test_the_call_gate_decides_the_first_token_where_the_harness_reads_it(splits, synthetic_samples, tmp_path):
    """--call-gate: fitted on the warm-up's own answers to a user,
    saved beside the adapter; a harness that loads the adapter opens a call list exactly where
    the gate scores a call, and nowhere else the answer follows a tool result it changes nothing;
    a run without the flag removes it, and the gate and the call offset do not go together."""
    from eval import common
    from itool import gate

    out = tmp_path / "out"
    run(splits, out, "--max-steps", "3", "--call-gate")
    saved = json.loads((out / gate.GATE_FILE).read_text())
    trained = [s for level in LEVELS for s in read_jsonl(splits / f"{level}.jsonl")
               if s["messages"][-1]["role"] == "user"]
    texts = [s for s in trained if s["kind"] != "call"]
    assert saved["texts"] == len(texts) > 0 and saved["calls"] == len(trained) - len(texts) > 0
    assert saved["fit_accuracy"] > 0.8

    args = SimpleNamespace(model="tiny", adapter=str(out), qlora="0", generator="fast", pool_size=8,
                           call_offset=None, call_gate="on")
    after_tools = [s for s in synthetic_samples if s["messages"][-1]["role"] == "tool"][:4]
    prompts = [{"system": s["system"], "messages": s["messages"]} for s in texts[:4] + trained[-8:] + after_tools]
    base = modeling.load_model(modeling.resolve_model("tiny"), device=torch.device("cpu"))
    tokenizer = modeling.load_tokenizer(modeling.resolve_model("tiny"))
    wanted = (gate.score(gate.read(out), gate.features(base, tokenizer, prompts[:12], saved["layer"])) > 0).tolist()
    assert True in wanted and False in wanted
    gated = common.load_generator(args)(prompts, 2)
    plain = common.load_generator(SimpleNamespace(**{**vars(args), "call_gate": "off"}))(prompts, 2)
    assert [t.startswith("[") for t in gated[:12]] == wanted
    assert gated[12:] == plain[12:] and len(after_tools) == 4

    run(splits, out, "--max-steps", "3")
    assert not (out / gate.GATE_FILE).exists()
    with pytest.raises(SystemExit, match="choose one"):
        run(splits, out, "--call-gate", "--call-offset-samples", str(splits / "easy.jsonl"))


def test_stage_adapters_load_with_plain_peft(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = trained
    adapters = [adapter_tensors(out / level) for level in LEVELS] + [adapter_tensors(out)]
    for earlier, later in zip(adapters[:2], adapters[1:3]):
        assert any(not torch.equal(earlier[k], later[k]) for k in earlier)  # training went on between saves
    assert all(torch.equal(adapters[2][k], adapters[3][k]) for k in adapters[3])  # final = after hard

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    before = base(input_ids=ids).logits
    model = PeftModel.from_pretrained(base, str(out))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(adapters[3])
    assert not torch.allclose(model(input_ids=ids).logits, before)


class Killed(Exception):
    pass


def test_kill_and_resume_ends_with_identical_adapter(trained, splits, tmp_path, monkeypatch):
    out, metrics = trained
    real_step, calls = sft.train_step, []

    def dies_in_step_8(*args, **kwargs):  # states are saved after steps 2, 4, 6 (and stage ends)
        calls.append(1)
        if len(calls) == 8:
            raise Killed
        return real_step(*args, **kwargs)

    monkeypatch.setattr(sft, "train_step", dies_in_step_8)
    with pytest.raises(Killed):
        run(splits, tmp_path, "--epochs", "2", "--save-every", "2")
    assert not (tmp_path / "adapter_model.safetensors").exists()
    assert torch.load(tmp_path / "train_state.pt", weights_only=False)["step"] == 6

    monkeypatch.setattr(sft, "train_step", real_step)
    resumed = run(splits, tmp_path, "--epochs", "2", "--save-every", "2")
    expected, got = adapter_tensors(out), adapter_tensors(tmp_path)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    assert resumed == [{**m, "tokens_per_s": r["tokens_per_s"], "peak_memory_mib": r["peak_memory_mib"]}
                       for m, r in zip(metrics, resumed)]  # one line per step, same losses


def test_nan_loss_stops_and_keeps_the_last_good_state(splits, tmp_path, monkeypatch):
    real_nll, calls = sft.answer_nll, []

    def nan_in_step_3(*args):
        nll, decision = real_nll(*args)
        calls.append(1)
        return (nll * float("nan") if len(calls) > 2 else nll), decision  # one micro-batch per step here

    monkeypatch.setattr(sft, "answer_nll", nan_in_step_3)
    with pytest.raises(training.NonFiniteLoss, match="step 3.*train_state.pt"):
        run(splits, tmp_path, "--save-every", "2", "--micro-batch-tokens", "100000")
    state = torch.load(tmp_path / "train_state.pt", weights_only=False)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["trainable"].values())
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_qlora_runs_and_long_samples_are_counted(splits, tmp_path, capsys):
    run(splits, tmp_path, "--qlora", "1", "--max-steps", "3", "--max-length", "400")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["qlora"] is True and summary["steps"] == 3
    assert summary["skipped_too_long"] > 0
    assert f"skipped {summary['skipped_too_long']} samples longer than --max-length 400" in capsys.readouterr().err
    assert all(torch.isfinite(t).all() for t in adapter_tensors(tmp_path).values())


def test_missing_split_is_a_clear_error(splits, tmp_path):
    for level in ("easy", "hard"):
        (tmp_path / f"{level}.jsonl").write_text((splits / f"{level}.jsonl").read_text())
    with pytest.raises(SystemExit, match="medium.jsonl: not found"):
        sft.main(["--model", "tiny", "--splits-dir", str(tmp_path), "--out", str(tmp_path / "out")])


def test_make_warmup_mixed_takes_as_many_steps_as_easy2hard(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    checkout = copy_checkout(tmp_path)
    common = ["MODEL=tiny", "SAMPLES=24", "SFT_ARGS=--max-length 900 --batch-size 4"]
    make(checkout, "warmup", "RUN=a", "CURRICULUM=easy2hard", *common)
    make(checkout, "warmup", "RUN=b", *common)  # mixed, the default
    a = json.loads((checkout / "checkpoints/a/warmup/summary.json").read_text())
    b = json.loads((checkout / "checkpoints/b/warmup/summary.json").read_text())
    assert a["curriculum"] == "easy2hard" and b["curriculum"] == "mixed" and a["steps"] == b["steps"] > 0
    for level in LEVELS:
        assert (checkout / f"checkpoints/a/warmup/{level}/adapter_model.safetensors").is_file()
    assert (checkout / "checkpoints/b/warmup/adapter_model.safetensors").is_file()
    assert not (checkout / "checkpoints/b/warmup/easy").exists()  # one phase: no adapter per third
    assert "Nothing to be done" in make(checkout, "warmup", "RUN=a", "CURRICULUM=easy2hard", *common).stdout


def test_a_step_is_the_token_mean_over_the_whole_step_not_per_micro_batch(tiny_model_dir, tiny_tokenizer,
                                                                           synthetic_samples, monkeypatch):
    """Micro-batches of uneven answer lengths: the step's gradient is that of one big batch whose
    loss is the mean over every answer token of the step (paper Eq. 1–3 with accumulation); dividing
    each micro-batch by its own tokens would weigh a short answer's tokens many times over."""
    torch.manual_seed(0)
    model = modeling.load_model(tiny_model_dir, trainable=True, device=torch.device("cpu")).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    pad, cpu = tiny_tokenizer.pad_token_id, torch.device("cpu")
    examples = sorted((modeling.encode_sample(tiny_tokenizer, s, eot) for s in synthetic_samples[:6]),
                      key=lambda e: len(e[1]))
    groups = [examples[:1], examples[1:]]  # the shortest answer alone, the rest together
    n_targets = sum(len(answer) for _, answer in examples)
    assert len(examples[0][1]) * 3 < n_targets

    def gradient(losses):
        model.zero_grad()
        sum(losses).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]).clone()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole = gradient([sft.answer_nll(model, examples, pad, cpu)[0] / n_targets])
        per_micro_batch = gradient([sft.answer_nll(model, g, pad, cpu)[0] / sum(len(a) for _, a in g) / len(groups)
                                    for g in groups])
    captured = []
    monkeypatch.setattr(training, "finish_step", lambda optimizer, *rest, **kw: captured.append(
        torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]).clone()) or 0.0)
    model.zero_grad()
    sft.train_step(model, None, None, groups, n_targets, pad, cpu, SimpleNamespace(max_grad_norm=1.0), None)
    (step,) = captured

    def distance(a, b):
        return ((a - b).norm() / b.norm()).item()

    assert distance(per_micro_batch, whole) > 0.1  # the two rules differ here: the test can tell them apart
    assert distance(step, whole) < 0.02
