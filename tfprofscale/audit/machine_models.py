"""Latency models per machine: a sweep measured on several kinds of machine is fitted once per kind.

A step time is a property of a model *and* a machine, so ``fit`` groups a
sweep's configurations by the fingerprint of the machine that measured them
(``record["machine"]``, see tfprofscale.sweep.machine) and fits one latency
model per fingerprint. The model file of a single machine is the usual
latency-model JSON with a ``machine`` key; several machines give one file
with every model under ``machines``. ``predict`` uses the model of the
machine it runs on, and refuses a file fitted elsewhere unless asked for a
fingerprint explicitly (``--machine``). Records written before fingerprints
existed belong to machine ``unknown``, and a model file without a ``machine``
key is used as it is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfprofscale.audit.latency import LatencyModel
from tfprofscale.errors import InputError
from tfprofscale.output import write_text

UNKNOWN = "unknown"
KIND = "tfprofscale latency models per machine"


@dataclass(frozen=True)
class FittedMachine:
    """One machine's latency model, with the fingerprint and description of the machine."""

    fingerprint: str
    description: str
    model: Any  # a tfprofscale.audit.latency.LatencyModel


def machine_key(record: dict[str, Any]) -> str:
    """The fingerprint of the machine that measured a sweep record, or ``unknown``."""
    return (record.get("machine") or {}).get("fingerprint") or UNKNOWN


def sweep_machines(out_dir: str | Path) -> dict[str, str]:
    """Fingerprint -> description of every machine with a finished configuration in a sweep directory."""
    machines: dict[str, str] = {}
    for path in sorted((Path(out_dir) / "reports").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # load_sweep names a broken record
        if isinstance(record, dict) and record.get("status") == "ok":
            description = (record.get("machine") or {}).get("description") or "machine not recorded"
            machines.setdefault(machine_key(record), description)
    return machines


def save_models(path: str | Path, fitted: list[FittedMachine]) -> None:
    """Write one machine's model (latency-model JSON with a ``machine`` key) or several (under ``machines``)."""
    entries = {f.fingerprint: {"description": f.description, "model": f.model.to_dict()} for f in fitted}
    if len(fitted) == 1:
        only = fitted[0]
        data = {**only.model.to_dict(), "machine": {"fingerprint": only.fingerprint, "description": only.description}}
    else:
        data = {"kind": KIND, "machines": entries}

    write_text(path, json.dumps(data, indent=2) + "\n")


def load_for_machine(path: str | Path, fingerprint: str | None, here: Any) -> FittedMachine:
    """The model for ``fingerprint`` (given with --machine), else for ``here`` (this machine's ``Machine``).

    InputError, in one line, when the file has no model for that machine.
    """
    models = _read(path)
    if fingerprint is not None:
        if fingerprint not in models:
            raise InputError(f"--machine {fingerprint}: {path} has no model for it (it has {_listing(models)})")
        return _fitted(models, fingerprint)
    if here.fingerprint in models:
        return _fitted(models, here.fingerprint)
    if list(models) == [UNKNOWN]:
        return _fitted(models, UNKNOWN)  # fitted before machines were recorded: nothing to check against
    raise InputError(f"{path} was fitted on {_listing(models)}, not on this machine ({here.fingerprint}: "
                     f"{here.description}): give --machine FINGERPRINT to predict with one of them anyway")


def _read(path: str | Path) -> dict[str, tuple[str, Any]]:
    """Fingerprint -> (description, model dict) of a model file of either form."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"model file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is not a latency model written by `tfprofscale fit`: {error}") from None
    if isinstance(data, dict) and data.get("kind") == KIND:
        return {key: (entry.get("description", ""), entry["model"]) for key, entry in data["machines"].items()}
    LatencyModel.load(path)  # InputError if it is not a latency model at all
    machine = data.get("machine") or {}
    return {machine.get("fingerprint") or UNKNOWN: (machine.get("description", "machine not recorded"), data)}


def _fitted(models: dict[str, tuple[str, Any]], fingerprint: str) -> FittedMachine:
    description, data = models[fingerprint]
    return FittedMachine(fingerprint, description, LatencyModel.from_dict(data))


def _listing(models: dict[str, tuple[str, Any]]) -> str:
    return "; ".join(f"{key} ({description})" for key, (description, _) in models.items())
