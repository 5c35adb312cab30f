"""`semibench bench gpu`: trainer MFU and step throughput against TRL on one device, in one run.

In order, each part writing `gpu_bench.json` and `gpu_bench.md` again when it ends (atomically), so
a run stopped at its deadline leaves every part that finished:

1. the matmul ceiling: the best rate of a square bf16 product (`ceiling_size`, 8192 on a GPU);
2. semibench's trainer (`trainer.trainer_block`), DPO and GRPO steps without activation
   checkpointing: tokens/s, MFU against (1), peak memory, the profiler's top kernels of one step;
3. whole online steps against TRL (`trainer.online_block`, `trl_side`): semibench's sync + HF generate +
   reward + train against `GRPOTrainer` / `OnlineDPOTrainer` on the same model file, prompts, lengths,
   batch and precision; generation and the rest of the step apart. TRL absent: a note, not a failure;
4. (2) again with activation checkpointing: last, as the goals are read off (2) and (3).

The same code runs on a CPU with the `tiny` shape (gloo instead of NCCL), which the suite runs, so
the script cannot rot between the times a GPU is lent. Nothing is downloaded: the model is
random-init from a shipped config (`workload`), and TRL is whatever is importable.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

OUT_JSON, OUT_MARKDOWN = "gpu_bench.json", "gpu_bench.md"
CEILING_SECONDS = 3.0
SCHEMA = 1
FLOPS_NOTE = ("Model FLOPs per step = 3 forwards of the policy (forward + backward) + 1 of the reference; a forward is 2 x body parameters x "
              "tokens + 2 x vocab x hidden x positions whose logits are computed (the completion's, plus one). Attention's score products "
              "(~1%) and checkpointing's recompute are not counted. MFU = model FLOP/s / the ceiling.")


def run(out: Path, shape_name: str, minutes: float, steps: int | None = None, log=print) -> dict:
    """Measure everything that fits before `minutes` have passed; returns the record written to `out`."""
    import torch
    import transformers

    from semibench.datafiles import TASKS_DIR
    from semibench.gpubench import report, trainer, trl_side
    from semibench.gpubench.workload import OBJECTIVES, load_shape, prompt_texts, write_model
    from semibench.hardware import matmul_gflops, this_machine
    from semibench.runs import atomic_write_json, atomic_write_text

    started = time.monotonic()
    deadline = started + 60 * minutes
    shape = load_shape(shape_name)
    steps = steps or shape.measured_steps
    world = trainer.one_rank_world()
    record: dict = {"schema": SCHEMA, "shape": shape.name, "machine": this_machine().describe(), "device": str(world.device),
                    "torch": torch.__version__, "transformers": transformers.__version__, "minutes_budget": minutes, "skipped": [],
                    "trl": {"version": None, "note": None}, "flops_note": FLOPS_NOTE, "trainer": [], "vs_trl": []}

    def write() -> None:
        record["wall_s"] = time.monotonic() - started
        record["goals"] = report.goals(record)
        atomic_write_json(out / OUT_JSON, record)
        atomic_write_text(out / OUT_MARKDOWN, report.markdown(record))

    def time_left(part: str) -> bool:
        if time.monotonic() < deadline:
            return True
        record["skipped"].append(f"{part} (the {minutes:g}-minute budget was spent)")
        return False

    def train_rows(checkpointing: bool) -> None:
        for objective in OBJECTIVES:
            if time_left(f"trainer {objective}, checkpointing {'on' if checkpointing else 'off'}"):
                row = trainer.trainer_block(shape, model, objective, checkpointing, world, ceiling_tflop_per_s, steps, profile=not checkpointing)
                record["trainer"].append(row)
                log(f"trainer {objective} checkpointing={checkpointing}: {row['tokens_per_s']:.0f} tokens/s, MFU {100 * row['mfu']:.1f}%")
                write()

    def add(row: dict) -> None:
        row["samples_per_s"] = row["samples_per_step"] / row["step_s"]
        record["vs_trl"].append(row)
        log(f"{row['side']} online {row['objective']}: {row['step_s']:.2f} s/step, generate {row['generate_s']:.2f} s")

    with tempfile.TemporaryDirectory(prefix="gpubench-model-") as model_dir:
        log(f"shape {shape.name} on {record['machine']}: writing the random-init model")
        model = write_model(shape, Path(model_dir), world.device)
        record["model"] = {"config": str(Path("tasks") / shape.model_config.relative_to(TASKS_DIR)), "prompt_tokens": shape.prompt_tokens,
                           "completion_tokens": shape.completion_tokens} | {k: v for k, v in model.as_record().items() if k != "path"}
        ceiling_tflop_per_s = matmul_gflops("bfloat16", shape.ceiling_size, CEILING_SECONDS, str(world.device)) / 1e3
        record["ceiling"] = {"dtype": "bfloat16", "size": shape.ceiling_size, "seconds": CEILING_SECONDS, "tflop_per_s": ceiling_tflop_per_s}
        log(f"ceiling: {ceiling_tflop_per_s:.2f} TFLOP/s")
        write()
        train_rows(checkpointing=False)

        per_step = max(shape.work[o]["prompts"] for o in OBJECTIVES)
        prompts = prompt_texts(shape, per_step * (shape.warmup_steps + steps), model.vocab_size)
        for objective in OBJECTIVES:
            if time_left(f"semibench online {objective}"):
                add(trainer.online_block(shape, model, objective, world, prompts, steps))
                write()
        version, record["trl"]["note"] = trl_side.importable()
        record["trl"]["version"] = version
        if version and time_left("TRL"):
            rows = trl_side.measure(shape.name, model, prompts, steps, deadline - time.monotonic(), trainer.ONE_RANK_ENV)
            record["trl"]["note"] = rows.pop("error", None)
            if record["trl"]["note"]:
                log(f"TRL: {record['trl']['note']}")
            for objective in (o for o in OBJECTIVES if o in rows):
                add(rows[objective])
        ratios(record["vs_trl"], OBJECTIVES)
        write()
        train_rows(checkpointing=True)
    write()
    return record


def ratios(rows: list[dict], objectives: tuple[str, ...]) -> None:
    """Each row's samples/s over TRL's on the same objective (None where TRL did not run); TRL's row first."""
    for objective in objectives:
        trl = next((r for r in rows if r["side"] == "trl" and r["objective"] == objective), None)
        for row in (r for r in rows if r["objective"] == objective):
            row["ratio"] = row["samples_per_s"] / trl["samples_per_s"] if trl else None
    rows.sort(key=lambda r: (objectives.index(r["objective"]), r["side"] != "trl"))
