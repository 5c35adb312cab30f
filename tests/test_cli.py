import subprocess
import sys

from typer.testing import CliRunner

from semibench.cli import app

runner = CliRunner()


def test_cli_module_does_not_import_torch():
    code = "import sys, semibench.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def _errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_unknown_set_key_one_line_nonzero_nothing_written(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--set", "optim.lrr=1e-3", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = _errors(result)
    assert len(lines) == 1 and lines[0].startswith("error: unknown config key 'optim.lrr'") and "optim.lr" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_missing_data_file_one_line_no_run_dir(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--set", f"task.math_data={tmp_path}/gsm8k.jsonl", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = _errors(result)
    assert lines[-1].startswith("error: data file not found") and "task.math_data" in lines[-1]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_row_missing_column_one_line(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"text": "Write a poem."}\n')
    result = runner.invoke(app, ["train", "--preset", "tiny", "--task", "if", "--set", f"task.if_data={data}", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "has no field 'prompt'" in _errors(result)[-1] and "task.if_prompt_key" in _errors(result)[-1]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_sync_every_and_objective(tmp_path):
    for args, message in ((["--sync-every", "0"], "sync_every must be >= 1"), (["--objective", "ppo"], "loss.objective must be one of")):
        result = runner.invoke(app, ["train", "--preset", "tiny", "--out", str(tmp_path), *args])
        assert result.exit_code == 2 and message in result.output


def test_train_command_end_to_end(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--task", "math", "--objective", "grpo", "--sync-every", "inf", "--steps", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [run] = list(tmp_path.iterdir())
    assert run.name.startswith("math-grpo-sinf-tiny-seed0-")
    assert (run / "DONE").exists() and (run / "checkpoints" / "step_000002" / "DONE").exists()
    again = runner.invoke(app, ["train", "--preset", "tiny", "--task", "math", "--objective", "grpo", "--sync-every", "inf", "--steps", "2", "--out", str(tmp_path)])
    assert again.exit_code == 0 and "already done" in again.output


def test_presets_show_lists_resolved_keys():
    result = runner.invoke(app, ["presets", "show", "smol", "--task", "if", "--objective", "dpo"])
    assert result.exit_code == 0
    # smol's own beta (the pilot's, presets.py) over Table 4's chat row
    assert "loss.dpo_beta = 0.1" in result.output and "train.sync_every = 1" in result.output
