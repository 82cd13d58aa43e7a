"""The report page: self-contained HTML (plots and images embedded as base64 PNG, inline CSS, no script, no
network), laid out for a laptop screen."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
header { background: #1f2d3d; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 4px 0 0; color: #c9d3dd; font-size: 13px; }
nav { font-size: 13px; margin: 10px 0 4px; } nav a { margin-right: 14px; color: #2a5db0; text-decoration: none; }
section { background: #fff; border: 1px solid #e2e5ea; border-radius: 6px; padding: 12px 18px; margin: 14px 0; }
h2 { font-size: 17px; margin: 4px 0 10px; } h3 { font-size: 14px; margin: 14px 0 6px; color: #444; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 10px; }
th, td { border: 1px solid #e2e5ea; padding: 3px 8px; text-align: right; }
th { background: #f0f2f5; } td:first-child, th:first-child { text-align: left; }
.note { color: #8a5a00; background: #fff8e6; border-left: 3px solid #e0a800; padding: 6px 10px; font-size: 13px; }
.kv td:first-child { color: #555; font-weight: 600; }
pre { background: #f6f8fa; padding: 10px; font-size: 12px; overflow-x: auto; max-height: 480px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; } .row > div { flex: 1 1 420px; }
"""


@dataclass(frozen=True)
class Section:
    """One titled part of the page (its HTML body)."""

    anchor: str
    title: str
    body: str


def img(png: bytes, alt: str) -> str:
    """An <img> holding ``png`` inline (a data: URI)."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def note(text: str) -> str:
    """A highlighted one-line note (something missing or unsupported)."""
    return f'<p class="note">{html.escape(text)}</p>'


def table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as an HTML table, floats rounded to ``digits``."""
    return df.to_html(index=False, border=0, float_format=lambda v: f"{v:.{digits}f}", na_rep="")


def key_values(rows: Sequence[tuple[str, object]]) -> str:
    """A two-column table of names and values."""
    cells = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f'<table class="kv">{cells}</table>'


def pre(text: str) -> str:
    """Preformatted text (the config)."""
    return f"<pre>{html.escape(text)}</pre>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>{CSS}</style>'
            f'</head><body><header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><main>'
            f'<nav>{nav}</nav>{body}</main></body></html>')
