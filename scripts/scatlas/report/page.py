"""The report page: sections of tables and figures, self-contained, readable at 1280 px
(wide tables scroll inside their box; integers print as integers)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222}
h1{margin-bottom:0}nav a{margin-right:1em}section{margin:2em 0;padding-top:.5em;border-top:1px solid #ddd}
.scroll{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:.5em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:2px 6px}th{font-weight:600;max-width:9em}td.n{text-align:right}th{background:#f3f3f3}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}img{max-width:100%}
.muted{color:#666}.bad{color:#a00}
"""


def number(v: object) -> str:
    """Integers as integers, other numbers with three decimals (or in scientific
    notation when tiny), text as it is."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.2e}" if 0 < abs(v) < 1e-3 else f"{v:.3f}"
    return str(v)


def table(frame: pd.DataFrame, *, index: bool = False, max_rows: int = 200) -> str:
    """An HTML table in a horizontally scrolling box."""
    if frame.empty:
        return '<p class="muted">nothing</p>'
    shown = frame.reset_index() if index else frame
    # "macro_f1" -> "macro f1": headers wrap, so wide tables fit the page
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in shown.columns)
    rows = []
    for rec in shown.head(max_rows).itertuples(index=False):
        cells = "".join(
            f'<td class="n">{html.escape(number(v))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{html.escape(number(v))}</td>"
            for v in rec
        )
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="muted">{len(shown) - max_rows} more rows in the TSV</p>'
        if len(shown) > max_rows
        else ""
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>{more}'


def figure(png: str, caption: str) -> str:
    alt = html.escape(caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{png}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def section(key: str, title: str, parts: Sequence[str]) -> str:
    return f'<section id="{key}"><h2>{html.escape(title)}</h2>{"".join(parts)}</section>'


def page(title: str, intro: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """``sections``: (id, title, html) in order."""
    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t, _ in sections)
    body = "".join(h for _, _, h in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{intro}</p><nav>{nav}</nav>{body}</body></html>\n"
    )
