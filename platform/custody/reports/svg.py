"""Small inline SVG charts for the HTML report: no JavaScript, nothing fetched."""

from __future__ import annotations

from html import escape

WIDTH = 640
COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"]


def bars(values: dict[str, float]) -> str:
    """Horizontal bars, one per label, longest first."""
    items = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
    top = max((v for _, v in items), default=0) or 1
    row, label_w = 22, 200
    height = row * len(items) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = (WIDTH - label_w - 80) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(str(label))}</text>'
        )
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{COLORS[0]}"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(edges: list[float], counts: list[int]) -> str:
    """Vertical bars over bins [edges[i], edges[i+1])."""
    height, base, left = 180, 150, 40
    top = max(counts, default=0) or 1
    step = (WIDTH - left - 10) / max(len(counts), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">']
    for i, count in enumerate(counts):
        h = (base - 20) * count / top
        x = left + i * step
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{base - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}" fill="{COLORS[1]}"/>'
        )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle" font-size="11">{count}</text>'
        )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{base + 14}" text-anchor="middle" font-size="10">{edges[i]:.1f}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#444"/>')
    parts.append(f'<text x="{WIDTH / 2}" y="{height - 4}" text-anchor="middle" font-size="11">score</text></svg>')
    return "".join(parts)


def lines(series: dict[str, list[tuple[float, float]]]) -> str:
    """One polyline per series on shared axes, with the y range labelled."""
    height, left, bottom, top_pad = 240, 50, 200, 20
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (WIDTH - left - 20) / ((x1 - x0) or 1)
    sy = (bottom - top_pad) / ((y1 - y0) or 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">']
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 20}" y2="{bottom}" stroke="#444"/>')
    parts.append(f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{bottom}" stroke="#444"/>')
    parts.append(f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end" font-size="10">{y1:.3g}</text>')
    parts.append(f'<text x="{left - 4}" y="{bottom}" text-anchor="end" font-size="10">{y0:.3g}</text>')
    parts.append(f'<text x="{left}" y="{bottom + 14}" font-size="10">step {x0:g}</text>')
    parts.append(f'<text x="{WIDTH - 20}" y="{bottom + 14}" text-anchor="end" font-size="10">step {x1:g}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{left + (x - x0) * sx:.1f},{bottom - (y - y0) * sy:.1f}" for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<text x="{WIDTH - 140}" y="{top_pad + 14 * i}" font-size="11" fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
