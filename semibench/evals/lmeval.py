"""GSM8K, MATH-500 and IFEval through lm-eval: its task definitions and metrics, our generator.

lm-eval builds the prompts (chat template applied through `SemibenchLM.apply_chat_template`, the
same call its `hf` backend makes) and scores the completions with the task's own filters and
metrics; `SemibenchLM.generate_until` only hands back completions that semibench generated with its
own engine. For avg@N the tasks are evaluated once per sample index j, each pass returning sample j
of every prompt, so lm-eval scores every sample and the N per-seed scores come from lm-eval too.

Data: when `benchmarks.resolve` finds the files locally (--data-dir, else the shipped `tasks/data/`),
the YAMLs in `tasks/eval/` (which `include:` the installed task and swap only the data source) are
rendered with that directory's absolute path into a scratch directory; otherwise the installed task
reads the Hugging Face hub or its cache.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Callable, Sequence

from semibench.benchmarks import BENCHMARKS
from semibench.constraints import prepare
from semibench.datafiles import TASKS_DIR
from semibench.evals.session import GenRequest, Session, prompt_key

EVAL_TASKS_DIR = TASKS_DIR / "eval"


def render_local_tasks(data_dir: Path, dest: Path) -> Path:
    """Write tasks/eval/*.yaml into `dest` with the installed lm-eval tasks dir and `data_dir` filled in."""
    import lm_eval

    installed = Path(lm_eval.__file__).parent / "tasks"
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(EVAL_TASKS_DIR.glob("*.yaml")):
        text = string.Template(path.read_text()).substitute(LM_EVAL_TASKS=installed, DATA_DIR=Path(data_dir).resolve())
        (dest / path.name).write_text(text)
    return dest


def _lm_class():
    from lm_eval.api.model import LM

    class SemibenchLM(LM):
        """lm-eval's view of semibench's generator: completions come from `complete`, sample `sample_index` of each.

        `complete(requests)` takes lm-eval's (context, gen_kwargs) pairs and returns every request's
        N completions (generating the missing ones, resuming the rest from disk).
        """

        def __init__(self, tokenizer, name: str, complete: Callable[[Sequence[tuple[str, dict]]], list[list[str]]], sample_index: int):
            super().__init__()
            self.tokenizer = tokenizer
            self.name = name
            self.complete = complete
            self.sample_index = sample_index

        def generate_until(self, requests) -> list[str]:
            return [samples[self.sample_index] for samples in self.complete([r.args for r in requests])]

        def loglikelihood(self, requests):
            raise NotImplementedError("semibench evaluates generation tasks only")

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError("semibench evaluates generation tasks only")

        def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
            # The call lm-eval's HF backend makes, so prompts are identical to model="hf".
            return self.tokenizer.apply_chat_template(
                chat_history, tokenize=False, add_generation_prompt=add_generation_prompt, continue_final_message=not add_generation_prompt
            )

        @property
        def tokenizer_name(self) -> str:
            return self.name.replace("/", "__")

        def chat_template(self, chat_template: bool | str = False) -> str | None:
            return self.tokenizer.chat_template

    return SemibenchLM


def run_task(
    bench: str,
    data_dir: Path | None,
    tokenizer,
    model_name: str,
    complete: Callable[[Sequence[tuple[str, dict]]], list[list[str]]],
    num_samples: int,
    limit: int | None,
    max_new_tokens: int,
    scratch: Path,
) -> list[dict]:
    """One lm-eval pass per sample index: [{"results": task metrics, "samples": per-doc rows}, ...]."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = BENCHMARKS[bench].lmeval
    prepare()
    if data_dir is not None:
        # Our YAMLs include the installed tasks by path, so lm-eval's own index (15 s to build) is not needed.
        task, manager = spec.local, TaskManager(include_path=str(render_local_tasks(data_dir, scratch)), include_defaults=False)
    else:
        task, manager = spec.installed, TaskManager()
    lm_class = _lm_class()
    passes = []
    for j in range(num_samples):
        out = lm_eval.simple_evaluate(
            model=lm_class(tokenizer, model_name, complete, j),
            tasks=[task],
            task_manager=manager,
            limit=limit,
            num_fewshot=0,  # zero-shot chat for every task: RL checkpoints are chat models
            apply_chat_template=True,
            fewshot_as_multiturn=False,
            gen_kwargs={"max_gen_toks": max_new_tokens},  # lm-eval's 256 default would truncate RL checkpoints
            log_samples=True,
            bootstrap_iters=0,  # we compute standard errors ourselves (avg@N)
            verbosity="ERROR",
        )
        passes.append({"results": out["results"][task], "samples": out["samples"][task], "version": out["versions"][task]})
    return passes


def sample_scores(samples: list[dict], bench: str) -> dict[int, dict[str, float]]:
    """Per doc id, every reported metric of one pass (key as in lm-eval's results, e.g. 'exact_match,strict-match').

    Instruction-level IFEval metrics are per-instruction lists in a sample; the per-doc value is their mean
    (the benchmark value itself is lm-eval's own aggregate over all instructions).
    """
    out: dict[int, dict[str, float]] = {}
    for row in samples:
        flt = row.get("filter", "none")
        for key in BENCHMARKS[bench].lmeval.metrics:
            metric, _, want = key.partition(",")
            if want == flt and metric in row:
                value = row[metric]
                out.setdefault(row["doc_id"], {})[key] = sum(value) / len(value) if isinstance(value, list) else float(value)
    return out


def run_lmeval(session: Session, bench: str, source) -> dict:
    """GSM8K, MATH-500 or IFEval: lm-eval builds and scores, the session generates; avg@N over lm-eval's per-pass aggregates."""
    from semibench.evals.scoring.samples import avg_at_n, seed_means

    s, spec = session.settings, BENCHMARKS[bench].lmeval
    store = session.store(bench)

    def complete(requests: Sequence[tuple[str, dict]]) -> list[list[str]]:
        gen = [GenRequest(prompt_key(ctx), ctx, tuple(kw.get("until") or ()), kw.get("max_gen_toks")) for ctx, kw in requests]
        return session.complete(store, gen, bench)

    passes = run_task(
        bench, source.path if source.where == "local" else None, session.tokenizer, session.model_name, complete,
        s.samples_per_prompt, s.limit, s.max_new_tokens, session.scratch / bench,
    )
    per_doc = [sample_scores(p["samples"], bench) for p in passes]  # [pass][doc_id][metric]
    docs = {row["doc_id"]: row for row in passes[0]["samples"]}
    rows = []
    for doc_id, row in sorted(docs.items()):
        context = row["arguments"][0][0]  # [(context, gen_kwargs)] of its one generate_until request
        stored = store.rows[prompt_key(context)]
        metrics = {_metric_name(k): [p[doc_id][k] for p in per_doc] for k in spec.metrics}
        rows.append({**stored, "doc_id": doc_id, "target": row["target"], "completions": stored["completions"][: s.samples_per_prompt],
                     "scores": metrics[_metric_name(spec.metrics[0])], "metrics": metrics})
    store.rewrite(rows)
    # lm-eval's own aggregates (IFEval's instruction-level ones are not per-doc means), averaged over passes.
    per_pass = {_metric_name(k): [100 * p["results"][k] for p in passes] for k in spec.metrics}
    primary = _metric_name(spec.metrics[0])
    if s.samples_per_prompt == 1:
        _, stderr = avg_at_n([[r["scores"][0]] for r in rows])
    else:
        _, stderr = seed_means(per_pass[primary])
    return {
        "score": sum(per_pass[primary]) / len(passes), "stderr": stderr, "primary_metric": primary, "n": len(rows),
        "metrics": {name: sum(v) / len(v) for name, v in per_pass.items()},
        "task": spec.local if source.where == "local" else spec.installed, "task_version": passes[0]["version"],
    }


def _metric_name(lm_eval_key: str) -> str:
    """'exact_match,strict-match' -> 'exact_match_strict_match'; 'math_verify,none' -> 'math_verify'."""
    metric, _, flt = lm_eval_key.partition(",")
    return metric if flt in ("", "none") else f"{metric}_{flt.replace('-', '_')}"
