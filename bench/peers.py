"""What make bench's TRL peers (bench/trl_sft.py, bench/trl_dpo.py) share: their flags, the model and
the LoRA adapter as a TRL user would set them up, the prompt text, and a clock of step ends.

The peers train what the stages train: the same base in bf16 (or the same 4-bit NF4 base with
--qlora 1) and a LoRA adapter on every linear layer of the stages' own rank and alpha, read from
the library's flags (training.add_flags), so that a change there changes both sides. TRL and
datasets are imported inside the functions that need them: bench/bench.py imports this module
on machines without TRL.
"""
import argparse
import time
from pathlib import Path

import torch

from itool import distributed, modeling, training


def lora_defaults():
    """(r, alpha) of a fresh adapter in stages 02 and 06: the defaults of training.add_flags."""
    parser = argparse.ArgumentParser()
    training.add_flags(parser, "samples")
    return parser.get_default("lora_r"), parser.get_default("lora_alpha")


def parse_args(description, inputs, argv=None):
    """A peer's flags; `inputs` names its input file's flag (samples, pairs)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory (bench.py passes the one ours runs on)")
    parser.add_argument("--qlora", choices=("0", "1"), default="0", help="1: a 4-bit NF4 base")
    parser.add_argument(f"--{inputs}", required=True, type=Path, help=f"JSON lines of the {inputs} (from bench.py)")
    parser.add_argument("--result", required=True, type=Path, help="JSON file the measured figures go to")
    parser.add_argument("--batch-size", type=int, default=1, help=f"{inputs} per optimizer step")
    parser.add_argument("--no-gradient-checkpointing", action="store_true",
                        help="without TRL's default gradient checkpointing")
    return parser.parse_args(argv)


def base_model(model_dir, qlora):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16) if qlora == "1" else None
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quantization,
                                                device_map={"": distributed.local_device()})


def lora_config():
    from peft import LoraConfig

    r, alpha = lora_defaults()
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def prompt_text(tokenizer, row):
    """The stage's exact prompt text, without the BOS: TRL's tokenizer call adds it."""
    text = tokenizer.apply_chat_template(modeling.chat_messages(row["system"], row["messages"]), tokenize=False,
                                         add_generation_prompt=True)
    return text.removeprefix(tokenizer.bos_token or "")


def step_clock():
    """A trainer callback that appends the time at the end of every step to a list; both."""
    from transformers import TrainerCallback

    ends = []

    class StepEnds(TrainerCallback):
        def on_step_end(self, *_, **__):
            ends.append(time.perf_counter())

    return StepEnds(), ends


def seconds_per_pair(step_seconds, step_pairs):
    """Over the steps after the first (which pays one-off allocations); ours and TRL's DPO alike."""
    return sum(step_seconds[1:]) / sum(step_pairs[1:])
