"""Every run's metrics in the experiment trackers people already watch: TensorBoard, MLflow, W&B, trackio.

`log.report_to` (`--report-to` on `semibench train` and `semibench grid`) names them; the default is none.
metrics.jsonl stays the record: a tracker gets the same row, at the same optimizer step, after it is
written. One adapter per library behind `Tracker`; `Trackers` fans out to them and catches each one's
failures: a tracker that raises (a full disk, an unreachable server) warns once, is switched off for the
rest of the run, and training goes on. A missing package is refused before anything trains
(`check_installed`, one line naming the extra).

Offline by default, no account: TensorBoard writes `runs/<id>/tensorboard/`; MLflow a local SQLite store
`<runs root>/mlflow.db` unless MLFLOW_TRACKING_URI is set; W&B offline runs under `runs/<id>/wandb/` unless
WANDB_MODE says otherwise (`wandb sync` uploads them later); trackio its local store (TRACKIO_DIR, else
the Hugging Face cache). A resumed run appends to the same tracker run: TensorBoard purges the steps after
the resumed state (the same directory, no duplicated steps); MLflow reopens the run it recorded in
`runs/<id>/trackers.json`; W&B resumes the run id (`resume="allow"`); trackio resumes the run by name.
MLflow, W&B and trackio cannot drop points: a reopened tracker run is asked which steps it holds, and gets
only the others (steps logged between the last resumable state and a kill are bit-identical but for
timings, so they are kept; rows it lost in the kill are logged again from metrics.jsonl). A tracker added
to a run later gets the run's earlier rows from metrics.jsonl too.

Evaluation results (`log_evaluations`, called by the grid) go to the same tracker runs as `eval/<bench>`
and `eval/<bench>_se_items` at the checkpoint's step (the seed model's at step 0). Rank 0 only.

Modules: `records` (what a run's config and rows become: names, tags, series), `adapters` (one class per
library), `fanout` (the run's set of trackers: catch-up from metrics.jsonl, failures, evaluations).
"""

from semibench.trackers.fanout import log_evaluations, open_trackers
from semibench.trackers.records import NAMES, check_installed, requested

__all__ = ["NAMES", "check_installed", "log_evaluations", "open_trackers", "requested"]
