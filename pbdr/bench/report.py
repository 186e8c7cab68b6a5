"""What ``pbdr bench run`` writes: ``results.json`` (everything, machine
readable), ``report.md`` (tables), ``index.html`` (the tables and, per case,
derivative / FD / difference images on one diverging colour scale with a
colour bar) and ``summary.png`` (block error against seconds per gradient,
one colour per integrator)."""
from __future__ import annotations

import html
import json
import os
import platform
from datetime import date
from typing import Any, Sequence

import numpy as np

from ..imageio import atomic_path, diverging, sheet, signed_scale, write_exr, write_png
from .manifest import Case
from .refs import Reference
from .run import Outcome
from .score import FAILED, OK, UNSUPPORTED

FILES = ("results.json", "report.md", "index.html", "summary.png")


def machine() -> str:
    """``N-core CPU (platform)``: what the timings were measured on."""
    return f"{os.cpu_count()}-core {platform.machine()} CPU, {platform.system()}"


def _fmt(value: float | None, kind: str) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    if kind == "pct":
        return f"{value:.1%}" if value < 10 else f"{value:.3g}x"
    if kind == "z":
        return f"{value:+.2f}" if abs(value) < 1e4 else f"{value:+.2g}"
    if kind == "s":
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return f"{value:.3g}"


def verdict(outcome: Outcome) -> str:
    """``pass`` / ``FAIL`` / ``unsupported`` / ``failed``."""
    s = outcome.score
    if s.status != OK:
        return s.status
    return "pass" if s.passed else "FAIL"


def summary_rows(outcomes: Sequence[Outcome], integrators: Sequence[str]) -> list[list[str]]:
    """Per integrator: cases passed, disagreeing, unsupported and failed, and
    the median seconds per gradient and efficiency over the cases it ran."""
    rows = []
    for name in integrators:
        mine = [o for o in outcomes if o.integrator == name]
        ok = [o for o in mine if o.score.status == OK]
        passed = [o.case for o in ok if o.score.passed]
        fails = [o.case for o in ok if not o.score.passed]
        eff = [o.score.efficiency for o in ok if o.score.efficiency is not None]
        secs = [o.score.seconds for o in ok if o.score.seconds is not None]
        rows.append([f"`{name}`", str(len(passed)), ", ".join(fails) or "—",
                     str(sum(o.score.status == UNSUPPORTED for o in mine)),
                     ", ".join(o.case for o in mine if o.score.status == FAILED) or "—",
                     _fmt(float(np.median(secs)) if secs else None, "s"),
                     _fmt(float(np.median(eff)) if eff else None, "g")])
    return rows


def matrix_rows(outcomes: Sequence[Outcome], cases: Sequence[Case], integrators: Sequence[str]) -> list[list[str]]:
    """Case x integrator: block error (z for totals-only), with the verdict."""
    by = {(o.case, o.integrator): o for o in outcomes}
    rows = []
    for c in cases:
        row = [c.name, c.class_]
        for name in integrators:
            o = by.get((c.name, name))
            if o is None:
                row.append("")
            elif o.score.status != OK:
                row.append(o.score.status)
            else:
                s = o.score
                shown = _fmt(s.block_error, "pct") if s.block_error is not None else f"z {_fmt(s.z, 'z')}"
                row.append(f"{shown} {'✓' if s.passed else '✗'}")
        rows.append(row)
    return rows


DETAIL_HEADER = ["case", "integrator", "result", "block error (noise alone)", "z", "s.e./FD", "s/grad",
                 "efficiency", "note"]


def detail_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """One row per integrator and case with every number (or the reason it has none)."""
    rows = []
    for o in outcomes:
        s = o.score
        if s.status != OK:
            rows.append([o.case, f"`{o.integrator}`", s.status, "—", "—", "—", "—", "—", s.reason])
            continue
        block = f"{_fmt(s.block_error, 'pct')} ({_fmt(s.block_noise, 'pct')})" if s.block_error is not None \
            else "totals only (reverse mode)"
        eff = _fmt(s.efficiency, "g") if s.mode == "forward" else f"{_fmt(s.total_efficiency, 'g')} (total)"
        rows.append([o.case, f"`{o.integrator}`", verdict(o), block, _fmt(s.z, "z"), _fmt(s.rel_se, "pct"),
                     _fmt(s.seconds, "s"), eff, s.warning])
    return rows


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header))] + [line(r) for r in rows])


SUMMARY_HEADER = ["integrator", "pass", "disagree with FD", "unsupported", "failed", "median s/grad",
                  "median efficiency"]


def markdown(outcomes: Sequence[Outcome], cases: Sequence[Case], integrators: Sequence[str],
             meta: dict[str, Any]) -> str:
    """The whole ``report.md``."""
    parts = [
        "# pbdr bench report", "",
        f"Date {meta['date']}; mitsuba {meta['mitsuba']}, drjit {meta['drjit']}, variant {meta['variant']}; "
        f"{meta['machine']}.", "",
        f"Command: `{meta['command']}`", "",
        f"{meta['spp']} spp, {meta['seeds']} seeds per integrator and case (after one warm-up gradient); "
        f"references: central finite differences with common random numbers (see each case's ref.json).",
        "", "## Summary", "", md_table(SUMMARY_HEADER, summary_rows(outcomes, integrators)), "",
        "## Block error by case", "",
        "Block error over 8x8-pixel block sums relative to FD (z of the total for reverse-only "
        "integrators); ✓: agrees with FD (|z| <= 4 and block χ² <= 3).", "",
        md_table(["case", "class"] + [f"`{n}`" for n in integrators], matrix_rows(outcomes, cases, integrators)),
        "", "## All results", "",
        "*s.e./FD*: standard error of the derivative's total over seeds relative to |FD total|; "
        "*efficiency*: 1 / (variance of one gradient's block sums relative to ||FD blocks||² x seconds).", "",
        md_table(DETAIL_HEADER, detail_rows(outcomes)), ""]
    return "\n".join(parts)


def write_text(path: str, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def case_images(out: str, case: Case, ref: Reference, outcomes: Sequence[Outcome]) -> dict[str, str]:
    """Write the case's FD image and one derivative / FD / difference sheet per
    integrator with images, all on the FD's colour scale; return relative PNG paths."""
    folder = os.path.join(out, "images", case.name)
    fd = ref.fd.mean
    scale = signed_scale(fd)
    paths = {}
    rel = os.path.join("images", case.name, "fd.png")
    write_png(os.path.join(out, rel), sheet([diverging(fd, scale)], ["finite differences"], scale))
    write_exr(os.path.join(folder, "fd.exr"), fd)
    paths["fd"] = rel
    for o in outcomes:
        if o.mean is None:
            continue
        rel = os.path.join("images", case.name, f"{o.integrator}.png")
        write_png(os.path.join(out, rel), sheet(
            [diverging(o.mean, scale), diverging(fd, scale), diverging(o.mean - fd, scale)],
            [o.integrator, "finite differences", "difference"], scale))
        write_exr(os.path.join(folder, f"{o.integrator}.exr"), o.mean)
        paths[o.integrator] = rel
    return paths


def summary_plot(path: str, outcomes: Sequence[Outcome], integrators: Sequence[str]) -> None:
    """Block error against seconds per gradient (log-log), one colour and
    marker per integrator, one point per case it ran; hollow markers disagree with FD."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    markers = "osD^vP*Xh<>"
    for i, name in enumerate(integrators):
        pts = [o.score for o in outcomes if o.integrator == name and o.score.status == OK
               and o.score.block_error is not None and o.score.seconds]
        if not pts:
            continue
        colour = plt.cm.tab10(i % 10)
        x = np.array([s.seconds for s in pts])
        y = np.maximum(np.array([s.block_error for s in pts]), 1e-4)
        good = np.array([bool(s.passed) for s in pts])
        m = markers[i % len(markers)]
        if good.any():
            ax.scatter(x[good], y[good], marker=m, color=colour, label=name, s=36)
        if (~good).any():
            ax.scatter(x[~good], y[~good], marker=m, facecolors="none", edgecolors=colour, s=36,
                       label=None if good.any() else name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per gradient")
    ax.set_ylabel("block error vs FD (8x8 blocks)")
    ax.set_title("pbdr bench: error against time (filled: agrees with FD)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table (cells escaped; Markdown code ticks dropped)."""
    def cell(tag: str, text: str) -> str:
        return f"<{tag}>{html.escape(str(text).replace('`', ''))}</{tag}>"
    head = "<tr>" + "".join(cell("th", h) for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", c) for c in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}"
         "img{image-rendering:pixelated;margin:4px 0}.case{margin-top:2.5em}")


def html_page(outcomes: Sequence[Outcome], cases: Sequence[Case], integrators: Sequence[str],
              meta: dict[str, Any], images: dict[str, dict[str, str]]) -> str:
    """The ``index.html`` page."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>pbdr bench</title>"
             f"<style>{STYLE}</style></head><body><h1>pbdr bench</h1>",
             f"<p>{e(meta['date'])}; mitsuba {e(meta['mitsuba'])}, drjit {e(meta['drjit'])}, "
             f"{e(meta['variant'])}; {e(meta['machine'])}<br>command: <code>{e(meta['command'])}</code></p>",
             "<h2>Summary</h2>", html_table(SUMMARY_HEADER, summary_rows(outcomes, integrators)),
             "<img src='summary.png' alt='error against time'>",
             "<h2>Block error by case</h2>",
             html_table(["case", "class"] + list(integrators), matrix_rows(outcomes, cases, integrators))]
    for c in cases:
        mine = [o for o in outcomes if o.case == c.name]
        parts.append(f"<div class='case'><h2 id='{e(c.name)}'>{e(c.name)}</h2>"
                     f"<p>{e(c.class_)}: <code>{e(c.describe())}</code> in <code>{e(os.path.basename(c.scene))}"
                     f"</code>, eps {c.eps:g}. Derivative, finite differences and their difference share one "
                     f"colour scale (the bar at the right).</p>")
        parts.append(html_table(DETAIL_HEADER, detail_rows(mine)))
        imgs = images.get(c.name, {})
        if "fd" in imgs:
            parts.append(f"<div><img src='{e(imgs['fd'])}' alt='FD'></div>")
        for o in mine:
            if o.integrator in imgs:
                parts.append(f"<div><img src='{e(imgs[o.integrator])}' alt='{e(o.integrator)}'></div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: str, outcomes: Sequence[Outcome], cases: Sequence[Case], refs: dict[str, Reference],
                 integrators: Sequence[str], meta: dict[str, Any]) -> list[str]:
    """Write every file of the report into ``out``; return the main ones' paths."""
    from .refs import versions

    meta = {"date": date.today().isoformat(), "machine": machine(), **versions(), **meta}
    os.makedirs(out, exist_ok=True)
    images = {c.name: case_images(out, c, refs[c.name], [o for o in outcomes if o.case == c.name]) for c in cases}
    results = {**meta, "integrators": list(integrators), "cases": [
        {"name": c.name, "class": c.class_, "scene": os.path.basename(c.scene), "param": c.param,
         "perturbation": c.perturbation, "vector": c.vector, "eps": c.eps, "res": c.res,
         "reference": {k: v for k, v in refs[c.name].meta.items() if k != "definition"},
         "results": {o.integrator: {**o.score.as_dict(), **o.extra} for o in outcomes if o.case == c.name}}
        for c in cases]}
    paths = [os.path.join(out, f) for f in FILES]
    write_text(paths[0], json.dumps(results, indent=1, default=float) + "\n")
    write_text(paths[1], markdown(outcomes, cases, integrators, meta))
    write_text(paths[2], html_page(outcomes, cases, integrators, meta, images))
    summary_plot(paths[3], outcomes, integrators)
    return paths
