# iTool pipeline: every target is a file and make's timestamps are the cache. Each output depends
# on its inputs, its own script, the shared modules it imports and a config stamp holding the
# variables that change its result, so a change rebuilds exactly what it affects.
#
#   make setup && make iterate ITER=3        the embedded default run (Gemma 3 270M, CPU)
#   make help                                targets and variables

SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

# --- variables (defaults are the embedded CPU run) ----------------------------------------------
RUN        ?= default#        namespace of data/$(RUN)/ and checkpoints/$(RUN)/
MODEL      ?= gemma-3-270m#   gemma-3-270m | tiny | local dir | hub id
DATA       ?= synthetic#      synthetic | local .json/.jsonl (ToolACE format) | hub id
SAMPLES    ?= 1500#           synthetic conversations to generate
SEED       ?= 0#              seeds data, split, sampling and training
SHARES     ?= 59/15/26#       warm-up/RL/held-out % of conversations; 90/10/0: the paper's split (no held-out split)
SKIP_BAD   ?= 0#              1: skip malformed input records (counted in data_stats.json)
ITER       ?= 3#              RL iterations for `make iterate`
NGPU       ?= 1#              >1 runs stages under torchrun (NCCL on GPUs, gloo on CPU)
QLORA      ?= auto#           auto: 4-bit NF4 on CUDA, bf16 LoRA on CPU; 1 or 0 forces it
LR         ?= 1e-3#           warm-up SFT learning rate (paper: 5e-5, a full fine-tune's; see docs/failures.md)
CURRICULUM ?= mixed#          mixed: the three thirds shuffled into one phase; easy2hard: easy, medium, hard in turn (paper)
DECISION   ?= 0#              extra weight of the warm-up's first answer token, calls and texts balanced (0: the paper's loss)
CALL_OFFSET ?= 0#             1: the warm-up's call offset, set on rl.jsonl so that it calls as often there as the golds (0: none)
CALL_GATE ?= 0#               1: the call gate, a classifier on the base model's states, decides whether an answer to a user calls (0: the policy)
THIRDS     ?= all#            all: every sample ranked together (paper); by-kind: calls, reports and replies cut into thirds apart; replies: the replies apart
ALPHA      ?= 20#             % of the replay buffer kept as hard samples
STRATIFY   ?= 1#              1: the top ALPHA % of call and of text answers separately; 0: of all (paper)
FRESH      ?= 0#              0: the hardest by perplexity, searched before or not (paper); 1: samples searched in earlier iterations rank after all others
REPLAY     ?= 0#              1: DPO of iteration K trains on the pairs of iterations 1..K-1 again beside its own; 0: its own only (paper)
LOSS       ?= dpo#            dpo | simpo | ipo | orpo (paper Fig. 6 ablation)
BETA       ?=#                DPO β, SimPO β, IPO τ, ORPO λ; empty: the loss's own (0.1, 2.5, 0.1, 0.1)
NLL        ?=#                extra chosen-step NLL weight; empty: the loss's own (DPO 1 = DPO + NLL; SimPO, IPO, ORPO 0: as published, ORPO with its SFT term); NLL=0 LOSS=dpo: Eq. 11 (paper)
DPO_LR     ?= 2e-5#           learning rate of stage 06 (paper: 5e-5; at 5e-5 the iterations overshoot here)
CKPT       ?= base#           what `make eval` scores: base | warmup | iter_K | adapter dir
LIMIT      ?= 0#              eval items per category (0 = all)
HELDOUT_LIMIT ?= 0#           held-out split items to score (0 = all)
YARDSTICK  ?= eval/data/toolace/toolace_sample.json#  ToolACE-format data make ladder also scores (never trained on)
YARDSTICK_LIMIT ?= 0#         yardstick items to score (0 = all)
CATEGORIES ?= all#            eval categories, comma-separated
SFT_ARGS   ?=#                extra flags for stages/02_sft.py   (e.g. --epochs 2)
MCTS_ARGS  ?=#                extra flags for stages/05_mcts.py  (e.g. --simulations 8)
DPO_ARGS   ?=#                extra flags for stages/06_dpo.py
EVAL_ARGS  ?=#                extra flags for eval/bfcl.py and eval/api_bank.py
BENCH_ARGS ?=#                extra flags for bench/bench.py

VENV   := .venv
PY     := $(VENV)/bin/python
D      := data/$(RUN)
C      := checkpoints/$(RUN)
R      := eval/results/$(RUN)
ADAPTER := adapter_model.safetensors
ITERS  := $(shell seq 1 $(ITER))

ifeq ($(NGPU),1)
LAUNCH := $(PY)
else
LAUNCH := $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NGPU)
endif

# --- config stamps --------------------------------------------------------------------------------
# $(call config,NAME,CONTENT) rewrites $(D)/.config/NAME at parse time only when CONTENT differs,
# and expands to its path: a stage that depends on it rebuilds exactly when its variables changed.
config = $(shell mkdir -p $(D)/.config && f=$(D)/.config/$(1) && \
	[ "$$(cat $$f 2>/dev/null)" = '$(strip $(2))' ] || printf '%s\n' '$(strip $(2))' > $$f)$(D)/.config/$(1)

CFG_DATA   := $(call config,data,DATA=$(DATA) SAMPLES=$(SAMPLES) SEED=$(SEED) SKIP_BAD=$(SKIP_BAD))
CFG_SPLIT  := $(call config,split,SEED=$(SEED) SHARES=$(SHARES) THIRDS=$(THIRDS))
CFG_POLICY := $(call config,policy,MODEL=$(MODEL) QLORA=$(QLORA))
CFG_SFT    := $(call config,sft,LR=$(LR) CURRICULUM=$(CURRICULUM) DECISION=$(DECISION) CALL_OFFSET=$(CALL_OFFSET) CALL_GATE=$(CALL_GATE) SEED=$(SEED) $(SFT_ARGS))
CFG_SELECT := $(call config,select,ALPHA=$(ALPHA) STRATIFY=$(STRATIFY) FRESH=$(FRESH))
CFG_MCTS   := $(call config,mcts,SEED=$(SEED) $(MCTS_ARGS))
CFG_DPO    := $(call config,dpo,LOSS=$(LOSS) BETA=$(BETA) NLL=$(NLL) DPO_LR=$(DPO_LR) REPLAY=$(REPLAY) SEED=$(SEED) $(DPO_ARGS))

# The shared library (stages/itool/), as dependencies of the stages that import it.
PKG       := stages/itool
LIB_DATA  := $(PKG)/records.py $(PKG)/files.py $(PKG)/toolcalls.py $(PKG)/steps.py
LIB_MODEL := $(LIB_DATA) $(PKG)/modeling.py $(PKG)/logprobs.py $(PKG)/distributed.py $(PKG)/generation.py
LIB_TRAIN := $(LIB_MODEL) $(PKG)/training.py
LIB_DPO   := $(LIB_TRAIN) $(PKG)/losses.py $(PKG)/pairs.py
LIB_SYNTHETIC := $(PKG)/synthetic.py $(PKG)/synthetic_catalogue.txt

WARMUP := $(C)/warmup/$(ADAPTER)
OFFSET_FLAG := $(if $(filter 1,$(CALL_OFFSET)),--call-offset-samples $(D)/splits/rl.jsonl)$(if $(filter 1,$(CALL_GATE)), --call-gate)
policy = $(if $(filter 0,$(1)),$(WARMUP),$(C)/iter_$(1)/$(ADAPTER))
MODEL_FLAGS := --model $(MODEL) --qlora $(QLORA)

.PHONY: help setup test test-slow data split warmup iterate eval report ladder bench clean

help:
	@echo "iTool: iterative reinforced fine-tuning for tool use"
	@echo
	@echo "Targets:"
	@echo "  setup      virtualenv in .venv with everything installed (CPU or CUDA torch, see README)"
	@echo "  test       fast test suite (tiny random model; ~6 min on 2 cores)"
	@echo "  test-slow  tests that load Gemma 3 270M, and the quick benchmark with TRL (CI runs it too)"
	@echo "  data       $(D)/toolace.jsonl from DATA"
	@echo "  split      $(D)/splits/{easy,medium,hard,rl}.jsonl + stats.json"
	@echo "  warmup     warm-up SFT (CURRICULUM) -> $(C)/warmup/"
	@echo "  iterate    warm-up, then ITER rounds of 03 perplexity -> 04 select -> 05 MCTS -> 06 DPO"
	@echo "  eval       BFCL-v3 + API-Bank of CKPT -> $(R)/<CKPT>/"
	@echo "  report     checkpoints side by side; accuracy, vs-warm-up and training-curve plots"
	@echo "  ladder     base, other-curriculum SFT, warm-up, iterations 1..ITER on the same items -> $(R)/ladder/"
	@echo "  bench      throughput/memory benchmarks against TRL and naive baselines"
	@echo "  clean      remove data/$(RUN), checkpoints/$(RUN) and $(R)"
	@echo
	@echo "Variables (value now; override as make VAR=value):"
	@$(foreach v,$(HELP_VARS),printf '  %-11s %-14s %s\n' '$(v)' '$($(v))' "$$(sed -n 's/^$(v) *?=[^#]*#* *//p' Makefile)";)

HELP_VARS := $(shell sed -n 's/^\([A-Z_]*\) *?=.*/\1/p' Makefile)

print-%:
	@echo '$($*)'

# --- setup and tests ------------------------------------------------------------------------------
TORCH_INDEX ?=#  e.g. https://download.pytorch.org/whl/cpu for a CPU-only machine without the local wheel

setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-eval-nodeps.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $$(grep '^torch==' requirements.txt)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -r requirements-eval-nodeps.txt  # bfcl-eval without its provider SDKs
	$(VENV)/bin/pip install -q --no-deps -e .  # itool (stages/itool/) and eval/ as packages, editable: see pyproject.toml
	@touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

test-slow: $(VENV)/.installed  # TRL too: the slow bench test runs the TRL peers
	$(VENV)/bin/pip install -q -r requirements-bench.txt
	$(PY) -m pytest -q -m slow --run-slow tests

# --- data -----------------------------------------------------------------------------------------
data: $(D)/toolace.jsonl
$(D)/toolace.jsonl: stages/00_data.py $(LIB_SYNTHETIC) $(LIB_DATA) $(CFG_DATA) $(wildcard $(DATA))
	$(PY) stages/00_data.py --data $(DATA) --conversations $(SAMPLES) --seed $(SEED) $(if $(filter 1,$(SKIP_BAD)),--skip-bad) --out $@

# The split writes easy/medium/hard/rl.jsonl, then stats.json last: stats.json stands for all five.
SPLIT := $(D)/splits/stats.json
split: $(SPLIT)
$(SPLIT): stages/01_split_difficulty.py $(D)/toolace.jsonl $(LIB_DATA) $(CFG_SPLIT)
	$(PY) stages/01_split_difficulty.py --records $(D)/toolace.jsonl --out $(D)/splits --seed $(SEED) --shares $(SHARES) --thirds $(THIRDS)

# --- warm-up SFT (iteration-0 policy) ---------------------------------------------------------------
warmup: $(WARMUP)
$(WARMUP): stages/02_sft.py $(SPLIT) $(LIB_TRAIN) $(CFG_POLICY) $(CFG_SFT)
	$(LAUNCH) stages/02_sft.py $(MODEL_FLAGS) --splits-dir $(D)/splits --out $(C)/warmup \
		--curriculum $(CURRICULUM) --lr $(LR) --decision-weight $(DECISION) $(OFFSET_FLAG) --seed $(SEED) $(SFT_ARGS)

# --- iteration K: 03 replay buffer -> 04 hard samples -> 05 MCTS pairs -> 06 DPO ---------------------
# $(1) = K, $(2) = adapter file of policy K-1, $(3) = hard.jsonl of iterations 1..K-1 (FRESH=1),
# $(4) = pairs.jsonl of iterations 1..K-1 (REPLAY=1)
define iteration
$(D)/iter_$(1)/buffer.jsonl: stages/03_perplexity.py $(SPLIT) $(2) $(LIB_TRAIN) $(CFG_POLICY)
	$(LAUNCH) stages/03_perplexity.py $(MODEL_FLAGS) --adapter $(dir $(2)) --samples $(D)/splits/rl.jsonl --out $$@

$(D)/iter_$(1)/hard.jsonl: stages/04_select_hard.py $(D)/iter_$(1)/buffer.jsonl $(SPLIT) $(LIB_DATA) $(CFG_SELECT) $(3)
	$(PY) stages/04_select_hard.py --buffer $(D)/iter_$(1)/buffer.jsonl --samples $(D)/splits/rl.jsonl \
		--alpha $(ALPHA) $(if $(filter 1,$(STRATIFY)),--stratify,--no-stratify) $(if $(3),--searched $(3)) --out $$@

$(D)/iter_$(1)/pairs.jsonl: stages/05_mcts.py $(PKG)/search.py $(PKG)/outcome.py stages/self_eval_prompt.txt $(D)/iter_$(1)/hard.jsonl $(2) $(LIB_MODEL) $(CFG_POLICY) $(CFG_MCTS)
	$(LAUNCH) stages/05_mcts.py $(MODEL_FLAGS) --adapter $(dir $(2)) --samples $(D)/iter_$(1)/hard.jsonl \
		--out $$@ --trees-dir $(D)/iter_$(1)/trees --seed $(SEED) $(MCTS_ARGS)

$(C)/iter_$(1)/$(ADAPTER): stages/06_dpo.py $(D)/iter_$(1)/pairs.jsonl $(2) $(LIB_DPO) $(CFG_POLICY) $(CFG_DPO) $(4)
	$(LAUNCH) stages/06_dpo.py $(MODEL_FLAGS) --adapter $(dir $(2)) --pairs $(D)/iter_$(1)/pairs.jsonl $(if $(4),--replay $(4)) \
		--out $(C)/iter_$(1) --loss $(LOSS) $(if $(BETA),--beta $(BETA)) $(if $(NLL),--nll-weight $(NLL)) --lr $(DPO_LR) --seed $(SEED) $(DPO_ARGS)
endef
searched = $(if $(filter 1,$(FRESH)),$(foreach j,$(wordlist 2,$(1),0 $(ITERS)),$(D)/iter_$(j)/hard.jsonl))
replayed = $(if $(filter 1,$(REPLAY)),$(foreach j,$(wordlist 2,$(1),0 $(ITERS)),$(D)/iter_$(j)/pairs.jsonl))
$(foreach k,$(ITERS),$(eval $(call iteration,$(k),$(call policy,$(word $(k),0 $(ITERS))),$(call searched,$(k)),$(call replayed,$(k)))))

iterate: $(call policy,$(ITER))

# The ladder's second rung (paper Fig. 4): the warm-up trained on the same data with the other
# curriculum, warmup_easy2hard beside the default mixed warm-up (warmup_mixed beside CURRICULUM=easy2hard).
OTHER_CURRICULUM := $(if $(filter mixed,$(CURRICULUM)),easy2hard,mixed)
FIG4 := warmup_$(OTHER_CURRICULUM)
$(C)/$(FIG4)/$(ADAPTER): stages/02_sft.py $(SPLIT) $(LIB_TRAIN) $(CFG_POLICY) $(CFG_SFT)
	$(LAUNCH) stages/02_sft.py $(MODEL_FLAGS) --splits-dir $(D)/splits --out $(C)/$(FIG4) \
		--curriculum $(OTHER_CURRICULUM) --lr $(LR) --decision-weight $(DECISION) $(OFFSET_FLAG) --seed $(SEED) $(SFT_ARGS)

# --- evaluation, report, benchmarks ------------------------------------------------------------------
# make eval CKPT=base|warmup|iter_K|<adapter dir>: BFCL-v3, API-Bank and the run's held-out split ->
# $(R)/<checkpoint>/. Each benchmark is its own target: an edit to one harness, CATEGORIES or API_BANK
# reruns only that one.
API_BANK ?= eval/data/api-bank#  API-Bank data dir (level-{1,2}-api.json) or hub id
CKPT_NAME := $(notdir $(patsubst %/,%,$(CKPT)))
CKPT_ADAPTER := $(if $(filter base,$(CKPT)),,$(if $(wildcard $(CKPT)/$(ADAPTER)),$(patsubst %/,%,$(CKPT))/$(ADAPTER),$(C)/$(CKPT)/$(ADAPTER)))
E := $(R)/$(CKPT_NAME)
EVAL_FLAGS := $(MODEL_FLAGS) $(if $(CKPT_ADAPTER),--adapter $(dir $(CKPT_ADAPTER))) --out $(E) --limit $(LIMIT) $(EVAL_ARGS)
CFG_BFCL := $(call config,eval-$(CKPT_NAME)-bfcl,MODEL=$(MODEL) QLORA=$(QLORA) CKPT=$(CKPT) LIMIT=$(LIMIT) CATEGORIES=$(CATEGORIES) $(EVAL_ARGS))
CFG_API_BANK := $(call config,eval-$(CKPT_NAME)-api-bank,MODEL=$(MODEL) QLORA=$(QLORA) CKPT=$(CKPT) LIMIT=$(LIMIT) API_BANK=$(API_BANK) $(EVAL_ARGS))
CFG_HELDOUT := $(call config,eval-$(CKPT_NAME)-heldout,MODEL=$(MODEL) QLORA=$(QLORA) CKPT=$(CKPT) HELDOUT_LIMIT=$(HELDOUT_LIMIT) $(EVAL_ARGS))

eval: $(E)/summary.json
$(E)/bfcl_scores.json: eval/bfcl.py eval/common.py $(CKPT_ADAPTER) $(LIB_MODEL) $(CFG_BFCL)
	$(PY) eval/bfcl.py $(EVAL_FLAGS) --categories $(CATEGORIES)

$(E)/api_bank_scores.json: eval/api_bank.py eval/common.py $(CKPT_ADAPTER) $(LIB_MODEL) $(CFG_API_BANK) $(wildcard $(API_BANK)/level-*-api.json)
	$(PY) eval/api_bank.py $(EVAL_FLAGS) --data-dir $(API_BANK)

$(E)/heldout_scores.json: eval/heldout.py eval/common.py $(PKG)/outcome.py $(CKPT_ADAPTER) $(LIB_MODEL) $(CFG_HELDOUT) $(SPLIT)
	$(PY) eval/heldout.py $(MODEL_FLAGS) $(if $(CKPT_ADAPTER),--adapter $(dir $(CKPT_ADAPTER))) --out $(E) \
		--samples $(D)/splits/test.jsonl --limit $(HELDOUT_LIMIT) $(EVAL_ARGS)

# The yardstick: YARDSTICK through stage 00 (malformed records skipped, counted in its data_stats.json),
# every assistant turn an item, scored like the held-out split. Only make ladder asks for it.
YD := data/yardsticks/$(basename $(notdir $(YARDSTICK)))
CFG_YARDSTICK := $(call config,eval-$(CKPT_NAME)-yardstick,MODEL=$(MODEL) QLORA=$(QLORA) CKPT=$(CKPT) YARDSTICK=$(YARDSTICK) YARDSTICK_LIMIT=$(YARDSTICK_LIMIT) $(EVAL_ARGS))
$(YD)/toolace.jsonl: stages/00_data.py $(LIB_DATA) $(wildcard $(YARDSTICK))
	$(PY) stages/00_data.py --data $(YARDSTICK) --skip-bad --out $@

$(E)/toolace_scores.json: eval/heldout.py eval/common.py $(PKG)/outcome.py $(CKPT_ADAPTER) $(LIB_MODEL) $(CFG_YARDSTICK) $(YD)/toolace.jsonl
	$(PY) eval/heldout.py $(MODEL_FLAGS) $(if $(CKPT_ADAPTER),--adapter $(dir $(CKPT_ADAPTER))) --out $(E) \
		--samples $(YD)/toolace.jsonl --name toolace --limit $(YARDSTICK_LIMIT) $(EVAL_ARGS)

HELDOUT := $(if $(filter %/0,$(SHARES)),,$(E)/heldout_scores.json)#  none with the paper's split
$(E)/summary.json: eval/summarize.py $(E)/bfcl_scores.json $(E)/api_bank_scores.json $(HELDOUT) \
		$(if $(filter 1,$(WITH_YARDSTICK)),$(E)/toolace_scores.json)
	$(PY) eval/summarize.py --dir $(E) --name $(CKPT_NAME)

# Renders whatever summaries exist (seconds); depending on them would re-run the eval of CKPT.
report:
	$(PY) eval/report.py --results $(R) --data $(D) --checkpoints-dir $(C)

# make ladder: every rung scored on the same items (make eval with the yardstick), then the report of
# those rungs alone, each against the warm-up with its paired interval, in $(R)/ladder/.
LADDER ?= base $(FIG4) warmup $(addprefix iter_,$(ITERS))#  checkpoints the ladder scores
ladder: $(foreach ck,$(filter-out base,$(LADDER)),$(C)/$(ck)/$(ADAPTER))
	$(foreach ck,$(LADDER),$(MAKE) --no-print-directory eval CKPT=$(ck) WITH_YARDSTICK=1 &&) true
	$(PY) eval/report.py --results $(R) --checkpoints $(LADDER) --data $(D) --checkpoints-dir $(C) --out $(R)/ladder

bench: $(VENV)/.installed
	$(VENV)/bin/pip install -q -r requirements-bench.txt
	$(PY) bench/bench.py --out eval/results/bench $(BENCH_ARGS)

clean:
	rm -rf $(D) $(C) $(R)
