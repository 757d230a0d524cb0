"""make bench (bench/bench.py): the SFT FLOP formula, the TRL peers' settings, and a quick run end to end."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import REPO, load_stage
from itool import modeling
from itool.logprobs import collate, head_logprobs, target_logprobs

sys.path.insert(0, str(REPO / "bench"))  # bench/'s scripts import each other as top-level modules
import flops  # noqa: E402
import peers  # noqa: E402


def run_bench(tmp_path, *flags, env=None):
    result = subprocess.run([sys.executable, str(REPO / "bench/bench.py"), "--out", str(tmp_path / "bench"), *flags],
                            capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads((tmp_path / "bench" / "bench.json").read_text())


def check_figures(stdout, report, names):
    """Every expected figure in bench.json with positive values, and in the printed table."""
    figures = {f["figure"]: f for f in report["figures"]}
    assert set(figures) == set(names)
    for f in figures.values():
        assert f["ours"] > 0 and f["peer"] > 0 and f["ratio"] > 0, f
        assert f["met"] == (None if f["target"] is None else f["ratio"] >= f["target"])
        assert any(line.startswith(f["figure"]) for line in stdout.splitlines()), f"{f['figure']} not in the table"


def test_sft_flop_formula_matches_pytorch_flop_counter(tiny_model_dir):
    """The documented formula counts exactly the matmul FLOPs of a LoRA step with the head at the
    answer positions (attention over the full square here, as an unmasked kernel computes it)."""
    model = modeling.load_model(tiny_model_dir, trainable=True, device=torch.device("cpu"))
    model.get_base_model().set_attn_implementation("eager")
    model.enable_input_require_grads()  # the formula counts the first layer's input gradient too
    prompt, answer = list(range(10, 50)), list(range(60, 72))
    input_ids, _, labels = collate([(prompt, answer)], pad_id=0)
    with FlopCounterMode(display=False) as counter:
        token_logps, _ = target_logprobs(model, input_ids, None, labels, head=head_logprobs)
        (-token_logps.sum()).backward()
    shape = flops.model_shape(tiny_model_dir)
    assert counter.get_total_flops() == flops.sft_flops(shape, len(prompt) + len(answer), len(answer), causal=False)


def test_prefill_flop_formula_matches_pytorch_flop_counter(tiny_model_dir):
    """The prefill row's FLOPs: a forward over the prompt with the head at its last position."""
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu"))
    model.set_attn_implementation("eager")
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(input_ids=torch.arange(10, 47)[None], logits_to_keep=1)
    assert counter.get_total_flops() == flops.prefill_flops(flops.model_shape(tiny_model_dir), 37, causal=False)


@pytest.mark.parametrize("window", [None, 5, 100])
def test_attended_keys_counts_a_causal_sliding_window_mask(window):
    tokens = 23
    i, j = torch.arange(tokens)[:, None], torch.arange(tokens)[None, :]
    mask = (j <= i) & (i - j < (window or tokens))
    assert flops.attended_keys(tokens, window) == mask.sum().item()


def test_the_trl_peers_train_the_stages_lora_and_run_as_plain_scripts(tiny_model_dir):
    """The peers' LoRA r and alpha are those a fresh adapter of stages 02 and 06 gets, read from the
    library's flags; the FLOP model counts that rank too. Each peer is a script of its own whose
    --help needs no TRL."""
    for stage, required in (("02_sft.py", ["--splits-dir", "x", "--out", "x"]),
                            ("06_dpo.py", ["--pairs", "x", "--out", "x"])):
        args = load_stage(stage).parse_args(required)
        assert peers.lora_defaults() == (args.lora_r, args.lora_alpha)
    config = peers.lora_config()
    assert (config.r, config.lora_alpha) == peers.lora_defaults()
    assert flops.model_shape(tiny_model_dir) == flops.model_shape(tiny_model_dir, lora_r=peers.lora_defaults()[0])
    for script in ("trl_sft.py", "trl_dpo.py"):
        result = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True,
                                text=True)
        assert result.returncode == 0 and "--result" in result.stdout, result.stderr[-2000:]


def test_quick_bench_on_a_random_model(tmp_path, tiny_model_dir):
    """--random-init with a config whose vocabulary is larger than the tokenizer's: MCTS samples ids
    beyond the tokenizer's own and decodes them, bench.json holds its figures, the table prints them.
    (MCTS only, to stay fast: every stage run is a process that pays ~6 s of imports.)"""
    config = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 1500}
    (tmp_path / "llama-test.json").write_text(json.dumps(config))
    base = tmp_path / "base"  # the random model's cache, with the tiny model (its tokenizer) in it
    shutil.copytree(tiny_model_dir, base / "tiny")
    env = {**os.environ, "ITOOL_BASE_DIR": str(base)}
    stdout, report = run_bench(tmp_path, "--quick", "--random-init", str(tmp_path / "llama-test.json"),
                               "--only", "mcts", env=env)
    check_figures(stdout, report, ["MCTS simulations/s", "MCTS generated tokens/s"])

    tokenizer = modeling.load_tokenizer(report["model_dir"])
    tiny = modeling.load_tokenizer(tiny_model_dir)
    assert len(tokenizer) == 1500 and tokenizer.decode([1499]) == "<unused_1499>"
    text = "Call get_weather(city='Paris') now."
    assert tokenizer(text).input_ids == tiny(text).input_ids


def test_bench_sft_steps_take_batch_size_samples(tmp_path, tiny_model_dir):
    """--batch-size: stage 02 runs --sft-steps steps of that many samples each, in the default
    curriculum's one phase (ours only: the GFLOP/s figure needs no TRL)."""
    stdout, report = run_bench(tmp_path, "--quick", "--only", "gflops", "--sft-steps", "3", "--batch-size", "3")
    check_figures(stdout, report, ["SFT GFLOP/s"])
    assert report["details"]["sft"]["batch_size"] == 3
    log = (tmp_path / "bench" / "logs" / "sft_ours_0.log").read_text()
    assert "mixed: 3 steps (mixed 3)" in log  # the default curriculum
    # the GFLOP/s figure counts the tokens the decoder ran: the samples' shared prompt head once
    run = report["details"]["sft"]["runs"]["ours"][0]
    assert run["decoder_tokens_per_s"] < run["tokens_per_s"]
    gflops = next(f for f in report["figures"] if f["figure"] == "SFT GFLOP/s")
    assert gflops["ours"] == pytest.approx(run["decoder_tokens_per_s"] * report["details"]["sft"]["gflop_per_token"],
                                           rel=1e-3)


@pytest.mark.slow
def test_quick_bench_has_every_figure(tmp_path):
    """The whole --quick run on the tiny model (TRL peers included; ~1.5 minutes), two samples or
    pairs per step on both sides of SFT and DPO."""
    pytest.importorskip("trl")
    stdout, report = run_bench(tmp_path, "--quick", "--batch-size", "2")
    check_figures(stdout, report, ["SFT tokens/s", "SFT peak memory MiB (lower is better)", "SFT GFLOP/s",
                                   "DPO pairs/s", "DPO peak memory MiB (lower is better)", "replay buffer samples/s",
                                   "MCTS simulations/s", "MCTS generated tokens/s", "eval BFCL items/s",
                                   "prefill GFLOP/s"])
    assert 0 <= report["details"]["eval"]["same_text_share"] <= 1
    assert report["matmul_gflops"] > 0 and report["details"]["sft"]["gflop_per_token"] > 0
