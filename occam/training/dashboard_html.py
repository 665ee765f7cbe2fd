"""A :class:`~occam.training.snapshot.ProgressSnapshot` as HTML: the curves as a small hand-written SVG and
the numbers as tables. No matplotlib while training: drawing a figure every few seconds costs the driver tens
of milliseconds of CPU that the ranks (on the same machine, embedded) would miss; this costs well under one.
Every name that comes from the ranks (metric names) is escaped.
"""

from __future__ import annotations

import html
import math

from occam.training.snapshot import ProgressSnapshot

WIDTH, HEIGHT, PAD = 300, 160, 30
TRAIN_COLOUR, VAL_COLOUR, BATCH_COLOUR = "#1f77b4", "#ff7f0e", "#aec7e8"
#: Curves drawn side by side, at most: loss and the first metrics.
MAX_PANELS = 3


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``?`` when unknown."""
    if seconds is None or math.isnan(seconds):
        return "?"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def panels(history: dict[str, list[float]], batch_curves: dict[str, list[tuple[float, float]]]) -> list[str]:
    """The metrics to draw, one panel each: ``loss`` first, then the others (``val_x`` is drawn with ``x``)."""
    names = [n for n in [*history, *batch_curves] if not n.startswith("val_")]
    names += [n[4:] for n in history if n.startswith("val_")]
    ordered = sorted(dict.fromkeys(names), key=lambda n: (n != "loss", names.index(n)))
    return ordered[:MAX_PANELS]


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def svg_panel(name: str, series: list[tuple[str, str, list[tuple[float, float]]]], x_max: float) -> str:
    """One metric's SVG: ``series`` as ``(label, colour, points)``, x from 0 to ``x_max`` epochs."""
    points = [p for _, _, pts in series for p in _finite(pts)]
    if points:
        y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    else:
        y_min, y_max = 0.0, 1.0
    if y_max - y_min < 1e-12:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    x_max = max(x_max, 1.0)

    def scaled(x: float, y: float) -> tuple[float, float]:
        return (
            PAD + (WIDTH - 2 * PAD) * x / x_max,
            HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y - y_min) / (y_max - y_min),
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="10">',
        f'<text x="{WIDTH / 2}" y="12" text-anchor="middle" font-weight="bold">{html.escape(name)}</text>',
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        'fill="none" stroke="#ccc"/>',
        f'<text x="{PAD - 2}" y="{PAD + 4}" text-anchor="end">{y_max:.3g}</text>',
        f'<text x="{PAD - 2}" y="{HEIGHT - PAD}" text-anchor="end">{y_min:.3g}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 12}" text-anchor="end">epoch {x_max:g}</text>',
    ]
    legend_x = PAD
    for label, colour, pts in series:
        finite = _finite(pts)
        if len(finite) > 1:
            path = " ".join("{:.1f},{:.1f}".format(*scaled(x, y)) for x, y in finite)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        for px, py in (scaled(x, y) for x, y in finite) if len(finite) <= 50 and label != "batches" else []:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour}"/>')
        if finite:
            parts.append(f'<text x="{legend_x}" y="{HEIGHT - 6}" fill="{colour}">{html.escape(label)}</text>')
            legend_x += 8 + 6 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def curves_svg(snapshot: ProgressSnapshot) -> str:
    """The loss and metric curves of ``snapshot``: within-epoch running values, then train and validation per
    epoch (the points at the epochs' ends)."""
    x_max = float(snapshot.epochs)
    out = []
    for name in panels(snapshot.history, snapshot.batch_curves):
        epochs = [float(e) for e in snapshot.history_epochs]
        series = [
            ("batches", BATCH_COLOUR, snapshot.batch_curves.get(name, [])),
            ("train", TRAIN_COLOUR, list(zip(epochs, snapshot.history.get(name, []), strict=False))),
            ("validation", VAL_COLOUR, list(zip(epochs, snapshot.history.get(f"val_{name}", []), strict=False))),
        ]
        out.append(svg_panel(name, series, x_max))
    return "".join(out)


def _resource_cells(resources: dict[str, float], gpus: bool) -> str:
    def cell(key: str, fmt: str) -> str:
        return f"<td>{format(resources[key], fmt)}</td>" if key in resources else "<td>-</td>"

    cells = cell("cpu_percent", ".0f") + cell("memory_mb", ".0f")
    return cells + (cell("gpu_percent", ".0f") + cell("gpu_memory_mb", ".0f") if gpus else "")


def stats_html(snapshot: ProgressSnapshot) -> str:
    """The numbers: epoch and batch, times, throughput in all and per rank, each rank's resources."""
    last_epoch = snapshot.epoch_seconds[-1] if snapshot.epoch_seconds else None
    batch = f", batch {snapshot.batch}/{snapshot.steps}" if snapshot.steps and snapshot.state == "training" else ""
    head = (
        f"<b>{html.escape(snapshot.state)}</b>: epoch {snapshot.epoch}/{snapshot.epochs}{batch} "
        f"({snapshot.epochs_done} done) &middot; {snapshot.samples_per_second:,.0f} samples/s in all "
        f"&middot; elapsed {format_seconds(snapshot.elapsed_seconds)} &middot; last epoch "
        f"{format_seconds(last_epoch)} &middot; ETA {format_seconds(snapshot.eta_seconds)}"
    )
    gpus = any("gpu_percent" in view.resources for view in snapshot.ranks.values())
    gpu_head = "<th>GPU %</th><th>GPU MB</th>" if gpus else ""
    rows = "".join(
        f"<tr><td>{rank}</td><td>{view.samples_per_second:,.0f}</td>{_resource_cells(view.resources, gpus)}</tr>"
        for rank, view in sorted(snapshot.ranks.items())
    )
    table = (
        '<table style="font-size:smaller"><tr><th>rank</th><th>samples/s</th><th>CPU %</th><th>memory MB</th>'
        f"{gpu_head}</tr>{rows}</table>"
        if rows
        else ""
    )
    bar = (
        '<div style="background:#eee;width:300px;height:6px">'
        f'<div style="background:{TRAIN_COLOUR};width:{300 * snapshot.fraction_done:.0f}px;height:6px"></div></div>'
    )
    return f"<div>{head}</div>{bar}{table}"


def dashboard_html(snapshot: ProgressSnapshot) -> str:
    """The whole dashboard, one HTML fragment."""
    return f'<div class="occam-dashboard"><div>{curves_svg(snapshot)}</div>{stats_html(snapshot)}</div>'
