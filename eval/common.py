"""What the evaluation harnesses share: their flags, the model as a batched greedy
`generate(prompts) -> texts`, the item subset of --limit, the one pass every harness makes
(generate, resuming from a partial file -> judge -> summarise -> tables), and the tables' columns.

A prompt is {"system": str, "messages": [{"role": "user"|"assistant"|"tool", "content": str}]},
exactly what a training sample holds before its answer, so the harnesses show a fine-tuned model
the prompt layout it was trained on (modeling.encode_prompt). Everything model-specific hides
behind `generate`: the tests replace it with a scripted function and need no model at all.
"""
import sys
import time
from pathlib import Path

from tqdm import tqdm

from itool import files

REPO = Path(__file__).resolve().parents[1]

# The benchmarks, by the name their files start with, as the tables name them.
BENCHMARKS = {"bfcl": "BFCL-v3", "api_bank": "API-Bank", "heldout": "held-out split", "toolace": "ToolACE sample"}
# The paper's Table 1 columns (BFCL-v3, computed by bfcl.leaderboard), the AST-only figures printed
# beside them, and Table 2's columns (API-Bank levels).
TABLE1 = {"overall": "Overall", "non_live": "Non-live", "live": "Live", "multi_turn": "Multi-turn",
          "relevance": "Relevance", "irrelevance": "Irrelevance"}
AST_ONLY = {"non_live_ast": "Non-live AST", "live_ast": "Live AST", "ast": "AST"}
BFCL_LABELS = {**TABLE1, **AST_ONLY}
TABLE2 = {"L-1": "API-Bank L1", "L-2": "API-Bank L2"}
# What an item's figures are grouped by, where it has one: its BFCL category, its API-Bank level.
GROUP_KEYS = ("category", "level")


# --- the model -----------------------------------------------------------------------------------

def add_checkpoint_flags(parser):
    """The flags naming what a harness scores, how, and where its results go (the arguments of
    load_generator)."""
    from itool import modeling

    modeling.add_model_flags(parser, adapter_help="LoRA adapter directory (none: the base model)")
    parser.add_argument("--out", required=True, help="output directory, e.g. eval/results/default/base")
    parser.add_argument("--generator", choices=("fast", "reference"), default="fast",
                        help="reference: transformers' model.generate with the adapter unmerged (make bench's peer)")
    parser.add_argument("--pool-size", type=int, default=64, help="rows decoded together (a pool new prompts join)")
    parser.add_argument("--call-offset", type=float,
                        help="added to the call-opening logits at the first token of an answer to a user "
                             "(default: the adapter's own, from its call_offset.json; 0 without one)")
    parser.add_argument("--call-gate", choices=("on", "off"), default="on",
                        help="on: where the adapter has a call_gate.json (stage 02 --call-gate), the gate decides "
                             "whether an answer to a user opens a call list; off: the policy alone decides")


def load_generator(args):
    """`generate(prompts, max_new_tokens) -> texts` for the checkpoint the flags name (the base
    --model with the LoRA --adapter, if any), greedy and in pools of --pool-size rows (see
    make_generator). The adapter is merged into the weights on a bf16 base (a 4-bit base keeps it
    unmerged), except with --generator reference, which keeps the path this replaced: the
    benchmark's peer."""
    from itool import distributed, gate, modeling

    reference = args.generator == "reference"
    device = distributed.local_device()
    try:
        offset = modeling.read_call_offset(args.adapter) if args.call_offset is None else args.call_offset
        fitted = gate.read(args.adapter) if args.call_gate == "on" else None
        tokenizer, model = modeling.load_policy(args, device, merge=not reference)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    calls = None
    if fitted is not None:  # the gate reads the base model: a second copy, without the adapter
        base = modeling.load_model(modeling.resolve_model(args.model), qlora=modeling.use_qlora(args.qlora, device),
                                   device=device)

        def calls(prompts):
            X = gate.features(base, tokenizer, prompts, fitted["layer"])
            return (gate.score(fitted, X) > 0).tolist()
    return make_generator(model, tokenizer, args.pool_size, reference, call_offset=offset, gate=calls)


def stop_ids(tokenizer):
    """Where an answer ends: generation.stop_ids, the one rule of greedy evaluation and of the
    search's sampling."""
    from itool import generation

    return generation.stop_ids(tokenizer)


def make_generator(model, tokenizer, batch_size=32, reference=False, stops=None, call_offset=0.0, gate=None):
    """`generate(prompts, max_new_tokens) -> texts`, greedy, each answer cut at its first stop
    token (`stops`, default stop_ids); where the prompt ends with the user's turn, `call_offset`
    is added to the logits of the tokens that open a call list at the answer's first token, or,
    given `gate` (prompts -> whether each answer opens a call list), the gate decides. The
    fast path is generation.greedy: a pool of `batch_size` rows that finished rows leave and new
    prompts join, the LM head on each row's last hidden state only. `reference=True` is the path it replaced: transformers' `model.generate` on
    left-padded batches of `batch_size` prompts sorted by length."""
    import torch

    from itool import generation, modeling, records
    from itool.gate import FORCE

    stops = stop_ids(tokenizer) if stops is None else set(stops)
    pad_id = tokenizer.pad_token_id
    cache = generation.PrefixCache()  # a multi-turn dialogue's steps extend its previous prompt
    device = next(model.parameters()).device
    if not reference:
        generation.use_grouped_attention(model)

    steered = bool(call_offset or gate)
    call_ids = modeling.call_start_ids(tokenizer) if steered else []

    def first_token_offset(width, offsets):
        """model.generate's form of the offset: added to the scores of the step after the prompt."""
        offsets = torch.tensor(offsets, device=device)[:, None]

        def process(input_ids, scores):
            if input_ids.shape[1] == width:
                scores[:, call_ids] += offsets
            return scores
        return process

    @torch.inference_mode()
    def reference_batch(rows, max_new_tokens, offsets):
        width = max(map(len, rows))
        input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        processors = [first_token_offset(width, offsets)] if steered else []
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=sorted(stops), pad_token_id=pad_id,
                             logits_processor=processors)
        return [next((ids[:i] for i, t in enumerate(ids) if t in stops), ids) for ids in out[:, width:].tolist()]

    def generate(prompts, max_new_tokens=256):
        encoded = [modeling.encode_prompt(tokenizer, p["system"], p["messages"]) for p in prompts]
        offsets = [call_offset if records.answers_user(p) else 0.0 for p in prompts]
        if gate:
            users = [i for i, p in enumerate(prompts) if records.answers_user(p)]
            for i, call in zip(users, gate([prompts[i] for i in users]) if users else []):
                offsets[i] = FORCE if call else -FORCE
        if reference:
            order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
            outputs = [None] * len(prompts)
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                batch_outputs = reference_batch([encoded[i] for i in batch], max_new_tokens, [offsets[i] for i in batch])
                for i, ids in zip(batch, batch_outputs):
                    outputs[i] = ids
        else:  # one pool over all prompts: rows that finish make room for the next
            outputs = generation.greedy(model, encoded, stops, max_new_tokens, pad_id, batch_size, cache=cache,
                                        call_ids=call_ids, offsets=offsets if steered else None)
        return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in outputs]

    return generate


# --- items ---------------------------------------------------------------------------------------

def spread(items, limit):
    """`limit` items spread evenly over `items` (all of them for limit 0): the same items on every
    run, and not only the first few topics of a file that is sorted by topic."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


# --- the pass every harness makes: generate (resuming) -> judge -> summarise -> outputs ----------

def evaluate(name, items, generate, args, *, judge, summarise, markdown, answer=None, settings=None, inputs=()):
    """Answer every item (a dict with an "id"), judge each answer, summarise, and write to args.out
    <name>_generations.jsonl (the raw outputs), <name>_verdicts.jsonl, <name>.md and, last (the
    file make watches), <name>_scores.json; returns the scores.

    answer(todo, status) yields (items, outputs) as they are generated (default: `generate` on a
    few batches of items at a time); `status` puts a word on the progress bar. judge(item, output)
    is the item's verdict row. summarise(verdicts, args, timing) gives the scores; `timing` holds
    the seconds of the whole pass and of generating, and per group (an item's category or level)
    the seconds generating and scoring and the items generated in this run. markdown(scores,
    label) is the table. `settings` and `inputs` (files) are what else decides the outputs."""
    out = Path(args.out)
    started = time.time()
    groups = {group(item): {"generation_seconds": 0.0, "generated": 0, "scoring_seconds": 0.0} for item in items}
    answer = answer or (lambda todo, status: in_chunks(todo, generate, args.max_new_tokens, args.pool_size))
    outputs = generate_all(name, items, answer, args, settings or {}, inputs, groups)
    generation_seconds = time.time() - started
    verdicts = []
    for item in items:
        scoring = time.time()
        verdicts.append(judge(item, outputs[item["id"]]))
        groups[group(item)]["scoring_seconds"] += time.time() - scoring
    timing = {"seconds": time.time() - started, "generation_seconds": generation_seconds, "groups": groups}
    scores = summarise(verdicts, args, timing)
    generations = [{"id": item["id"], **{k: item[k] for k in GROUP_KEYS if k in item}, "output": outputs[item["id"]]}
                   for item in items]
    files.write_jsonl(out / f"{name}_generations.jsonl", generations)
    files.write_jsonl(out / f"{name}_verdicts.jsonl", verdicts)
    files.atomic_write_text(out / f"{name}.md", markdown(scores, label(args)))
    files.atomic_write_json(out / f"{name}_scores.json", scores)  # last: the file make watches
    partial_file(out, name).unlink(missing_ok=True)
    return scores


def group(item):
    """An item's group (GROUP_KEYS), or None."""
    return next((item[k] for k in GROUP_KEYS if k in item), None)


def label(args):
    """The checkpoint as the tables name it."""
    return args.adapter or f"{args.model} (base)"


def partial_file(out, name):
    return Path(out) / f".{name}_generations.partial.jsonl"


def generate_all(name, items, answer, args, settings, inputs, groups):
    """Every item's output by id: the rows a killed run with the same fingerprint (flags, inputs,
    code, adapter) left in the partial file, then answer() for the rest, each batch appended to
    the file as it comes. Adds to `groups` each group's seconds generating and items generated."""
    from itool.gate import GATE_FILE
    from itool.modeling import CALL_OFFSET_FILE

    settings = {"model": args.model, "adapter": args.adapter, "qlora": args.qlora, "generator": args.generator,
                "max_new_tokens": args.max_new_tokens, "call_offset": getattr(args, "call_offset", None),
                "call_gate": getattr(args, "call_gate", None), **settings}
    # The harness's own files count too: a changed prompt or decoder must not reuse old answers.
    adapter = [path for path in (Path(args.adapter) / "adapter_model.safetensors",
                                 Path(args.adapter) / CALL_OFFSET_FILE, Path(args.adapter) / GATE_FILE)
               if path.is_file()] if args.adapter else []
    path = partial_file(args.out, name)
    rows = files.resume_partial(path, files.fingerprint(settings, [*inputs, __file__, *adapter]))
    outputs = {i: row["output"] for i, row in rows.items()}
    todo = [item for item in items if item["id"] not in outputs]
    with tqdm(total=len(items), initial=len(items) - len(todo), desc=BENCHMARKS[name], unit="item",
              dynamic_ncols=True) as bar:
        started = time.time()
        for part, texts in answer(todo, bar.set_postfix_str):
            rows = [{"id": item["id"], "output": text} for item, text in zip(part, texts)]
            files.append_partial(path, rows)
            outputs.update((row["id"], row["output"]) for row in rows)
            seconds, started = time.time() - started, time.time()
            for item in part:  # a batch is of one group: BFCL answers category by category
                groups[group(item)]["generation_seconds"] += seconds / len(part)
                groups[group(item)]["generated"] += 1
            bar.update(len(part))
    return outputs


def in_chunks(items, generate, max_new_tokens, batch_size, prompt=None):
    """(items, outputs) of `generate` on a few batches of items at a time, so that a kill loses
    little; `prompt(item)` is an item's prompt (default: the item itself)."""
    chunk = 4 * batch_size
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        yield part, generate([prompt(item) for item in part] if prompt else part, max_new_tokens)


# --- tables --------------------------------------------------------------------------------------

def percent(value):
    """An accuracy in [0, 1] as the paper prints it, or a dash for none."""
    return "–" if value is None else f"{100 * value:.2f}"
