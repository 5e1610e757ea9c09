"""``/ui``: one self-contained status page, and the JSON it refreshes from (``/ui/data.json``).

No build step and nothing fetched from elsewhere: the page is the string below, its script draws the
usage chart as inline SVG and puts every value into the page with ``textContent`` (model names,
request ids and scenarios come from configs and clients: never parsed as HTML). The Content Security
Policy allows that one script (by hash), inline styles and requests to occ itself, nothing more.

Both routes sit behind the client keys like ``/status``. A browser cannot send ``x-api-key`` when
it opens a page, so ``/ui`` also takes the key as the password of HTTP Basic auth (any user name):
the browser asks once, and sends it again with every refresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

import trio

from occ.observe.logs import get_logger
from occ.server.state import ServerState
from occ.server.usage_writer import current_ledger, flush_usage

__all__ = ["PAGE", "PAGE_HEADERS", "basic_auth_as_key", "local_midnight", "ui_data", "usage_today"]

log = get_logger("occ.usage")

_SCRIPT = r"""
"use strict";
const DATA_URL = location.pathname.replace(/\/?$/, "/data.json");
const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function fmtInt(n) { return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"); }
function fmtCost(c) { return c === null || c === undefined ? "-" : "$" + Number(c).toFixed(c < 1 ? 4 : 2); }
function fmtSec(s) { return s === null || s === undefined ? "-" : Number(s).toFixed(2) + "s"; }
function fmtTime(ts) { return new Date(ts * 1000).toLocaleTimeString(); }
function row(cells, cls) {
  const tr = el("tr", undefined, cls);
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function fill(id, rows) {
  const body = document.getElementById(id);
  body.replaceChildren(...rows);
}

function drawBreakers(models) {
  const rows = [];
  for (const [label, info] of Object.entries(models || {})) {
    const td = el("td");
    td.appendChild(el("span", info.breaker, "badge " + info.breaker));
    if (info.reopens_in_s) td.appendChild(el("span", " " + Math.round(info.reopens_in_s) + "s"));
    const errors = Object.entries(info.outcomes || {}).filter(([o]) => o !== "ok").reduce((a, [, n]) => a + n, 0);
    const tr = row([label, td, fmtInt(info.requests), fmtInt(errors), fmtSec(info.latency_p50_s),
                    fmtSec(info.latency_p95_s), fmtSec(info.ttft_p50_s)]);
    tr.dataset.model = label;
    rows.push(tr);
  }
  if (!rows.length) rows.push(row(["no models yet"], "empty"));
  fill("breakers-body", rows);
}

function drawRecent(recent) {
  const rows = (recent || []).map(r => {
    const tokens = r.input_tokens === null ? "-" :
      fmtInt(r.input_tokens) + " / " + fmtInt(r.output_tokens) + (r.usage_estimated ? " (est.)" : "");
    const tr = row([fmtTime(r.ts), r.scenario || "-", r.model || "-", r.outcome, tokens, fmtCost(r.cost_usd)],
                   "outcome-" + r.outcome);
    tr.dataset.requestId = r.request_id;
    return tr;
  });
  if (!rows.length) rows.push(row(["no requests yet"], "empty"));
  fill("recent-body", rows);
}

function drawChart(usage) {
  const chart = document.getElementById("chart");
  const note = document.getElementById("usage-note");
  if (!usage || !usage.enabled) {
    chart.replaceChildren();
    note.textContent = usage && usage.error ? "usage ledger: " + usage.error : "usage ledger off (usage.enabled)";
    return;
  }
  note.textContent = "ledger " + usage.path;
  const windows = [["last 24 hours", usage.last_24h || []], ["last 7 days", usage.last_7d || []]];
  const models = [...new Set(windows.flatMap(([, rows]) => rows.map(r => r.model || "-")))].sort();
  const tokensOf = r => r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens;
  const max = Math.max(1, ...windows.flatMap(([, rows]) => rows.map(tokensOf)));
  const barH = 18, gap = 6, labelW = 220, barW = 360, textW = 260;
  const width = labelW + barW + textW;
  let y = 0;
  const root = svg("svg", {width: width, role: "img", "aria-label": "tokens and cost per model"});
  for (const [title, rows] of windows) {
    root.appendChild(svg("text", {x: 0, y: y + 14, class: "title"}, title));
    y += 22;
    const byModel = new Map(rows.map(r => [r.model || "-", r]));
    if (!models.length) {
      root.appendChild(svg("text", {x: 0, y: y + 13, class: "muted"}, "no requests"));
      y += barH + gap;
    }
    for (const model of models) {
      const r = byModel.get(model);
      const tokens = r ? tokensOf(r) : 0;
      const g = svg("g", {class: "bar", "data-window": title, "data-model": model});
      const name = svg("text", {x: 0, y: y + 13}, model.length > 34 ? model.slice(0, 33) + "\u2026" : model);
      name.appendChild(svg("title", {}, model));
      g.appendChild(name);
      g.appendChild(svg("rect", {x: labelW, y: y, height: barH, rx: 3,
                                 width: Math.max(tokens ? 2 : 0, Math.round(barW * tokens / max))}));
      const text = r ? fmtInt(r.requests) + " req, " + fmtInt(tokens) + " tok, " + fmtCost(r.cost_usd) : "-";
      g.appendChild(svg("text", {x: labelW + barW + 8, y: y + 13, class: "value"}, text));
      root.appendChild(g);
      y += barH + gap;
    }
    y += 10;
  }
  root.setAttribute("height", y);
  root.setAttribute("viewBox", "0 0 " + width + " " + y);
  chart.replaceChildren(root);
}

function drawToday(today) {
  document.getElementById("today").textContent = today ?
    fmtInt(today.requests) + " requests, " + fmtInt(today.input_tokens) + " in / " + fmtInt(today.output_tokens) +
    " out tokens, " + fmtCost(today.cost_usd) +
    (today.unpriced_requests ? " (" + today.unpriced_requests + " without a price)" : "") : "-";
}

async function refresh() {
  try {
    const response = await fetch(DATA_URL, {cache: "no-store", credentials: "same-origin"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    const s = data.status;
    document.getElementById("version").textContent = "occ " + s.version;
    document.getElementById("config").textContent = s.config || "-";
    document.getElementById("loaded").textContent = s.config_loaded_at || "-";
    document.getElementById("uptime").textContent = fmtInt(Math.round(s.uptime_s)) + "s";
    document.getElementById("inflight").textContent = fmtInt(s.in_flight);
    fill("notices", (s.notices || []).map(n => el("li", n)));
    drawBreakers(s.models);
    drawRecent(data.recent);
    drawChart(data.usage);
    drawToday(data.usage && data.usage.today);
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "yes";
  } catch (err) {
    document.getElementById("error").textContent = "cannot reach occ: " + err.message;
  }
}
refresh();
setInterval(refresh, 3000);
"""

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.3em; margin: 0 0 .3em; } h2 { font-size: 1.05em; margin: 1.6em 0 .5em; }
table { border-collapse: collapse; min-width: 40em; background: #fff; }
th, td { text-align: left; padding: .25em .8em; border-bottom: 1px solid #e3e6ea; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; }
.meta span { margin-right: 1.2em; } .meta b { font-weight: 600; }
.badge { padding: .05em .5em; border-radius: .6em; background: #dcefe0; color: #1b5e20; }
.badge.open { background: #fbd9d9; color: #8e1b1b; } .badge.half_open { background: #fdf0c4; color: #7a5b00; }
.outcome-error td { color: #8e1b1b; } .outcome-client_cancelled td { color: #777; }
.empty td, .muted { color: #888; fill: #888; }
#chart svg { background: #fff; border: 1px solid #e3e6ea; padding: .6em; }
#chart rect { fill: #4a78c2; } #chart text { font-size: 12px; fill: #1d2330; }
#chart text.title { font-weight: 600; } #chart text.value { fill: #555; }
#error { color: #8e1b1b; }
#notices li { color: #8e1b1b; background: #fdecea; padding: .3em .6em; margin: .2em 0; list-style: none; }
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>occ status</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<h1 id="version">occ</h1>
<div class="meta">
<span>config <b id="config">-</b></span><span>loaded <b id="loaded">-</b></span>
<span>uptime <b id="uptime">-</b></span><span>in flight <b id="inflight">-</b></span>
</div>
<p id="error"></p>
<ul id="notices"></ul>
<h2>Models</h2>
<table id="breakers">
<thead><tr><th>model</th><th>breaker</th><th>requests</th><th>errors</th><th>p50</th><th>p95</th>
<th>ttft p50</th></tr></thead>
<tbody id="breakers-body"></tbody>
</table>
<h2>Usage and cost per model</h2>
<p>today: <b id="today">-</b></p>
<div id="chart"></div>
<p class="muted" id="usage-note"></p>
<h2>Last requests</h2>
<table id="recent">
<thead><tr><th>time</th><th>scenario</th><th>model</th><th>outcome</th><th>tokens in / out</th>
<th>cost</th></tr></thead>
<tbody id="recent-body"></tbody>
</table>
<script>{_SCRIPT}</script>
</body>
</html>
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
PAGE_HEADERS: Mapping[str, str] = {
    "content-security-policy": (f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; "
                                "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


def basic_auth_as_key(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with an HTTP Basic password presented as ``x-api-key`` (for ``/ui`` only)."""
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return dict(headers)
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return dict(headers)
    out = {k: v for k, v in headers.items() if k != "authorization"}
    out["x-api-key"] = decoded.partition(":")[2]
    return out


def local_midnight(now: float | None = None) -> float:
    """The start of today in local time, as unix time (what ``occ status`` calls today)."""
    t = time.localtime(time.time() if now is None else now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


async def usage_today(state: ServerState) -> dict[str, Any] | None:
    """Today's totals from the ledger (pending rows written first), None when the ledger is off."""
    ledger = current_ledger(state)
    if ledger is None:
        return None
    await flush_usage(state)
    try:
        return await trio.to_thread.run_sync(ledger.totals, local_midnight())
    except (sqlite3.Error, OSError) as exc:
        log.warning("usage ledger %s: cannot read it (%s)", ledger.path, exc)
        return {"error": str(exc)}


async def ui_data(state: ServerState) -> dict[str, Any]:
    """What ``/ui`` draws: ``/status``, the last requests, and usage per model over 24 h and 7 days."""
    status = state.observer.status(state.snapshot())
    recent = [row.as_dict() for row in reversed(state.usage.recent)]
    ledger = current_ledger(state)
    usage: dict[str, Any] = {"enabled": ledger is not None}
    if ledger is not None:
        usage["path"] = ledger.path
        await flush_usage(state)
        now = time.time()

        def read() -> tuple[Any, Any, Any]:
            return (ledger.summary("model", now - 86400), ledger.summary("model", now - 7 * 86400),
                    ledger.totals(local_midnight(now)))

        try:
            usage["last_24h"], usage["last_7d"], usage["today"] = await trio.to_thread.run_sync(read)
        except (sqlite3.Error, OSError) as exc:
            log.warning("usage ledger %s: cannot read it (%s)", ledger.path, exc)
            usage.update(enabled=False, error=str(exc))
    return {"status": status, "recent": recent, "usage": usage}
