"""The presets' data: what each preset changes, the paper's Table 4, and why where the paper is silent.

Plain dicts of dotted config keys to values; `config.resolve` applies them (preset, then the Table 4
row of the run's objective and task, then the user's --set). Kept apart from config.py, which holds
the schema and the mechanics, because this is the part a reader compares with the paper.
"""

from __future__ import annotations

from typing import Any

# Presets are overrides on top of the dataclass defaults, so a preset reads as "what differs".
PRESETS: dict[str, dict[str, Any]] = {
    # Random-init tiny model + a locally built tokenizer: seconds per run, for tests. Its math is
    # single-digit arithmetic so a random model is sometimes right and every path really updates.
    "tiny": {
        "model.name": "tiny",
        "model.autocast_dtype": "",
        "model.generator_dtype": "float32",
        "reward.dtype": "float32",  # fp32 throughout: tests give the same numbers on every CPU
        "task.math_template": "tiny",
        "task.reasoning_gym": ("single_digit",),
        "task.num_prompts": 200,
        "sampling.max_new_tokens": 12,
        "sampling.samples_per_prompt": 8,
        "reward.math_workers": 1,
        "reward.judge_model": "tiny",
        "optim.lr": 1e-3,
        "optim.adam_eps": 1e-8,
        "optim.grad_clip": 1.0,
        "train.steps": 3,
        "train.prompts_per_step": 4,
        "train.micro_batch_size": 16,
        "train.engine": "hf",  # a vLLM engine start (~30 s) would dwarf a tiny run; tests pick vllm explicitly
    },
    # The packaged SmolLM2-135M-Instruct on a 2-core CPU, chosen by a measured pilot (docs/pilot.md) so
    # that training moves the held-out benchmarks: sums of 1-2 digit numbers under a short prompt (the
    # seed model copies the paper's "[answer]" placeholder), IFEval-type constraints on synthetic
    # requests with a verifiable reward (not the paper's reward model: say so wherever it is shown),
    # 8 prompts x 4 samples of <= 64 tokens a step for 20 steps, lr 2e-4.
    "smol": {
        "model.name": "smollm2",
        "task.reasoning_gym": ("two_digit_sums",),
        "task.math_template": "short",
        "task.if_data": "constraints",
        "task.math_fraction": 0.5,  # half the prompts IF: at 2:1 the IF half saw ~7 prompts per constraint type
        "reward.if_reward": "constraints",
        "sampling.max_new_tokens": 64,  # math answers are ~10-20 tokens; IF compliance barely moves from 64 to 128 (2x the cost)
        "sampling.samples_per_prompt": 4,
        # Adam eps 1e-4 and DPO beta 0.1 on every task (Table 4's math row): at eps 1e-8 / beta 0.01 (its chat
        # row, which mixed took) DPO and GRPO collapsed into degenerate text on the pilot. With clip 0.1 the
        # clipped gradient's elements (RMS ~1e-5) sit below eps, so a step moves the weights by ~lr x 330, not
        # Adam's ~lr x 10^4 (measured): lr 2e-4 is a 0.07-norm step, 15x below the one that collapsed. Against
        # lr 1e-4 it raised the IF gains 2.2x (data seed 0) and 1.3x (data seed 1), and 21 of 24 runs over two
        # data seeds learned the math answer format (docs/pilot.md).
        "optim.lr": 2e-4,
        "optim.adam_eps": 1e-4,
        "loss.dpo_beta": 0.1,
        "train.steps": 20,
        # 8 prompts a step: the mixed grid's 3 seeds in ~28 min on a 2-core AMX Xeon. 16 (D16 in docs/pilot.md,
        # at lr 1e-4) doubled the effects in 55 min, but none of its resolved verdicts held on another data seed.
        "train.prompts_per_step": 8,
        # Up to 16 sequences per forward/backward; the trainer splits them by length where that saves
        # padding (rollouts.micro_batches: 1.5x faster GRPO steps than one padded batch).
        "train.micro_batch_size": 16,
        # Generator and trainer share 2 cores here: generating the next chunk while training
        # oversubscribes them (bench pipeline: s=8 took 1.11x and s=16 1.55x the time of s=1).
        # What pays on CPU is batching: a window of up to 16 steps in one call, inline.
        "train.pipeline": False,
        "train.rollout_chunk_steps": 16,
    },
    # The paper's experiment (Llama-3.1-8B-Instruct, NuminaMath + WildChat, Athene-RM-8B) on GPUs.
    # Table 4's whole row per task and objective and PRESET_TASK_DEFAULTS apply on top; what the
    # paper leaves open is chosen and explained in PRESET_NOTES["paper"].
    "paper": {
        "model.name": "meta-llama/Llama-3.1-8B-Instruct",
        "model.chat_template": "llama3",
        "task.math_data": "numina",
        "task.if_data": "wildchat",
        "task.math_template": "paper",
        "sampling.temperature": 1.0,
        "sampling.top_p": 1.0,
        "sampling.samples_per_prompt": 8,
        "reward.math_extraction": ("latex",),
        "reward.math_literal_numbers": False,  # the paper's verifier: an answer equal to the gold counts, whatever its form
        "reward.math_workers": 8,  # per trainer rank: 8 ranks a node x 8 verifier processes
        "reward.if_reward": "reward_model",
        "reward.reward_model": "Nexusflow/Athene-RM-8B",
        "reward.rm_cls_token": "<|reserved_special_token_1|>",  # id 128003 in Athene's tokenizer
        "reward.rm_max_length": 4096,
        "reward.rm_batch_size": 16,
        "loss.length_normalize": False,
        "loss.grpo_scale_std": True,
        "train.micro_batch_size": 4,
        "train.checkpoint_every": 100,
        "train.resume_every": 50,
        "train.engine": "vllm",
        "dist.mixed_precision": True,
        "dist.activation_checkpointing": True,
    },
}

# The paper's Table 4 (paper.md §1.6), one row per (objective family, task): the single source of
# truth. Every preset takes the objective-defining columns (TABLE4_DEFAULTS); presets in
# TABLE4_FULL_ROWS also take its scale (lr, clip, generation length, prompts per step). `mixed` is
# the V+NV row (seed model, NuminaMath + WildChat); the paper ran no GRPO on mixed, so that row
# is ours (chat values, as the V+NV DPO row). Verifiable GRPO's lr/eps/clip are garbled in the
# source (§6.9): the math DPO values.
_MATH = {"optim.lr": 1e-6, "optim.adam_eps": 1e-4, "optim.grad_clip": 0.1, "sampling.max_new_tokens": 2048, "train.prompts_per_step": 64}
_CHAT = {"optim.lr": 1e-6, "optim.adam_eps": 1e-8, "optim.grad_clip": 0.1, "sampling.max_new_tokens": 1024, "train.prompts_per_step": 32}
TABLE4: dict[tuple[str, str], dict[str, Any]] = {
    # Reference sync "Yes" for semi-online/online DPO on math; offline's "No" is the same run (s = inf
    # never syncs the generator, so the reference never syncs either).
    ("dpo", "math"): {"loss.dpo_beta": 0.1, "train.ref_sync": True, **_MATH},
    ("dpo", "if"): {"loss.dpo_beta": 0.01, "train.ref_sync": False, **_CHAT},
    ("dpo", "mixed"): {"loss.dpo_beta": 0.01, "train.ref_sync": False, **_CHAT},
    ("grpo", "math"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_MATH},
    ("grpo", "if"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_CHAT},
    ("grpo", "mixed"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_CHAT},
}
TABLE4_EVERY_PRESET = ("loss.dpo_beta", "loss.kl_beta", "optim.adam_eps", "train.ref_sync")
TABLE4_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    row: {k: v for k, v in values.items() if k in TABLE4_EVERY_PRESET} for row, values in TABLE4.items()
}
TABLE4_FULL_ROWS = ("paper",)

# Per-task values of a preset that Table 4 does not hold (applied with its row).
PRESET_TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "math": {"train.steps": 1000},
        "if": {"train.steps": 1500},
        "mixed": {"train.steps": 1500, "task.numina_size": 100_000, "task.wildchat_size": 50_000},
    },
}

# Why a preset chose what it did where the paper is silent or its text and code disagree (paper.md
# §6); `semibench presets show <preset>` prints these under the resolved keys.
PRESET_NOTES: dict[str, dict[str, str]] = {
    "paper": {
        "model.chat_template": "llama3: the Llama-3 chat format with no system turn, as the paper's prompts "
                               "(App. Figs. 4-5); Llama-3.1's own template adds a 'Cutting Knowledge Date' system turn.",
        "task.math_data": "numina: NuminaMath-CoT without orca_math/synthetic_amc/synthetic_math, proofs, multiple "
                          "choice and problems without a boxed answer; deduplicated; 1,980 valid + 1,980 test held out "
                          "by a seeded hash (the paper's exact filter is unpublished; it kept 261,440).",
        "task.if_data": "wildchat: 1,000 first-turn user prompts of WildChat-1M, English and non-toxic (the paper "
                        "does not say; Athene-RM-8B and the evaluations are English). 470 more are held out for "
                        "checkpoint selection, standing in for the paper's 470-prompt set (not public as such).",
        "task.numina_size, task.wildchat_size": "mixed: 100k NuminaMath + 50k WildChat prompts as the paper's "
                                                "NM+WC run (§3.3); the chat task's 1,000 are the first 1,000 of the 50k.",
        "sampling.samples_per_prompt": "8: GRPO's group (Table 5). DPO's N is not stated (§6.4): DPO samples the "
                                       "same 8 and pairs from them (the follow-up DARLING uses 8 on this setup).",
        "sampling.max_new_tokens": "mixed: 1,024 for both kinds as Table 4's V+NV row (the paper's code could give "
                                   "math 2,048 via mix_lengths; not used).",
        "loss.grpo_scale_std": "true: Eq. 1 only mean-centres, but the fairseq2 code that produced the paper's "
                               "numbers divides advantages by the group std (§6.1).",
        "optim (GRPO on math)": "lr 1e-6, eps 1e-4, clip 0.1: garbled in the source (§6.9); the math DPO row's values.",
        "optim.adam_betas, optim.weight_decay, optim.lr_schedule, optim.final_lr_scale, optim.warmup_steps":
            "not stated (§6.7): fairseq2's recipe defaults, AdamW (0.9, 0.95), wd 0.1, cosine to 0.2 x lr; no warm-up.",
        "train.steps": "chat 1,500 (stated). Math not stated (§6.5): 1,000, i.e. 64k prompts, a quarter epoch, and "
                       "10 syncs at s = 100. Mixed not stated: 1,500, as chat, whose hyperparameters it uses.",
        "train.ref_sync": "offline DPO on math: Table 4 says No, the math row says Yes; identical runs, since at "
                          "s = inf neither generator nor reference ever syncs.",
        "loss.objective on mixed": "the paper ran mixed with online DPO only; GRPO on mixed takes the chat GRPO row.",
        "reward.math_extraction": "latex only: the paper's code extracts predictions with LatexExtractionConfig.",
        "reward.math_literal_numbers": "false: the paper's verifier credits any answer Math-Verify proves equal to the gold; semibench's "
                                       "default (true) refuses an expression for a numeric gold, since restating '74 + 2' is rewarded otherwise.",
        "reward.rm_max_length": "4,096 as the paper; a longer input keeps its CLS token (the paper's code scored it 0.0).",
        "reward.rm_device": "'' = each trainer rank's own GPU; give the RM a GPU of its own: --set reward.rm_device=cuda:7.",
        "train.checkpoint_every": "100: the paper picks the best checkpoint (chat: by reward_len_norm on the 470 "
                                  "held-out prompts; math: by validation accuracy on the 1,980).",
        "model.dtype": "fp32 master weights and Adam state with bf16 compute; the paper trained in bf16 with FSDP "
                       "fp32 reduction (recipe default).",
        "train.engine": "vllm: the paper generated with vLLM on its own GPUs (App. B.1); named, not 'auto', so a paper run "
                        "never falls back to HF generation of 2,048-token rollouts where vLLM is missing.",
        "dist.mixed_precision": "true: FSDP2 computes with bf16 copies of the fp32 weights and reduces gradients in fp32, the "
                                "fairseq2 recipe default (bf16, FSDP with fp32 reduce; not stated in the paper). Under "
                                "torchrun only; one process trains with bf16 autocast alone.",
        "dist.activation_checkpointing": "true: recompute each decoder block in backward, the fairseq2 recipe default (not "
                                         "stated in the paper); an 8B model's activations for 2,048-token rollouts need it.",
        "grid.semi_online.mixed": "10: the paper ran mixed online only; 10 is the one s both task grids share "
                                  "(math {10, 100}, chat {5, 10}; chat found 100 unstable).",
        "grid.eval": "avg@50 at T 0.6, top-p 0.9 (§2.1); the AlpacaEval/ArenaHard judge is not stated (§6.6): GPT-4o, "
                     "as the follow-up DARLING says it copied from this paper.",
    },
}
