"""The train-step memory ledger, pinned by hand, and its slots against the optimizer's own variables."""
from __future__ import annotations

import keras
import pytest

from tests.layer_harness import info_of
from tfprofscale.formulas.analytic import analyze_layers
from tfprofscale.formulas.optimizers import optimizer_spec
from tfprofscale.formulas.optimizers import update_flops
from tfprofscale.profiling.memory.ledger import (TERMS, estimate_ledger, measured_ledger_terms, trainable_totals,
                                                variable_bytes)
from tfprofscale.profiling.memory.step_memory import Allocation


def chain(model: keras.Model, batch: int):
    names = [layer.name for layer in model.layers]
    infos = [info_of(layer, batch, tuple(names[i - 1:i])) for i, layer in enumerate(model.layers)]
    return infos, analyze_layers(infos)


def dense_chain() -> keras.Model:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, activation="relu", name="d1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="d2")(x))


def saved_chain() -> keras.Model:
    inputs = keras.Input((5,))
    x = keras.layers.Dense(8, activation="relu", name="a")(inputs)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(6, name="b")(x)
    x = keras.layers.Activation("sigmoid", name="c")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="d")(x))


# Dense chain 6 -> 4 -> 3: (6*4 + 4) + (4*3 + 3) = 43 float32 parameters = 172 B, all trainable.
# Slots: Keras keeps iterations (int64, 8 B) and learning_rate (float32, 4 B) = 12 B of scalars.
@pytest.mark.parametrize("optimizer, slot_bytes, update_per_element", [
    (keras.optimizers.SGD(), 0 + 12, 2),                # no slots
    (keras.optimizers.SGD(momentum=0.9), 172 + 12, 4),  # momentum: one copy
    (keras.optimizers.Adam(), 2 * 172 + 12, 12),        # momentum and velocity
])
def test_weights_gradients_and_slots_by_hand(optimizer, slot_bytes, update_per_element):
    model = dense_chain()
    infos, costs = chain(model, 2)
    ledger = estimate_ledger(infos, costs, optimizer_spec(optimizer), batch_size=2, label_bytes=24)
    assert [line.term for line in ledger.lines] == list(TERMS)
    assert ledger.line("weights").estimated_bytes == 172
    assert ledger.line("gradients").estimated_bytes == 172
    assert ledger.line("optimizer slots").estimated_bytes == slot_bytes
    # input 2 * 6 * 4 B = 48 plus the 24 B of labels
    assert ledger.line("input and labels").estimated_bytes == 72
    # independent route: the bytes of the variables Keras really makes
    optimizer.build(model.trainable_variables)
    assert sum(variable_bytes(v) for v in optimizer.variables) == slot_bytes
    assert ledger.total_estimated_bytes == sum(line.estimated_bytes for line in ledger.lines)
    assert trainable_totals(infos) == (43, 172)
    # one update: 43 elements * (SGD 2, momentum 4, Adam 12)
    assert update_flops(optimizer_spec(optimizer), 43) == 43 * update_per_element


def test_saved_activations_on_a_chain_by_hand():
    infos, costs = chain(saved_chain(), 3)
    ledger = estimate_ledger(infos, costs, optimizer_spec(keras.optimizers.SGD()), batch_size=3)
    # a: its input is the fed batch (the input line), its relu output 3*8*4 B = 96;
    # drop: its keep-mask, 3*8 booleans = 24 B; b: MatMul keeps its input, dropout's output, 96 B (linear: no
    # output kept); c: sigmoid keeps its output 3*6*4 = 72 B; d: its input is c's output, already counted.
    assert ledger.line("saved activations").estimated_bytes == 96 + 24 + 96 + 72
    # temporaries: the largest dL/d output + dL/d input of one layer: drop (24 + 24) * 4 B = 192
    assert ledger.line("temporaries").estimated_bytes == 192


def test_mixed_precision_prices_activations_at_float16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = saved_chain()
    finally:
        keras.config.set_dtype_policy(previous)
    infos, costs = chain(model, 3)
    ledger = estimate_ledger(infos, costs, optimizer_spec(keras.optimizers.Adam()), batch_size=3)
    # activations at 2 B: 48 + mask 24 + 48 + 36 = 156; MatMul keeps float16 copies of the kernels:
    # (5*8 + 8*6 + 6*2) * 2 B = 200
    assert ledger.line("saved activations").estimated_bytes == 156 + 200
    # master weights stay float32: (5*8+8) + (8*6+6) + (6*2+2) = 116 parameters * 4 B
    assert ledger.line("weights").estimated_bytes == 464
    assert ledger.line("gradients").estimated_bytes == 464
    assert ledger.line("optimizer slots").estimated_bytes == 2 * 464 + 12


def _record(micros: int, size: int, op: str, tensor: str = "") -> Allocation:
    return Allocation(micros, size, op, tensor or f"{op}:0", "mklcpu", "/cpu:0")


def test_measured_terms_from_allocation_records_by_hand():
    infos, costs = chain(dense_chain(), 2)
    ledger = estimate_ledger(infos, costs, optimizer_spec(keras.optimizers.Adam()), batch_size=2)
    records = [
        _record(1, 100, "model/a/MatMul"), _record(2, 100, "model/a/Relu"), _record(3, -100, "model/a/MatMul"),
        _record(4, 50, "model/b/MatMul", "model/b/MatMul (temporary)"),
        _record(5, -50, "model/b/MatMul", "model/b/MatMul (temporary)"),
        _record(6, 40, "gradient_tape/model/b/MatMul"), _record(7, 30, "adam/Mul"),
        _record(8, 60, "gradient_tape/model/a/MatMul"), _record(9, -100, "model/a/Relu"),
        _record(10, -30, "adam/Mul"), _record(11, -40, "gradient_tape/model/b/MatMul"),
        _record(12, -60, "gradient_tape/model/a/MatMul"),
    ]
    measured = measured_ledger_terms(ledger, records, total_measured_bytes=1234)
    # saved: forward tensors live when the model's forward ends (its last allocation, t=4): the Relu output, 100 B
    assert measured.line("saved activations").measured_bytes == 100
    # running sum 100, 200, 100, 150, 100, 140, 170, 230 (peak, t=8), 130, 100, 60, 0.
    # At the peak: gradient tensors 40 + 60 = 100 B; optimizer tensors 30 B (the kernel temporary was freed)
    assert measured.line("gradients").measured_bytes == 100
    assert measured.line("temporaries").measured_bytes == 30
    assert measured.line("weights").measured_bytes is None          # variables are not in the records
    assert measured.total_measured_bytes == 1234
    assert measured.line("weights").estimated_bytes == ledger.line("weights").estimated_bytes


def test_saved_activations_against_a_measured_train_step():
    """Independent route: the allocation records of a real train step (tests/train_step_records.py)."""
    import numpy as np

    from tests.train_step_records import train_step_allocations

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="d")(x), name="cnn")
    optimizer = keras.optimizers.Adam()
    batch = 8
    rng = np.random.default_rng(0)
    allocations = train_step_allocations(
        model, optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        rng.random((batch, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, batch).astype(np.int32))
    infos, costs = chain(model, batch)
    ledger = measured_ledger_terms(estimate_ledger(infos, costs, optimizer_spec(optimizer), batch), allocations)
    saved = ledger.line("saved activations")
    # by hand: c1's relu output 8*32*32*16*4 = 524,288 B; pool's output 8*16*16*16*4 = 131,072 B (read by c2)
    # and its oneDNN workspace 32,768 B; c2's relu output 8*16*16*32*4 = 262,144 B (read by d, a view through
    # flat). c1's input is the fed batch.  Total 950,272 B.
    assert saved.estimated_bytes == 950_272
    # measured: the same tensors plus a few hundred bytes of small ones (loss, labels' one-hot ...)
    assert 0 <= saved.measured_bytes - saved.estimated_bytes < 0.01 * saved.estimated_bytes
