"""A self-contained HTML report: tables, embedded PNG images (base64), the config. No external assets."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:0.6em 1em}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:0.6em 1em}
img{max-width:100%;image-rendering:pixelated} figure{margin:0.8em 0} figcaption{color:#555;font-size:0.9em}
pre{background:#f7f7f7;padding:0.8em;overflow:auto;font-size:0.8em}
"""


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def array_png(img: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _fmt(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def metrics_table(rows: Mapping[str, Mapping], keys: Sequence[str]) -> str:
    """One row per method; ``key`` shown as ``mean [lo, hi]`` when ``key_ci`` is present."""
    head = "<tr><th>method</th><th>n</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"
    body = []
    for name, m in rows.items():
        cells = [f"<td>{html.escape(name)}</td>", f"<td>{_fmt(m.get('n', ''))}</td>"]
        for k in keys:
            v = m.get(k, float("nan"))
            ci = m.get(f"{k}_ci")
            txt = _fmt(v) + (f" <small>[{_fmt(ci[0])}, {_fmt(ci[1])}]</small>" if ci else "")
            cells.append(f"<td>{txt}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def write_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """Write ``sections`` (heading, HTML body) as one self-contained page."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    p = Path(path)
    p.write_text("".join(parts), encoding="utf-8")
    return p


def image_html(png: bytes, caption: str = "") -> str:
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{png_data_uri(png)}' alt='{html.escape(caption)}'>{cap}</figure>"


def config_html(cfg: Mapping) -> str:
    return f"<pre>{html.escape(json.dumps(cfg, indent=2, sort_keys=True))}</pre>"
