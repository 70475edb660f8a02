// A run's curves as inline SVG: one chart per panel of `agentrl plot` (the server sends the
// points). Moving over a chart reads the values at the nearest step; a click picks that step.

import { el, fmt } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
const W = 340, H = 190, M = { left: 58, right: 10, top: 20, bottom: 26 };

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// About `count` round tick values from lo to hi (integers only when `integer`), each as [value, label]
// with as many decimals as the step needs (no offset: 0.99999995 reads as itself, not as 1).
function ticks(lo, hi, count, integer) {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  let step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push([v, v.toFixed(decimals)]);
  return out;
}

function span(values, pad) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { const d = Math.abs(lo) * 0.05 || 0.5; lo -= d; hi += d; }
  else if (pad) { const d = (hi - lo) * 0.06; lo -= d; hi += d; }
  return [lo, hi];
}

// One panel ({name, unit, counts, series: {key: [[step, value], ...]}}); onPick(step, key) on a click.
export function lineChart(panel, onPick) {
  const keys = Object.keys(panel.series);
  const points = keys.flatMap((k) => panel.series[k].filter((p) => typeof p[1] === "number" && Number.isFinite(p[1])));
  const [x0, x1] = span(points.map((p) => p[0]), false);
  const [y0, y1] = span(points.map((p) => p[1]), true);
  const x = (v) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-panel": panel.name });
  const title = svg("text", { x: M.left, y: 13, class: "title" });
  title.textContent = `${panel.name} (${panel.unit})`;
  root.append(title);
  for (const [t, text] of ticks(y0, y1, 4, panel.counts)) {
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: "grid" }));
    const label = svg("text", { x: M.left - 4, y: y(t) + 3, "text-anchor": "end" });
    label.textContent = text;
    root.append(label);
  }
  for (const [t, text] of ticks(x0, x1, 5, true)) {
    const label = svg("text", { x: x(t), y: H - M.bottom + 13, "text-anchor": "middle" });
    label.textContent = text;
    root.append(label);
  }
  root.append(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  root.append(svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  const legend = el("div", { class: "legend" });
  keys.forEach((key, i) => {
    const color = COLORS[i % COLORS.length];
    const good = panel.series[key].filter((p) => typeof p[1] === "number" && Number.isFinite(p[1]));
    const values = good.map((p) => p[1]);
    const flat = values.length > 0 && Math.max(...values) - Math.min(...values) <= 1e-9 * Math.max(1, Math.abs(Math.max(...values)));
    const d = good.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": flat ? 1 : 1.6, opacity: flat ? 0.6 : 1 }));
    if (good.length <= 60) {
      for (const p of good) root.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.6, fill: color, "data-step": p[0], "data-key": key }));
    }
    legend.append(el("span", {}, el("i", { class: "swatch", style: `background:${color}` }), flat ? `${key} (flat at ${fmt(values[0])})` : key));
  });
  const guide = svg("line", { y1: M.top, y2: H - M.bottom, stroke: "#9ca3af", "stroke-dasharray": "3 3", visibility: "hidden", "pointer-events": "none" });
  root.append(guide);
  const readout = el("div", { class: "readout" }, "click a point: that step's episodes");
  // The step nearest the pointer, and of the series logged there, the one nearest in height.
  const nearest = (event) => {
    const box = root.getBoundingClientRect();
    const px = event.clientX - box.left, py = event.clientY - box.top;
    let best = null;
    for (const key of keys) {
      for (const p of panel.series[key]) {
        if (typeof p[1] !== "number" || !Number.isFinite(p[1])) continue;
        const score = Math.abs(x(p[0]) - px) * 1000 + Math.abs(y(p[1]) - py);
        if (!best || score < best.score) best = { score, step: p[0], key };
      }
    }
    return best;
  };
  root.addEventListener("mousemove", (event) => {
    const hit = nearest(event);
    if (!hit) return;
    guide.setAttribute("x1", x(hit.step));
    guide.setAttribute("x2", x(hit.step));
    guide.setAttribute("visibility", "visible");
    const at = keys.map((k) => [k, panel.series[k].find((p) => p[0] === hit.step)]).filter(([, p]) => p);
    readout.textContent = `step ${hit.step}: ` + at.map(([k, p]) => `${k} ${fmt(p[1])}`).join(", ");
  });
  root.addEventListener("mouseleave", () => guide.setAttribute("visibility", "hidden"));
  root.addEventListener("click", (event) => {
    const hit = nearest(event);
    if (hit) onPick(hit.step, hit.key);
  });
  return el("div", { class: "panel" }, root, readout, legend);
}
