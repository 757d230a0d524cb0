"""Stage 06 (DPO and the Fig. 6 losses) on the tiny random Gemma: the losses (itool.losses) against
hand-computed values and the papers' formulas, packed chosen+rejected rows (itool.pairs) against
separate rows, log 2 at the first step, learning, exact resume after a kill, and the errors for bad
pairs."""
import json
import math
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, load_stage, sequence_logprobs
from itool import logprobs, losses, modeling
from itool.files import write_jsonl
from itool.logprobs import collate
from itool.pairs import encode_pair, group_pairs, micro_batches, pack, packed_length, pair_logprobs
from itool.records import RecordError
from itool.steps import split_steps

dpo = load_stage("06_dpo.py")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_pairs(samples, n):
    """Step-level pairs like stage 05's: chosen = the gold next step, rejected = another sample's
    step at the same depth; every other pair one step deep into a multi-step answer."""
    pairs = []
    for i, sample in enumerate(samples):
        steps = split_steps(sample["answer"])
        depth = 1 if len(steps) > 1 and i % 2 else 0
        other = split_steps(samples[(i + 7) % len(samples)]["answer"])
        at = min(depth, len(other) - 1)
        rejected = other[at]
        if rejected == steps[depth]:
            continue
        pairs.append({"id": f"{sample['id']}:{depth}", "sample_id": sample["id"], "depth": depth,
                      "system": sample["system"], "messages": sample["messages"], "prefix": "".join(steps[:depth]),
                      "chosen": steps[depth], "rejected": rejected, "chosen_ends": depth == len(steps) - 1,
                      "rejected_ends": at == len(other) - 1, "q_chosen": 1.0, "q_rejected": -1.0})
        if len(pairs) == n:
            return pairs
    raise AssertionError("not enough samples for the pairs")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, synthetic_samples):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_jsonl(path, make_pairs(synthetic_samples, 8))
    return path


@pytest.fixture(scope="module")
def start_adapter(tmp_path_factory, tiny_model_dir):
    """Policy K-1: an adapter with non-zero weights, so that it differs from the base model."""
    torch.manual_seed(0)
    model = modeling.load_model(tiny_model_dir, trainable=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("policy0")
    modeling.save_adapter(model, out)
    return out


def run(pairs_file, adapter, out, *flags):
    dpo.main(["--model", "tiny", "--pairs", str(pairs_file), "--adapter", str(adapter), "--out", str(out),
              "--batch-size", "4", "--micro-batch-tokens", "1", *flags])  # every packed row its own forward
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# --- the losses, on fixed log-probs ------------------------------------------------------------

# Summed log-probs of two pairs (chosen, rejected), their references, and token counts.
CHOSEN, REJECTED = torch.tensor([-10.0, -3.0]), torch.tensor([-14.0, -2.5])
REF_CHOSEN, REF_REJECTED = torch.tensor([-11.0, -3.2]), torch.tensor([-12.0, -2.0])
N_CHOSEN, N_REJECTED = torch.tensor([4.0, 3.0]), torch.tensor([7.0, 1.0])


def log_sigmoid(x):
    return -math.log(1 + math.exp(-x))


def test_dpo_loss_is_eq_11():
    loss, reward_chosen, reward_rejected = losses.dpo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1)
    # pair 0: β·(1 - (-2)) = 0.3; pair 1: β·(0.2 - (-0.5)) = 0.07
    assert loss.tolist() == pytest.approx([-log_sigmoid(0.3), -log_sigmoid(0.07)], rel=1e-6)
    assert reward_chosen.tolist() == pytest.approx([0.1, 0.02], rel=1e-5)
    assert reward_rejected.tolist() == pytest.approx([-0.2, -0.05], rel=1e-5)


def test_simpo_loss_uses_length_normalised_rewards_and_the_margin():
    loss, reward_chosen, reward_rejected = losses.simpo_loss(CHOSEN, REJECTED, N_CHOSEN, N_REJECTED, beta=2.5,
                                                             gamma=0.5)
    # pair 0: 2.5·(-10/4) - 2.5·(-14/7) - 0.5 = -1.75; pair 1: 2.5·(-1) - 2.5·(-2.5) - 0.5 = 3.25
    assert loss.tolist() == pytest.approx([-log_sigmoid(-1.75), -log_sigmoid(3.25)], rel=1e-6)
    assert reward_chosen.tolist() == pytest.approx([-6.25, -2.5])
    assert reward_rejected.tolist() == pytest.approx([-5.0, -6.25])


def test_ipo_loss_regresses_the_margin_onto_one_over_two_tau():
    loss, reward_chosen, _ = losses.ipo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, tau=0.1)
    # log-ratio margins 3 and 0.7, target 1/(2·0.1) = 5
    assert loss.tolist() == pytest.approx([(3 - 5) ** 2, (0.7 - 5) ** 2], rel=1e-5)
    assert reward_chosen.tolist() == pytest.approx([0.1, 0.02], rel=1e-5)


def log_odds(mean_logp):
    p = math.exp(mean_logp)
    return math.log(p / (1 - p))


def test_orpo_loss_is_its_sft_term_plus_lambda_times_the_log_odds_ratio_term():
    loss, reward_chosen, _ = losses.orpo_loss(CHOSEN, REJECTED, N_CHOSEN, N_REJECTED, lam=0.1)
    # the SFT term: the chosen's mean token NLL, 10/4 and 3/3
    expected = [2.5 - 0.1 * log_sigmoid(log_odds(-2.5) - log_odds(-2.0)),
                1.0 - 0.1 * log_sigmoid(log_odds(-1.0) - log_odds(-2.5))]
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)
    assert reward_chosen.tolist() == pytest.approx([-0.25, -0.1])
    assert torch.isfinite(losses.orpo_loss(torch.tensor([-1e-9, -80.0]), torch.tensor([-60.0, -1e-12]),
                                        torch.ones(2), torch.ones(2), lam=0.1)[0]).all()


def test_nll_loss_is_the_chosen_tokens_mean_negative_log_likelihood():
    # 13 nats over the step's 7 chosen tokens, whichever micro-batch holds which pair
    assert losses.nll_loss(CHOSEN, 7).item() == pytest.approx(13 / 7)
    assert (losses.nll_loss(CHOSEN[:1], 7) + losses.nll_loss(CHOSEN[1:], 7)).item() == pytest.approx(13 / 7)


def test_the_losses_are_their_papers_formulas_on_any_log_probs():
    """Each loss and its rewards against its paper's formula written out pair by pair in plain floats,
    on random log-probs and lengths; the margin and accuracy helpers likewise."""
    g = torch.Generator().manual_seed(0)
    n_chosen, n_rejected = (torch.randint(1, 40, (16,), generator=g).double() for _ in range(2))
    # mean token log-probs in [-4, -0.05]: the odds of ORPO stay finite in plain floats
    chosen, rejected, ref_chosen, ref_rejected = (
        -(0.05 + 3.95 * torch.rand(16, generator=g, dtype=torch.float64)) * n
        for n in (n_chosen, n_rejected, n_chosen, n_rejected))
    strength, gamma = 0.3, 0.4

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    def formulas(c, r, rc, rr, nc, nr):
        """{loss: (loss, reward of chosen, reward of rejected)} of one pair."""
        ratio_c, ratio_r = c - rc, r - rr
        return {"dpo": (-math.log(sigmoid(strength * ratio_c - strength * ratio_r)), strength * ratio_c,
                        strength * ratio_r),
                "ipo": ((ratio_c - ratio_r - 1 / (2 * strength)) ** 2, strength * ratio_c, strength * ratio_r),
                "simpo": (-math.log(sigmoid(strength * c / nc - strength * r / nr - gamma)), strength * c / nc,
                          strength * r / nr),
                "orpo": (-c / nc - strength * math.log(sigmoid(log_odds(c / nc) - log_odds(r / nr))),
                         strength * c / nc, strength * r / nr)}

    sides = (chosen, rejected, ref_chosen, ref_rejected, n_chosen, n_rejected)
    expected = [formulas(*(t[i].item() for t in sides)) for i in range(16)]
    for name in ("dpo", "ipo", "simpo", "orpo"):
        loss, reward_chosen, reward_rejected = losses.preference_loss(
            name, strength, gamma, chosen, rejected, n_chosen, n_rejected, ref_chosen, ref_rejected)
        for k, got in enumerate((loss, reward_chosen, reward_rejected)):
            assert got.tolist() == pytest.approx([e[name][k] for e in expected], rel=1e-9, abs=1e-12), name
        margin = losses.reward_margin(reward_chosen, reward_rejected)
        assert margin.tolist() == pytest.approx([e[name][1] - e[name][2] for e in expected], abs=1e-12)
        assert losses.reward_accuracy(reward_chosen, reward_rejected).tolist() == [e[name][1] > e[name][2]
                                                                                    for e in expected]
    # a step's loss is the same however its pairs are split into micro-batches
    whole = losses.step_loss("dpo", *sides[:2], sides[4], sides[5], *sides[2:4], 16, 300, beta=0.1, nll_weight=1.0)[0]
    halves = [losses.step_loss("dpo", *(t[part] for t in sides[:2]), n_chosen[part], n_rejected[part],
                               *(t[part] for t in sides[2:4]), 16, 300, beta=0.1, nll_weight=1.0)[0]
              for part in (slice(0, 5), slice(5, 16))]
    assert (halves[0] + halves[1]).item() == pytest.approx(whole.item(), rel=1e-12)


def step_loss(args, *logps_and_counts):
    """losses.step_loss with the stage's flags, as stage 06 calls it."""
    return losses.step_loss(args.loss, *logps_and_counts, beta=args.beta, gamma=args.simpo_gamma,
                            nll_weight=args.nll_weight)


def published(loss):
    """Each loss as its paper writes it, averaged over the two pairs above (7 chosen tokens)."""
    if loss == "dpo":  # Eq. 11 + the chosen tokens' NLL (DPO + NLL, iterative RPO): this project's DPO
        return (-log_sigmoid(0.3) - log_sigmoid(0.07)) / 2 + 13 / 7
    if loss == "simpo":  # β 2.5, γ 0.5, no reference, no SFT term
        return (-log_sigmoid(-1.75) - log_sigmoid(3.25)) / 2
    if loss == "ipo":  # τ 0.1, no SFT term
        return ((3 - 5) ** 2 + (0.7 - 5) ** 2) / 2
    # ORPO: L_SFT + λ·L_OR, λ 0.1, per pair
    return (2.5 - 0.1 * log_sigmoid(log_odds(-2.5) - log_odds(-2.0))
            + 1.0 - 0.1 * log_sigmoid(log_odds(-1.0) - log_odds(-2.5))) / 2


@pytest.mark.parametrize("loss", ["dpo", "simpo", "ipo", "orpo"])
def test_each_loss_left_at_its_defaults_is_the_published_one(loss):
    args = dpo.parse_args(["--pairs", "p", "--out", "o", "--loss", loss])
    total, _, _, _ = step_loss(args, CHOSEN, REJECTED, N_CHOSEN, N_REJECTED, REF_CHOSEN, REF_REJECTED, 2, 7)
    assert total.item() == pytest.approx(published(loss), rel=1e-5)


def test_the_extra_nll_is_there_only_when_asked_for():
    plain = dpo.parse_args(["--pairs", "p", "--out", "o", "--nll-weight", "0"])  # the paper's Eq. 11
    total, *_ = step_loss(plain, CHOSEN, REJECTED, N_CHOSEN, N_REJECTED, REF_CHOSEN, REF_REJECTED, 2, 7)
    assert total.item() == pytest.approx((-log_sigmoid(0.3) - log_sigmoid(0.07)) / 2, rel=1e-5)
    simpo = dpo.parse_args(["--pairs", "p", "--out", "o", "--loss", "simpo", "--nll-weight", "0.5"])
    total, *_ = step_loss(simpo, CHOSEN, REJECTED, N_CHOSEN, N_REJECTED, REF_CHOSEN, REF_REJECTED, 2, 7)
    assert total.item() == pytest.approx(published("simpo") + 0.5 * 13 / 7, rel=1e-5)


# --- packing chosen and rejected into one row -----------------------------------------------------

def test_packed_rows_give_the_log_probs_of_separate_rows(tiny_model_dir, tiny_tokenizer, synthetic_samples, start_adapter):
    """In fp32, so that only a wrong mask or position could make them differ; the prompts are longer
    than the tiny model's 256-token sliding window, so its window is checked too. Pairs that share
    a prompt (siblings of one search node: one chosen, several rejected) share a packed row."""
    model = modeling.load_model(tiny_model_dir, adapter=str(start_adapter)).float()
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    pairs = [encode_pair(tiny_tokenizer, p, eot, 10**6, p["id"]) for p in make_pairs(synthetic_samples, 6)]
    prompt, chosen, _ = pairs[0]
    pairs += [(prompt, chosen, pairs[3][2]), (prompt, pairs[4][1], pairs[5][2])]  # two more at pair 0's node
    assert max(len(prompt) for prompt, _, _ in pairs) > model.config.sliding_window
    # a deeper node of pair 0's dialogue: a prompt that holds pair 0's whole prompt, longer than the window
    pairs.append((prompt + chosen[:-1], pairs[1][1], pairs[2][2]))
    assert len(prompt) - 1 > model.config.sliding_window
    rows = group_pairs(pairs, max_pairs=4)
    assert len(rows) == 7 and len(rows[0][2]) == 3 and len(rows[0][1]) == 5  # chosen once, four others
    with torch.no_grad():
        for attn, share, batch_rows in (("eager", False, rows), ("sdpa", False, rows), ("eager", True, rows),
                                        ("sdpa", True, rows), ("eager", True, [rows[0], rows[-1]])):
            model.set_attn_implementation(attn)
            batch = pack(batch_rows, tiny_tokenizer.pad_token_id, model.config, torch.device("cpu"), torch.float32,
                             share=share)
            # with `share`, the prompts' common head runs once, outside the rows: the system prompt's
            # for all rows, all but the last token of pair 0's prompt (longer than the window) for two
            shared = len(prompt) - 1 if batch_rows[0] is rows[0] and len(batch_rows) == 2 else \
                logprobs.common_prefix([row[0] for row in rows])
            assert len(batch["head"]) == (shared if share else 0) and shared > 20
            chosen, rejected = pair_logprobs(model, batch)
            assert sorted(batch["pair_ids"]) == sorted(i for row in batch_rows for i, _, _ in row[2])
            for side, packed in ((1, chosen), (2, rejected)):
                separate = torch.cat([sequence_logprobs(model, *collate([(pairs[i][0], pairs[i][side])],
                                                                        tiny_tokenizer.pad_token_id))[0]
                                      for i in batch["pair_ids"]])
                assert torch.allclose(packed, separate, rtol=1e-5, atol=1e-3), attn


def test_micro_batches_hold_whole_rows_of_up_to_the_pair_budget():
    rows = [([1] * n, [[2]], [(i, 0, 0)] * k) for i, (n, k) in enumerate([(5, 1), (3, 3), (9, 1), (4, 2), (7, 5)])]
    batches = micro_batches(rows, max_tokens=10**6, max_pairs=3)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for batch in batches:
        assert len(batch) == 1 or sum(len(rows[i][2]) for i in batch) <= 3
    batches = micro_batches(rows, max_tokens=16, max_pairs=10**6)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(packed_length(rows[i]) for i in batch) <= 16


# --- the stage ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, expected", [("dpo", math.log(2)), ("ipo", (1 / (2 * 0.1)) ** 2)])
def test_first_step_starts_from_policy_equal_to_reference(pairs_file, start_adapter, tmp_path, loss, expected):
    metrics = run(pairs_file, start_adapter, tmp_path, "--loss", loss, "--max-steps", "1", "--nll-weight", "0")
    assert metrics[0]["loss"] == pytest.approx(expected, abs=1e-4)
    assert metrics[0]["rewards/chosen"] == pytest.approx(0, abs=1e-4)
    assert metrics[0]["rewards/margin"] == pytest.approx(0, abs=1e-4)


@pytest.fixture(scope="module")
def trained(pairs_file, start_adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo")
    return out, run(pairs_file, start_adapter, out, "--epochs", "4", "--lr", "2e-3", "--save-every", "2",
                    "--nll-weight", "0")  # plain DPO


def test_reward_accuracy_and_margin_rise(trained):
    out, metrics = trained
    assert len(metrics) == 8  # 8 pairs, 4 per step, 4 epochs
    first, last = metrics[0], metrics[-2:]
    assert metrics[-1]["loss"] < first["loss"] - 0.1
    assert all(m["rewards/accuracy"] == 1.0 for m in last)
    assert min(m["rewards/margin"] for m in last) > first["rewards/margin"] + 0.1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 8 and summary["steps"] == 8
    assert not (out / "train_state.pt").exists()  # only kept while a run is unfinished


def test_the_nll_term_is_added_at_the_first_step_and_keeps_the_chosen_steps_likely(trained, pairs_file, start_adapter,
                                                                                 tmp_path):
    _, plain = trained
    assert plain[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # plain DPO: no NLL term in the loss
    metrics = run(pairs_file, start_adapter, tmp_path, "--epochs", "4", "--lr", "2e-3")  # DPO's default: + NLL
    assert metrics[0]["nll"] > 0
    assert metrics[0]["loss"] == pytest.approx(math.log(2) + metrics[0]["nll"], abs=1e-4)
    # same pairs, same steps: with the NLL term the chosen steps end more likely than under plain DPO,
    # and more likely than at the start, while the pairs are still ranked right
    assert metrics[-1]["logps/chosen"] > plain[-1]["logps/chosen"]
    assert metrics[-1]["logps/chosen"] > metrics[0]["logps/chosen"]
    assert metrics[-1]["rewards/accuracy"] == 1.0
    assert json.loads((tmp_path / "summary.json").read_text())["nll_weight"] == 1.0


def test_adapter_continues_policy_k_minus_1_and_loads_with_plain_peft(trained, start_adapter, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = trained
    start, end = load_file(str(start_adapter / "adapter_model.safetensors")), load_file(str(out / "adapter_model.safetensors"))
    assert start.keys() == end.keys()
    # a continuation moves away from the start, but not by a fresh adapter's distance (B = 0)
    moved = sum((end[k] - start[k]).norm() ** 2 for k in start) ** 0.5
    size = sum(start[k].norm() ** 2 for k in start if "lora_B" in k) ** 0.5
    assert 0 < moved < size
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    PeftModel.from_pretrained(base, out)


class Killed(Exception):
    pass


def test_kill_and_resume_ends_with_identical_adapter(trained, pairs_file, start_adapter, tmp_path, monkeypatch):
    out, metrics = trained
    real_step, calls = dpo.train_step, []

    def dies_in_step_5(*args, **kwargs):  # states are saved after steps 2 and 4
        calls.append(1)
        if len(calls) == 5:
            raise Killed
        return real_step(*args, **kwargs)

    flags = ("--epochs", "4", "--lr", "2e-3", "--save-every", "2", "--nll-weight", "0")  # as `trained`
    monkeypatch.setattr(dpo, "train_step", dies_in_step_5)
    with pytest.raises(Killed):
        run(pairs_file, start_adapter, tmp_path, *flags)
    assert not (tmp_path / "adapter_model.safetensors").exists()
    assert torch.load(tmp_path / "train_state.pt", weights_only=False)["step"] == 4

    monkeypatch.setattr(dpo, "train_step", real_step)
    resumed = run(pairs_file, start_adapter, tmp_path, *flags)
    expected, got = load_file(str(out / "adapter_model.safetensors")), load_file(str(tmp_path / "adapter_model.safetensors"))
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    strip = lambda m: {k: v for k, v in m.items() if k != "pairs_per_s"}  # noqa: E731
    assert [strip(m) for m in resumed] == [strip(m) for m in metrics]


# --- bad input ------------------------------------------------------------------------------------

def test_a_pair_with_an_empty_completion_is_an_error_naming_it(synthetic_samples, start_adapter, tmp_path):
    pairs = make_pairs(synthetic_samples, 4)
    pairs[2] = {**pairs[2], "rejected": "", "rejected_ends": False}
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    with pytest.raises(SystemExit, match=rf"pair 2 \(id {pairs[2]['id']}\).*rejected completion is empty"):
        run(tmp_path / "pairs.jsonl", start_adapter, tmp_path / "out")
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()

    metrics = run(tmp_path / "pairs.jsonl", start_adapter, tmp_path / "out", "--skip-bad", "--max-steps", "1")
    assert metrics[0]["pairs"] == 3  # the bad pair is skipped, and counted:
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"] == {"bad": 1, "too_long": 0}


def test_a_pair_longer_than_max_length_is_skipped_and_counted(synthetic_samples, start_adapter, tmp_path, capsys):
    pairs = make_pairs(synthetic_samples, 5)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    tokenizer = modeling.load_tokenizer(modeling.resolve_model("tiny"))
    # as the stage encodes them: rejected steps cut (--cut-rejected, its default)
    lengths = {p["id"]: sum(map(len, encode_pair(tokenizer, p, 0, 10**6, p["id"], cut=True))) for p in pairs}
    limit = sorted(lengths.values())[-1] - 1  # only the longest pair is over it
    metrics = run(tmp_path / "pairs.jsonl", start_adapter, tmp_path / "out", "--max-length", str(limit),
                  "--max-steps", "1")
    assert metrics[0]["pairs"] == 4
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"] == {"bad": 0, "too_long": 1}
    assert "exceed --max-length" in capsys.readouterr().err


def test_cut_rejected_keeps_the_first_difference_and_never_outgrows_the_chosen():
    assert losses.cut_rejected([1, 2, 3], [1, 4, 5, 6, 7]) == [1, 4, 5]  # longer: cut to the chosen's length
    assert losses.cut_rejected([1, 2, 3], [1, 2, 9]) == [1, 2, 9]
    assert losses.cut_rejected([1, 2, 3, 4], [5, 6]) == [5, 6]  # shorter: as it is
    assert losses.cut_rejected([1, 2], [1, 2, 3, 4]) == [1, 2, 3]  # the chosen is its prefix: one token past it
    assert losses.cut_rejected([7], [8, 9]) == [8]


def tail_logprob(model_dir, adapter, tokenizer, pairs):
    """Summed log-prob, over the pairs, of each rejected step's tokens past its chosen step's length."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).eval()
    total = 0.0
    with torch.no_grad():
        for pair in pairs:
            prompt = modeling.encode_prompt(tokenizer, pair["system"], pair["messages"]) + pair["prefix_ids"]
            ids = torch.tensor([prompt + pair["rejected_ids"]])
            logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            targets = ids[0, 1:]
            start = len(prompt) + len(pair["chosen_ids"]) - 1  # first target past the chosen's length
            total += logps[torch.arange(start, len(targets)), targets[start:]].sum().item()
    return total


def test_cut_rejected_steps_leave_their_tail_alone(synthetic_samples, start_adapter, tiny_model_dir, tiny_tokenizer,
                                                     tmp_path):
    """Rejected steps three times longer than the chosen ones, as the search's hallucinated argument
    lists are: uncut, training lowers their whole tail; cut, the tail is not trained on and moves far less."""
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    tail = tiny_tokenizer.encode(" zebra quartz lantern violet harbour " * 4, add_special_tokens=False)
    pairs = []
    for pair in make_pairs(synthetic_samples, 8):
        _, chosen = modeling.encode_continuation(tiny_tokenizer, pair["system"], pair["messages"], "", pair["chosen"],
                                                 True, eot)
        _, rejected = modeling.encode_continuation(tiny_tokenizer, pair["system"], pair["messages"], "",
                                                   pair["rejected"], False, eot)
        rejected = (rejected + tail)[:max(3 * len(chosen), len(rejected) + 2)]
        pairs.append({**pair, "prefix": "", "prefix_ids": [], "chosen_ids": chosen, "rejected_ids": rejected})
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    before = tail_logprob(tiny_model_dir, start_adapter, tiny_tokenizer, pairs)
    drop = {}
    for flag in ("--cut-rejected", "--no-cut-rejected"):
        out = tmp_path / flag
        run(tmp_path / "pairs.jsonl", start_adapter, out, "--epochs", "4", "--lr", "2e-3", flag)
        drop[flag] = before - tail_logprob(tiny_model_dir, out, tiny_tokenizer, pairs)
        tokens = json.loads((out / "summary.json").read_text())["tokens"]
        assert (tokens["rejected"] <= tokens["chosen"] + len(pairs)) == (flag == "--cut-rejected")
    assert drop["--no-cut-rejected"] > 0
    assert drop["--cut-rejected"] < drop["--no-cut-rejected"] / 2, drop


def test_search_pairs_train_on_their_own_token_ids(tiny_tokenizer, synthetic_samples):
    """A pair from stage 05 carries the policy's token ids; they are used as they are, even where
    tokenising the text again would give other ids."""
    pair = make_pairs(synthetic_samples, 1)[0]
    odd = [5, 6, 7]  # any ids: they need not be what the text tokenises to
    with_ids = {**pair, "prefix_ids": [9], "chosen_ids": odd, "rejected_ids": [8, 1]}
    prompt, chosen, rejected = encode_pair(tiny_tokenizer, with_ids, 1, 10**6, "p")
    assert prompt == modeling.encode_prompt(tiny_tokenizer, pair["system"], pair["messages"]) + [9]
    assert (chosen, rejected) == (odd, [8, 1])
    with pytest.raises(RecordError, match="rejected_ids"):
        encode_pair(tiny_tokenizer, {**with_ids, "rejected_ids": "x"}, 1, 10**6, "p")
    with pytest.raises(RecordError, match="not all of"):
        encode_pair(tiny_tokenizer, {**pair, "chosen_ids": odd}, 1, 10**6, "p")


def test_only_attention_kernels_that_apply_the_packed_mask_are_accepted(pairs_file, start_adapter, tmp_path):
    with pytest.raises(SystemExit):
        run(pairs_file, start_adapter, tmp_path, "--attn", "flash_attention_2")
    assert not (tmp_path / "metrics.jsonl").exists()


class InfiniteGradient(torch.autograd.Function):
    """The identity whose gradient is infinite: a finite loss with an overflowing backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_non_finite_loss_or_gradient_stops_before_the_update(pairs_file, start_adapter, tmp_path, monkeypatch, where):
    real_loss, calls = losses.preference_loss, []

    def broken_at_step_2(name, *args):
        loss, chosen, rejected = real_loss(name, *args)
        calls.append(1)
        if len(calls) > 2:  # two micro-batches a step: step 2 on
            if where == "loss":
                return loss * float("nan"), chosen, rejected
            return InfiniteGradient.apply(loss), chosen, rejected
        return loss, chosen, rejected

    monkeypatch.setattr(losses, "preference_loss", broken_at_step_2)
    message = "loss is not finite" if where == "loss" else "gradient norm is"
    with pytest.raises(dpo.training.NonFiniteLoss, match=rf"{message}.* step 2.*train_state.pt"):
        run(pairs_file, start_adapter, tmp_path, "--batch-size", "2", "--save-every", "1")
    state = torch.load(tmp_path / "train_state.pt", weights_only=False)
    assert state["step"] == 1  # the last good state, from before the bad step
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_the_stage_reports_a_nan_as_an_error_not_a_traceback(pairs_file, start_adapter, tmp_path):
    # the stage run as a script, its log-sigmoid made to return NaN
    code = ("import sys, runpy; sys.argv = sys.argv[1:]; "
            "import torch.nn.functional as F; F.logsigmoid = lambda x: x * float('nan'); "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([str(REPO / ".venv/bin/python"), "-c", code, str(REPO / "stages/06_dpo.py"), "--model",
                             "tiny", "--pairs", str(pairs_file), "--adapter", str(start_adapter), "--out", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                 "ITOOL_BASE_DIR": str(REPO / "checkpoints/base")})
    assert result.returncode != 0
    assert "error: the loss is not finite at step 1" in result.stderr and "Traceback" not in result.stderr


def test_no_pairs_is_an_error_unless_allowed_to_carry_the_adapter_over(start_adapter, tmp_path):
    """...with its call gate, which an iteration's policy keeps (it reads the base model)."""
    import shutil

    from itool import gate

    policy = tmp_path / "policy"
    shutil.copytree(start_adapter, policy)
    (policy / gate.GATE_FILE).write_text('{"layer": 1, "bias": 0.5, "mean": [0], "std": [1], "weight": [1]}')
    (tmp_path / "pairs.jsonl").write_text("")
    with pytest.raises(SystemExit, match="no usable pair"):
        run(tmp_path / "pairs.jsonl", policy, tmp_path / "out")
    run_args = ["--model", "tiny", "--pairs", str(tmp_path / "pairs.jsonl"), "--adapter", str(policy),
                "--out", str(tmp_path / "out"), "--allow-empty"]
    dpo.main(run_args)
    start, end = load_file(str(start_adapter / "adapter_model.safetensors")), load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    assert all(torch.equal(start[k], end[k]) for k in start)
    assert gate.read(tmp_path / "out")["bias"] == 0.5
    dpo.main([*run_args[:5], str(start_adapter), *run_args[6:]])  # a policy without a gate: none carried
    assert gate.read(tmp_path / "out") is None


def test_replayed_pairs_are_trained_on_as_if_one_file_held_them_all(synthetic_samples, start_adapter, tmp_path):
    """REPLAY=1: iteration K's pairs, then the earlier iterations' files, train exactly as their
    concatenation would; the summary says how many were replayed. Empty own pairs are no error
    while replayed ones are there."""
    pairs = make_pairs(synthetic_samples, 8)
    for name, part in (("all", pairs), ("own", pairs[:3]), ("iter_1", pairs[3:5]), ("iter_2", pairs[5:]),
                       ("none", [])):
        write_jsonl(tmp_path / f"{name}.jsonl", part)
    flags = ("--max-steps", "2", "--lr", "2e-3")
    together = run(tmp_path / "all.jsonl", start_adapter, tmp_path / "together", *flags)
    replayed = run(tmp_path / "own.jsonl", start_adapter, tmp_path / "replayed", *flags,
                   "--replay", str(tmp_path / "iter_1.jsonl"), str(tmp_path / "iter_2.jsonl"))
    strip = lambda m: {k: v for k, v in m.items() if k != "pairs_per_s"}  # noqa: E731
    assert [strip(m) for m in replayed] == [strip(m) for m in together]
    expected = load_file(str(tmp_path / "together" / "adapter_model.safetensors"))
    got = load_file(str(tmp_path / "replayed" / "adapter_model.safetensors"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    summary = json.loads((tmp_path / "replayed" / "summary.json").read_text())
    assert (summary["pairs"], summary["replayed"]) == (8, 5)

    run(tmp_path / "none.jsonl", start_adapter, tmp_path / "only_replayed", "--max-steps", "1",
        "--replay", str(tmp_path / "iter_1.jsonl"))
    summary = json.loads((tmp_path / "only_replayed" / "summary.json").read_text())
    assert (summary["pairs"], summary["replayed"]) == (2, 2)


def test_two_torchrun_ranks_train_the_same_adapter_as_one_process(trained, pairs_file, start_adapter, tmp_path):
    """NGPU=2 on the CPU (gloo): each rank takes its share of every step's micro-batches and of the
    reference pass, and the gradients are summed across ranks."""
    out, metrics = trained
    flags = ["--model", "tiny", "--pairs", str(pairs_file), "--adapter", str(start_adapter), "--out", str(tmp_path),
             "--batch-size", "4", "--micro-batch-tokens", "1", "--epochs", "4", "--lr", "2e-3", "--save-every", "2",
             "--nll-weight", "0"]  # as `trained`
    subprocess.run([str(REPO / ".venv/bin/torchrun"), "--standalone", "--nproc_per_node=2",
                    str(REPO / "stages/06_dpo.py"), *flags], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    expected, got = load_file(str(out / "adapter_model.safetensors")), load_file(str(tmp_path / "adapter_model.safetensors"))
    assert all(torch.allclose(expected[k], got[k], atol=1e-6) for k in expected)
    ranks = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["loss"] for m in ranks] == pytest.approx([m["loss"] for m in metrics], abs=1e-5)
