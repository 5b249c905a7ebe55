"""Writing the HTML pages the commands offer (``profile --html``, ``audit --html``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tfprofscale.audit.roofline_input import page_roofline
from tfprofscale.report.html.profile_page import write_profile_page


def write_profile_html(path: str | Path, report: dict[str, Any]) -> None:
    """The profile page of ``report`` (its JSON dict), with the roofline at the machine's cached peaks."""

    roofline, why_not = page_roofline(report)
    write_profile_page(path, report, roofline, why_not)


def write_audit_html(path: str | Path, audit: Any) -> None:
    """The audit page of ``audit``."""
    from tfprofscale.audit.html_page import write_audit_page

    write_audit_page(path, audit)
