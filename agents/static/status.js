// streamrec status page: polls this worker's /metrics and /status and draws them.
// Plain JavaScript and SVG, no libraries. Poll interval: ?interval=<ms> (default 2000).
"use strict";

const HISTORY = 150; // points kept per chart
const params = new URLSearchParams(location.search);
const INTERVAL = Math.max(250, Number(params.get("interval")) || 2000);
const state = { prev: null, throughput: [], latency: [], lag: [], polls: 0 };

// Prometheus text format -> [{name, labels, value}]
function parseMetrics(text) {
  const out = [];
  const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
  const lre = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = re.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(lre)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const select = (samples, name, pred) => samples.filter(s => s.name === name && (!pred || pred(s.labels)));
const sum = (samples, name, pred) => select(samples, name, pred).reduce((a, s) => a + s.value, 0);

// Cumulative histogram buckets {le: count} of one metric (summed over label sets).
function buckets(samples, name) {
  const b = {};
  for (const s of select(samples, name + "_bucket")) {
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    b[le] = (b[le] || 0) + s.value;
  }
  return b;
}

// Same interpolation as PromQL's histogram_quantile over (cur - prev) buckets.
function quantile(q, cur, prev) {
  const les = Object.keys(cur).map(Number).sort((a, b) => a - b);
  const counts = les.map(le => cur[le] - ((prev && prev[le]) || 0));
  const total = counts[counts.length - 1];
  if (!total || total <= 0) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      if (les[i] === Infinity) return les[i - 1] || lower;
      const inBucket = counts[i] - below;
      return lower + (les[i] - lower) * (inBucket > 0 ? (rank - below) / inBucket : 0);
    }
    lower = les[i]; below = counts[i];
  }
  return null;
}

function fmt(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function setText(id, text) { document.getElementById(id).textContent = text; }

function push(series, point) { series.push(point); if (series.length > HISTORY) series.shift(); }

// A line chart in an <svg viewBox="0 0 480 180">: series = [{name, color, values: [[t, v|null], ...]}]
function drawChart(svg, series, unit) {
  const W = 480, H = 180, L = 46, R = 8, T = 16, B = 20;
  const all = series.flatMap(s => s.values.filter(p => p[1] !== null));
  const ts = series.flatMap(s => s.values.map(p => p[0]));
  const ns = "http://www.w3.org/2000/svg";
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B });
  el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B });
  if (!ts.length) { el("text", { x: L + 10, y: H / 2 }, "waiting for data"); return; }
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const ymax = Math.max(1e-9, ...all.map(p => p[1])) * 1.1;
  const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = v => H - B - (H - B - T) * v / ymax;
  for (const frac of [0, 0.5, 1]) {
    el("text", { x: 2, y: y(ymax * frac / 1.1) + 3 }, fmt(ymax * frac / 1.1, ymax < 10 ? 2 : 0) + unit);
  }
  el("text", { x: W - R - 60, y: H - 4 }, `${Math.round(t1 - t0)} s shown`);
  let lx = L + 6;
  for (const s of series) {
    let d = "", pen = false;
    for (const [t, v] of s.values) {
      if (v === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    }
    if (d) el("path", { class: "line", d, stroke: s.color });
    el("text", { x: lx, y: 10, fill: s.color, class: "legend" }, s.name);
    lx += 8 + 6 * s.name.length;
  }
}

function renderLag(samples) {
  const key = l => `${l.group}\u0000${l.topic}\u0000${l.partition}`;
  const lagSeconds = {}, committed = {}, end = {};
  for (const s of select(samples, "kafka_consumergroup_lag_seconds")) lagSeconds[key(s.labels)] = s.value;
  for (const s of select(samples, "kafka_consumergroup_current_offset")) committed[key(s.labels)] = s.value;
  for (const s of select(samples, "kafka_topic_partition_current_offset")) end[`${s.labels.topic}\u0000${s.labels.partition}`] = s.value;
  const rows = select(samples, "kafka_consumergroup_lag").sort((a, b) =>
    a.labels.topic.localeCompare(b.labels.topic) || Number(a.labels.partition) - Number(b.labels.partition));
  const tbody = document.querySelector("#lag-table tbody");
  tbody.textContent = "";
  for (const s of rows) {
    const l = s.labels, k = key(l);
    const tr = document.createElement("tr");
    tr.dataset.topic = l.topic; tr.dataset.partition = l.partition;
    if (s.value > 0) tr.className = "lagging";
    const cells = [
      ["group", l.group], ["topic", l.topic], ["partition", l.partition],
      ["committed", k in committed ? String(committed[k]) : "-"],
      ["end", String(end[`${l.topic}\u0000${l.partition}`] ?? "-")],
      ["lag", String(s.value)], ["lag-seconds", fmt(lagSeconds[k], 1)],
    ];
    for (const [cls, text] of cells) {
      const td = document.createElement("td");
      td.className = cls; td.textContent = text;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  document.getElementById("no-lag").style.display = rows.length ? "none" : "";
  const readAt = select(samples, "streamrec_lag_last_read_timestamp_seconds")[0];
  setText("lag-read-at", readAt ? `read ${new Date(readAt.value * 1000).toLocaleTimeString()}` : "");
  const total = rows.reduce((a, s) => a + s.value, 0);
  setText("total-lag", rows.length ? String(total) : "-");
  const maxSec = Math.max(0, ...Object.values(lagSeconds));
  setText("max-lag-seconds", rows.length ? fmt(maxSec, 1) : "-");
  return rows.length ? total : null;
}

function render(samples, status, now) {
  setText("app-id", status ? status.app_id : "");
  const ready = select(samples, "streamrec_ready")[0];
  const badge = document.getElementById("ready");
  badge.textContent = ready && ready.value === 1 ? "ready" : "not ready";
  badge.className = "badge " + (ready && ready.value === 1 ? "ok" : "bad");
  const info = select(samples, "streamrec_model_info")[0];
  setText("model-version", info ? info.labels.model_version : "-");
  const providers = select(samples, "streamrec_execution_provider", l => true).filter(s => s.value === 1);
  setText("provider", providers.length ? [...new Set(providers.map(s => s.labels.provider))].join(", ") : "-");
  setText("assigned", String(sum(samples, "streamrec_assigned_partitions")));
  const ok = sum(samples, "streamrec_events_total", l => l.outcome === "ok");
  const dlq = sum(samples, "streamrec_events_total", l => l.outcome === "dlq");
  setText("events-ok", String(ok));
  setText("events-dlq", String(dlq));
  setText("refreshes", String(sum(samples, "streamrec_refreshes_total")));
  setText("redis-errors", String(sum(samples, "streamrec_redis_errors_total")));
  const totalLag = renderLag(samples);

  const lat = buckets(samples, "streamrec_event_to_recommendation_seconds");
  const prev = state.prev;
  if (prev) {
    const dt = Math.max(1e-3, now - prev.now);
    push(state.throughput, [now, (ok - prev.ok) / dt, (dlq - prev.dlq) / dt]);
    const p50 = quantile(0.5, lat, prev.lat), p99 = quantile(0.99, lat, prev.lat);
    push(state.latency, [now, p50 === null ? null : p50 * 1000, p99 === null ? null : p99 * 1000]);
  }
  push(state.lag, [now, totalLag]);
  state.prev = { now, ok, dlq, lat };
  drawChart(document.getElementById("chart-throughput"), [
    { name: "ok", color: "#2e6fd8", values: state.throughput.map(p => [p[0], p[1]]) },
    { name: "dlq", color: "#c0392b", values: state.throughput.map(p => [p[0], p[2]]) },
  ], "");
  drawChart(document.getElementById("chart-latency"), [
    { name: "p50", color: "#2e8b57", values: state.latency.map(p => [p[0], p[1]]) },
    { name: "p99", color: "#d68910", values: state.latency.map(p => [p[0], p[2]]) },
  ], "");
  drawChart(document.getElementById("chart-lag"), [
    { name: "lag", color: "#7d3c98", values: state.lag.map(p => [p[0], p[1]]) },
  ], "");
  setText("updated", new Date(now * 1000).toLocaleTimeString());
  state.polls += 1;
  document.body.dataset.polls = String(state.polls);
}

async function poll() {
  try {
    const [m, s] = await Promise.all([
      fetch("/metrics", { cache: "no-store" }).then(r => r.text()),
      fetch("/status", { cache: "no-store" }).then(r => r.json()).catch(() => null),
    ]);
    render(parseMetrics(m), s, Date.now() / 1000);
    setText("error", "");
  } catch (e) {
    setText("error", `cannot reach the worker: ${e}`);
  }
  setTimeout(poll, INTERVAL);
}

poll();
