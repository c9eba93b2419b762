"""nnlab report (scripts/report.py) on a synthetic sweep dir: aggregation, failures, sorting, HTML, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from nnlab.report import load_jobs, summarize, write_report
from nnlab.utils.errors import ConfigError, DataError

ACC = {("max", 0): 0.91, ("max", 1): 0.93, ("avg", 0): 0.88, ("avg", 1): 0.84, ("lp", 0): 0.95, ("lp", 1): None}


def make_sweep(root):
    """6 jobs: pool in {max, avg, lp} x seed in {0, 1}; (lp, seed 1) failed."""
    for num, ((pool, seed), acc) in enumerate(ACC.items()):
        job = root / str(num)
        (job / ".hydra").mkdir(parents=True)
        record = {"overrides": [f"model.pool={pool}", f"seed={seed}"], "optimized_metric": "val/acc",
                  "optimize_mode": "max", "seed": seed}  # fmt: skip
        if acc is None:
            record.update(status="failed", error="TrainingError: loss is NaN at step 7")
        else:
            record.update(status="ok", **{"val/acc": acc, "test/acc": acc - 0.01, "wall_s": 3.0})
            record["history"] = [{"epoch": e, "val/acc": acc * (e + 1) / 3} for e in range(3)]
            record["confusion_matrix"] = [[5, 1], [2, 7]]
            record["class_names"] = ["neg", "pos"]
        (job / "metrics.json").write_text(json.dumps(record))
    return root


def test_summary_mean_std_failures_and_order(tmp_path) -> None:
    jobs = load_jobs(make_sweep(tmp_path))
    s = summarize(jobs, "val/acc", "max")
    assert list(s["model.pool"]) == ["lp", "max", "avg"]  # sorted by mean val/acc, best first
    row = s.set_index("model.pool")
    assert row.loc["max", "val/acc mean"] == pytest.approx(0.92)
    assert row.loc["max", "val/acc std"] == pytest.approx(statistics.stdev([0.91, 0.93]))
    assert row.loc["avg", "val/acc mean"] == pytest.approx(0.86)
    assert (row.loc["lp", "runs"], row.loc["lp", "failed"]) == (2, 1)
    assert row.loc["lp", "val/acc mean"] == pytest.approx(0.95)
    assert "NaN at step 7" in row.loc["lp", "errors"]
    assert "seed" not in s.columns


def test_report_files_and_self_contained_html(tmp_path) -> None:
    out = write_report(make_sweep(tmp_path))
    assert (out["jobs"], out["failed"]) == (6, 1)
    md = (tmp_path / "summary.md").read_text()
    assert "| lp | 2 | 1 | 0.9500 | 0.9400 |" in md and "| avg | 2 | 0 | 0.8600 ± 0.0283" in md
    assert (tmp_path / "summary.csv").read_text().count("\n") == 4
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["plot_confusion_best.png", "plot_learning_curves.png", "plot_val_acc_by_model_pool.png"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "http://" not in page and "https://" not in page
    assert "<table>" in page and "NaN at step 7" in page and 'class="best"' in page


def test_empty_or_foreign_dir_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(DataError, match="holds no sweep jobs"):
        load_jobs(tmp_path)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), f"sweep_dir={tmp_path / 'nope'}"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")


def test_cli_prints_table_and_says_offline_for_wandb(tmp_path, monkeypatch) -> None:
    make_sweep(tmp_path)
    env = {"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), f"sweep_dir={tmp_path}", "wandb=true"],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "6 jobs (1 failed)" in r.stdout and "| lp |" in r.stdout
    assert "W&B: no login (offline)" in r.stdout


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="apt-get install chromium")
def test_report_html_renders_in_headless_chromium(tmp_path) -> None:
    """The page a person opens: a real browser draws the table and the plots (not a blank page)."""
    from PIL import Image

    write_report(make_sweep(tmp_path / "sweep"))
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1300", f"--screenshot={shot}"]  # fmt: skip
    subprocess.run([CHROMIUM, *flags, (tmp_path / "sweep" / "report.html").as_uri()], capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape[:2] == (1300, 1100)
    dark = (img < 128).mean()
    assert 0.01 < dark < 0.6, f"fraction of dark pixels {dark:.4f}: blank or broken page"
    assert img[:250].std() > 20, "no table text in the top of the page"


def test_wandb_report_has_the_sweeps_group_its_metric_and_one_chart_per_swept_key(tmp_path) -> None:
    """The W&B Report is built offline from the sweep (saving it needs a login): the runset selects the runs
    train.py grouped under the sweep dir's name."""
    import nnlab.wandb_report as cli

    sweep = make_sweep(tmp_path / "2026-11-25_10-00-00_123")
    out = write_report(sweep)
    report = cli.build_wandb_report(sweep, out["metric"], out["keys"], "nnlab", "someone")
    grid = report.blocks[1]
    assert report.title == f"nnlab sweep {sweep.name}" and report.entity == "someone"
    assert grid.runsets[0].filters == f"Group == '{sweep.name}'"
    # bar charts now (a ScalarChart draws one number for all runs; the grouping is tested below)
    charts = [p for p in grid.panels if type(p).__name__ == "BarPlot"]
    assert [c.title for c in charts] == [f"{out['metric']} by {k}" for k in out["keys"]]


def _report_cli():
    import nnlab.wandb_report

    return nnlab.wandb_report


def test_wandb_report_groups_each_chart_by_its_swept_key_with_mean_and_spread(tmp_path) -> None:
    import wandb_workspaces.reports.v2 as wr

    sweep = make_sweep(tmp_path / "sweep")
    (sweep / "0" / "config.yaml").write_text("logger:\n  wandb:\n    project: lab-project\n    entity: lab-team\n")
    report = _report_cli().build_wandb_report(sweep, "val/acc", ["model.pool", "model.norm"])
    assert (report.project, report.entity) == ("lab-project", "lab-team"), "from the sweep's own config"
    grid = report.blocks[1]
    assert (grid.runsets[0].project, grid.runsets[0].entity) == ("lab-project", "lab-team")
    bars = [p for p in grid.panels if isinstance(p, wr.BarPlot)]
    assert [(b.metrics, b.groupby, b.groupby_aggfunc, b.groupby_rangefunc) for b in bars] == [
        (["val/acc"], wr.Config("model.pool"), "mean", "stddev"),
        (["val/acc"], wr.Config("model.norm"), "mean", "stddev"),
    ]
    # what W&B receives: grouped by the nested config value (train.py logs the config as nested dicts)
    model = bars[0]._to_model().config
    assert (model.group_by, model.group_agg, model.group_area, model.aggregate) == (
        "model.value.pool", "mean", "stddev", True
    )  # fmt: skip
    (parallel,) = [p for p in grid.panels if isinstance(p, wr.ParallelCoordinatesPlot)]
    assert [c.metric for c in parallel.columns] == [
        wr.Config("model.pool"), wr.Config("model.norm"), wr.SummaryMetric("val/acc")
    ]  # fmt: skip
    lines = [p for p in grid.panels if isinstance(p, wr.LinePlot)]
    assert [(ln.x, ln.y) for ln in lines] == [("epoch", ["val/acc"])]


def make_text_sweeps(root):
    """Two sweeps as experiment=sentence_models (data swept) and experiment=mr_10fold (data from the
    experiment, so only in the jobs' choices; data.fold swept) write them."""
    accs = {("cnn", "sst2"): [0.80, 0.81], ("rnn", "sst2"): [0.82, 0.80], ("cnn", "mr"): [0.75, 0.77, 0.76]}
    for (model, data), values in accs.items():
        sweep = root / ("sst" if data == "sst2" else "mr")
        for seed, acc in enumerate(values, 1):
            job = sweep / str(len(list(sweep.glob("*"))) if sweep.exists() else 0)
            (job / ".hydra").mkdir(parents=True)
            over = [f"model={model}", f"seed={seed}"] + ([f"data={data}"] if data == "sst2" else [f"data.fold={seed}"])
            record = {"overrides": over, "choices": {"model": model, "data": data}, "status": "ok", "seed": seed,
                      "family": "TextClassifier", "val/acc": acc + 0.01, "test/acc": acc, "params": 4_809_902,
                      "epoch": 10, "wall_s": 100.0 * seed, "optimized_metric": "val/acc",
                      "optimize_mode": "max"}  # fmt: skip
            (job / "metrics.json").write_text(json.dumps(record))
    return root


def test_text_table_by_model_and_data_over_several_sweeps_with_anchors(tmp_path) -> None:
    """What scripts/text_report.py printed (test accuracy mean ± std in %, dev accuracy, parameters, train
    s/epoch as the median over runs), with the course's target and the published number beside it."""
    root = make_text_sweeps(tmp_path / "runs")
    with pytest.raises(ConfigError, match="give out=DIR"):
        write_report([root / "sst", root / "mr"])
    out = write_report([root / "sst", root / "mr"], by=["model", "data"], percent=True, out=tmp_path / "rep")
    assert out["keys"] == ["model", "data"] and (out["jobs"], out["failed"]) == (7, 0)
    md = out["table"]
    head = "| model | data | runs | failed | val/acc % (mean ± std) | test/acc % (mean ± std) | target | published |"
    assert head in md
    # 80.5 ± 0.71 test, target 84.0, Kim's 82.7; 4,809,902 params; 10 epochs; s/epoch the median of 10 and 20
    assert "| cnn | sst2 | 2 | 0 | 81.50 ± 0.71 | 80.50 ± 0.71 | 84.0 | 82.7 | 4,809,902 | 10 | 15.0 |" in md
    assert "| cnn | mr | 3 | 0 | 77.00 ± 1.00 | 76.00 ± 1.00 | 77.0 | 76.1 | 4,809,902 | 10 | 20.0 |" in md
    rows = json.loads((tmp_path / "rep" / "summary.json").read_text())["settings"]
    mr = next(r for r in rows if (r["model"], r["data"]) == ("cnn", "mr"))
    assert mr["seeds"] == [1, 2, 3] and mr["published_source"] == "Kim 2014, CNN-rand"
    assert [r["model"] + "/" + r["data"] for r in rows] == ["rnn/sst2", "cnn/sst2", "cnn/mr"]  # by val/acc
    # a dir of multiruns is read the same way; its settings by default: the swept overrides
    again = write_report(root, out=tmp_path / "rep2")
    assert again["jobs"] == 7 and again["keys"] == ["data", "data.fold", "model"]


def test_seconds_per_epoch_come_from_the_epochs_own_times_when_recorded(tmp_path) -> None:
    """A resumed run's wall_s is its last attempt only; the history's epoch_s (kept across resumes) is not."""
    for num, (wall, times) in enumerate([(30.0, [50.0, 70.0, 60.0]), (30.0, None)]):
        job = tmp_path / str(num)
        (job / ".hydra").mkdir(parents=True)
        history = [{"epoch": e, **({"epoch_s": t} if times else {})} for e, t in enumerate(times or [0, 0, 0])]
        record = {"overrides": [f"seed={num}", f"model.pool=p{num}"], "status": "ok", "val/acc": 0.9, "epoch": 3,
                  "wall_s": wall, "history": history, "optimized_metric": "val/acc"}  # fmt: skip
        (job / "metrics.json").write_text(json.dumps(record))
    jobs = load_jobs(tmp_path)
    assert [j.metric("s/epoch") for j in jobs] == [60.0, 10.0]  # the median of the epochs; else wall_s / epochs
