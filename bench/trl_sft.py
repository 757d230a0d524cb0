"""make bench's SFT peer: TRL's SFTTrainer as a user would set it up, on the samples bench/bench.py
wrote, --batch-size samples per optimizer step, with the stages' model and LoRA (bench/peers.py).
Writes tokens/s (every token of a sample, per second of step time, steps after the first) and its
peak memory to --result. bench.py runs it in a process of its own, so the peak memory is TRL's
alone. Needs TRL (requirements-bench.txt).

    python bench/trl_sft.py --model checkpoints/base/tiny --samples sft_samples.jsonl --result sft_trl.json
"""
import statistics
import tempfile

import torch

from itool import distributed, modeling, training
from itool.files import atomic_write_json, read_jsonl

import peers  # bench/'s own module: the script's folder is on sys.path


def main(argv=None):
    args = peers.parse_args(__doc__, "samples", argv)
    from datasets import Dataset  # here, not at the top: --help needs no TRL
    from trl import SFTConfig, SFTTrainer

    tokenizer = modeling.load_tokenizer(args.model)
    samples = read_jsonl(args.samples)
    data = Dataset.from_list([{"prompt": peers.prompt_text(tokenizer, s), "completion": s["answer"]} for s in samples])
    clock, step_ends = peers.step_clock()
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                           max_steps=len(samples) // args.batch_size, learning_rate=5e-5,
                           weight_decay=0.01, bf16=True, use_cpu=not torch.cuda.is_available(), logging_steps=1,
                           report_to=[], save_strategy="no", max_length=None, dataloader_num_workers=0,
                           eos_token=tokenizer.convert_ids_to_tokens(modeling.end_of_turn_id(tokenizer)),
                           gradient_checkpointing=not args.no_gradient_checkpointing)
        trainer = SFTTrainer(model=peers.base_model(args.model, args.qlora), args=config, train_dataset=data,
                             processing_class=tokenizer, callbacks=[clock], peft_config=peers.lora_config())
        mean_tokens = statistics.mean(len(e["input_ids"]) for e in trainer.train_dataset)
        trainer.train()
    result = {"tokens_per_s": mean_tokens * args.batch_size * (len(step_ends) - 1) / (step_ends[-1] - step_ends[0]),
              "peak_memory_mib": training.peak_memory_mib(distributed.local_device()), "mean_tokens": mean_tokens}
    atomic_write_json(args.result, result)


if __name__ == "__main__":
    main()
