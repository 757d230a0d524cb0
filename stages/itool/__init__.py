"""The library the stage scripts (stages/NN_*.py) share, imported as `from itool import records`.

records      the ToolACE record schema: validation, tool lists, training samples
files        atomic writes, JSON lines, fingerprints, resumable partial results
toolcalls    the tool-call grammar: parse, print, compare call lists
steps        answers cut into MCTS steps (one call, or one sentence), on text and on token ids
outcome      whether an answer is correct: the search's outcome and the held-out split's verdict
search       the MCTS without a model: tree, PUCT, backup, the search coroutines, pairs, audit
synthetic    the synthetic ToolACE-format data (its catalogue: synthetic_catalogue.txt)
modeling     MODEL resolved and loaded with LoRA or QLoRA, adapters saved, prompts encoded
logprobs     answer-token log-probs with the LM head run only where needed
generation   one decoding engine over a shared KV cache: greedy evaluation and the search's sampling
gate         the call gate: a classifier on the base model's state that decides whether an answer calls
losses       the preference losses (DPO, IPO, SimPO, ORPO) as small pure functions
pairs        preference pairs packed into rows with their masks, and their log-probs
training     what stages 02 and 06 share: flags, model, micro-batches, the end of a step, state
distributed  torchrun: ranks, shards, sums
"""
