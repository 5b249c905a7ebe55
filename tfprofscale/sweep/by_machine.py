"""A sweep measured on several kinds of machine, summarised machine by machine.

Step times from two kinds of machine do not belong on one curve: with more
than one machine fingerprint among the successful configurations, every
figure is drawn once per machine (``plots/<fingerprint>_<figure>.png``) and
report.md gives the headline numbers per machine. With one machine nothing
changes but a line naming it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import pandas as pd


def machine_fingerprint(record: dict[str, Any]) -> str | None:
    """The fingerprint of the machine that measured a record (None: unknown, e.g. its worker died)."""
    return (record.get("machine") or {}).get("fingerprint")


def machines(records: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    """Fingerprint -> {description, hosts, count} of the machines that measured successful configurations."""
    found: dict[str | None, dict[str, Any]] = {}
    for record in records:
        if record["status"] != "ok":
            continue
        entry = found.setdefault(machine_fingerprint(record), {
            "description": (record.get("machine") or {}).get("description") or "machine not recorded",
            "hosts": [], "count": 0})
        entry["count"] += 1
        if record.get("host") and record["host"] not in entry["hosts"]:
            entry["hosts"].append(record["host"])
    return found


def figures(results: list[dict[str, Any]], layers: list[dict[str, Any]], parameters: list[str], model: str,
            records: list[dict[str, Any]]) -> list[Any]:
    """The sweep's figures: once for all configurations, or once per machine when there are several."""
    from tfprofscale.sweep import plots

    found = machines(records)
    if len(found) <= 1:
        return plots.sweep_figures(results, layers, parameters, model)
    named = []
    for fingerprint, entry in found.items():
        ids = {r["config_id"] for r in records if machine_fingerprint(r) == fingerprint}
        own_results = [row for row in results if row.get("machine") == fingerprint]
        own_layers = [row for row in layers if row["config_id"] in ids]
        for figure in plots.sweep_figures(own_results, own_layers, parameters, f"{model} on {fingerprint}"):
            named.append(replace(figure, name=f"{fingerprint}_{figure.name}",
                                 description=f"Machine {fingerprint} ({entry['description']}). {figure.description}"))
    return named


def headline_lines(ok: pd.DataFrame, parameters: list[str], layers: list[dict[str, Any]],
                   records: list[dict[str, Any]],
                   findings: Callable[[pd.DataFrame, list[str], list[dict[str, Any]]], list[str]]) -> list[str]:
    """report.md's headline bullets: for all configurations, or under one heading per machine."""
    found = machines(records)
    if len(found) <= 1:
        named = [f"measured on {_describe(key, entry)}" for key, entry in found.items()]
        return [f"- {line}" for line in findings(ok, parameters, layers) + named]
    lines = []
    for fingerprint, entry in found.items():
        ids = {r["config_id"] for r in records if machine_fingerprint(r) == fingerprint}
        own = ok[ok["machine"] == fingerprint] if fingerprint is not None else ok[ok["machine"].isna()]
        lines += ["", f"### On machine {_describe(fingerprint, entry)}", ""]
        lines += [f"- {line}" for line in findings(own, parameters, [row for row in layers if row["config_id"] in ids])]
    return lines


def _describe(fingerprint: str | None, entry: dict[str, Any]) -> str:
    hosts = f", host {', '.join(entry['hosts'])}" if entry["hosts"] else ""
    return f"{fingerprint or 'unknown'} ({entry['description']}{hosts}; {entry['count']} configurations)"
