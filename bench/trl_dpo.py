"""make bench's DPO peer: TRL's DPOTrainer as a user would set it up, on the pairs bench/bench.py
wrote, --batch-size pairs per optimizer step, with the stages' model and LoRA (bench/peers.py). Its
reference is the same model with the adapter disabled: a no-grad forward inside each step, so its
pairs/s include the reference. Writes pairs/s (steps after the first) and its peak memory to
--result. bench.py runs it in a process of its own, so the peak memory is TRL's alone. Needs TRL
(requirements-bench.txt).

    python bench/trl_dpo.py --model checkpoints/base/tiny --pairs dpo_pairs.jsonl --result dpo_trl.json
"""
import tempfile
import time

import torch

from itool import distributed, modeling, training
from itool.files import atomic_write_json, read_jsonl

import peers  # bench/'s own module: the script's folder is on sys.path


def main(argv=None):
    args = peers.parse_args(__doc__, "pairs", argv)
    from datasets import Dataset  # here, not at the top: --help needs no TRL
    from trl import DPOConfig, DPOTrainer

    tokenizer = modeling.load_tokenizer(args.model)
    rows = read_jsonl(args.pairs)
    data = Dataset.from_list([{"prompt": peers.prompt_text(tokenizer, r), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])
    clock, step_ends = peers.step_clock()
    with tempfile.TemporaryDirectory() as tmp:
        config = DPOConfig(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                           max_steps=len(rows) // args.batch_size, learning_rate=5e-5,
                           beta=0.1, bf16=True, use_cpu=not torch.cuda.is_available(), logging_steps=1, report_to=[],
                           save_strategy="no", max_length=None, dataloader_num_workers=0,
                           gradient_checkpointing=not args.no_gradient_checkpointing)
        trainer = DPOTrainer(model=peers.base_model(args.model, args.qlora), args=config, train_dataset=data,
                             processing_class=tokenizer, peft_config=peers.lora_config(), callbacks=[clock])
        started = time.perf_counter()
        trainer.train()
    step_seconds = [b - a for a, b in zip([started] + step_ends, step_ends)]
    result = {"pairs_per_s": 1 / peers.seconds_per_pair(step_seconds, [args.batch_size] * len(step_seconds)),
              "peak_memory_mib": training.peak_memory_mib(distributed.local_device())}
    atomic_write_json(args.result, result)


if __name__ == "__main__":
    main()
