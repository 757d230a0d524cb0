"""Model loading (tiny model, local checkpoints, QLoRA, adapters) and the prompt builder."""
import shutil

import pytest
import torch

from conftest import sequence_logprobs
from itool import modeling
from itool.logprobs import IGNORE, collate

SAMPLE = {"system": "You can call [get_weather].", "messages": [{"role": "user", "content": "Weather in Oslo?"}],
          "answer": '[get_weather(city="Oslo, NO")]'}


def test_lora_on_every_linear_projection(tiny_model_dir):
    model = modeling.load_model(tiny_model_dir, trainable=True)
    linear_names = {name.split(".")[-1] for name, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and "lora" not in name and "lm_head" not in name}
    lora_names = {name.split(".")[-2] for name, _ in model.named_modules() if name.endswith(".lora_A")}
    assert linear_names - {"base_layer"} <= lora_names
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= lora_names
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_qlora_loads_4bit_and_trains(tiny_model_dir):
    import bitsandbytes as bnb

    model = modeling.load_model(tiny_model_dir, trainable=True, qlora=True)
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(q_proj, bnb.nn.Linear4bit) and q_proj.weight.quant_type == "nf4"
    ids = torch.randint(10, 200, (2, 12))
    labels = ids.clone()
    labels[:, :6] = IGNORE
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, count = sequence_logprobs(model, ids, torch.ones_like(ids), labels)
    (-total.sum() / count.sum()).backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_use_qlora_defaults():
    assert modeling.use_qlora("auto", torch.device("cpu")) is False
    assert modeling.use_qlora("auto", torch.device("cuda")) is True
    assert modeling.use_qlora("1", torch.device("cpu")) is True
    assert modeling.use_qlora("0", torch.device("cuda")) is False


def test_prompt_has_one_bos_and_completion_one_end_of_turn(tiny_tokenizer):
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    assert tiny_tokenizer.convert_ids_to_tokens(eot) == "<end_of_turn>"
    prompt, completion = modeling.encode_sample(tiny_tokenizer, SAMPLE, eot)
    assert prompt.count(tiny_tokenizer.bos_token_id) == 1 and prompt[0] == tiny_tokenizer.bos_token_id
    assert completion.count(eot) == 1 and completion[-1] == eot
    # the prompt ends with the model header, the completion is exactly the answer
    assert tiny_tokenizer.decode(prompt).endswith("<start_of_turn>model\n")
    assert tiny_tokenizer.decode(completion[:-1]) == SAMPLE["answer"]
    assert "<start_of_turn>system\n" + SAMPLE["system"] in tiny_tokenizer.decode(prompt)


def test_prompt_and_completion_are_tokenised_separately(tiny_tokenizer):
    # "\n" + "[" may merge into one token when tokenised together; here they must stay apart
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    prompt, completion = modeling.encode_sample(tiny_tokenizer, SAMPLE, eot)
    assert completion[:-1] == tiny_tokenizer(SAMPLE["answer"], add_special_tokens=False).input_ids
    input_ids, mask, labels = collate([(prompt, completion)], tiny_tokenizer.pad_token_id)
    assert (labels[0] != IGNORE).sum() == len(completion)
    assert labels[0, len(prompt):].tolist() == completion


def test_continuation_prompt_holds_the_prefix(tiny_tokenizer):
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    prompt, completion = modeling.encode_continuation(tiny_tokenizer, SAMPLE["system"], SAMPLE["messages"],
                                                      "[a(x=1), ", 'b(y="z")]', True, eot)
    assert tiny_tokenizer.decode(prompt).endswith("<start_of_turn>model\n[a(x=1), ")
    assert completion[-1] == eot and tiny_tokenizer.decode(completion[:-1]) == 'b(y="z")]'
    _, open_step = modeling.encode_continuation(tiny_tokenizer, SAMPLE["system"], SAMPLE["messages"], "", "[a(x=1), ", False, eot)
    assert eot not in open_step


def test_saved_adapter_loads_with_plain_peft(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = modeling.load_model(tiny_model_dir, trainable=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    modeling.save_adapter(model, tmp_path / "adapter")
    assert not [p for p in (tmp_path / "adapter").iterdir() if p.name.startswith(".")]
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    ours = dict(model.named_parameters())
    for name, p in plain.named_parameters():
        if "lora_B" in name:
            assert torch.equal(p.float(), ours[name].float())
    reloaded = modeling.load_model(tiny_model_dir, adapter=tmp_path / "adapter")
    ids = torch.randint(10, 200, (1, 9))
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model.eval()(ids).logits, atol=1e-2)


def test_local_directory_loads_like_a_hub_checkpoint(tiny_model_dir, tmp_path):
    local = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, local)
    assert modeling.resolve_model(str(local)) == str(local)
    model = modeling.load_model(modeling.resolve_model(str(local)))
    assert model.config.hidden_size == 64 and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(FileNotFoundError, match="no config.json"):
        modeling.resolve_model(str(tmp_path))


def test_head_only_logprobs_match_full_logits(tiny_model_dir, tiny_tokenizer):
    model = modeling.load_model(tiny_model_dir)
    eot = modeling.end_of_turn_id(tiny_tokenizer)
    examples = [modeling.encode_sample(tiny_tokenizer, SAMPLE, eot),
                modeling.encode_sample(tiny_tokenizer, {**SAMPLE, "answer": "No tool fits."}, eot)]
    input_ids, mask, labels = collate(examples, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        total, count = sequence_logprobs(model, input_ids, mask, labels)
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
    naive = logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    naive = (naive * (labels[:, 1:] != IGNORE)).sum(-1)
    assert count.tolist() == [len(c) for _, c in examples]
    assert torch.allclose(total, naive, atol=1e-3)


@pytest.mark.slow
def test_gemma_default_loads_and_generates():
    model_dir = modeling.resolve_model("gemma-3-270m")
    tokenizer = modeling.load_tokenizer(model_dir)
    model = modeling.load_model(model_dir)
    assert model.config.model_type == "gemma3_text" and model.config.vocab_size == 262144
    assert not hasattr(model.config, "quantization_config")  # the GGUF label is gone
    eot = modeling.end_of_turn_id(tokenizer)
    assert tokenizer.convert_ids_to_tokens(eot) == "<end_of_turn>"
    prompt = modeling.encode_prompt(tokenizer, "You are helpful.", [{"role": "user", "content": "Name a colour."}])
    out = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False)
    new = out[0, len(prompt):]
    assert 1 <= len(new) <= 5 and tokenizer.decode(new).strip()


def test_a_base_cached_before_the_stop_rule_is_mended_then_left_alone(tiny_model_dir, tiny_tokenizer, tmp_path,
                                                                       monkeypatch):
    """A cached base whose generation config names only <eos> gets <end_of_turn> added; once it is
    there, starting a stage reads no tokenizer to check it again."""
    import json

    base = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, base)
    config_file = base / "generation_config.json"
    config = json.loads(config_file.read_text())
    config["eos_token_id"] = tiny_tokenizer.eos_token_id  # as cached before the rule
    config_file.write_text(json.dumps(config))

    modeling.resolve_model("tiny", base_dir=tmp_path)
    assert json.loads(config_file.read_text())["eos_token_id"] == [tiny_tokenizer.eos_token_id,
                                                                    modeling.end_of_turn_id(tiny_tokenizer)]

    def no_tokenizer(_):
        raise AssertionError("the tokenizer was loaded to check a mended config")

    monkeypatch.setattr(modeling, "load_tokenizer", no_tokenizer)
    modeling.resolve_model("tiny", base_dir=tmp_path)
