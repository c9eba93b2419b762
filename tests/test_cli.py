"""train.py and eval.py as users run them: artifacts, eval, resume, sweeps, Optuna, W&B, clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from conftest import FAST, ROOT, needs_fashion_mnist, run_cli

DIGITS_SMALL = [*FAST, "data.train_subset=600"]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.rc == 2, result
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, result
    assert "Traceback" not in result.stderr, result
    for f in fragments:
        assert f in errors[0], result


def test_train_then_eval_reproduces_test_accuracy(tmp_path) -> None:
    run_dir = tmp_path / "run"
    r = run_cli("train.py", *FAST, "trainer.max_epochs=3", "logger=wandb", run_dir=run_dir)
    assert r.rc == 0, r
    m = r.metrics
    assert m["status"] == "ok" and m["test/acc"] > 0.9 and m["val/acc"] > 0.9
    for key in ("params", "wall_s", "seed", "overrides", "epoch", "global_step", "val/f1", "test/f1"):
        assert key in m, key
    assert m["overrides"] == [*FAST, "trainer.max_epochs=3", "logger=wandb"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    # W&B ran offline, inside the run dir, with the job's name
    runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, list(run_dir.rglob("*"))

    e = run_cli("eval.py", f"ckpt_path={run_dir}/checkpoints/best.ckpt", run_dir=tmp_path / "eval")
    assert e.rc == 0, e
    assert abs(e.metrics["test/acc"] - m["test/acc"]) <= 0.001


@pytest.mark.slow  # ~30 s: `make test-slow`, run by CI (resume and Optuna stay covered fast elsewhere)
def test_resume_from_last_continues_at_the_next_epoch(tmp_path) -> None:
    first = run_cli("train.py", *DIGITS_SMALL, run_dir=tmp_path / "a")
    assert first.rc == 0, first
    steps_per_epoch = first.metrics["global_step"]
    second = run_cli(
        "train.py", *DIGITS_SMALL, "trainer.max_epochs=2", f"ckpt_path={tmp_path}/a/checkpoints/last.ckpt",
        run_dir=tmp_path / "b",
    )  # fmt: skip
    assert second.rc == 0, second
    assert second.metrics["epoch"] == 2 and second.metrics["global_step"] == 2 * steps_per_epoch
    with open(tmp_path / "b" / "csv" / "metrics.csv") as f:
        train_epochs = {int(row["epoch"]) for row in csv.DictReader(f) if row.get("train/loss")}
    assert train_epochs == {1}, "only the second epoch is trained after resuming"

    # resume=auto picks up this run dir's own last.ckpt
    third = run_cli("train.py", *DIGITS_SMALL, "trainer.max_epochs=3", "resume=auto", run_dir=tmp_path / "b")
    assert third.rc == 0, third
    assert third.metrics["global_step"] == 3 * steps_per_epoch


def test_multirun_2x2_writes_one_metrics_json_per_job(tmp_path) -> None:
    r = run_cli(
        "train.py",
        *DIGITS_SMALL,
        "model.norm=none,batch",
        "model.pool=max,avg",
        multirun=True,
        run_dir=tmp_path,
    )
    assert r.rc == 0, r
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/metrics.json"))]
    assert len(records) == 4
    settings = {
        tuple(sorted(o for o in rec["overrides"] if o.startswith(("model.norm", "model.pool")))) for rec in records
    }
    assert len(settings) == 4
    # one epoch on 600 images: every setting learns (chance is 0.1), the weakest (no norm, avg) barely
    assert all(rec["status"] == "ok" and rec["test/acc"] > 0.3 for rec in records)


def test_failing_job_is_reported_and_others_still_run(tmp_path) -> None:
    r = run_cli("train.py", *DIGITS_SMALL, "model.pool=median,max", multirun=True, run_dir=tmp_path)
    assert r.rc == 1, r
    by_pool = {}
    for p in tmp_path.glob("*/metrics.json"):
        rec = json.loads(p.read_text())
        by_pool[next(o for o in rec["overrides"] if o.startswith("model.pool"))] = rec
    assert by_pool["model.pool=max"]["status"] == "ok"
    failed = by_pool["model.pool=median"]
    assert failed["status"] == "failed" and "choose one of" in failed["error"]
    assert "1 of 2 jobs ok" in r.stderr


def test_optuna_three_trials(tmp_path) -> None:
    r = run_cli(
        "train.py", *DIGITS_SMALL, "hparams_search=image_optuna", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2", multirun=True, run_dir=tmp_path,
    )  # fmt: skip
    assert r.rc == 0, r
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/metrics.json")]
    assert len(records) == 3 and all(rec["status"] == "ok" for rec in records)
    best = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_value" in best and "model.optimizer.lr" in best


@pytest.mark.slow  # ~30 s: `make test-slow`, run by CI (resume and Optuna stay covered fast elsewhere)
def test_optuna_marks_failed_trials_failed_and_goes_on(tmp_path) -> None:
    # Optuna 2.10 rejects the NaN a failed run returns; the search used to stop with an unrelated ValueError
    import optuna

    r = run_cli(
        "train.py", *DIGITS_SMALL, "hparams_search=image_optuna", "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler.n_startup_trials=4", "model.pool=choice(max,median)", multirun=True, run_dir=tmp_path,
    )  # fmt: skip
    states = [
        t.state.name for t in optuna.load_study(study_name="image", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    ]
    assert len(states) == 4 and "COMPLETE" in states and "FAIL" in states, (states, r)
    assert "Values were told" not in r.stderr and "Traceback" not in r.stderr, r
    assert r.rc == 1 and f"multirun: {states.count('COMPLETE')} of 4 jobs ok" in r.stderr, r
    assert "model.pool='median' is not a valid choice" in r.stderr
    assert "best_value" in (tmp_path / "optimization_results.yaml").read_text()

    # every trial failing: one error line and the summary, not Optuna's "no trials are completed yet"
    none_ok = run_cli(
        "train.py", *DIGITS_SMALL, "hparams_search=image_optuna", "hydra.sweeper.n_trials=2",
        "model.pool=choice(median)", multirun=True, run_dir=tmp_path / "none",
    )  # fmt: skip
    assert none_ok.rc == 1 and "Traceback" not in none_ok.stderr, none_ok
    assert "no trial of study 'image' finished" in none_ok.stdout + none_ok.stderr, none_ok
    assert "0 of 2 jobs ok" in none_ok.stderr, none_ok


def test_logger_none_with_the_default_callbacks_trains(tmp_path) -> None:
    # LearningRateMonitor (callbacks=default) refuses a trainer without a logger; it is left out
    r = run_cli(
        "train.py", "trainer.max_epochs=1", "data.train_subset=600", "logger=none", "extras.print_config=false",
        run_dir=tmp_path / "run",
    )  # fmt: skip
    assert r.rc == 0 and r.metrics["status"] == "ok", r


def test_missing_dataset_is_one_line_and_fast(tmp_path) -> None:
    r = run_cli("train.py", *FAST, "data=mnist", f"paths.data_dir={tmp_path}/none", run_dir=tmp_path / "run")
    assert_one_line_error(r, "ylecun/mnist", f"{tmp_path}/none/mnist", "offline")
    assert r.metrics["status"] == "failed"
    assert "Traceback" in (tmp_path / "run" / "train.log").read_text(), "the traceback goes to the log file"


def test_unknown_choice_is_one_line(tmp_path) -> None:
    r = run_cli("train.py", *FAST, "model.pool=median", run_dir=tmp_path / "run")
    assert_one_line_error(r, "model.pool='median'", "choose one of", "max")


def test_two_runs_started_together_never_share_a_dir(tmp_path) -> None:
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        "train=false",
        "test=false",
        "logger=none",
        f"paths.log_dir={tmp_path}",
    ]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    dirs = list((tmp_path / "train" / "runs").iterdir())
    assert len(dirs) == 2 and all((d / "metrics.json").is_file() for d in dirs)


@pytest.mark.slow
def test_default_experiment_reaches_097_on_digits(tmp_path) -> None:
    r = run_cli("train.py", "callbacks=minimal", "logger=csv", run_dir=tmp_path / "run", timeout=600)
    assert r.rc == 0, r
    assert r.metrics["test/acc"] >= 0.97, r.metrics


@pytest.mark.slow
@needs_fashion_mnist
def test_fashion_mnist_three_epochs_reaches_088(tmp_path) -> None:
    r = run_cli(
        "train.py", "data=fashion_mnist", "trainer.max_epochs=3", "callbacks=minimal", "logger=csv",
        run_dir=tmp_path / "run", timeout=1200,
    )  # fmt: skip
    assert r.rc == 0, r
    assert r.metrics["test/acc"] >= 0.88, r.metrics


def test_submitit_local_runs_a_two_job_sweep(tmp_path) -> None:
    r = run_cli("train.py", *DIGITS_SMALL, "hydra/launcher=local", "model.pool=max,lp", multirun=True, run_dir=tmp_path)
    assert r.rc == 0, r
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/metrics.json")]
    assert len(records) == 2 and all(rec["status"] == "ok" for rec in records)
    assert (tmp_path / ".submitit").is_dir()


def test_slurm_launcher_composes_with_cluster_keys(tmp_path) -> None:
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"]
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 4, 16)
    assert launcher.timeout_min == 240 and launcher.cpus_per_task == 8


@pytest.mark.slow  # long (15-60 s): `make test-slow`, run by CI
def test_interrupted_optuna_search_resumes_from_its_sqlite_storage(tmp_path) -> None:
    import optuna

    args = [*DIGITS_SMALL, "hparams_search=image_optuna", "hydra.sweeper.sampler.n_startup_trials=2"]
    first = run_cli("train.py", *args, "hydra.sweeper.n_trials=2", multirun=True, run_dir=tmp_path)
    assert first.rc == 0, first
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.load_study(study_name="image", storage=storage)
    study.ask()  # a trial that was running when the search was killed
    second = run_cli("train.py", *args, "hydra.sweeper.n_trials=3", multirun=True, run_dir=tmp_path)
    assert second.rc == 0, second
    states = [t.state.name for t in optuna.load_study(study_name="image", storage=storage).trials]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1, states
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1", "2"]
