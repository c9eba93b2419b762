"""Hydra's Optuna sweeper, made resumable: the study lives in the sweep dir and a rerun carries on.

A Hydra plugin, so it lives in the ``hydra_plugins`` namespace package (Hydra only loads sweepers from there).

Rerun an interrupted search with the same ``hydra.sweep.dir``: trials that finished count towards
``n_trials``, trials that were cut off mid-run are marked failed (Optuna would otherwise keep them
RUNNING forever), and new jobs are numbered after the existing job dirs instead of overwriting them.

A trial whose run failed or diverged (``train.py`` records it in metrics.json and returns NaN) is told to
Optuna as FAIL with the run's one-line error, and the search goes on (``max_failure_rate`` in the
``hparams_search`` configs). Hydra's sweeper would otherwise tell Optuna 2.10 a NaN value, which it rejects,
and the whole search would stop with an unrelated ValueError.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class TrialFailed(Exception):
    """A trial's run ended without a number for the optimized metric."""


def _failed_trial(ret: Any) -> TrialFailed | None:
    """The failure of a finished job that returned NaN or nothing, with its run's recorded error."""
    value = ret._return_value
    if isinstance(value, int | float) and not math.isnan(value):
        return None
    try:
        error = json.loads((Path(ret.working_dir) / "metrics.json").read_text()).get("error")
    except (OSError, TypeError, ValueError):
        error = None
    return TrialFailed(f"trial in {ret.working_dir} failed: {error or f'the optimized metric is {value}'}")


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        inner = self.sweeper
        sweep_dir = Path(inner.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if inner.storage is None:
            inner.storage = f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
        try:
            study = optuna.load_study(study_name=inner.study_name, storage=inner.storage)
        except KeyError:  # no such study yet: a fresh search
            study = None
        if study is not None:
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                log.info("trial %d was interrupted; marked failed", trial.number)
            done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            total = inner.n_trials
            inner.n_trials = max(0, total - done)
            log.info(
                "resuming study '%s': %d of %d trials done, %d to go", inner.study_name, done, total, inner.n_trials
            )
        # setup() set job_idx to 0; new jobs must not overwrite the dirs of earlier runs of this sweep
        jobs = [int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        inner.job_idx = max(jobs) + 1 if jobs else 0

        launch = inner.launcher.launch

        def launch_marking_failures(job_overrides, initial_job_idx):
            from hydra.core.utils import JobStatus

            returns = launch(job_overrides, initial_job_idx)
            for ret in returns:
                failure = _failed_trial(ret) if ret.status == JobStatus.COMPLETED else None
                if failure is not None:
                    # a FAILED job's return_value raises this, so Hydra's sweeper tells Optuna FAIL, no value
                    ret.status, ret._return_value = JobStatus.FAILED, failure
            return returns

        inner.launcher.launch = launch_marking_failures
        try:
            return inner.sweep(arguments)
        except ValueError:
            study = optuna.load_study(study_name=inner.study_name, storage=inner.storage)
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
                raise
            # Optuna's best_trial fails when nothing finished; the multirun summary lists each job's error
            log.error("no trial of study '%s' finished; nothing to report as best", inner.study_name)
            return None
