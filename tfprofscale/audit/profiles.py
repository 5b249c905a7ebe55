"""The reports an audit reads: one profile JSON, a sweep's reports/<id>.json, or a whole sweep folder.

A corrupt report in a sweep is skipped and named; the audit goes on with the rest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.inputs import read_text
from tfprofscale.records import Report
from tfprofscale.report.fields import check_report_fields

__all__ = ["LoadedProfiles", "load_profiles", "layers_frame"]


@dataclass
class LoadedProfiles:
    """The reports found at a path: (config_id, config, Report) per finished configuration."""

    source: str
    kind: str
    profiles: list[tuple[str, dict[str, Any], Report]]
    failed: list[str] = field(default_factory=list)


def load_profiles(path: str | Path) -> LoadedProfiles:
    """One profile JSON (bare or a sweep's reports/<id>.json) or a sweep output directory."""
    path = Path(path)
    if path.is_dir():
        return _load_sweep(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a profile JSON or a sweep output directory")
    data = _read_json(path)
    if "report" in data and "layers" not in data:
        if data.get("status") != "ok" or not data.get("report"):
            raise InputError(f"{path}: configuration {data.get('config_id')} failed: {data.get('error')}")
        return LoadedProfiles(str(path), "profile", [_wrapped_profile(path, data)])
    config = {**data.get("params", {}), "batch_size": data.get("batch_size")}
    return LoadedProfiles(str(path), "profile", [(path.stem, config, _report(path, data))])


def _load_sweep(folder: Path) -> LoadedProfiles:
    reports = folder / "reports"
    if not reports.is_dir():
        raise InputError(f"{folder} is not a sweep output directory: it has no reports/ folder")
    profiles, failed, skipped = [], [], []
    for file in sorted(reports.glob("*.json")):
        try:
            data = _read_json(file)
            if data.get("status") == "ok" and data.get("report"):
                profiles.append(_wrapped_profile(file, data))
            else:
                failed.append(f"{data.get('config_id', file.stem)}: {data.get('error')}")
        except InputError as error:  # one corrupt report: audit the rest, name it
            skipped.append(f"skipped {file.name}: {error}")
    if not profiles:
        reason = f" ({len(skipped)} unreadable: {skipped[0]})" if skipped else ""
        raise InputError(f"{folder}: no finished configuration in reports/{reason}")
    return LoadedProfiles(str(folder), "sweep", profiles, failed + skipped)


def _wrapped_profile(path: Path, data: dict[str, Any]) -> tuple[str, dict[str, Any], Report]:
    return str(data.get("config_id") or path.stem), dict(data.get("config") or {}), _report(path, data["report"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path, "profile JSON"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a tfprofscale profile JSON (a {type(data).__name__}, not an object)")
    return data


def _report(path: Path, data: dict[str, Any]) -> Report:
    check_report_fields(data, str(path))
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a tfprofscale profile JSON ({type(error).__name__}: {error})") from None


def layers_frame(loaded: LoadedProfiles) -> Any:
    """One row per configuration and layer, as the sweep's layers.csv: config columns, then the layer's."""
    import pandas as pd

    frames = []
    for config_id, config, report in loaded.profiles:
        frame = report.to_frame()
        for column, value in reversed([("config_id", config_id), *config.items()]):
            if column not in frame.columns:
                frame.insert(0, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
