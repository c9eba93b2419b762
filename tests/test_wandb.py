"""W&B the way its users know it, checked in the offline run files: one run across a kill and resume, media
and checkpoints in the run, distinct names for seed replicas, the .env's key in the environment only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import _wandb_records as wandb_records
import pytest

from conftest import FAST, ROOT, run_cli
from nnlab.utils.job import wandb_run_id

INJECT = {"PYTHONPATH": str(ROOT / "tests")}
SMALL = [*FAST, "logger=wandb", "data.train_subset=320", "data.batch_size=16", "trainer.max_epochs=2",
         "callbacks.model_checkpoint.every_n_train_steps=5"]  # fmt: skip


def offline_runs(run_dir: Path) -> list[list]:
    return [wandb_records.records(f) for f in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))]


def of_kind(recs: list, kind: str) -> list:
    return [getattr(r, kind) for r in recs if r.WhichOneof("record_type") == kind]


def history_keys(recs: list) -> set[str]:
    """Logged keys; a table or image (logged as ``key/_type``, ``key/path``, ...) counts as its ``key``."""
    keys = {item.key or "/".join(item.nested_key) for h in of_kind(recs, "history") for item in h.item}
    return keys | {k.rsplit("/", 1)[0] for k in keys if k.rsplit("/", 1)[-1].startswith("_") or k.endswith("/path")}


@pytest.mark.slow  # long (15-60 s): `make test-slow`, run by CI
def test_killed_and_resumed_run_is_one_wandb_run_with_media_and_checkpoints(tmp_path) -> None:
    run_dir = tmp_path / "run"
    killed = run_cli("train.py", *SMALL, "+callbacks.kill._target_=_fault_injection.KillAtStep",
                     "+callbacks.kill.step=27", run_dir=run_dir, env=INJECT)  # fmt: skip
    assert killed.rc == -signal.SIGKILL, killed
    resumed = run_cli("train.py", *SMALL, "resume=auto", "logger.wandb.log_model=true", run_dir=run_dir)
    assert resumed.rc == 0, resumed
    again = run_cli("train.py", *SMALL, "trainer.max_epochs=3", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
                    run_dir=run_dir)  # fmt: skip
    assert again.rc == 0, again
    runs = offline_runs(run_dir)
    assert len(runs) == 3
    ids = {run.run_id for recs in runs for run in of_kind(recs, "run")}
    assert ids == {(run_dir / "wandb" / "nnlab-run-id").read_text().strip()}, ids
    resumed_recs = runs[1]
    keys = history_keys(resumed_recs)
    assert {"test/table", "test/confusion_matrix_table", "train/loss"} <= keys, keys
    tables = list(run_dir.glob("wandb/offline-run-*/files/media/table/test/*.table.json"))
    assert tables, "the tables' files are in the offline run"
    models = [a for a in of_kind(resumed_recs, "artifact") if a.type == "model"]  # tables are artifacts too
    assert len(models) == 1 and models[0].name.startswith("model-"), models
    assert not [a for recs in (runs[0], runs[2]) for a in of_kind(recs, "artifact") if a.type == "model"]


def test_a_new_run_dir_is_a_new_wandb_run_and_the_same_dir_keeps_its_id(tmp_path) -> None:
    a, b = wandb_run_id(tmp_path / "a"), wandb_run_id(tmp_path / "b")
    assert a != b and wandb_run_id(tmp_path / "a") == a


@pytest.mark.slow  # long (15-60 s): `make test-slow`, run by CI
def test_seed_replicas_get_distinct_run_names_and_lm_samples_are_logged(tmp_path) -> None:
    from test_faults import _corpus_files

    data = tmp_path / "data"
    data.mkdir()
    r = run_cli("train.py", *FAST, "logger=wandb", *_corpus_files(data), "seed=1,2", multirun=True,
                run_dir=tmp_path / "sweep")  # fmt: skip
    assert r.rc == 0, r
    names, samples = [], []
    for job in sorted((tmp_path / "sweep").glob("[0-9]")):
        (recs,) = offline_runs(job)
        names += [run.display_name for run in of_kind(recs, "run")]
        samples.append("samples" in history_keys(recs))
    assert len(set(names)) == 2 and sorted(n.rsplit(",", 1)[-1] for n in names) == ["seed=1", "seed=2"], names
    assert {n.rsplit(",", 1)[0] for n in names} == {names[0].rsplit(",", 1)[0]}, "the setting's part is shared"
    assert samples == [True, True]


def test_dotenv_reaches_the_environment_but_no_file(tmp_path) -> None:
    secret = "fedcba9876543210fedcba9876543210fedcba98"
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"WANDB_API_KEY={secret}\nDATA_DIR={tmp_path / 'from-dotenv'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "WANDB_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *FAST, "data.train_subset=200", "logger=many",
         f"hydra.run.dir={run_dir}"], cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"data_dir: {tmp_path / 'from-dotenv'}" in (run_dir / "config.yaml").read_text()
    assert secret not in proc.stdout + proc.stderr
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_dotenv_never_overrides_the_environment(tmp_path, monkeypatch) -> None:
    from nnlab.utils.env import load_env

    (tmp_path / ".env").write_text("NNLAB_TEST_A=from-file\nNNLAB_TEST_B=from-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNLAB_TEST_A", "from-env")
    monkeypatch.delenv("NNLAB_TEST_B", raising=False)
    assert load_env(root=tmp_path) == [(tmp_path / ".env").resolve()]
    assert os.environ["NNLAB_TEST_A"] == "from-env" and os.environ["NNLAB_TEST_B"] == "from-file"
    monkeypatch.delenv("NNLAB_TEST_B")


def test_conf_local_is_git_ignored() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", "conf/local/default.yaml"], cwd=ROOT)
    if r.returncode == 128:
        pytest.skip("not a git checkout")
    assert r.returncode == 0


_LOG_IMAGE = """
import json, sys
from nnlab.utils.wandb_run import log_image
png, ckpt, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(log_image(png, "tsne/x", "a plot", ckpt=ckpt, config=config or None, start=True))
"""


def _log_image_in_a_process(png: Path, ckpt: Path, config: dict | None) -> str:
    """As `nnlab tsne` does it: a process of its own, so no W&B state of another test's run is around."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", _LOG_IMAGE, str(png), str(ckpt), json.dumps(config or {})],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_tsne_plot_goes_into_the_checkpoints_own_run(tmp_path) -> None:
    from PIL import Image

    run_dir = tmp_path / "run"
    run_id = wandb_run_id(run_dir)
    (run_dir / "checkpoints").mkdir()
    png = tmp_path / "t.png"
    Image.new("RGB", (8, 8)).save(png)
    config = {"logger": {"wandb": {"project": "someproject", "entity": None}}}
    line = _log_image_in_a_process(png, run_dir / "checkpoints" / "best.ckpt", config)
    assert line == f"W&B: logged tsne/x into the checkpoint's own run {run_id} (someproject)"
    (recs,) = offline_runs(run_dir)
    assert [r.run_id for r in of_kind(recs, "run")] == [run_id] and "tsne/x" in history_keys(recs)
    other = tmp_path / "elsewhere" / "checkpoints" / "best.ckpt"
    other.parent.mkdir(parents=True)
    line = _log_image_in_a_process(png, other, None)
    assert line.startswith("W&B: logged tsne/x into a new run ") and "no wandb/nnlab-run-id beside" in line
