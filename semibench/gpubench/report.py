"""The GPU benchmark's result as Markdown: pure, from the JSON record alone (so the two never disagree)."""

from __future__ import annotations

MFU_GOAL = 0.40  # issue 31: trainer MFU on the 1B shape
TRL_GOAL = 2.0  # issue 31: semibench's step throughput over TRL's on the same work


def cell(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def goals(record: dict) -> dict:
    """Each goal's measured value and whether it is met (None: not measured in this run)."""
    trainer = [r for r in record.get("trainer", []) if not r["activation_checkpointing"]]
    mfu = min((r["mfu"] for r in trainer), default=None)
    ratios = [r["ratio"] for r in record.get("vs_trl", []) if r["side"] == "semibench" and r.get("ratio") is not None]
    ratio = min(ratios, default=None)
    return {"mfu": {"goal": MFU_GOAL, "value": mfu, "met": None if mfu is None else mfu >= MFU_GOAL, "what": "lowest trainer MFU, no checkpointing"},
            "vs_trl": {"goal": TRL_GOAL, "value": ratio, "met": None if ratio is None else ratio >= TRL_GOAL,
                       "what": "lowest ratio of semibench's to TRL's step throughput"}}


def markdown(record: dict) -> str:
    lines = [f"# semibench bench gpu: shape {record['shape']}", "", f"Machine: {record['machine']}; torch {record['torch']}, transformers "
             f"{record['transformers']}, TRL {record['trl'].get('version') or 'absent'}. Wall {cell(record.get('wall_s'), 0)} s.", ""]
    m = record["model"]
    lines += [f"Model: `{m['config']}`, random init, {m['params'] / 1e6:.1f}M parameters; {m['prompt_tokens']} prompt + "
              f"{m['completion_tokens']} completion tokens per sequence.", ""]
    ceiling = record.get("ceiling")
    if ceiling:
        lines += [f"Matmul ceiling: {ceiling['size']}^3 {ceiling['dtype']} product, **{ceiling['tflop_per_s']:.1f} TFLOP/s** (best of {ceiling['seconds']:.0f} s).", ""]
    if record.get("trainer"):
        lines += ["## Trainer (FSDP2, one rank, bf16)", ""]
        lines += table(["objective", "checkpointing", "steps", "step s", "tokens/step", "tokens/s", "model TFLOP/s", "MFU %", "peak GiB", "step-0 loss"],
                       [[r["objective"], cell(r["activation_checkpointing"]), cell(r["steps"]), cell(r["step_s"], 4), cell(r["tokens_per_step"]),
                         cell(r["tokens_per_s"], 0), cell(r["model_tflop_per_s"], 3), cell(100 * r["mfu"], 2), cell(r["peak_memory_gib"]),
                         cell(r["step0_loss"], 6)] for r in record["trainer"]])
        lines += ["", record["flops_note"], ""]
    if record.get("vs_trl"):
        lines += ["## Against TRL (online steps, HF generation on both sides)", ""]
        lines += table(["objective", "side", "steps", "s/step", "samples/s", "vs TRL", "generate s", "rest of step s", "peak GiB"],
                       [[r["objective"], r["side"], cell(r["steps"]), cell(r["step_s"], 3), cell(r["samples_per_s"], 2), cell(r.get("ratio")),
                         cell(r["generate_s"], 3), cell(r["other_s"], 3), cell(r["peak_memory_gib"])] for r in record["vs_trl"]])
        lines += [""]
    if record["trl"].get("note"):  # a failed child's note ends in its traceback: its last line here, all of it in the JSON
        lines += [f"TRL: {record['trl']['note'].strip().splitlines()[-1]}", ""]
    for r in record.get("trainer", []):
        p = r.get("profile")
        if not p:
            continue
        lines += [f"## Where a {r['objective'].upper()} step's time goes (torch.profiler, top {p['what']} by self time)", "",
                  f"Step {p['step_s']:.4f} s, of which {p['what']} busy {p['busy_s']:.4f} s.", ""]
        lines += table(["name", "self ms", "share of busy %", "calls"],
                       [[f"`{t['name'][:90]}`", cell(t["self_ms"], 3), cell(100 * t["share_of_busy"], 1), cell(t["calls"])] for t in p["top"]])
        lines += [""]
    g = record.get("goals", {})
    lines += ["## Goals", ""]
    for key, goal in g.items():
        met = {True: "met", False: "missed", None: "not measured"}[goal["met"]]
        value = "-" if goal["value"] is None else (f"{100 * goal['value']:.1f} %" if key == "mfu" else f"{goal['value']:.2f}x")
        target = f"{100 * goal['goal']:.0f} %" if key == "mfu" else f"{goal['goal']:.1f}x"
        lines += [f"- {goal['what']}: {value} (goal {target}): {met}"]
    if record.get("skipped"):
        lines += ["", "Not measured: " + "; ".join(record["skipped"])]
    return "\n".join(lines) + "\n"
