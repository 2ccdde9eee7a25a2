"""The replenishment page's chart: history, forecast and its intervals, drawn
server-side as SVG (matplotlib, no JavaScript, no CDN) in the admin's colours."""

from __future__ import annotations

import datetime
import io

# Django admin's palette: header blue, link blue, light accent.
HISTORY = "#417690"
FORECAST = "#ba2121"
BAND_80 = "#f5c6a5"
BAND_95 = "#fbe6d6"
TEXT = "#333333"


def forecast_chart_svg(
    *,
    history: list[tuple[datetime.date, int]],
    as_of: datetime.date,
    forecast: dict[str, list[float]],
    title: str,
) -> str:
    """An SVG document: daily units sold (bars) and the forecast from `as_of` (line) with
    its 80 % and 95 % intervals (bands)."""
    # Imported here: web processes that never draw a chart do not carry matplotlib. A
    # Figure of its own, never pyplot: no global state, no GUI backend, safe in threads.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.6, 3.6), dpi=100)
    axes = figure.add_subplot()
    if history:
        axes.bar(
            [day for day, _ in history],
            [units for _, units in history],
            width=0.8,
            color=HISTORY,
            alpha=0.75,
            label="sold per day",
        )
    mean = forecast.get("mean") or []
    if mean:
        days = [as_of + datetime.timedelta(days=n) for n in range(len(mean))]
        axes.fill_between(days, forecast["lo95"], forecast["hi95"], color=BAND_95, label="95 %")
        axes.fill_between(days, forecast["lo80"], forecast["hi80"], color=BAND_80, label="80 %")
        axes.plot(days, mean, color=FORECAST, linewidth=1.8, label="forecast")
    axes.axvline(as_of, color=TEXT, linewidth=0.6, linestyle=":")
    axes.set_title(title, fontsize=10, color=TEXT, loc="left")
    axes.set_ylabel("units per day", fontsize=9, color=TEXT)
    axes.set_ylim(bottom=0)
    axes.tick_params(labelsize=8, colors=TEXT)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=8, frameon=False, loc="upper left", ncol=4)
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    # Inline in the page: the <svg> element alone, without the XML prologue and doctype.
    return svg[svg.index("<svg") :]
