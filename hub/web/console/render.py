"""Rendering console pages: the Jinja2 environment (autoescaped), formatting filters, links to the client in
each connected system, and inline SVG charts (no chart library, nothing fetched from the internet)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, Undefined, pass_context, select_autoescape
from markupsafe import Markup, escape

from hub.web.console.i18n import DEFAULT_LANGUAGE, translator

HERE = Path(__file__).parent

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@pass_context
def when_in_zone(context: Any, value: Any, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """``when`` in the console's time zone (``HUB_CONSOLE__TIMEZONE``)."""
    return when(value, fmt, context.get("tz") or UTC)


def when(value: Any, fmt: str = "%d.%m.%Y %H:%M", tz: Any = UTC) -> str:
    if value is None or value == "" or isinstance(value, Undefined):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(tz).strftime(fmt)
    return str(value)


def phone(value: Any) -> str:
    """A stored (E.164) number as people read it: +79161234567 → +7 916 123-45-67."""
    import phonenumbers

    text = "" if value is None or isinstance(value, Undefined) else str(value)
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def health_text(value: Any) -> str:
    """A plugin's health detail as a person reads it (``requests 94, status ok``), not as a Python dict."""
    if isinstance(value, dict):
        parts = []
        for key, inner in value.items():
            text = health_text(inner)
            parts.append(f"{key}: {text}" if isinstance(inner, dict) else f"{key} {text}")
        return "; ".join(parts) if any(isinstance(v, dict) for v in value.values()) else ", ".join(parts)
    if isinstance(value, list | tuple):
        return ", ".join(health_text(v) for v in value) or "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return "—" if value is None else str(value)


def duration(seconds: Any) -> str:
    if isinstance(seconds, Undefined):
        return ""
    try:
        total = int(float(seconds))
    except (TypeError, ValueError):
        return ""
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def money(value: Any) -> str:
    if value is None or isinstance(value, Undefined):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:,.0f}".replace(",", "\u00a0")


def provenance(p: dict[str, Any] | None) -> str:
    """The hover text of a field: where its value came from and when."""
    if not p or isinstance(p, Undefined):
        return ""
    return f"{p.get('s') or '?'} · {when(p.get('t'), '%d.%m.%Y %H:%M:%S')}"


_ENTITY_PATHS = {
    "bitrix24": {"contact": "crm/contact/details/{id}/", "company": "crm/company/details/{id}/",
                 "deal": "crm/deal/details/{id}/", "lead": "crm/lead/details/{id}/"},
    "amocrm": {"contact": "contacts/detail/{id}", "company": "companies/detail/{id}", "lead": "leads/detail/{id}"},
}  # fmt: skip


def external_url(ref: Any) -> str | None:
    """The page of a ref in its own system (Bitrix24 card, amoCRM card), or ``None`` when it has no web page."""
    system = getattr(ref, "system", None) or (ref.get("system") if isinstance(ref, dict) else None)
    account = getattr(ref, "account", None) or (ref.get("account") if isinstance(ref, dict) else "") or ""
    entity = getattr(ref, "entity", None) or (ref.get("entity") if isinstance(ref, dict) else None)
    ext_id = getattr(ref, "id", None) or (ref.get("id") if isinstance(ref, dict) else None)
    paths = _ENTITY_PATHS.get(str(system), {})
    path = paths.get(str(entity))
    if not path or not account or ext_id is None:
        return None
    base = (
        account
        if "://" in account
        else (f"http://{account}" if account.startswith(("127.", "localhost")) else f"https://{account}")
    )
    return f"{base.rstrip('/')}/{path.format(id=ext_id)}"


def query(request: Request, **changes: Any) -> str:
    """The current query string with some parameters changed (``None`` removes one): pagination links."""
    params = {k: v for k, v in request.query_params.multi_items() if k not in changes}
    pairs = list(params.items()) + [(k, v) for k, v in changes.items() if v is not None and v != ""]
    return "?" + urlencode(pairs)


def bar_chart(
    labels: list[str], series: list[tuple[str, list[float], str]], *, height: int = 220, stacked: bool = True
) -> Markup:
    """Vertical bars, one group per label; ``series`` is (name, values, css colour class). Text is escaped."""
    if not labels:
        return Markup("")
    width = max(320, 48 * len(labels) + 60)
    top = (
        max(
            (sum(vals[i] for _, vals, _ in series) if stacked else max(vals[i] for _, vals, _ in series))
            for i in range(len(labels))
        )
        or 1.0
    )
    plot_h = height - 50
    slot = (width - 50) / len(labels)
    bar_w = max(6.0, slot * 0.6 / (1 if stacked else len(series)))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="40" y1="{plot_h + 10}" x2="{width - 5}" y2="{plot_h + 10}" class="axis"/>',
        f'<text x="36" y="16" class="tick" text-anchor="end">{_num(top)}</text>',
    ]
    for i, label in enumerate(labels):
        x0 = 45 + i * slot
        base = plot_h + 10.0
        for j, (name, values, css) in enumerate(series):
            value = values[i]
            h = plot_h * value / top
            x = x0 if stacked else x0 + j * bar_w
            y = base - h if stacked else plot_h + 10 - h
            if value:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" class="{escape(css)}">'
                    f"<title>{escape(label)} · {escape(name)}: {_num(value)}</title></rect>"
                )
            if stacked:
                base -= h
        parts.append(
            f'<text x="{x0 + bar_w / 2:.1f}" y="{height - 22}" class="tick" text-anchor="middle">'
            f"{escape(label[:9] + '…' if len(label) > 10 else label)}</text>"
        )
    legend_x = 45.0
    for name, _values, css in series:
        parts.append(f'<rect x="{legend_x:.0f}" y="{height - 12}" width="10" height="10" class="{escape(css)}"/>')
        parts.append(f'<text x="{legend_x + 14:.0f}" y="{height - 3}" class="tick">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def report_chart(report: Any, gettext: Any) -> Markup:
    """The chart of a report (``hub.core.reports.Chart``): one bar group per row, one series per column."""
    chart = report.chart
    if chart is None or not report.rows:
        return Markup("")
    labels = [str(row.get(chart.label) or "—") for row in report.rows]
    titles = {c.key: c.title for c in report.columns}
    series = [
        (gettext(titles.get(key, key)), [float(row.get(key) or 0) for row in report.rows], css)
        for key, css in chart.series
    ]
    return bar_chart(labels, series, stacked=chart.stacked)


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


env.filters.update(
    when=when_in_zone,
    phone=phone,
    health=health_text,
    duration=duration,
    money=money,
    provenance=provenance,
    external_url=external_url,
)
env.globals.update(bar_chart=bar_chart, report_chart=report_chart)


def page(request: Request, template: str, viewer: Any = None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` for the viewer, in their language, with the CSRF token every form needs."""
    language = viewer.user.language if viewer is not None else DEFAULT_LANGUAGE
    guard = getattr(request.app.state, "console_guard", None)
    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        user=viewer.user if viewer is not None else None,
        csrf=viewer.csrf if viewer is not None else context.pop("login_csrf", ""),
        lang=language,
        _=translator(language),
        q=lambda **changes: query(request, **changes),
        tz=guard.zone if guard is not None else UTC,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


# Pages are private and built for this hub only: never cached, never framed, scripts only from the hub itself.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}
