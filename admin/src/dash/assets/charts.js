// Saturn dashboard: charts over time, inline SVG drawn from /api/history (no library). Loaded
// after app.js: it wraps the cluster, topic and group views to add their charts below them.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2463b4", "#c0392b", "#27ae60", "#f5a623", "#8e44ad", "#16a085", "#7f8c8d", "#d35400"];

function svgEl(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
function fmtNum(v) {
  if (v == null) return "-";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e4) return String(v);
  return a >= 1e6 ? (v / 1e6).toFixed(1) + "M" : a >= 1e3 ? (v / 1e3).toFixed(1) + "k" : a >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(2);
}
function hhmmss(t) { return new Date(t).toTimeString().slice(0, 8); }

// A line chart: series = [{name, points: [[t, value or null], ...]}]; a null breaks the line.
function chart(title, series, unit, fixedMax) {
  const W = 640, H = 180, L = 52, R = 12, T = 10, B = 22;
  const box = el("div", { class: "chart" }, el("h3", {}, title + (unit ? ` (${unit})` : "")));
  const pts = series.flatMap(s => s.points.filter(p => p[1] != null));
  if (pts.length === 0) {
    box.append(el("p", {}, "(no samples yet: the dashboard takes one every interval)"));
    return box;
  }
  const t0 = Math.min(...pts.map(p => p[0])), t1 = Math.max(t0 + 1000, ...pts.map(p => p[0]));
  const vmin = Math.min(0, ...pts.map(p => p[1]));
  const top = Math.max(...pts.map(p => p[1]));
  const vmax = fixedMax != null ? Math.max(fixedMax, top) : top - vmin < 1e-6 ? vmin + 1 : top;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = v => T + (1 - (v - vmin) / (vmax - vmin)) * (H - T - B);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": title });
  for (const f of [0, 0.5, 1]) {
    const v = vmin + f * (vmax - vmin);
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#d9dee7" }),
      svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#555" }, fmtNum(v)));
  }
  svg.append(svgEl("text", { x: L, y: H - 6, "font-size": 11, fill: "#555" }, hhmmss(t0)),
    svgEl("text", { x: W - R, y: H - 6, "font-size": 11, fill: "#555", "text-anchor": "end" }, hhmmss(t1)));
  const legend = el("div", { class: "legend" });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    let run = [];
    const flush = () => {
      if (run.length === 1) svg.append(svgEl("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, fill: color }));
      if (run.length > 1) svg.append(svgEl("polyline", { points: run.map(p => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
      run = [];
    };
    for (const [t, v] of s.points) { if (v == null) flush(); else run.push([x(t).toFixed(1), y(v).toFixed(1)]); }
    flush();
    const last = s.points.filter(p => p[1] != null).pop();
    const swatch = svgEl("svg", { width: 12, height: 12 }, svgEl("rect", { width: 12, height: 12, fill: color }));
    legend.append(el("span", {}, swatch, ` ${s.name}: ${last ? fmtNum(last[1]) : "-"} `));
  });
  box.append(svg, legend);
  return box;
}

function historyTitle(h) {
  return `Over time: a sample every ${h.intervalMs / 1000} s, the last ${h.samples.length} of at most ${h.capacity}`;
}

// Adds `add(...args)`'s nodes below a view once it has rendered (unless the page changed).
function withCharts(name, add) {
  const base = views[name];
  views[name] = async (...args) => {
    await base(...args);
    const here = location.hash;
    let nodes;
    try { nodes = await add(...args); } catch (e) { nodes = [el("p", { class: "err" }, "charts: " + e.message)]; }
    if (location.hash === here) view.append(...nodes);
  };
}

withCharts("cluster", async () => {
  const h = await api("/api/history");
  const keys = [...new Set(h.samples.flatMap(s => Object.keys(s.brokers)))].sort();
  const series = (f, scale) => keys.map(k => ({ name: k, points: h.samples.map(s => {
    const b = s.brokers[k]; return [s.t, b && b[f] != null ? b[f] * (scale || 1) : null]; }) }));
  return [el("h2", {}, historyTitle(h)), chart("Put rate per broker", series("putRate"), "msg/s"),
    chart("Get rate per broker", series("getRate"), "msg/s"), chart("Disk use per broker", series("diskRatio", 100), "%", 100)];
});

withCharts("topic", async name => {
  const h = await api("/api/history?topic=" + encodeURIComponent(name));
  const s = f => h.samples.map(p => [p.t, p[f]]);
  return [el("p", {}, linkTo("#tail/" + encodeURIComponent(name), "Live tail of " + name)), el("h2", {}, historyTitle(h)),
    chart("In and out rates", [{ name: "in (stored)", points: s("inRate") }, { name: "out (committed by groups)", points: s("outRate") }], "msg/s")];
});

withCharts("group", async name => {
  const h = await api("/api/history?group=" + encodeURIComponent(name));
  const s = f => h.samples.map(p => [p.t, p[f]]);
  return [el("h2", {}, historyTitle(h)), chart("Total lag", [{ name: "lag", points: s("lag") }], "messages"),
    chart("Consume rate", [{ name: "committed", points: s("consumeRate") }], "msg/s")];
});
