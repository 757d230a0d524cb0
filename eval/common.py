"""What the evaluation harnesses share: the model as a batched greedy `generate(prompts) -> texts`,
the item subset of --limit, and the partial-results file that lets a killed run resume.

A prompt is {"system": str, "messages": [{"role": "user"|"assistant"|"tool", "content": str}]},
exactly what a training sample holds before its answer, so the harnesses show a fine-tuned model
the prompt layout it was trained on (modeling.encode_prompt). Everything model-specific hides
behind `generate`: the tests replace it with a scripted function and need no model at all.
"""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "stages"))  # the shared modules: records, toolcalls, modeling, ...


# --- the model -----------------------------------------------------------------------------------

def add_checkpoint_flags(parser):
    """The flags naming what a harness scores and where its results go (the arguments of load_generator)."""
    parser.add_argument("--model", default="gemma-3-270m", help="base model: gemma-3-270m | tiny | dir | hub id")
    parser.add_argument("--adapter", default=None, help="LoRA adapter directory (none: the base model)")
    parser.add_argument("--qlora", default="auto", help="auto (4-bit on CUDA) | 1 | 0, as in training")
    parser.add_argument("--out", required=True, help="output directory, e.g. eval/results/default/base")
    parser.add_argument("--generator", choices=("fast", "reference"), default="fast",
                        help="reference: transformers' model.generate with the adapter unmerged (make bench's peer)")


def load_generator(model_name, adapter=None, qlora="auto", batch_size=32, reference=False):
    """`generate(prompts, max_new_tokens) -> texts` for the base model `model_name` (a MODEL value)
    with the LoRA adapter in directory `adapter`, if any: greedy and batched (see make_generator).
    The adapter is merged into the weights on a bf16 base (a 4-bit base keeps it unmerged), except
    with `reference`, which keeps the path this replaced: the benchmark's peer."""
    import modeling

    if adapter is not None and not (Path(adapter) / "adapter_model.safetensors").is_file():
        sys.exit(f"--adapter {adapter}: no adapter_model.safetensors there (has the stage that writes it run?)")
    device = modeling.default_device()
    model_dir = modeling.resolve_model(model_name)
    tokenizer = modeling.load_tokenizer(model_dir)
    qlora = modeling.use_qlora(qlora, device)
    model = modeling.load_model(model_dir, adapter=adapter, device=device, qlora=qlora)
    if adapter is not None and not qlora and not reference:
        model = model.merge_and_unload()
    return make_generator(model, tokenizer, batch_size, reference)


def stop_ids(tokenizer):
    """The turn ends at <end_of_turn>; a base model that never learnt the turn format may instead
    open a new turn or end the document, which ends its answer just as well."""
    import modeling

    return {modeling.end_of_turn_id(tokenizer), tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids("<start_of_turn>")} - {None, tokenizer.unk_token_id}


def make_generator(model, tokenizer, batch_size=32, reference=False, stops=None):
    """`generate(prompts, max_new_tokens) -> texts`, greedy, each answer cut at its first stop
    token (`stops`, default stop_ids). The fast path is generation.greedy: a pool of `batch_size`
    rows that finished rows leave and new prompts join, the LM head on each row's last hidden
    state only. `reference=True` is the path it replaced: transformers' `model.generate` on
    left-padded batches of `batch_size` prompts sorted by length."""
    import torch

    import generation
    import modeling

    stops = stop_ids(tokenizer) if stops is None else set(stops)
    pad_id = tokenizer.pad_token_id
    device = next(model.parameters()).device
    if not reference:
        generation.use_grouped_attention(model)

    @torch.inference_mode()
    def reference_batch(rows, max_new_tokens):
        width = max(map(len, rows))
        input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=sorted(stops), pad_token_id=pad_id)
        return [next((ids[:i] for i, t in enumerate(ids) if t in stops), ids) for ids in out[:, width:].tolist()]

    def generate(prompts, max_new_tokens=256):
        encoded = [modeling.encode_prompt(tokenizer, p["system"], p["messages"]) for p in prompts]
        if reference:
            order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
            outputs = [None] * len(prompts)
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                for i, ids in zip(batch, reference_batch([encoded[i] for i in batch], max_new_tokens)):
                    outputs[i] = ids
        else:  # one pool over all prompts: rows that finish make room for the next
            outputs = generation.greedy(model, encoded, stops, max_new_tokens, pad_id, batch_size)
        return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in outputs]

    return generate


# --- items ---------------------------------------------------------------------------------------

def spread(items, limit):
    """`limit` items spread evenly over `items` (all of them for limit 0): the same items on every
    run, and not only the first few topics of a file that is sorted by topic."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


# --- resuming ------------------------------------------------------------------------------------
# Generations are appended to a hidden partial file as they finish; its first line holds the
# fingerprint of the settings that produced them. A rerun with the same fingerprint takes them
# from there and generates only the rest; the final outputs replace the file at the end.

def open_partial(path, fingerprint):
    """Rows already generated under `fingerprint` (by id); starts the file afresh otherwise."""
    path = Path(path)
    rows = {}
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else {}
        if header.get("fingerprint") == fingerprint:
            for line in lines[1:]:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line being written when the run was killed
                    continue
                rows[row["id"]] = row
            if rows:
                print(f"Resuming: {len(rows)} generations from {path}")
            return rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")
    return rows


def append_partial(path, rows):
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def percent(value):
    """An accuracy in [0, 1] as the paper prints it, or a dash for none."""
    return "–" if value is None else f"{100 * value:.2f}"
