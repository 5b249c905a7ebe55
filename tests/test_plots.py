"""The sweep figures, from hand-made rows: titles, labels, legends, log axes, fits and correlations."""
from __future__ import annotations

import itertools

import matplotlib.image
import pytest

from tfprofscale.sweep.plots import layer_time_fits, save_figures, sweep_figures

PARAMETERS = ["a", "kind", "batch_size"]


def result_rows() -> list[dict]:
    """a in 1 2 3, kind in x y, batch 1 10 100: every metric a simple function of them."""
    rows = []
    for a, kind, batch in itertools.product([1, 2, 3], ["x", "y"], [1, 10, 100]):
        rows.append({"a": a, "kind": kind, "batch_size": batch, "status": "ok", "accuracy": None,
                     "step_time_median_ms": 0.1 * a * batch + (0.05 if kind == "y" else 0.0),
                     "peak_bytes": 1000 * a * batch, "graph_flops": 2_000_000 * a * batch,
                     "params": 100 * a, "activation_bytes": 400 * batch})
    rows.append({"a": 9, "kind": "z", "batch_size": 1, "status": "failed", "step_time_median_ms": None})
    return rows


def layer_rows() -> list[dict]:
    """Conv2D: time = FLOPs / 1e4 us (10 GFLOP/s); Dense: time = 2e-4 us x FLOPs + 5 us (5 GFLOP/s)."""
    conv = [{"type": "Conv2D", "graph_flops": flops, "time_us": flops / 1e4} for flops in (1e6, 2e6, 4e6, 8e6)]
    dense = [{"type": "Dense", "graph_flops": flops, "time_us": 2e-4 * flops + 5} for flops in (1e3, 2e3, 3e3)]
    ignored = [{"type": "Flatten", "graph_flops": 0, "time_us": 1.0},          # no FLOPs
               {"type": "MaxPooling2D", "graph_flops": 500, "time_us": 3.0},   # one distinct FLOPs value
               {"type": "MaxPooling2D", "graph_flops": 500, "time_us": 4.0},
               {"type": "Conv2D", "graph_flops": 9e6, "time_us": None}]        # not traced
    return conv + dense + ignored


@pytest.fixture(scope="module")
def figures():
    return {named.name: named for named in sweep_figures(result_rows(), layer_rows(), PARAMETERS, "toy")}


def plotting_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_every_expected_figure_is_made(figures):
    assert list(figures) == ["scaling_a", "scaling_kind", "scaling_batch_size", "boxplots", "correlation",
                             "layer_time_vs_flops"]


def test_every_figure_has_a_title_axis_labels_and_a_legend(figures):
    for named in figures.values():
        figure = named.figure
        assert figure.get_suptitle().startswith("toy: "), named.name
        assert named.description.endswith(".")
        for ax in plotting_axes(figure):
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (named.name, ax.get_title())
        has_legend = figure.legends or any(ax.get_legend() for ax in figure.axes)
        colorbar = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
        assert has_legend or colorbar[0].get_ylabel() == "Pearson correlation r", named.name


def test_scaling_lines_follow_one_other_parameter_with_the_rest_fixed(figures):
    figure = figures["scaling_a"].figure
    assert "fixed: batch_size = 1" in figure.get_suptitle()
    time_panel = figure.axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in time_panel.get_lines()}
    assert lines["x"] == pytest.approx([0.1, 0.2, 0.3])           # 0.1 * a * batch 1
    assert lines["y"] == pytest.approx([0.15, 0.25, 0.35])        # + 0.05 for kind y
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["x", "y"]
    assert figure.legends[0].get_title().get_text() == "kind"


def test_log_axes_where_values_span_decades(figures):
    batch = figures["scaling_batch_size"].figure
    time_panel, _, _, params_panel = batch.axes[:4]
    assert time_panel.get_xscale() == "log"      # batch 1 .. 100
    assert time_panel.get_yscale() == "log"      # 0.1 a .. 10 a ms
    assert params_panel.get_yscale() == "linear"  # 100 .. 300
    assert figures["scaling_a"].figure.axes[0].get_xscale() == "linear"  # a = 1 .. 3


def test_a_text_parameter_is_placed_at_its_values(figures):
    time_panel = figures["scaling_kind"].figure.axes[0]
    assert [t.get_text() for t in time_panel.get_xticklabels()] == ["x", "y"]
    assert list(time_panel.get_lines()[0].get_xdata()) == [0.0, 1.0]


def test_correlation_heatmap_is_annotated_with_pearson_r(figures):
    ax = figures["correlation"].figure.axes[0]
    names = [label.get_text() for label in ax.get_xticklabels()]
    assert names == ["a", "batch_size", "step_time_median_ms", "peak_bytes", "graph_flops", "params",
                     "activation_bytes"]  # kind is text; accuracy is empty
    cell = {(int(t.get_position()[1]), int(t.get_position()[0])): t.get_text() for t in ax.texts}
    at = names.index
    assert cell[(at("a"), at("params"))] == "1.00"                       # params = 100 a
    assert cell[(at("batch_size"), at("activation_bytes"))] == "1.00"    # activations = 400 batch
    assert cell[(at("a"), at("batch_size"))] == "0.00"                   # a full grid: independent
    assert cell[(at("peak_bytes"), at("graph_flops"))] == "1.00"         # both proportional to a * batch


def test_layer_time_fits_give_the_rate_and_r2():
    fits = {fit.layer_type: fit for fit in layer_time_fits(layer_rows())}
    assert set(fits) == {"Conv2D", "Dense"}
    assert fits["Conv2D"].gflops_per_s == pytest.approx(10.0)  # 1 us per 1e4 FLOPs = 1e10 FLOP/s
    assert fits["Conv2D"].fit.r2 == pytest.approx(1.0) and fits["Conv2D"].fit.n == 4
    assert fits["Dense"].gflops_per_s == pytest.approx(5.0)    # 1 us per 5e3 FLOPs
    assert fits["Dense"].fit.intercept == pytest.approx(5.0)


def test_layer_fit_figure_states_rate_and_r2_in_the_legend(figures):
    axes = plotting_axes(figures["layer_time_vs_flops"].figure)
    assert [ax.get_title() for ax in axes] == ["Conv2D", "Dense"]  # largest total time first
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["layers (n = 4)", "fit: 10.0 GFLOP/s, intercept 0 µs, median error 0.0%"]  # an exact line
    assert axes[0].get_xscale() == "linear"  # 1e6 .. 8e6 is less than the 20x of a log axis


def test_saved_files_are_pngs_of_the_figures(tmp_path, figures):
    named = [figures["boxplots"], figures["correlation"]]
    saved = save_figures(named, tmp_path / "plots")
    assert [s.path.name for s in saved] == ["boxplots.png", "correlation.png"]
    for item, original in zip(saved, named):
        height, width, _ = matplotlib.image.imread(item.path).shape
        expected_width, expected_height = original.figure.get_size_inches() * original.figure.dpi
        assert (width, height) == (round(expected_width), round(expected_height))
        assert item.title == original.figure.get_suptitle()


def test_no_successful_configuration_no_figures():
    rows = [{"a": 1, "batch_size": 1, "status": "failed", "step_time_median_ms": None}]
    assert sweep_figures(rows, [], ["a", "batch_size"]) == []


def test_memory_figure_sets_estimates_against_the_measured_peak():
    rows = [dict(row, estimated_peak_bytes=row["peak_bytes"] * 1.02, tf_estimated_peak_bytes=row["peak_bytes"] * 2)
            if row["status"] == "ok" else row for row in result_rows()]
    rows[0]["tf_estimated_peak_bytes"] = None                       # Grappler failed there: no point, no 0
    named = {n.name: n for n in sweep_figures(rows, [], PARAMETERS)}["memory_estimate_vs_measured"]
    ax = named.figure.axes[0]
    formula, grappler = (collection.get_offsets() for collection in ax.collections)
    measured = [row["peak_bytes"] for row in rows if row["status"] == "ok"]
    assert list(formula[:, 0]) == measured and list(formula[:, 1]) == pytest.approx([1.02 * m for m in measured])
    assert list(grappler[:, 0]) == measured[1:] and list(grappler[:, 1]) == [2 * m for m in measured[1:]]
    assert ax.get_xscale() == "log"                                 # 1,000 B .. 600,000 B span decades
    assert ax.get_xlabel().startswith("measured peak") and ax.get_legend() is not None


def test_time_is_plotted_at_the_median_with_p10_p90_bars_and_boxes_use_the_median():
    # One series, two values of a: medians 2 and 4 ms, p10/p90 1.5/3 and 3/6 ms; means (never plotted) 9 and 9.
    rows = [{"a": a, "batch_size": 1, "status": "ok", "accuracy": None, "step_time_median_ms": median,
             "step_time_p10_ms": p10, "step_time_p90_ms": p90, "MeanTime": 9e-3, "peak_bytes": 1, "graph_flops": 1,
             "params": 1, "activation_bytes": 1}
            for a, median, p10, p90 in [(1, 2.0, 1.5, 3.0), (2, 4.0, 3.0, 6.0)]]
    named = {f.name: f for f in sweep_figures(rows, [], ["a", "batch_size"], "toy")}
    time_axes = named["scaling_a"].figure.axes[0]
    (errorbars,) = time_axes.containers
    data_line, caps, _ = errorbars
    assert list(data_line.get_ydata()) == [2.0, 4.0]
    # caps: the lower ends (p10) then the upper ends (p90)
    assert sorted(y for cap in caps for y in cap.get_ydata()) == [1.5, 3.0, 3.0, 6.0]
    box_axes = named["boxplots"].figure.axes[0]
    points = [list(collection.get_offsets()[:, 1]) for collection in box_axes.collections]
    assert sorted(y for group in points for y in group) == [2.0, 4.0]
    assert "median step time" in box_axes.get_ylabel()
