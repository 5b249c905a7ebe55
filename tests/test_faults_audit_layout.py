"""The audit's report and figures stay readable: wrapped prose, short list cells, unclipped labels."""
from __future__ import annotations

from types import SimpleNamespace

from tfprofscale.audit.layout import short_cell, wrap
from tfprofscale.audit.plots import tick_label


def test_wrap_keeps_lines_short_and_words_whole():
    text = " ".join(["word"] * 60)  # 60 * 5 - 1 = 299 characters
    lines = wrap(text, "- ", "  ", width=40)
    assert all(len(line) <= 40 for line in lines)
    assert " ".join(line.strip("- ").strip() for line in lines) == text
    assert lines[0].startswith("- word") and lines[1].startswith("  word")


def test_a_long_list_cell_is_cut_with_its_count():
    names = ", ".join(f"layer_{i}" for i in range(40))
    assert short_cell(names) == "layer_0, layer_1, layer_2, layer_3, layer_4, layer_5 and 34 more (40 in all)"
    assert short_cell("a, b") == "a, b"


def test_tick_labels_break_long_configuration_ids():
    config_id = "total_layers=10,conv_size=8,filters=64,units=128,dropout=0.5,batch_size=64,r0"
    label = tick_label(config_id)
    lines = label.split("\n")
    assert len(lines) == 4 and all(len(line) <= 18 for line in lines)
    assert lines[0] == "total_layers=10" and lines[1] == "conv_size=8" and lines[-1] == "…"
    assert tick_label("batch_size=1,r0") == "batch_size=1,r0"


def test_memory_bars_keep_every_label_inside_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfprofscale.audit.plots import _memory_bars

    estimate = SimpleNamespace(terms={"parameters": 2**20, "input": 2**10, "activations": 2**21},
                               workspace_bytes=2**19, total_bytes=2**22)
    profiles = [SimpleNamespace(config_id=f"total_layers={n},conv_size=8,filters=64,units=128,dropout=0.5,"
                                          f"kernel_initializer=glorot_uniform,batch_size=64,r0",
                                memory=SimpleNamespace(estimate=estimate, peak_bytes=2**22)) for n in (4, 6, 8)]
    figure, axis = plt.subplots(figsize=(1.2 * len(profiles) + 6, 5))
    _memory_bars(axis, profiles)
    figure.tight_layout()
    figure.canvas.draw()
    width = figure.bbox.width
    for label in axis.get_xticklabels():
        extent = label.get_window_extent()
        assert 0 <= extent.x0 and extent.x1 <= width, (label.get_text(), extent)
    plt.close(figure)
