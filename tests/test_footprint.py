"""The profiler's own footprint: no weights in any GraphDef, a safety net, --max-memory, a prompt exit."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import tfprofscale
from tests.test_cli_profile import assert_one_line_error, run_cli
from tfprofscale import footprint
from tfprofscale.errors import InputError
from tfprofscale.profiling.graph.shape_graph import (
    GraphLimitError,
    inlined_graph_def,
    limit_or_input_error,
)

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20


def small_cnn() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="small_cnn")


def test_shape_only_graph_gives_grappler_the_frozen_graphs_costs_and_static_peak():
    """Independent route: TensorFlow's own freezing (convert_variables_to_constants_v2), values and all."""
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    from tensorflow.python.grappler import cluster, item

    from tfprofscale.profiling.graph.tf_cost_model import VirtualCpu
    from tfprofscale.profiling.trace.tracing import trace

    traced = trace(small_cnn(), 2)
    frozen_def = convert_variables_to_constants_v2(traced.function).graph.as_graph_def()
    frozen = meta_graph_pb2.MetaGraphDef()
    frozen.graph_def.CopyFrom(frozen_def)
    frozen.collection_def["train_op"].node_list.value.extend(t.name.split(":")[0] for t in traced.function.outputs)
    shape_only = traced.shape_graph()
    device = VirtualCpu(num_cores=1, frequency_mhz=1000, bandwidth_kb_per_s=1e6).named_device()

    def costs(metagraph):
        performances, run_time, _ = cluster.Cluster(devices=[device], disable_timeline=True).MeasureCosts(
            item.Item(metagraph))
        return {p.node: (p.compute_cost, p.compute_time, p.memory_time) for p in performances}, run_time

    def static_peak(metagraph):
        return cluster.Cluster(devices=[device]).DeterminePeakMemoryUsage(item.Item(metagraph))[device.name][0]

    frozen_costs, frozen_run_time = costs(frozen)
    shape_costs, shape_run_time = costs(shape_only.metagraph())
    assert shape_costs == frozen_costs and len(shape_costs) > 10
    assert shape_run_time == frozen_run_time
    assert static_peak(shape_only.metagraph()) == static_peak(frozen)
    # and the weights are not in it: the frozen graph holds every parameter's 4 bytes, the shape-only graph none
    params = sum(int(np.prod(v.shape)) for v in traced.keras_model.weights)
    assert frozen_def.ByteSize() > params * 4 > shape_only.graph_def.ByteSize()
    conv_kernel = next(node for node in shape_only.graph_def.node
                       if node.op == "Const" and [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
                       == [3, 3, 3, 8])
    assert len(conv_kernel.attr["value"].tensor.float_val) == 1 and not conv_kernel.attr["value"].tensor.tensor_content


def test_protobuf_refusing_to_serialise_is_one_line_naming_the_limit(monkeypatch):
    from google.protobuf.message import EncodeError
    from tensorflow.python.framework import convert_to_constants

    from tfprofscale.profiling.trace.tracing import trace

    def refuse(*args, **kwargs):
        raise EncodeError("Message tensorflow.GraphDef exceeds maximum protobuf size of 2GB: 2400000000")

    traced = trace(small_cnn(), 1)
    monkeypatch.setattr(convert_to_constants, "_run_inline_graph_optimization", refuse)
    with pytest.raises(GraphLimitError) as raised:
        inlined_graph_def(traced.function)
    assert "protobuf's 2 GiB limit" in str(raised.value) and "\n" not in str(raised.value)
    assert type(limit_or_input_error(ValueError("no such node"), "x")) is InputError


@pytest.mark.parametrize("given, fragment", [
    ("lots", "--max-memory 'lots' is not a size"),
    ("0", "--max-memory '0' must be more than 0 bytes"),
    ("-2GiB", "--max-memory '-2GiB' is not a size"),
    ("1MB", "--max-memory 1MB (976.56 KiB) is below this model's floor"),
])
def test_max_memory_bad_input_is_one_line_exit_2(capsys, cnn_file, given, fragment):
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--no-trace", "--quiet", "--steps", "1",
                             f"--max-memory={given}")
    assert_one_line_error(status, err, fragment)


def test_stages_that_would_not_fit_are_skipped_in_one_line_each_and_the_rest_is_whole(monkeypatch):
    monkeypatch.setattr(footprint, "available_bytes", lambda: 1 * MIB)   # the machine has 1 MiB free
    report = tfprofscale.profile(small_cnn(), batch_size=1, steps=2, warmup=1, trace=False)
    memory = report.memory
    assert memory.missing.startswith("skipped: the memory stage would need about ")
    assert "only 1.00 MiB is available" in memory.missing and "\n" not in memory.missing
    (warning,) = [w for w in report.warnings if "Grappler" in w]
    assert "not run: skipped: the cost model stage would need about" in warning
    assert report.totals.tf_estimated_step_ms is None and memory.measured_peak_bytes is None
    assert report.totals.step_time_ms.n >= 2 and report.totals.graph_flops > 0 and len(report.layers) == 6
    assert memory.estimated_peak_bytes > 0


def test_skip_reason_against_a_ceiling():
    need = footprint.StageNeed("memory", 100 * MIB, {"activations": 90 * MIB})
    held = footprint.rss_bytes()
    assert footprint.skip_reason(need, held + 200 * MIB) is None or footprint.available_bytes() < 100 * MIB
    reason = footprint.skip_reason(need, held + 50 * MIB)
    assert reason.startswith("skipped: the memory stage would need about 100.00 MiB (activations 90.00 MiB)")
    assert "left under --max-memory" in reason


HUNDRED_MB_MODEL = '''
import keras

def build_model():
    # 5000 x 5000 + 5000 float32 parameters: 100.02 MB of weights
    inputs = keras.Input((5000,), name="features")
    return keras.Model(inputs, keras.layers.Dense(5000, activation="relu", name="dense")(inputs))
'''

FLOOR = '''
import resource, sys
import tensorflow as tf
from tfprofscale.profiling.trace.loading import build, load_model_file, resolve_params
from tfprofscale.profiling.trace.tracing import trace
model_file = load_model_file(sys.argv[1])
traced = trace(build(model_file, resolve_params(model_file, {})), 1)
traced.run()
'''

PROFILE = '''
import sys
from tfprofscale.cli import main
sys.exit(main(["profile", sys.argv[1], "--quiet", "--steps", "5", "--warmup", "1", "--trace-steps", "2",
               "--max-time", "0.5", "--logdir", sys.argv[2]]))
'''


def _peak_rss_of_child(code: str, *args: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0, child.stderr.read().decode()[-2000:]
    return usage.ru_maxrss * 1024


def test_a_100_mb_model_profiles_within_its_floor_plus_a_derived_bound(tmp_path):
    model = tmp_path / "hundred_mb.py"
    model.write_text(textwrap.dedent(HUNDRED_MB_MODEL))
    weights = (5000 * 5000 + 5000) * 4
    floor = _peak_rss_of_child(FLOOR, str(model))
    profile = _peak_rss_of_child(PROFILE, str(model), str(tmp_path / "runs"))
    # What the profile may add to the floor: the dense kernel probed alone holds its own weights once (W);
    # the Session shares the model's buffers (0); the shape-only graph holds no values (0); activations are
    # 20 KB. Beyond that, fixed costs: measuring the machine's peaks when no fresh cached value exists
    # (a 128 MiB array summed, two 16 MiB matrices and TensorFlow's arenas: 250 MiB measured alone) and the
    # profiler's own (tfprof, xprof's trace conversion, Grappler, the Session's kernels: 140 MiB, against
    # ~90 MiB measured on fashion_mnist). The frozen route needed floor + ~17.5 W here (1.75 GB).
    bound = weights + 250 * MIB + 140 * MIB
    assert profile - floor < bound, (floor / MIB, profile / MIB)


def test_profile_exits_promptly_after_the_report(tmp_path, cnn_file):
    """The console entry point leaves with os._exit after flushing: the report is whole on stdout and in JSON."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    target = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "tfprofscale", "profile", str(cnn_file), "--quiet", "--no-trace",
                             "--steps", "2", "--json", str(target)], env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('Model "two_layer_cnn"') and result.stdout.endswith("\n")
    assert "never 0\n" in result.stdout  # the table's footer, flushed before os._exit
    import json

    assert json.loads(target.read_text())["memory"]["measured_peak_bytes"] > 0
