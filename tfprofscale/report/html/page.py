"""The shell of every HTML page: sections of charts, tables and sentences, with plotly.js and the page's script.

A page is built from plain blocks (``Chart``, ``Missing``, ``Html``,
``Table``, ``Tabs``) grouped in ``Section``s; ``render_page`` turns it into
one HTML document whose data (every figure's plotly JSON, every table's
rows) sits in one ``application/json`` script element, read by the page's
own script (``static/page.js``), which draws each chart with plotly.js
when it first becomes visible and makes the tables sortable, filterable
and collapsible. plotly.js (the offline bundle shipped in the ``plotly``
package) is inlined, or, for many pages in one folder (a sweep), written
once into a folder beside them (``write_plotly_asset``) and referenced by a
relative path: no request leaves the page either way.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from tfprofscale import output

STATIC = Path(__file__).with_name("static")
PLOTLY_ASSET = "plotly.min.js"
GENERATOR = "tfprofscale"


@dataclass
class Chart:
    """A plotly figure (``{"data": [...], "layout": {...}}``) and a sentence saying what it shows."""

    figure: dict[str, Any]
    caption: str = ""
    height: int = 420


@dataclass
class Missing:
    """A chart that cannot be drawn, replaced by one sentence saying why."""

    title: str
    reason: str


@dataclass
class Html:
    """Trusted markup built by this package (every value in it already escaped)."""

    markup: str


@dataclass
class Column:
    """A table column: its key in the rows, header, unit, and how values are shown (``si``, ``bytes``, ...)."""

    key: str
    label: str
    unit: str = ""
    format: str = "text"
    empty: str = ""
    title: str = ""


@dataclass
class Table:
    """Rows (dicts with an ``id``, an optional ``parent`` id, ``depth`` and the columns' keys) and their columns."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    caption: str = ""
    filterable: bool = True


@dataclass
class Tabs:
    """Named panes, one shown at a time (charts in a hidden pane are drawn when it is first shown)."""

    panes: list[tuple[str, list[Block]]]


Block = Union[Chart, Missing, Html, Table, Tabs]


@dataclass
class Section:
    """A titled part of the page."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    intro: str = ""


@dataclass
class Page:
    """A whole page: its title, a header of (label, value) facts, and its sections."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def escape(text: Any) -> str:
    """Text made safe inside HTML."""
    return html.escape("" if text is None else str(text), quote=True)


class _Renderer:
    """Walks the blocks once, numbering charts and tables and collecting their data."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.tables: dict[str, Any] = {}
        self.tabs = 0

    def blocks(self, blocks: list[Block]) -> str:
        return "\n".join(self.block(block) for block in blocks)

    def block(self, block: Block) -> str:
        if isinstance(block, Chart):
            key = f"chart-{len(self.figures)}"
            self.figures[key] = block.figure
            caption = f'<p class="caption">{escape(block.caption)}</p>' if block.caption else ""
            return (f'<figure class="chart-box"><div class="chart" id="{key}" data-figure="{key}" '
                    f'style="height:{int(block.height)}px"></div>{caption}</figure>')
        if isinstance(block, Missing):
            return (f'<div class="missing"><strong>{escape(block.title)}:</strong> '
                    f'<span class="why">{escape(block.reason)}</span></div>')
        if isinstance(block, Html):
            return block.markup
        if isinstance(block, Table):
            return self.table(block)
        return self.tab_set(block)

    def table(self, table: Table) -> str:
        key = f"table-{len(self.tables)}"
        self.tables[key] = {"columns": [vars(c) for c in table.columns], "rows": table.rows}
        search = (f'<input class="filter" type="search" placeholder="filter by name or type" '
                  f'data-table="{key}" aria-label="filter rows">' if table.filterable else "")
        caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
        return (f'<div class="table-box">{search}<div class="scroll"><table class="data" id="{key}">'
                f'</table></div>{caption}</div>')

    def tab_set(self, tabs: Tabs) -> str:
        self.tabs += 1
        buttons, panes = [], []
        for index, (label, blocks) in enumerate(tabs.panes):
            pane = f"tabs-{self.tabs}-{index}"
            selected = "true" if index == 0 else "false"
            buttons.append(f'<button class="tab" role="tab" aria-selected="{selected}" data-pane="{pane}">'
                           f"{escape(label)}</button>")
            hidden = "" if index == 0 else " hidden"
            panes.append(f'<div class="pane" id="{pane}" role="tabpanel"{hidden}>{self.blocks(blocks)}</div>')
        return f'<div class="tabs"><div class="tab-bar" role="tablist">{"".join(buttons)}</div>{"".join(panes)}</div>'


def render_page(page: Page, plotly_src: str | None = None) -> str:
    """The page as one HTML document; plotly.js inline, or loaded from the relative path ``plotly_src``."""
    renderer = _Renderer()
    sections = []
    for index, section in enumerate(page.sections):
        intro = f'<p class="intro">{escape(section.intro)}</p>' if section.intro else ""
        sections.append(f'<section id="section-{index}"><h2>{escape(section.title)}</h2>{intro}'
                        f"{renderer.blocks(section.blocks)}</section>")
    navigation = "".join(f'<a href="#section-{i}">{escape(s.title)}</a>' for i, s in enumerate(page.sections))
    facts = "".join(f"<div><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>" for label, value in page.facts)
    notes = "".join(f"<li>{escape(note)}</li>" for note in page.notes)
    data = {"figures": renderer.figures, "tables": renderer.tables}
    plotly = (f'<script src="{escape(plotly_src)}"></script>' if plotly_src is not None
              else f"<script>{_inline_script(plotly_js())}</script>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<title>{escape(page.title)}</title>
<style>{(STATIC / "page.css").read_text()}</style>
</head><body>
<header><h1>{escape(page.title)}</h1><dl class="facts">{facts}</dl>
{f'<ul class="notes">{notes}</ul>' if notes else ""}</header>
<nav>{navigation}</nav>
<main>{"".join(sections)}</main>
<script type="application/json" id="tfprofscale-data">{_json_for_script(data)}</script>
{plotly}
<script>{_inline_script((STATIC / "page.js").read_text())}</script>
</body></html>
"""


def plotly_js() -> str:
    """The plotly.js bundle shipped with the ``plotly`` package (offline, no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_plotly_asset(folder: str | Path) -> Path:
    """Write plotly.js into ``folder`` (once; an identical file is left alone); its path."""
    target = Path(folder) / PLOTLY_ASSET
    script = plotly_js()
    if not (target.is_file() and target.stat().st_size == len(script.encode("utf-8"))):
        target.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(target, script)
    return target


def write_page(path: str | Path, page: Page, plotly_src: str | None = None) -> None:
    """Render ``page`` and write it to ``path`` atomically."""
    output.write_text(path, render_page(page, plotly_src))


def _inline_script(script: str) -> str:
    """A script made safe inside a ``<script>`` element (no early ``</script>``)."""
    return script.replace("</script", "<\\/script")


def _json_for_script(data: Any) -> str:
    """JSON that cannot close its script element; NaN and infinities become null."""
    text = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item"):
        return _finite(value.item())
    return value
