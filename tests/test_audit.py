"""The audit, on a profiled tiny model and on hand-built reports whose causes are known.

The tiny model: a 4x4x1 input, Conv2D with 2 filters of 3x3, SAME padding,
bias and ReLU -> 4x4x2; Flatten -> 32; Dense(3); Activation tanh.
"""
from __future__ import annotations

import json

import keras
import pytest

import tfprofscale
from tfprofscale.audit import analysis as audit_module
from tfprofscale.audit import conventions
from tfprofscale.audit.analysis import TimeAudit, audit_path, audit_profile
from tfprofscale.audit.render import audit_json, largest_divergences, render_markdown, render_text
from tfprofscale.cli import main
from tfprofscale.records import Report

CONV_OUTPUTS = 4 * 4 * 2                                  # 32
CONV_MACS = CONV_OUTPUTS * 3 * 3 * 1                      # 288, padded taps included
CONV_GRAPH = 2 * CONV_MACS + CONV_OUTPUTS                 # Conv2D + BiasAdd = 608
# Taps inside a 4-wide input for output positions 0..3 of a SAME 3-wide kernel: 2 + 3 + 3 + 2 = 10 per axis,
# so 10 * 10 = 100 real taps of 4 * 4 * 9 = 144 per filter: 44 padded, for 2 filters 88 MACs.
PADDED_FLOPS = 2 * (44 * 2)                               # 176
DENSE_GRAPH = 2 * 32 * 3 + 3                              # MatMul + BiasAdd = 195
DOC000_CONV = 2 * (3 * 3) + 1 + 2 + 4 + 4                 # 2k^2 + Cin + Cout + Wout + Hout = 29, as published
DOC000_DENSE = 32 * 3                                     # 96


def tiny_model() -> keras.Model:
    inputs = keras.Input((4, 4, 1), name="image")
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(3, name="dense")(x)
    outputs = keras.layers.Activation("tanh", name="squash")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    logdir = tmp_path_factory.mktemp("runs")
    return tfprofscale.profile(tiny_model(), batch_size=1, steps=3, warmup=1, trace_steps=2, logdir=str(logdir))


@pytest.fixture(scope="module")
def audited(report):
    return audit_profile(report, "tiny")


def layer(audited, name):
    return next(row for row in audited.flops.layers if row.layer == name)


def counted(layer_flops, convention):
    return next(c for c in layer_flops.counts if c.convention == convention)


def total(audited, convention):
    return next(t for t in audited.flops.totals if t.convention == convention)


def test_same_padding_is_counted_by_tensorflow_and_named(audited):
    conv = layer(audited, "conv")
    assert conv.graph_flops == CONV_GRAPH
    padding = [note for note in conv.notes if note.cause.startswith("SAME padding")]
    assert [note.flops for note in padding] == [PADDED_FLOPS]


def test_flops_convention_matches_tensorflow_exactly(audited):
    assert counted(layer(audited, "conv"), "flops").flops == CONV_GRAPH
    assert counted(layer(audited, "dense"), "flops").flops == DENSE_GRAPH
    assert total(audited, "flops").flops == audited.flops.graph_flops == CONV_GRAPH + DENSE_GRAPH
    assert "flops" in audited.flops.exact_conventions


def test_document_000_formula_diverges_with_its_cause(audited):
    conv = counted(layer(audited, "conv"), "doc000_published")
    assert conv.flops == DOC000_CONV and conv.difference == DOC000_CONV - CONV_GRAPH
    assert [c.cause for c in conv.causes] == ["dimensions added where their product is meant, per image"]
    dense = {c.cause: c.flops for c in counted(layer(audited, "dense"), "doc000_published").causes}
    assert dense == {"a multiply-add counted as 1, not 2": -96, "bias adds not counted": -3}
    assert total(audited, "doc000_published").flops == DOC000_CONV + DOC000_DENSE
    assert "doc000_published" not in audited.flops.exact_conventions


def test_every_count_is_split_into_causes_that_add_up(audited):
    for layer_flops in audited.flops.layers:
        for count in layer_flops.counts:
            if count.difference is not None:
                assert sum(c.flops for c in count.causes) == count.difference, (layer_flops.layer, count)


def test_relu_not_counted_by_tensorflow_is_the_formula_gap(audited):
    formula = counted(layer(audited, "conv"), "formula")
    assert formula.difference == CONV_OUTPUTS                  # Relu: 1 per output in the formula, 0 in tfprof
    assert [c.cause for c in formula.causes] == ["relu counted; TensorFlow has no FLOPs statistics for it"]


def test_an_op_without_flops_statistics(audited):
    squash = layer(audited, "squash")
    assert squash.graph_flops is None
    assert any("no FLOPs statistics in TensorFlow for Tanh" in note.cause for note in squash.notes)
    formula = counted(squash, "formula")
    assert formula.flops == 3 and formula.difference == 3     # tanh: 1 per element of (1, 3)
    assert counted(squash, "flops").flops == 0


def test_conv_bias_relu_is_fused_into_one_kernel(audited):
    fused = [f for f in audited.fusions if f.layer == "conv" and len(f.graph_ops) > 1]
    assert len(fused) == 1
    # oneDNN on: _MklNativeFusedConv2D; off: TensorFlow's own remapper makes _FusedConv2D
    assert fused[0].kernel_type.endswith("FusedConv2D")
    assert fused[0].graph_op_types == ["Conv2D", "BiasAdd", "Relu"]
    assert fused[0].graph_flops == CONV_GRAPH


def test_coverage_splits_the_traced_step(audited, report):
    cover = audited.coverage
    assert cover.kernel_time_us == report.totals.kernel_time_us
    assert cover.busy_time_us == report.totals.busy_time_us
    assert cover.busy_time_us + cover.outside_kernels_us == pytest.approx(cover.traced_step_time_us)
    assert 0 < cover.share < 1


def test_memory_of_the_tiny_model_by_hand(audited, report):
    estimate, record = audited.memory.estimate, report.memory
    assert estimate.parameter_bytes == (3 * 3 * 1 * 2 + 2 + 32 * 3 + 3) * 4          # 476
    # The 4x4x1 input (64 B) is fed, resident. While conv runs: its 4x4x2 output (128 B) + its oneDNN scratch
    # (probed alone); dense then reads conv's buffer through the flatten view: 128 + 12; tanh writes in place.
    assert estimate.terms["input"] == 64 and estimate.terms["activations"] == 128
    assert estimate.terms["convolution scratch"] == record.kernel_scratch["conv"] > 0
    assert estimate.peak_layer == "conv"
    # Measured: the step's records hold the conv output and its temporaries at the peak, nothing else
    assert record.measured_terms["activations"] == 128
    assert record.measured_terms["workspace"] == record.kernel_scratch["conv"]
    memory = audited.memory
    assert memory.peak_bytes == record.weights_bytes + 64 + record.measured_peak_bytes
    assert sum(c.bytes for c in memory.causes) == memory.error_bytes
    # what is left is the weights term: constants TensorFlow holds beside the parameters (Flatten's shape, 8 B)
    assert [c.cause.split(" ")[0] for c in memory.causes] in ([], ["weights"])
    assert abs(memory.relative_error) < 0.05


def test_largest_divergences_come_first_with_causes(audited):
    audit = audit_module.Audit("tiny.json", "profile", [audited], TimeAudit())
    ranked = largest_divergences(audit)
    assert 1 <= len(ranked) <= 5 and [d.factor for d in ranked] == sorted((d.factor for d in ranked), reverse=True)
    assert all(d.topic in ("convention formula",) or d.kind != "flops" for d in ranked)  # no document convention
    conventions = largest_divergences(audit, conventions=True)
    doc000 = next(d for d in conventions if d.topic == "convention doc000_published")
    assert doc000.where == "conv (Conv2D)" and doc000.factor == pytest.approx(CONV_GRAPH / DOC000_CONV)
    assert "product is meant" in doc000.cause
    text = render_text(audit)
    assert text.index("The five largest divergences") < text.index("Counting conventions against TensorFlow's") \
        < text.index("FLOPs: formulas against the graph")
    assert max(len(line) for line in render_markdown(audit).splitlines() if not line.startswith("|")) <= 100
    assert "n/a" not in text and "unsupported" in text  # one word for a missing number


def hand_report(ops, layer_row) -> Report:
    steps = {"median": 1.0, "p10": 1.0, "p90": 1.0, "min": 1.0, "cv": 0.0, "n": 1}
    return Report.from_dict({
        "model": "hand", "params": {}, "batch_size": 1, "tensorflow": "2.21", "device": "CPU:0",
        "totals": {"params": 0, "analytic_flops": None, "analytic_macs": None, "graph_flops": 0,
                   "activation_bytes": 0, "analytic_memory_bytes": 0, "peak_bytes": None, "resident_bytes": None,
                   "step_time_ms": steps},
        "layers": [layer_row], "ops": ops})


def conv_row(**changes):
    geometry = {"batch": 1, "in_h": 4, "in_w": 4, "in_channels": 1, "out_h": 4, "out_w": 4, "out_channels": 2,
                "kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1,
                "padding": "same", "groups": 1, "use_bias": False, "activation": "linear",
                "activation_flops_per_element": 0, "data_format": "channels_last"}
    row = {"name": "conv", "type": "Conv2D", "output_shape": [1, 4, 4, 2], "params": 18, "analytic_flops": 576,
           "analytic_macs": 288, "graph_flops": 0, "activation_bytes": 128, "time_us": None,
           "achieved_gflops": None, "analytic_terms": {"multiply_adds": 576, "bias_adds": 0, "activations": 0,
                                                       "padded_taps": 88}, "geometry": geometry}
    return {**row, **changes}


def test_shapes_not_fully_defined_are_named():
    op = {"name": "conv/Conv2D", "type": "Conv2D", "layer": "conv", "graph_flops": 0, "time_us": None,
          "occurrences": None}
    audited = audit_profile(hand_report([op], conv_row()))
    flops = counted(audited.flops.layers[0], "flops")
    assert flops.difference == 576
    assert [(c.cause, c.flops) for c in flops.causes] == [("shapes not fully defined: tfprof counted 0 for Conv2D",
                                                            576)]


def test_a_layer_without_formula_is_unsupported_not_zero():
    row = conv_row(type="Custom", supported=False, analytic_flops=None, analytic_macs=None, graph_flops=40,
                   analytic_terms={}, geometry={"unsupported_reason": "no formula for layer type Custom"})
    audited = audit_profile(hand_report([], row))
    assert all(c.flops is None for c in audited.flops.layers[0].counts)
    assert audited.flops.layers[0].notes[0].cause.startswith("no formula (no formula for layer type Custom)")
    assert total(audited, "flops").uncovered_graph_flops == 40 and not total(audited, "flops").matches_exactly


def test_a_user_convention_without_stated_differences_is_one_cause():
    @conventions.convention("taps_only", source="a test", definition="multiply-adds only")
    def taps_only(layer_type, geometry, terms):
        return conventions.multiply_adds(terms)

    try:
        op = {"name": "conv/Conv2D", "type": "Conv2D", "layer": "conv", "graph_flops": 576, "time_us": None,
              "occurrences": None}
        audited = audit_profile(hand_report([op], conv_row(graph_flops=576)))
        taps = counted(audited.flops.layers[0], "taps_only")
        assert (taps.flops, taps.difference) == (288, 288 - 576)
        assert [(c.cause, c.flops) for c in taps.causes] == [("the taps_only rule differs from TensorFlow's", -288)]
    finally:
        conventions.unregister_convention("taps_only")


@pytest.fixture
def sweep_dir(tmp_path, report):
    reports = tmp_path / "reports"
    reports.mkdir()
    for batch in (1, 2):
        config_id = f"depth=1,batch_size={batch},r0"
        (reports / f"{config_id}.json").write_text(json.dumps({
            "config_id": config_id, "config": {"depth": 1, "batch_size": batch}, "repeat": 0, "status": "ok",
            "error": None, "elapsed_s": 1.0, "report": report.to_dict()}))
    (reports / "depth=9,batch_size=1,r0.json").write_text(json.dumps({
        "config_id": "depth=9,batch_size=1,r0", "config": {}, "repeat": 0, "status": "failed",
        "error": "InputError: too deep", "elapsed_s": 0.1, "report": None}))
    return tmp_path


@pytest.fixture
def no_time(monkeypatch):
    monkeypatch.setattr(audit_module, "analyse_time", lambda loaded, sweep_dir: TimeAudit(notes=["skipped"]))


def test_sweep_directory_is_audited_per_configuration(sweep_dir, no_time):
    audit = audit_path(sweep_dir)
    assert audit.kind == "sweep" and [p.config_id for p in audit.profiles] == [
        "depth=1,batch_size=1,r0", "depth=1,batch_size=2,r0"]
    assert audit.failed_configs == ["depth=9,batch_size=1,r0: InputError: too deep"]
    data = audit_json(audit)
    assert data["divergences"] and len(data["profiles"]) == 2
    assert "## Failed configurations" in render_markdown(audit)


def test_time_side_is_composed_from_latency_and_roofline(sweep_dir, monkeypatch):
    from tfprofscale.audit import validation
    from tfprofscale.profiling.runtime import machine_peaks as roofline

    peaks = roofline.MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="test", tensorflow="test")
    monkeypatch.setattr(roofline, "machine_peaks", lambda refresh=False: peaks)
    audit = audit_path(sweep_dir)
    assert audit.time.peaks is peaks and audit.time.validation is None      # 2 configurations: too few
    assert f"it needs {validation.MIN_VALIDATION_CONFIGS} configurations" in " ".join(audit.time.notes)
    assert list(audit.time.roofline) == ["depth=1,batch_size=1,r0", "depth=1,batch_size=2,r0"]
    kernels = audit.time.roofline["depth=1,batch_size=1,r0"]
    conv = next(op for op in kernels if op.layer == "conv")
    assert conv.flops == CONV_GRAPH                 # the fused kernel carries Conv2D + BiasAdd
    assert json.loads(json.dumps(audit_json(audit)))["time"]["machine_peaks"]["host"] == "test"
    assert "Roofline of every kernel" in render_text(audit)


def test_cli_writes_audit_md_in_the_sweep_and_json(sweep_dir, no_time, tmp_path, capsys):
    target = tmp_path / "audit.json"
    assert main(["audit", str(sweep_dir), "--json", str(target)]) == 0
    markdown = (sweep_dir / "audit.md").read_text()
    assert "![" in markdown and (sweep_dir / "plots" / "audit_flops.png").is_file()
    data = json.loads(target.read_text())
    assert data["profiles"][0]["flops"]["graph_flops"] == CONV_GRAPH + DENSE_GRAPH
    assert "The five largest divergences" in capsys.readouterr().out


def test_cli_on_one_profile_json_writes_beside_it(report, tmp_path, no_time):
    path = tmp_path / "tiny.json"
    report.write_json(path)
    assert main(["audit", str(path)]) == 0
    assert (tmp_path / "audit.md").is_file()


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), ("{not json", "not valid JSON"), ('{"model": "x"}', "not a tfprofscale profile JSON")])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, content, message):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_reports_is_bad_input(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 2
    assert "no reports/ folder" in capsys.readouterr().err
