"""TensorBoard HParams summaries for a sweep: every configuration with its parameters and metrics.

Written into the sweep's logdir (``runs/``): the experiment (which
hyperparameters and metrics exist) at the top, and one session per
configuration in ``runs/<config_id>/``, the run that also holds its profiler
trace. TensorBoard's HParams dashboard then lists, sorts and plots all
configurations. Files are rewritten from scratch each time (old ones, found
by their suffix, are removed), so a resumed sweep has each session once.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

HPARAMS_SUFFIX = ".tfprofscale-hparams"
METRICS = {  # results.csv column -> what the dashboard shows as its description
    "step_time_median_ms": "median inference step time (ms)",
    "step_time_p90_ms": "90th percentile step time (ms)",
    "step_time_cv": "coefficient of variation of the step times",
    "peak_bytes": "measured peak memory of one step: weights + input + in-step transient peak (bytes)",
    "graph_flops": "FLOPs per step counted on the graph by tfprof",
    "analytic_flops": "FLOPs per step from the layer formulas",
    "params": "parameter count",
    "activation_bytes": "bytes of all layer outputs",
    "accuracy": "test accuracy",
}


def write_hparams(runs_dir: Path, results: list[dict[str, Any]], parameters: list[str],
                  config_ids: list[str]) -> None:
    """The HParams experiment and one session per successful configuration (rows of results.csv).

    Repeats of a configuration share a trial id, so the dashboard groups them.
    """
    runs_dir = Path(runs_dir)
    for old in runs_dir.glob(f"**/*{HPARAMS_SUFFIX}"):
        old.unlink()
    sessions = [(config_id, row) for config_id, row in zip(config_ids, results) if row["status"] == "ok"]
    if not sessions:
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    shown = {name: _shown_values([row[name] for _, row in sessions]) for name in parameters}
    hparams = [hp.HParam(name, _domain(list(shown[name].values()))) for name in parameters]
    metrics = [name for name in METRICS if any(row.get(name) is not None for _, row in sessions)]
    with _summary_writer(runs_dir):
        hp.hparams_config(hparams=hparams,
                          metrics=[hp.Metric(name, description=METRICS[name]) for name in metrics])
    for config_id, row in sessions:
        with _summary_writer(runs_dir / config_id):
            trial = ",".join(f"{name}={row[name]}" for name in parameters)
            hp.hparams({hparam: shown[hparam.name][_plain(row[hparam.name])] for hparam in hparams},
                       trial_id=trial)
            for name in metrics:
                if row.get(name) is not None:
                    tf.summary.scalar(name, float(row[name]), step=0)


@contextmanager
def _summary_writer(logdir: Path) -> Iterator[None]:
    """A summary writer for ``logdir`` as the default while the block runs, then closed."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir), filename_suffix=HPARAMS_SUFFIX)
    with writer.as_default():
        yield
    writer.close()


def _plain(value: Any) -> bool | int | float | str:
    """A value the HParams plugin can hold: bool, int, float or str."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _shown_values(values: list[Any]) -> dict[Any, bool | int | float | str]:
    """Each distinct value -> what the dashboard holds: integers as right-aligned text, others as they are.

    The HParams plugin stores integers as float64 (batch size 16 shows as 16.000, a single conv_size of 3
    gets an axis from 1.6 to 4.4); as text of equal width they show exactly and still sort numerically.
    """
    plain = [_plain(value) for value in values]
    if plain and all(isinstance(value, int) and not isinstance(value, bool) for value in plain):
        width = max(len(str(value)) for value in plain)
        return {value: str(value).rjust(width) for value in plain}
    return {value: value for value in plain}


def _domain(values: list[Any]) -> Any:
    """A discrete domain of the distinct values when they share one type, else None."""
    from tensorboard.plugins.hparams import api as hp

    plain = sorted(set(_plain(value) for value in values), key=lambda v: (str(type(v)), v))
    if len({type(value) for value in plain}) != 1:
        return None
    return hp.Discrete(plain)
