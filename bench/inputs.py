"""What make bench's runs are fed: the model (a named checkpoint, or random weights from a config)
and synthetic samples and pairs of controlled length.

--random-init CONFIG builds the model from a transformers config (a JSON path, or a name from
bench/configs/: llama-3.1-8b, llama-mini) with random weights, cached under checkpoints/base/, so
large-model throughput needs no download. Its tokenizer is the tiny model's (1,024 byte-level
BPE tokens, same chat template) padded with placeholder tokens <unused_N> up to the config's
vocabulary, so the LM head keeps its real size and every id the model samples decodes.
"""
import hashlib
import json
import shutil
from pathlib import Path

import torch

from itool import distributed, modeling, records, synthetic

CONFIGS = Path(__file__).resolve().parent / "configs"


# --- inputs: synthetic samples and pairs of controlled length --------------------------------------

def synthetic_samples(n_records, seed):
    """Samples (records.record_samples) of n_records synthetic conversations, in order."""
    return [s for i, r in enumerate(synthetic.generate(n_records, seed=seed))
            for s in records.record_samples(r, f"bench{seed}-{i:05d}")]


def samples_of_length(tokenizer, n, tokens, tolerance=16, seed=0):
    """n samples whose prompt + answer is tokens ± tolerance tokens long."""
    eot = modeling.end_of_turn_id(tokenizer)
    chosen = [s for s in synthetic_samples(600, seed)
              if abs(sum(map(len, modeling.encode_sample(tokenizer, s, eot))) - tokens) <= tolerance]
    if len(chosen) < n:
        raise RuntimeError(f"only {len(chosen)} synthetic samples of {tokens} ± {tolerance} tokens; ask for fewer")
    return chosen[:n]


def preference_pairs(tokenizer, n, prompt_tokens, completion_tokens, seed=0):
    """n pairs in stage 05's schema: prompts of prompt_tokens ± 16 tokens, chosen and rejected cut
    from other samples' gold answers to completion_tokens (end-of-turn included)."""
    samples = synthetic_samples(400, seed)
    answer_ids = tokenizer(" ".join(s["answer"] for s in samples), add_special_tokens=False).input_ids
    pairs = []
    for s in samples:
        if abs(len(modeling.encode_prompt(tokenizer, s["system"], s["messages"])) - prompt_tokens) > 16:
            continue
        start = 2 * len(pairs) * completion_tokens
        chosen = tokenizer.decode(answer_ids[start:start + completion_tokens - 1])
        rejected = tokenizer.decode(answer_ids[start + completion_tokens:start + 2 * completion_tokens - 1])
        pairs.append({"id": f"{s['id']}:0", "sample_id": s["id"], "depth": 0, "system": s["system"],
                      "messages": s["messages"], "prefix": "", "chosen": chosen, "rejected": rejected,
                      "chosen_ends": True, "rejected_ends": True, "q_chosen": 1.0, "q_rejected": -1.0})
        if len(pairs) == n:
            return pairs
    raise RuntimeError(f"only {len(pairs)} synthetic prompts of {prompt_tokens} ± 16 tokens; ask for fewer")


# --- the model: random weights from a config ---------------------------------------------------------

def config_file(name):
    """A config JSON path, or the file in bench/configs/ that a short name stands for."""
    path = Path(name) if name.endswith(".json") else CONFIGS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.json")))
        raise SystemExit(f"error: --random-init {name}: no such config file (known names: {known})")
    return path


def random_model(name):
    """Directory of a randomly initialised checkpoint of config `name`, built once and cached
    beside the base models (the directory name carries a hash of the config text)."""
    path = config_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return str(modeling.cached(modeling.BASE_DIR / f"random-{path.stem}-{digest}",
                                lambda out_dir: build_random_model(path, out_dir)))


def build_random_model(path, out_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer_dir = Path(modeling.resolve_model("tiny"))
    tokenizer = modeling.load_tokenizer(tokenizer_dir)
    settings = json.loads(path.read_text())
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    if config.vocab_size < len(tokenizer):
        raise SystemExit(f"error: {path}: vocab_size {config.vocab_size} is below the tokenizer's {len(tokenizer)}")
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, modeling.end_of_turn_id(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    device = distributed.local_device()
    print(f"building {path.stem} with random weights on {device} -> {out_dir.parent} (once)", flush=True)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it will run: seconds on a GPU even for 8B
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir)
    padded_tokenizer(tokenizer_dir, config.vocab_size, out_dir)


def padded_tokenizer(source_dir, vocab_size, out_dir):
    """Copy the tokenizer in source_dir to out_dir with placeholder tokens <unused_N> filling its
    vocabulary up to vocab_size. No merge produces them, so encoding is unchanged; they only make
    every id a random model can sample decodable."""
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if (Path(source_dir) / name).is_file():
            shutil.copy(Path(source_dir) / name, Path(out_dir) / name)
    data = json.loads((Path(source_dir) / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab.update({f"<unused_{i}>": i for i in range(max(vocab.values()) + 1, vocab_size)})
    (Path(out_dir) / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))

