"""The library the stage scripts (stages/NN_*.py) share, imported as `from itool import records`.

records      the ToolACE record schema: validation, tool lists, training samples
files        atomic writes, JSON lines, fingerprints, resumable partial results
toolcalls    the tool-call grammar: parse, print, compare call lists
steps        answers cut into MCTS steps (one call, or one sentence), on text and on token ids
outcome      whether an answer is correct: the search's outcome and the held-out split's verdict
synthetic    the synthetic ToolACE-format data (its catalogue: synthetic_catalogue.txt)
modeling     MODEL resolved and loaded with LoRA or QLoRA, adapters saved, prompts encoded
logprobs     answer-token log-probs with the LM head run only where needed
generation   batched decoding over a shared KV cache: the search's rows, greedy evaluation
training     what stages 02 and 06 share: flags, model, micro-batches, the end of a step, state
distributed  torchrun: ranks, shards, sums
"""
