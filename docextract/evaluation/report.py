"""Rendering an eval report: the table on stderr, the self-contained HTML page, and the
comparison of two reports."""

from __future__ import annotations

import html
from typing import Any, Iterator

from ..console import Console
from ..errors import InputError
from ..fsutil import display_name


def field_rows(schema_report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scalar field, list row set and list column of one schema, worst accuracy first."""
    rows = []
    for path, f in schema_report["fields"].items():
        rows.append({"field": path, "kind": f["kind"], "n": f["n"], "accuracy": f["accuracy"],
                     "precision": f["presence"]["precision"], "recall": f["presence"]["recall"]})
    for path, lst in schema_report["lists"].items():
        rows.append({"field": f"{path}[] rows", "kind": "rows", "n": lst["truth_rows"],
                     "accuracy": None, "precision": lst["precision"], "recall": lst["recall"]})
        for col, f in lst["columns"].items():
            rows.append({"field": f"{path}[].{col}", "kind": f["kind"], "n": f["n"],
                         "accuracy": f["accuracy"], "precision": f["presence"]["precision"],
                         "recall": f["presence"]["recall"]})

    def worst(r: dict[str, Any]) -> tuple:
        value = r["accuracy"] if r["accuracy"] is not None else (
            min(x for x in (r["precision"], r["recall"], 2.0) if x is not None))
        return (value, r["field"])

    return sorted(rows, key=worst)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def headline(report: dict[str, Any]) -> list[str]:
    s = report["summary"]
    lines = [f"{s['documents']} documents: {_pct(s['all_right_rate'])} all fields right, "
             f"{_pct(s['field_accuracy'])} of {s['fields']} fields right, "
             f"{_pct(s['valid_rate'])} valid"]
    if "document_type" in report:
        lines.append(f"document type accuracy {_pct(report['document_type']['accuracy'])}")
    c = report.get("confidence")
    if c:
        cur = next((t for t in c["tradeoff"] if t["current"]), None)
        lines.append(f"confidence: AUROC {_num(c['auroc'])}, ECE {_num(c['ece'])}"
                     + (f"; below {c['threshold']}: {_pct(cur['review_share'])} to review, "
                        f"{_pct(cur['kept_accuracy'])} right among the rest" if cur else ""))
        rr = c.get("record_review")
        if rr:
            lines.append(f"the records' review lists: {_pct(rr['review_share'])} to review, "
                         f"{_pct(rr['kept_accuracy'])} right among the rest")
    sp = report.get("speed", {})
    if sp.get("documents"):
        lines.append(f"speed (record timings): {_num(sp['documents_per_s'], '.3f')} docs/s, "
                     f"{_num(sp['pages_per_s'], '.3f')} pages/s, "
                     f"{_num(sp['tokens_per_s'], '.1f')} tokens/s, "
                     f"{_num(sp['seconds_per_page'], '.2f')} s/page")
    wall = sp.get("wall")
    if wall:
        lines.append(f"speed (wall clock, {wall['documents']} documents extracted now): "
                     f"{_num(wall['documents_per_s'], '.3f')} docs/s, "
                     f"{_num(wall['pages_per_s'], '.3f')} pages/s, "
                     f"{_num(wall['tokens_per_s'], '.1f')} tokens/s, "
                     f"{_num(wall['seconds_per_page'], '.2f')} s/page")
    return lines


def print_tables(report: dict[str, Any], console: Console) -> None:
    """Per schema, fields worst first, then the headline; on stderr."""
    if console.quiet:
        return
    from rich.console import Console as RichConsole
    from rich.table import Table

    rc = RichConsole(file=console.err, no_color=not console.use_color, width=100)
    for name, sr in report["schemas"].items():
        table = Table(title=f"{name}: {sr['documents']} documents, "
                            f"{_pct(sr['all_right_rate'])} all right", title_justify="left")
        for col, just in (("field", "left"), ("kind", "left"), ("n", "right"),
                          ("accuracy", "right"), ("present P", "right"), ("present R", "right")):
            table.add_column(col, justify=just)
        for r in field_rows(sr):
            table.add_row(r["field"], r["kind"], str(r["n"]), _pct(r["accuracy"]),
                          _pct(r["precision"]), _pct(r["recall"]))
        rc.print(table)
    for line in headline(report):
        rc.print(line, highlight=False)


# ---- HTML ----

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1b1b}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;
font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}table.left td,table.left th{text-align:left}.bar{display:inline-block;height:9px;background:#3b7dd8;vertical-align:middle}
.bad{color:#b00020}.ok{color:#1b7f3b}.muted{color:#666;font-size:12px}code{font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: Iterator[list[str]], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    out = [f"<table{attr}><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def _bar(x: float | None) -> str:
    if x is None:
        return "-"
    return f'<span class="bar" style="width:{round(80 * x)}px"></span> {_pct(x)}'


def reliability_svg(bins: list[dict[str, Any]], size: int = 320) -> str:
    """Confidence (x) against accuracy (y): a bar per bin at its accuracy, a dot at (mean
    confidence, accuracy), the diagonal of perfect calibration, the item count above each bar."""
    pad = 40
    inner = size - 2 * pad

    def x(v: float) -> float:
        return pad + v * inner

    def y(v: float) -> float:
        return size - pad - v * inner

    parts = [f'<svg width="{size}" height="{size}" '
             f'viewBox="0 0 {size} {size}" role="img" aria-label="reliability diagram">',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="#fafafa" '
             'stroke="#999"/>',
             f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" '
             'stroke-dasharray="4 3"/>']
    for t in range(0, 11, 2):
        v = t / 10
        parts.append(f'<text x="{x(v)}" y="{size - pad + 14}" font-size="10" '
                     f'text-anchor="middle">{v:.1f}</text>')
        parts.append(f'<text x="{pad - 6}" y="{y(v) + 3}" font-size="10" '
                     f'text-anchor="end">{v:.1f}</text>')
    for b in bins:
        if not b["n"]:
            continue
        left, width = x(b["lo"]) + 1, (b["hi"] - b["lo"]) * inner - 2
        parts.append(f'<rect x="{left:.1f}" y="{y(b["accuracy"]):.1f}" width="{width:.1f}" '
                     f'height="{b["accuracy"] * inner:.1f}" fill="#3b7dd8" fill-opacity="0.55"/>')
        parts.append(f'<circle cx="{x(b["confidence"]):.1f}" cy="{y(b["accuracy"]):.1f}" r="3" '
                     'fill="#b00020"/>')
        parts.append(f'<text x="{left + width / 2:.1f}" y="{y(b["accuracy"]) - 4:.1f}" '
                     f'font-size="9" text-anchor="middle">{b["n"]}</text>')
    parts.append(f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">'
                 'confidence</text>')
    parts.append(f'<text x="12" y="{size / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {size / 2})">accuracy</text></svg>')
    return "".join(parts)


def to_html(report: dict[str, Any]) -> str:
    """One self-contained page: inline CSS and SVG, no scripts, no external resources."""
    run = report.get("run", {})
    body = [f"<h1>docextract eval: {_e(run.get('folder', ''))}</h1>",
            f'<p class="muted">schema {_e(run.get("schema", ""))}; model '
            f'{_e(run.get("model", "-"))}; predictions {_e(run.get("predictions", "-"))}; '
            f'{_e(report.get("created", ""))}; docextract {_e(report.get("docextract", ""))}</p>']
    body += [f"<p>{_e(line)}</p>" for line in headline(report)]
    if "document_type" in report:
        conf = report["document_type"]["confusion"]
        predicted = sorted({p for row in conf.values() for p in row})
        body.append("<h2>Document type (rows: truth, columns: predicted)</h2>")
        body.append(_table(["truth"] + predicted,
                           ([_e(t)] + [str(row.get(p, 0)) for p in predicted]
                            for t, row in sorted(conf.items()))))
    for name, sr in report["schemas"].items():
        body.append(f"<h2>{_e(name)}: {sr['documents']} documents</h2>")
        body.append(f"<p>all fields right {_pct(sr['all_right_rate'])}; valid "
                    f"{_pct(sr['valid_rate'])}; needs review {_pct(sr['needs_review_rate'])}</p>")
        body.append(_table(["field (worst first)", "kind", "n", "accuracy", "present P",
                            "present R"],
                           ([f"<code>{_e(r['field'])}</code>", _e(r["kind"]), str(r["n"]),
                             _bar(r["accuracy"]), _pct(r["precision"]), _pct(r["recall"])]
                            for r in field_rows(sr))))
    c = report.get("confidence")
    body.append("<h2>Confidence</h2>")
    if c:
        body.append(f"<p>{c['fields']} fields with a confidence; AUROC {_num(c['auroc'])}, "
                    f"ECE (10 bins) {_num(c['ece'])}; threshold {c['threshold']} "
                    f"({_e(c.get('threshold_from', ''))}); "
                    f"{c['without_confidence']['fields']} fields without one "
                    f"({c['without_confidence']['wrong']} of them wrong)</p>")
        body.append(reliability_svg(c["bins"]))
        body.append('<p class="muted">Bars: accuracy of the fields in each confidence bin (count '
                    'above); dots: their mean confidence; dashed: perfect calibration.</p>')
        rows = [[("<b>%s</b>" if t["current"] else "%s") % t["threshold"],
                 _pct(t["review_share"]), _pct(t["kept_accuracy"]), str(t["kept"])]
                for t in c["tradeoff"]]
        if c.get("record_review"):
            rr = c["record_review"]
            rows.append(["the records' own review lists", _pct(rr["review_share"]),
                         _pct(rr["kept_accuracy"]), str(rr["kept"])])
        body.append(_table(["review below", "sent to review", "right among the rest", "kept"],
                           iter(rows)))
    else:
        body.append("<p>The records carry no field confidence.</p>")
    sp = report.get("speed", {})
    body.append("<h2>Speed</h2>")
    body.append(_table(["measure", "documents", "pages", "tokens", "seconds", "docs/s", "pages/s",
                        "tokens/s", "s/page"],
                       ([label, str(m["documents"]), str(m["pages"]), str(m["tokens"]),
                         _num(m["seconds"], ".2f"), _num(m["documents_per_s"]),
                         _num(m["pages_per_s"]), _num(m["tokens_per_s"], ".1f"),
                         _num(m["seconds_per_page"], ".2f")]
                        for label, m in (("record timings (sum)", sp), ("wall clock", sp.get("wall")))
                        if m and m.get("documents"))))
    body.append("<h2>Documents</h2>")
    body.append(_table(["document", "truth", "predicted", "valid", "needs review", "all right",
                        "wrong fields"],
                       ([_e(d["name"]), _e(d["schema"]), _e(d["predicted"]), _e(d["valid"]),
                         _e(d["needs_review"]),
                         '<span class="ok">yes</span>' if d["all_right"] else
                         '<span class="bad">no</span>',
                         f'<span class="muted">{_e(", ".join(d["wrong"][:8]))}'
                         f'{" ..." if len(d["wrong"]) > 8 else ""}</span>']
                        for d in report.get("per_document", [])), cls="left"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>docextract eval</title><style>" + _CSS + "</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---- compare ----

def _flat_accuracies(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for name, sr in report.get("schemas", {}).items():
        for r in field_rows(sr):
            out[(name, r["field"])] = r
    return out


def load_report(path: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{display_name(path)}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{display_name(path)}: not a JSON report") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("docextract-eval/"):
        raise InputError(f"{display_name(path)}: not a docextract eval report",
                         hint="give two JSON reports written by 'docextract eval --out'")
    return data


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per field: accuracy (or row precision/recall) in A and B and the change; plus the summary,
    confidence and speed figures side by side."""
    fa, fb = _flat_accuracies(a), _flat_accuracies(b)
    changes = []
    for key in sorted(set(fa) | set(fb)):
        ra, rb = fa.get(key), fb.get(key)
        row: dict[str, Any] = {"schema": key[0], "field": key[1]}
        for metric in ("accuracy", "precision", "recall"):
            va = ra[metric] if ra else None
            vb = rb[metric] if rb else None
            row[metric] = {"a": va, "b": vb,
                           "change": None if va is None or vb is None else round(vb - va, 6)}
        row["status"] = "only in A" if rb is None else "only in B" if ra is None else (
            "changed" if any(row[m]["change"] for m in ("accuracy", "precision", "recall"))
            else "same")
        changes.append(row)

    def pick(r: dict[str, Any], *path: str) -> Any:
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        return r

    overall = {}
    for label, path in (("all_right_rate", ("summary", "all_right_rate")),
                        ("field_accuracy", ("summary", "field_accuracy")),
                        ("valid_rate", ("summary", "valid_rate")),
                        ("document_type_accuracy", ("document_type", "accuracy")),
                        ("auroc", ("confidence", "auroc")), ("ece", ("confidence", "ece")),
                        ("documents_per_s", ("speed", "documents_per_s")),
                        ("seconds_per_page", ("speed", "seconds_per_page"))):
        va, vb = pick(a, *path), pick(b, *path)
        overall[label] = {"a": va, "b": vb, "change": None if va is None or vb is None
                          else round(vb - va, 6)}
    key = lambda r: (r["accuracy"]["change"] if r["accuracy"]["change"] is not None else 0.0,
                     r["schema"], r["field"])
    return {"format": "docextract-eval-compare/1", "a": a.get("run"), "b": b.get("run"),
            "overall": overall, "fields": sorted(changes, key=key)}


def print_compare(diff: dict[str, Any], console: Console) -> None:
    if console.quiet:
        return
    from rich.console import Console as RichConsole
    from rich.table import Table

    rc = RichConsole(file=console.err, no_color=not console.use_color, width=100)
    table = Table(title="changed fields (A -> B), worst change first", title_justify="left")
    for col in ("schema", "field", "accuracy A", "accuracy B", "change", "P/R change"):
        table.add_column(col, justify="left" if col in ("schema", "field") else "right")
    shown = 0
    for r in diff["fields"]:
        if r["status"] == "same":
            continue
        acc = r["accuracy"]
        pr = "/".join(_signed(r[m]["change"]) for m in ("precision", "recall"))
        table.add_row(r["schema"], r["field"] + ("" if r["status"] == "changed"
                                                 else f" ({r['status']})"),
                      _pct(acc["a"]), _pct(acc["b"]), _signed(acc["change"]), pr)
        shown += 1
    if shown:
        rc.print(table)
    else:
        rc.print("no field changed", highlight=False)
    for label, v in diff["overall"].items():
        if v["a"] is not None or v["b"] is not None:
            rc.print(f"{label}: {_num(v['a'])} -> {_num(v['b'])} ({_signed(v['change'])})",
                     highlight=False)


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"
