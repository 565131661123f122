// Small dependency-free SVG charts for the dashboard: lineChart, barChart, histogram.
// Each returns an <svg class="chart" role="img"> with a <title>, axes with ticks and labels.
// The viewBox follows the rendered width (a ResizeObserver redraws), so text stays 1:1 in pixels
// and readable from phone width to desktop; before it is laid out it draws at 640 units wide.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2456c9", "#b4480f", "#17703e", "#7a3db8", "#8a5a12", "#0f6e80"];
const INK = "#1d2330", GRID = "#e4e7ed", AXIS = "#8a93a5";
const CHAR_W = 6.4; // approximate width of one 11px character

function s(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null && v !== false) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const tip = (text) => s("title", {}, text);
const fin = (v) => typeof v === "number" && Number.isFinite(v);

/** Round tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo, hi, count = 5) {
  if (!fin(lo) || !fin(hi)) return [0, 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
  const ticks = [];
  for (let v = Math.floor(lo / step + 1e-9) * step; v <= hi + step * 1e-6; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < hi - step * 1e-6) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

function fmtTick(v) {
  if (!fin(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}
const short = (t, n) => (t.length > n ? `${t.slice(0, n - 1)}…` : t);

/** The frame every chart shares: an svg that redraws itself at its rendered width. */
function frame(label, height, draw) {
  const H = Math.max(120, height || 240);
  const svg = s("svg", { class: "chart", role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
  let W = 0;
  const paint = (w) => {
    W = Math.round(Math.min(1400, Math.max(300, w)));
    const parts = draw(W, H);
    svg.setAttribute("viewBox", `0 0 ${W} ${parts.height || H}`);
    svg.replaceChildren(tip(label), ...parts.nodes);
  };
  paint(640);
  if (typeof ResizeObserver === "function") {
    let pending = 0;
    const ro = new ResizeObserver((entries) => {
      const w = entries[entries.length - 1].contentRect.width;
      if (!w || Math.abs(w - W) < 8 || pending) return;
      // Redraw on the next frame, outside the observer's callback (no resize-loop warnings).
      pending = requestAnimationFrame(() => { pending = 0; if (svg.isConnected) paint(w); });
    });
    ro.observe(svg);
  }
  return svg;
}

/** Y axis with grid lines and an optional rotated title; returns nodes. */
function yAxis(ticks, y, left, right, yLabel, top, bottom) {
  const g = s("g", { class: "axis y-axis" });
  for (const t of ticks) {
    const py = y(t);
    g.append(s("line", { x1: left, x2: right, y1: py, y2: py, stroke: GRID }),
      s("text", { x: left - 6, y: py + 4, "text-anchor": "end" }, fmtTick(t)));
  }
  g.append(s("line", { x1: left, x2: left, y1: top, y2: bottom, stroke: AXIS }));
  if (yLabel) {
    const cy = (top + bottom) / 2;
    g.append(s("text", { x: 14, y: cy, "text-anchor": "middle", transform: `rotate(-90 14 ${cy})`, fill: INK, "font-weight": 600 }, yLabel));
  }
  return g;
}

function xTitle(text, cx, y, room) {
  if (!text) return null;
  const t = s("text", { x: cx, y, "text-anchor": "middle", fill: INK, "font-weight": 600 }, short(text, Math.max(8, Math.floor(room / 7))));
  if (t.textContent !== text) t.append(tip(text));
  return t;
}

/** Whisker (interval) from lo to hi at x. */
function whisker(x, ylo, yhi, color, cap = 4) {
  return s("g", { class: "whisker", stroke: color, "stroke-width": 1.5 },
    s("line", { x1: x, x2: x, y1: ylo, y2: yhi }),
    s("line", { x1: x - cap, x2: x + cap, y1: ylo, y2: ylo }),
    s("line", { x1: x - cap, x2: x + cap, y1: yhi, y2: yhi }));
}

function emptyNodes(W, H) {
  return { nodes: [s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No data")] };
}

/** Categorical x labels that fit: horizontal when they fit, else rotated; returns {rotate, maxChars, bottom}. */
function labelPlan(labels, slot) {
  const longest = Math.max(1, ...labels.map((l) => String(l).length));
  if (longest * CHAR_W + 6 <= slot) return { rotate: false, maxChars: longest, bottom: 28 };
  const maxChars = Math.min(longest, 22);
  return { rotate: true, maxChars, bottom: Math.round(18 + maxChars * CHAR_W * 0.64) };
}

function xCatLabel(text, x, yTop, plan) {
  const label = short(String(text), plan.maxChars);
  const t = plan.rotate
    ? s("text", { x, y: yTop + 12, "text-anchor": "end", transform: `rotate(-40 ${x} ${yTop + 12})` }, label)
    : s("text", { x, y: yTop + 16, "text-anchor": "middle" }, label);
  if (label !== String(text)) t.append(tip(String(text)));
  return t;
}

/**
 * lineChart(series, {xLabel, yLabel, yMin, yMax, height})
 * series = [{name, points: [{x, y, lo?, hi?}]}]; x numbers or strings (categorical, in first-seen order).
 * lo/hi draw an interval band (and whiskers at each point); a legend appears when there is more than one series.
 * Optional opts.xCategories: the order of categorical x values (others follow in first-seen order).
 */
export function lineChart(series, opts = {}) {
  const list = (series || []).filter((se) => se && Array.isArray(se.points));
  const pts = list.flatMap((se) => se.points).filter((p) => p && fin(p.y));
  const categorical = pts.some((p) => typeof p.x !== "number");
  const label = `${opts.yLabel || "value"} by ${opts.xLabel || "x"}: ` +
    (list.map((se) => `${se.name || "series"} (${se.points.length} points)`).join(", ") || "no data");
  return frame(label, opts.height, (W, H) => {
    if (!pts.length) return emptyNodes(W, H);
    const seen = new Set(pts.map((p) => String(p.x)));
    const cats = categorical ? [...new Set([...(opts.xCategories || []).map(String).filter((c) => seen.has(c)), ...seen])] : [];
    const legendH = list.length > 1 ? 22 : 0;
    const left = 58, right = W - 18, top = 12 + legendH;
    const plan = categorical ? labelPlan(cats, (right - left) / cats.length) : { bottom: 28 };
    H += plan.bottom - 28; // rotated labels get their own room; the plot keeps its height
    const bottom = H - plan.bottom - (opts.xLabel ? 18 : 0);
    const vals = pts.flatMap((p) => [p.y, p.lo, p.hi]).filter(fin);
    const ticksY = niceTicks(fin(opts.yMin) ? opts.yMin : Math.min(...vals), fin(opts.yMax) ? opts.yMax : Math.max(...vals), 5);
    const y0 = fin(opts.yMin) ? opts.yMin : ticksY[0], y1 = fin(opts.yMax) ? opts.yMax : ticksY[ticksY.length - 1];
    const y = (v) => bottom - ((Math.min(Math.max(v, y0), y1) - y0) / ((y1 - y0) || 1)) * (bottom - top);
    let x, xTicks;
    if (categorical) {
      const step = (right - left) / cats.length;
      x = (v) => left + step * (cats.indexOf(String(v)) + 0.5);
      const every = plan.rotate ? Math.max(1, Math.ceil((cats.length * 14) / (right - left))) : 1;
      xTicks = cats.filter((_, i) => i % every === 0).map((c) => ({ v: c, px: x(c) }));
    } else {
      const xs = pts.map((p) => p.x);
      let xa = Math.min(...xs), xb = Math.max(...xs);
      if (xa === xb) { xa -= 1; xb += 1; }
      const pad = (right - left) * 0.03;
      x = (v) => left + pad + ((v - xa) / (xb - xa)) * (right - left - 2 * pad);
      xTicks = niceTicks(xa, xb, Math.max(2, Math.floor((right - left) / 90))).filter((t) => t >= xa && t <= xb).map((t) => ({ v: t, px: x(t) }));
    }
    const nodes = [yAxis(ticksY.filter((t) => t >= y0 && t <= y1), y, left, right, opts.yLabel, top, bottom)];
    const xg = s("g", { class: "axis x-axis" }, s("line", { x1: left, x2: right, y1: bottom, y2: bottom, stroke: AXIS }));
    for (const t of xTicks) {
      xg.append(s("line", { x1: t.px, x2: t.px, y1: bottom, y2: bottom + 4, stroke: AXIS }));
      xg.append(categorical ? xCatLabel(t.v, t.px, bottom, plan) : s("text", { x: t.px, y: bottom + 16, "text-anchor": "middle" }, fmtTick(t.v)));
    }
    nodes.push(xg, xTitle(opts.xLabel, (left + right) / 2, H - 6, right - left));
    list.forEach((se, i) => {
      const color = PALETTE[i % PALETTE.length];
      const ps = se.points.filter((p) => p && fin(p.y));
      const g = s("g", { class: "series", "data-series": se.name || `series ${i + 1}` });
      const banded = ps.filter((p) => fin(p.lo) && fin(p.hi));
      if (banded.length > 1) {
        const upper = banded.map((p) => `${x(p.x)},${y(p.hi)}`);
        const lower = banded.slice().reverse().map((p) => `${x(p.x)},${y(p.lo)}`);
        g.append(s("polygon", { class: "band", points: [...upper, ...lower].join(" "), fill: color, "fill-opacity": 0.13, stroke: "none" }));
      }
      for (const p of banded) g.append(whisker(x(p.x), y(p.lo), y(p.hi), color, 3));
      if (ps.length > 1) g.append(s("polyline", { points: ps.map((p) => `${x(p.x)},${y(p.y)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
      for (const p of ps) {
        const iv = fin(p.lo) && fin(p.hi) ? ` [${fmtTick(p.lo)}, ${fmtTick(p.hi)}]` : "";
        g.append(s("circle", { cx: x(p.x), cy: y(p.y), r: 3.5, fill: color, stroke: "#fff", "stroke-width": 1 },
          tip(`${se.name ? se.name + ": " : ""}${p.x} → ${fmtTick(p.y)}${iv}`)));
      }
      nodes.push(g);
    });
    if (list.length > 1) {
      const lg = s("g", { class: "legend" });
      let lx = left;
      list.forEach((se, i) => {
        const name = short(String(se.name || `series ${i + 1}`), 40);
        lg.append(s("rect", { x: lx, y: 6, width: 12, height: 12, rx: 2, fill: PALETTE[i % PALETTE.length] }),
          s("text", { x: lx + 16, y: 16, fill: INK }, name));
        lx += 28 + name.length * CHAR_W;
      });
      nodes.push(lg);
    }
    return { nodes, height: H };
  });
}

/**
 * barChart(bars, {yLabel, yMax, height}); bars = [{label, value, lo?, hi?}], [lo, hi] drawn as an error bar.
 * Values start at 0 (or below, when a value is negative).
 */
export function barChart(bars, opts = {}) {
  const list = (bars || []).filter((b) => b && fin(b.value));
  const label = `${opts.yLabel || "value"} per item: ` +
    (list.map((b) => `${b.label} ${fmtTick(b.value)}${fin(b.lo) && fin(b.hi) ? ` [${fmtTick(b.lo)}, ${fmtTick(b.hi)}]` : ""}`).join("; ") || "no data");
  return frame(short(label, 600), opts.height, (W, H) => {
    if (!list.length) return emptyNodes(W, H);
    const left = 58, right = W - 14, top = 12;
    const slot = (right - left) / list.length;
    const plan = labelPlan(list.map((b) => b.label), slot);
    H += plan.bottom - 28; // rotated labels get their own room; the plot keeps its height
    const bottom = H - plan.bottom;
    const vals = list.flatMap((b) => [b.value, b.lo, b.hi]).filter(fin);
    const lo0 = Math.min(0, ...vals);
    const ticks = niceTicks(lo0, fin(opts.yMax) ? opts.yMax : Math.max(...vals, 0) || 1, 5);
    const y0 = Math.min(lo0, ticks[0]), y1 = fin(opts.yMax) ? opts.yMax : ticks[ticks.length - 1];
    const y = (v) => bottom - ((Math.min(Math.max(v, y0), y1) - y0) / ((y1 - y0) || 1)) * (bottom - top);
    const nodes = [yAxis(ticks.filter((t) => t >= y0 && t <= y1), y, left, right, opts.yLabel, top, bottom)];
    const bw = Math.max(2, Math.min(64, slot * 0.62));
    const every = plan.rotate ? Math.max(1, Math.ceil(14 / slot)) : 1;
    list.forEach((b, i) => {
      const cx = left + slot * (i + 0.5);
      const yv = y(b.value), yz = y(Math.max(0, y0));
      const iv = fin(b.lo) && fin(b.hi) ? ` (interval ${fmtTick(b.lo)}–${fmtTick(b.hi)})` : "";
      const g = s("g", { class: "bar", "data-label": String(b.label) },
        s("rect", { x: cx - bw / 2, y: Math.min(yv, yz), width: bw, height: Math.max(1, Math.abs(yz - yv)), fill: PALETTE[0], rx: 2 },
          tip(`${b.label}: ${fmtTick(b.value)}${iv}`)));
      if (fin(b.lo) && fin(b.hi)) g.append(whisker(cx, y(b.lo), y(b.hi), INK, Math.min(6, bw / 3)));
      if (i % every === 0) g.append(xCatLabel(b.label, cx, bottom, plan));
      nodes.push(g);
    });
    nodes.push(s("line", { x1: left, x2: right, y1: y(Math.max(0, y0)), y2: y(Math.max(0, y0)), stroke: AXIS }));
    return { nodes, height: H };
  });
}

/** histogram(edges, counts, {xLabel, height}): counts[i] falls in [edges[i], edges[i+1]). */
export function histogram(edges, counts, opts = {}) {
  const e = (edges || []).filter(fin), c = (counts || []).map((n) => (fin(n) ? n : 0));
  const n = Math.min(c.length, e.length - 1);
  const total = c.slice(0, Math.max(0, n)).reduce((a, b) => a + b, 0);
  const label = n > 0 ? `Histogram of ${opts.xLabel || "values"}: ${total} samples in ${n} bins from ${fmtTick(e[0])} to ${fmtTick(e[n])}` : `Histogram of ${opts.xLabel || "values"}: no data`;
  return frame(label, opts.height, (W, H) => {
    if (n <= 0) return emptyNodes(W, H);
    const left = 58, right = W - 18, top = 12, bottom = H - 28 - (opts.xLabel ? 18 : 0);
    const xa = e[0], xb = e[n] === e[0] ? e[0] + 1 : e[n];
    const x = (v) => left + ((v - xa) / (xb - xa)) * (right - left);
    const ticksY = niceTicks(0, Math.max(1, ...c.slice(0, n)), 4).filter((t) => Number.isInteger(t));
    const y1 = ticksY[ticksY.length - 1];
    const y = (v) => bottom - (v / y1) * (bottom - top);
    const nodes = [yAxis(ticksY, y, left, right, opts.yLabel || "count", top, bottom)];
    for (let i = 0; i < n; i++) {
      const xl = x(e[i]), xr = x(e[i + 1]);
      nodes.push(s("rect", { class: "bin", x: xl + 0.5, y: y(c[i]), width: Math.max(1, xr - xl - 1), height: Math.max(0, bottom - y(c[i])), fill: PALETTE[0], "fill-opacity": 0.85 },
        tip(`${fmtTick(e[i])}–${fmtTick(e[i + 1])}: ${c[i]}`)));
    }
    const xg = s("g", { class: "axis x-axis" }, s("line", { x1: left, x2: right, y1: bottom, y2: bottom, stroke: AXIS }));
    for (const t of niceTicks(xa, xb, Math.max(2, Math.floor((right - left) / 80))).filter((t) => t >= xa && t <= xb)) {
      xg.append(s("line", { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4, stroke: AXIS }),
        s("text", { x: x(t), y: bottom + 16, "text-anchor": "middle" }, fmtTick(t)));
    }
    nodes.push(xg, xTitle(opts.xLabel, (left + right) / 2, H - 6, right - left));
    return { nodes };
  });
}
