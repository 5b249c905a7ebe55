"""A sweep's tables (results.csv, layers.csv) and summaries (plots, HParams, report.md), from its records.

A record is the content of ``reports/<config_id>.json``: ``config_id``,
``config`` (grid values and ``batch_size``), ``repeat``, ``status`` (ok,
failed or timed_out), ``error``, ``timeout_s``, ``elapsed_s``, ``host``,
``machine`` (fingerprint, description and its parts; None if unknown) and
``model_sha256`` (the model file's content hash when it was measured) and
``report`` (the profile JSON, None if failed).
"""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from tfprofscale.report.units import binary_bytes
from tfprofscale.sweep import by_machine
from tfprofscale.sweep.config import SweepConfig
from tfprofscale.sweep.tables import (
    TIME_COLUMN,
    atomic_write_text,
    layer_rows,
    results_row,
)


def write_summaries(out_dir: Path, config: SweepConfig, records: list[dict[str, Any]],
                    grid_names: list[str]) -> list[Path]:
    """plots/*.png, the HParams summary in runs/ and report.md, from all records; the plot files."""
    from tfprofscale.sweep import hparams, plots

    results = [results_row(record, grid_names) for record in records]
    layers = [row for record in records for row in layer_rows(record, grid_names)]
    parameters = grid_names + ["batch_size"]
    shutil.rmtree(out_dir / "plots", ignore_errors=True)
    figures = by_machine.figures(results, layers, parameters, Path(str(config.model)).stem, records)
    saved = plots.save_figures(figures, out_dir / "plots")
    hparams.write_hparams(out_dir / "runs", results, parameters, [record["config_id"] for record in records])
    atomic_write_text(out_dir / "report.md", report_markdown(config, records, grid_names, saved))
    from tfprofscale.sweep.html_page import write_sweep_html

    write_sweep_html(out_dir, Path(str(config.model)).stem, records, grid_names)
    return [figure.path for figure in saved]


def report_markdown(config: SweepConfig, records: list[dict[str, Any]], grid_names: list[str],
                    figures: list[Any]) -> str:
    """report.md: what was swept, the headline numbers, and every figure with one sentence."""
    results = pd.DataFrame([results_row(record, grid_names) for record in records])
    layers = [row for record in records for row in layer_rows(record, grid_names)]
    ok = results[results["status"] == "ok"] if not results.empty else results
    lines = [f"# Sweep of {Path(str(config.model)).name}", "", _overview(config, records, len(ok)), "",
             "## Headline numbers", ""]
    lines += by_machine.headline_lines(ok, grid_names + ["batch_size"], layers, records, _findings)
    lines += [f"- failed: `{r['config_id']}`: {r['error']}" for r in records if r["status"] != "ok"]
    lines += _warning_lines(records)
    lines += ["", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", figure.description, "",
                  f"![{figure.title}](plots/{figure.path.name})", ""]
    if not figures:
        lines += ["No figures: no configuration was profiled successfully.", ""]
    lines += ["## Files", "", "`results.csv` (one row per configuration), `layers.csv` (one row per layer), "
              "`reports/<config_id>.json` (each profile), `runs/` (TensorBoard: `tensorboard --logdir runs`; "
              "Profile tab for the traces, HParams tab to compare configurations).", ""]
    return "\n".join(lines)


def _warning_lines(records: list[dict[str, Any]]) -> list[str]:
    """Report.md's list of the configurations whose measurement warned (noisy, busy machine, imprecise ...)."""
    warned = [(record["config_id"], record["report"]["warnings"]) for record in records
              if record.get("report") and record["report"].get("warnings")]
    if not warned:
        return []
    lines = ["", "## Noisy or doubtful measurements", "",
             f"{len(warned)} of {len(records)} configurations warned (the `warnings` column of results.csv has "
             "each one's text); the same kind of warning is listed once, with the configurations it came from:", ""]
    groups: dict[str, list[tuple[str, str]]] = {}
    for config_id, warnings in warned:
        for warning in warnings:
            groups.setdefault(warning_kind(warning), []).append((config_id, warning))
    for kind, found in sorted(groups.items(), key=lambda item: -len(item[1])):
        ids = list(dict.fromkeys(config_id for config_id, _ in found))
        shown = ", ".join(f"`{config_id}`" for config_id in ids[:WARNED_IDS_SHOWN])
        more = f" and {len(ids) - WARNED_IDS_SHOWN} more" if len(ids) > WARNED_IDS_SHOWN else ""
        example = found[0][1] if len(found) == 1 else f"e.g. {found[0][1]}"
        lines.append(f"- **{kind}**, {len(ids)} configuration{'s' * (len(ids) > 1)} ({shown}{more}): {example}")
    return lines


#: How many configuration ids a grouped warning names before "and N more".
WARNED_IDS_SHOWN = 8


def warning_kind(warning: str) -> str:
    """What a warning is about, without its numbers: the text before its first colon ("noisy timing")."""
    head = warning.split(":", 1)[0].strip()
    return head if len(head) <= 60 else re.sub(r"[\d.,]+", "#", head[:60]) + "..."


def _overview(config: SweepConfig, records: list[dict[str, Any]], ok: int) -> str:
    grid = "; ".join(f"{name} = {' '.join(map(str, values))}" for name, values in config.grid.items())
    first = next((r["report"] for r in records if r.get("report")), None)
    where = f" on {first['device']} with TensorFlow {first['tensorflow']}" if first else ""
    return (f"{len(records)} configurations from `{config.source}`: {grid or 'no grid'}; "
            f"batch sizes {' '.join(map(str, config.batch_sizes))}; {config.repeats} repeat(s). "
            f"{ok} profiled, {len(records) - ok} failed. Each step time is the median over calibrated rounds of "
            f"at least {config.steps} timed inference steps after {config.warmup} warm-up steps{where}.")


def _findings(ok: pd.DataFrame, parameters: list[str], layers: list[dict[str, Any]]) -> list[str]:
    if ok.empty:
        return ["no configuration was profiled successfully"]
    from tfprofscale.sweep.plots import layer_time_fits, swept_parameters


    swept = swept_parameters(ok, parameters)
    findings = [_extremes(ok, swept)]
    findings += [_parameter_effect(ok, name) for name in swept]
    if "batch_size" in swept:
        findings.append(_per_example(ok))
    findings += [_correlations(ok, swept), _ranges(ok)]
    findings += [_fit_line(fit) for fit in layer_time_fits(layers)]
    if ok["accuracy"].notna().any():
        best = ok.loc[ok["accuracy"].astype(float).idxmax()]
        findings.append(f"test accuracy (trained with --data): best {best['accuracy']:.4f} "
                        f"({_describe(best, swept)}), worst {ok['accuracy'].astype(float).min():.4f}")
    return [finding for finding in findings if finding]


def _extremes(ok: pd.DataFrame, parameters: list[str]) -> str:
    times = ok[TIME_COLUMN].astype(float)
    fastest, slowest = ok.loc[times.idxmin()], ok.loc[times.idxmax()]
    if len(ok) == 1 or not parameters:
        return f"median step time {times.median():.3g} ms over {len(ok)} profiled configuration(s)"
    return (f"median step time from {times.min():.3g} ms ({_describe(fastest, parameters)}) to "
            f"{times.max():.3g} ms ({_describe(slowest, parameters)}), a factor of {times.max() / times.min():.3g}")


def _parameter_effect(ok: pd.DataFrame, name: str) -> str:
    values = list(dict.fromkeys(ok[name]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        values = sorted(values)
    low, high = (ok.loc[ok[name] == value, TIME_COLUMN].astype(float).median() for value in (values[0], values[-1]))
    return (f"{name} {values[0]} -> {values[-1]}: median step time {low:.3g} ms -> {high:.3g} ms "
            f"(x{high / low:.3g}; medians over the other parameters)")


def _per_example(ok: pd.DataFrame) -> str:
    per_example = ok[TIME_COLUMN].astype(float) / ok["batch_size"].astype(float)
    small, large = ok["batch_size"].min(), ok["batch_size"].max()
    at_small = per_example[ok["batch_size"] == small].median()
    at_large = per_example[ok["batch_size"] == large].median()
    return (f"per example: {at_small:.3g} ms at batch {small}, {at_large:.3g} ms at batch {large} "
            f"(batching makes each example x{at_small / at_large:.3g} cheaper; medians over the other parameters)")


def _correlations(ok: pd.DataFrame, swept: list[str]) -> str:
    times = ok[TIME_COLUMN].astype(float)
    pairs = []
    for name in swept:
        values = pd.to_numeric(ok[name], errors="coerce")
        if values.notna().all() and values.nunique() > 1 and times.nunique() > 1:
            pairs.append(f"{name} {values.corr(times):.2f}")
    return f"Pearson r with median step time: {', '.join(pairs)}" if pairs else ""


def _ranges(ok: pd.DataFrame) -> str:
    parts = []
    for column, label, unit in (("peak_bytes", "measured peak memory", "B"), ("graph_flops", "graph FLOPs per step", ""),
                                ("params", "parameters", "")):
        values = pd.to_numeric(ok[column], errors="coerce").dropna()
        if not values.empty:
            shown = binary_bytes if unit == "B" else (lambda value: _engineering(value, unit))
            parts.append(f"{label} {shown(values.min())} to {shown(values.max())}")
    return "; ".join(parts)


def _fit_line(fit: Any) -> str:
    rate = "no positive slope" if fit.gflops_per_s is None else f"{fit.gflops_per_s:.3g} GFLOP/s marginal rate"
    return (f"{fit.layer_type} layers, time = slope x FLOPs + intercept over {fit.fit.n} layers (fitted on "
            f"relative errors): {rate}, intercept {fit.fit.intercept:.3g} µs, median error "
            f"{100 * fit.median_relative_error:.1f}%")


def _describe(row: pd.Series, names: list[str]) -> str:
    return ", ".join(f"{name}={row[name]}" for name in names if name in row)


def _engineering(value: float, unit: str) -> str:
    if value == 0:
        return f"0 {unit}".strip()
    exponent = min(4, max(0, int(math.floor(math.log10(abs(value)) / 3))))
    prefix = ["", "k", "M", "G", "T"][exponent]
    return f"{value / 1000 ** exponent:.3g} {prefix}{unit}".strip()
