"""Hydra's Optuna sweeper, made resumable: the study lives in the sweep dir and a rerun carries on.

A Hydra plugin, so it lives in the ``hydra_plugins`` namespace package (Hydra only loads sweepers from there).

Rerun an interrupted search with the same ``hydra.sweep.dir``: trials that finished count towards
``n_trials``, trials that were cut off mid-run are marked failed (Optuna would otherwise keep them
RUNNING forever), and new jobs are numbered after the existing job dirs instead of overwriting them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


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
        return inner.sweep(arguments)
