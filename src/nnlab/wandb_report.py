"""The W&B Report of a sweep (wandb-workspaces): what ``scripts/report.py --wandb`` saves.

Built offline (saving needs a login), from the sweep dir alone: the runs are those train.py grouped under the
sweep dir's name, and the project/entity are the ones the sweep's jobs logged to (their ``logger.wandb``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from nnlab.utils.errors import NnlabError


def sweep_wandb_target(sweep_dir: Path) -> tuple[str, str | None]:
    """``(project, entity)`` from the first job config of the sweep that names them; ``("nnlab", None)`` else."""
    for cfg_path in sorted(Path(sweep_dir).glob("*/config.yaml")) + sorted(
        Path(sweep_dir).glob("*/.hydra/config.yaml")
    ):
        try:
            wb = OmegaConf.to_container(OmegaConf.load(cfg_path)).get("logger", {}).get("wandb") or {}
        except Exception:  # noqa: BLE001 - an unreadable job config just does not tell
            continue
        if isinstance(wb, dict) and wb.get("project") and "${" not in str(wb.get("project")):
            entity = wb.get("entity")
            return str(wb["project"]), (str(entity) if entity and "${" not in str(entity) else None)
    return "nnlab", None


def build_wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str | None = None,
                       entity: str | None = None):  # fmt: skip
    """The W&B Report (not yet saved) of the sweep's runs: ``metric`` per epoch; for each swept key a bar chart
    of ``metric`` grouped by that key's config value, mean with the standard deviation over the group's runs
    (the seeds); and a parallel-coordinates panel over the swept keys and ``metric``."""
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as e:
        raise NnlabError("--wandb needs the package wandb-workspaces: pip install wandb-workspaces") from e
    sweep_dir = Path(sweep_dir)
    if project is None or entity is None:
        p, e = sweep_wandb_target(sweep_dir)
        project, entity = project or p, entity or e
    runset = wr.Runset(entity=entity, project=project, name=sweep_dir.name,
                       filters=f"Group == '{sweep_dir.name}'")  # fmt: skip
    panels = [wr.LinePlot(x="epoch", y=[metric], title=f"{metric} per epoch")]
    panels += [
        wr.BarPlot(
            title=f"{metric} by {k}",
            metrics=[metric],
            groupby=wr.Config(k),
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
            orientation="v",
        )  # fmt: skip
        for k in keys
    ]
    if keys:
        columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k)) for k in keys]
        columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(metric)))
        panels.append(wr.ParallelCoordinatesPlot(columns=columns, title=f"{metric} over {', '.join(keys)}"))
    return wr.Report(
        entity=entity, project=project, title=f"nnlab sweep {sweep_dir.name}",
        description=f"{metric} over the sweep's settings ({', '.join(keys) or 'one setting'}).",
        blocks=[wr.H1(f"Sweep {sweep_dir.name}"), wr.PanelGrid(runsets=[runset], panels=panels)],
    )  # fmt: skip
