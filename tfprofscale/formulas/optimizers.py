"""Optimizers of the training step: the state they keep per variable and their arithmetic per element.

``optimizer_spec`` reads a real ``keras.optimizers`` object (built or not).
Slots are the arrays of a trainable variable's shape and dtype the optimizer
adds (``add_optimizer_variables`` / ``add_variable_from_reference`` in Keras 3);
the update counts are read off Keras 3.15's ``update_step`` of each optimizer
(``keras/src/optimizers/*.py``): every element-wise operation on a
parameter-shaped tensor counts 1 (multiply, add, subtract, divide, square,
sqrt, abs, sign, maximum, and the add of ``assign_add``/``assign_sub``); a
plain ``assign`` is a copy (0); scalar work (bias corrections, casts of
hyper-parameters) is per variable, not per element, and not counted.
docs/training.md has the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.records import OptimizerSpec

#: The ``--optimizer`` choices.
OPTIMIZER_CHOICES = ("sgd", "momentum", "adam", "adamw", "rmsprop")

#: Per-element operations added by the base optimizer's options (``base_optimizer.py``, TF backend):
#: weight decay ``v -= v * wd * lr`` (3); ``clipvalue`` a clip (max and min: 2); ``clipnorm`` and
#: ``global_clipnorm`` a square and a sum for the norm, a multiply to rescale (3); EMA
#: ``average = m * average + (1 - m) * v`` (3).
WEIGHT_DECAY_FLOPS, CLIPVALUE_FLOPS, CLIPNORM_FLOPS, EMA_FLOPS = 3, 2, 3, 3
#: Gradient accumulation: on the update step ``(g + acc) / steps`` (2); on the other steps ``acc += g`` (1).
ACCUMULATION_UPDATE_FLOPS, ACCUMULATION_STEP_FLOPS = 2, 1
#: LossScaleOptimizer: ``g / scale`` and the finiteness check (is_finite, and-reduction) per element.
LOSS_SCALE_FLOPS = 3


@dataclass(frozen=True)
class _Rule:
    """One optimizer's slots and per-element update operations, as its Keras ``update_step`` writes them."""

    slot_names: tuple[str, ...]
    update_flops: int
    derivation: str
    extra_scalars: int = 0


def _sgd(opt: Any) -> _Rule:
    if opt.momentum == 0:
        return _Rule((), 2, "v -= g * lr (2)")
    if opt.nesterov:
        return _Rule(("momentum",), 7, "m = m * mu - g * lr (3); v += m * mu - g * lr (4)")
    return _Rule(("momentum",), 4, "m = m * mu - g * lr (3); v += m (1)")


def _adam(opt: Any) -> _Rule:
    derivation = "m += (g - m) * (1 - b1) (3); u = v + (g^2 - u) * (1 - b2) (4); v -= m * alpha / (sqrt(u) + eps) (5)"
    if opt.amsgrad:
        return _Rule(("momentum", "velocity", "velocity_hat"), 13, derivation + "; u_hat = max(u_hat, u) (1)")
    return _Rule(("momentum", "velocity"), 12, derivation)


def _rmsprop(opt: Any) -> _Rule:
    slots, flops = ["velocity"], 9
    derivation = ["s = rho * s + (1 - rho) * g^2 (4)", "inc = lr * g / sqrt(s + eps) (4)", "v -= inc (1)"]
    if opt.centered:
        slots.append("average_gradient")
        flops += 5
        derivation.append("centered: a = rho * a + (1 - rho) * g (3), denominator s - a^2 + eps (+2)")
    if opt.momentum > 0:
        slots.append("momentum")
        flops += 2
        derivation.append("momentum: m = mu * m + inc (2), v -= m")
    return _Rule(tuple(slots), flops, "; ".join(derivation))


def _fixed(slots: tuple[str, ...], flops: int, derivation: str, extra_scalars: int = 0):
    return lambda opt: _Rule(slots, flops, derivation, extra_scalars)


#: Keras optimizer class name -> its rule (AdamW is Adam plus weight decay, counted from ``weight_decay``).
_RULES = {
    "SGD": _sgd, "Adam": _adam, "AdamW": _adam, "RMSprop": _rmsprop,
    "Adagrad": _fixed(("accumulator",), 7, "a += g^2 (2); v -= lr * g / sqrt(a + eps) (5)"),
    "Adadelta": _fixed(("accumulated_grad", "accumulated_delta_var"), 17,
                       "a = rho * a + (1 - rho) * g^2 (4); d = -sqrt(b + eps) * g / sqrt(a + eps) (7); "
                       "b = rho * b + (1 - rho) * d^2 (4); v += lr * d (2)"),
    "Adamax": _fixed(("momentum", "norm"), 11,
                     "m += (g - m) * (1 - b1) (3); u = max(b2 * u, |g|) (3); v -= lr * m / ((1 - b1^t) * (u + eps)) (5)"),
    "Nadam": _fixed(("momentum", "velocity"), 18,
                    "m (3); u (4); m_hat = u1 * m / (1 - p1) + (1 - u0) * g / (1 - p0) (5); u_hat = u / (1 - b2^t) (1); "
                    "v -= m_hat * lr / (sqrt(u_hat) + eps) (5)", extra_scalars=1),
    "Lion": _fixed(("momentum",), 9, "v -= lr * sign(m * b1 + g * (1 - b1)) (6); m = m * b2 + g * (1 - b2) (3)"),
}


def optimizer_spec(optimizer: Any) -> OptimizerSpec:
    """Slots per variable and update flops per parameter element of a Keras 3 optimizer.

    ``scalar_variables`` counts the optimizer's own scalars: ``iterations``,
    ``learning_rate`` (unless a schedule or callable), Nadam's ``u_product``,
    a LossScaleOptimizer's own four. Raises InputError for a class without a rule.
    """
    if type(optimizer).__name__ == "LossScaleOptimizer":
        inner = optimizer_spec(optimizer.inner_optimizer)
        return OptimizerSpec(
            name=f"LossScaleOptimizer({inner.name})", slots_per_variable=inner.slots_per_variable,
            update_flops_per_element=inner.update_flops_per_element + LOSS_SCALE_FLOPS,
            slot_names=inner.slot_names, scalar_variables=inner.scalar_variables + 4,
            notes=inner.notes + (f"loss scaling: g / scale and a finiteness check ({LOSS_SCALE_FLOPS})",))
    rule_of = _rule_of(optimizer)
    rule = rule_of(optimizer)
    slots, flops, notes = list(rule.slot_names), rule.update_flops, [rule.derivation]
    if optimizer.weight_decay:
        flops += WEIGHT_DECAY_FLOPS
        notes.append(f"weight decay v -= v * wd * lr ({WEIGHT_DECAY_FLOPS})")
    clip_flops, clip_note = _clipping(optimizer)
    if clip_flops:
        flops += clip_flops
        notes.append(clip_note)
    if optimizer.use_ema:
        slots.append("average")
        flops += EMA_FLOPS
        notes.append(f"EMA average = m * average + (1 - m) * v ({EMA_FLOPS})")
    if optimizer.gradient_accumulation_steps:
        slots.append("gradient_accumulator")
        flops += ACCUMULATION_UPDATE_FLOPS
        notes.append(f"gradient accumulation: (g + acc) / steps ({ACCUMULATION_UPDATE_FLOPS}) on the update step; "
                     f"the other {optimizer.gradient_accumulation_steps - 1} steps do acc += g "
                     f"({ACCUMULATION_STEP_FLOPS}) and no update")
    return OptimizerSpec(name=type(optimizer).__name__, slots_per_variable=len(slots),
                         update_flops_per_element=flops, slot_names=tuple(slots),
                         scalar_variables=1 + _has_learning_rate_variable(optimizer) + rule.extra_scalars,
                         notes=tuple(notes))


def _rule_of(optimizer: Any):
    """The rule of the optimizer's class, or of its nearest Keras base class."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in _RULES and cls.__module__.startswith("keras"):
            return _RULES[cls.__name__]
    raise InputError(f"optimizer {type(optimizer).__name__}: no update count for this class; "
                     f"known: {', '.join(sorted(_RULES))}")


def _clipping(optimizer: Any) -> tuple[int, str]:
    if optimizer.clipnorm:
        return CLIPNORM_FLOPS, f"clipnorm: per-variable norm and rescale ({CLIPNORM_FLOPS})"
    if optimizer.global_clipnorm:
        return CLIPNORM_FLOPS, f"global_clipnorm: global norm and rescale ({CLIPNORM_FLOPS})"
    if optimizer.clipvalue:
        return CLIPVALUE_FLOPS, f"clipvalue: clip to [-c, c] ({CLIPVALUE_FLOPS})"
    return 0, ""


def _has_learning_rate_variable(optimizer: Any) -> bool:
    """Keras keeps a float learning rate in a variable; a schedule or callable is not one."""
    import keras  # deferred: Keras

    return isinstance(optimizer._learning_rate, keras.Variable)


def make_optimizer(name: str) -> Any:
    """The Keras optimizer for ``--optimizer NAME`` at Keras' default settings (``momentum``: SGD with 0.9)."""
    import keras  # deferred: Keras

    makers = {"sgd": lambda: keras.optimizers.SGD(),
              "momentum": lambda: keras.optimizers.SGD(momentum=0.9),
              "adam": lambda: keras.optimizers.Adam(),
              "adamw": lambda: keras.optimizers.AdamW(),
              "rmsprop": lambda: keras.optimizers.RMSprop()}
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in makers:
        raise InputError(f"unknown --optimizer {name!r}; choose one of {', '.join(OPTIMIZER_CHOICES)}")
    return makers[key]()


def update_flops(spec: OptimizerSpec, trainable_elements: int) -> int:
    """FLOPs of one update of ``trainable_elements`` parameter elements (scalar work not counted)."""
    return spec.update_flops_per_element * trainable_elements
