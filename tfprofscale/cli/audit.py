"""``tfprofscale audit PATH``: where, by how much and why the estimates and the measurements disagree.

PATH is a profile JSON (``profile --json``, or a sweep's reports/<id>.json)
or a sweep output directory. The report is printed and written as
``audit.md`` with its figures in ``plots/`` (beside the JSON, or inside the
sweep directory, unless ``--out DIR``); ``--json FILE`` writes every number.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfprofscale.cli.html_pages import write_audit_html
from tfprofscale.errors import InputError
from tfprofscale.inputs import check_input_file
from tfprofscale.output import check_output_folder, check_output_path, refuse_overlaps, write_text
from tfprofscale.profiling.runtime.machine_peaks import machine_peaks, under_load_warning
from tfprofscale.quiet import import_tensorflow_quietly
from tfprofscale.sweep.files import SWEEP_FILES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` sub-command."""
    parser = subparsers.add_parser(
        "audit", help="explain where formulas, graph, runtime and allocator disagree",
        description="Audit a profile JSON or a sweep directory: FLOPs conventions against the graph, fusion, "
                    "coverage, memory and time, the five largest divergences first.")
    parser.add_argument("path", help="profile JSON or sweep output directory")
    parser.add_argument("--json", metavar="FILE", help="write every number of the audit as JSON")
    parser.add_argument("--out", metavar="DIR",
                        help="folder for audit.md and plots/ (default: beside the JSON / the sweep directory)")
    parser.add_argument("--html", metavar="FILE", help="also write the audit as an interactive HTML page that opens "
                                                       "offline")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure the machine's peaks again instead of using the cached ones")
    parser.set_defaults(run=run)


def report_folder(path: Path, out: str | None) -> Path:
    """Where audit.md goes: ``--out``, else the sweep directory, else the JSON's folder."""
    if out is not None:
        return Path(out)
    return path if path.is_dir() else path.parent


def _refuse_overwriting_inputs(path: Path, folder: Path, json_path: str | None) -> None:
    """InputError if --json or audit.md would replace the audited profile or a file of the audited sweep."""
    inputs = [(f"the sweep's {name}", path / name) for name in SWEEP_FILES] if path.is_dir() \
        else [("the audited profile", path)]
    folders = [("the sweep's reports", path / "reports")] if path.is_dir() else []
    refuse_overlaps([("--json", json_path), ("audit report", folder / "audit.md")], inputs, folders,
                    [("the audit's plots folder", folder / "plots")])


def run(args: argparse.Namespace) -> int:
    """Audit PATH, print the report, write audit.md, its figures and the JSON."""
    path = Path(args.path)
    if not path.is_dir():
        check_input_file(path, "profile JSON")
    for option, target in (("--json", args.json), ("--html", args.html)):
        if target:
            check_output_path(target, option)
    folder = report_folder(path, args.out)
    _refuse_overwriting_inputs(path, folder, args.json)
    check_output_folder(folder, "--out" if args.out is not None else "audit folder")
    import_tensorflow_quietly()
    from tfprofscale.audit.analysis import audit_path
    from tfprofscale.audit.plots import write_figures
    from tfprofscale.audit.render import render_markdown, render_text, write_json

    if args.remeasure:

        busy = under_load_warning(machine_peaks(refresh=True))
        if busy:
            print(f"warning: {busy}", file=sys.stderr)
    audit = audit_path(path)
    markdown = folder / "audit.md"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        figures = write_figures(audit, folder / "plots")
    except OSError as error:
        raise InputError(f"cannot write the audit into {folder}: {error.strerror or error}") from None
    write_text(markdown, render_markdown(audit, {caption: str(p.relative_to(folder))
                                                 for caption, p in figures.items()}))
    print(render_text(audit))
    print(f"\nwrote {markdown}" + (f" and {len(figures)} figures in {folder / 'plots'}" if figures else ""))
    if args.json:
        write_json(audit, args.json)
        print(f"wrote {args.json}")
    if args.html:

        write_audit_html(args.html, audit)
        print(f"wrote {args.html}")
    return 0
