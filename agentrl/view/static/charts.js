// A run's curves as inline SVG: one chart per panel of `agentrl plot` (the server sends the
// points). Moving over a chart reads the values at the nearest step; a click picks that step.
// A chart takes the keyboard too: focused, the arrow keys move the read-out from step to step
// (up and down: from series to series), Enter picks the step.
// A value that is not finite (sent as "nan", "inf", "-inf") breaks the line and is a red x at
// the top edge (NaN, +inf) or the bottom one (-inf); a panel with no finite value says so.

import { el, fmt, numberOf } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
const W = 300, H = 170, TOP = 8, RIGHT = 10, BOTTOM = 26;
const CHAR = 6.1;  // the width of a digit of the 10px tick labels, near enough
const SI = ["", "k", "M", "G", "T", "P"];

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function decimalsOf(step) {
  return Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

// A tick's label, as few digits as the tick step needs: 0.95, 3500, 1.2M, 2.5e-7; never float noise.
function tickLabel(v, step, biggest) {
  if (Math.abs(v) < step * 1e-6) return "0";
  if (biggest >= 1e5) {
    const k = Math.min(SI.length - 1, Math.floor(Math.log10(biggest) / 3));
    const unit = 10 ** (3 * k);
    return (v / unit).toFixed(decimalsOf(step / unit)) + SI[k];
  }
  if (biggest < 1e-3) {
    const e = Math.floor(Math.log10(biggest));
    return `${(v / 10 ** e).toFixed(decimalsOf(step / 10 ** e))}e${e}`;
  }
  return v.toFixed(decimalsOf(step));
}

// About `count` round tick values from lo to hi (integers only when `integer`), each as [value, label].
function ticks(lo, hi, count, integer) {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  let step = [1, 2, 5, 10, 20].map((f) => f * power).find((s) => (hi - lo) / s <= count + 1) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const biggest = Math.max(Math.abs(lo), Math.abs(hi));
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) out.push([k * step, tickLabel(k * step, step, biggest)]);
  return out;
}

// The points of a series as {step, value, bad}: bad is "nan", "inf" or "-inf" for a value that is not finite.
function pointsOf(series) {
  const out = [];
  for (const [step, raw] of series) {
    const value = numberOf(raw);
    if (value === null) continue;
    out.push({ step, value, bad: Number.isFinite(value) ? null : (Number.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf") });
  }
  return out.sort((a, b) => a.step - b.step);
}

// Flat: a range under a millionth of the values' size (float noise, as an ESS of 0.99999994 and 1.0000001).
function isFlat(values) {
  if (!values.length) return false;
  const lo = Math.min(...values), hi = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return hi - lo < 1e-6 * Math.max(1, Math.abs(mean));
}

function listSteps(steps) {
  return steps.length > 8 ? `${steps.slice(0, 8).join(", ")}, … (${steps.length} steps)` : steps.join(", ");
}

// One panel ({name, unit, counts, series: {key: [[step, value], ...]}}); onPick(step, key) on a click.
export function lineChart(panel, onPick) {
  const keys = Object.keys(panel.series);
  const series = Object.fromEntries(keys.map((k) => [k, pointsOf(panel.series[k])]));
  const all = keys.flatMap((k) => series[k]);
  const finite = all.filter((p) => !p.bad).map((p) => p.value);
  const steps = [...new Set(all.map((p) => p.step))].sort((a, b) => a - b);
  const flat = isFlat(finite);
  const mean = finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : 0;

  // the y range (padded), the ticks and from their labels the left margin
  let y0 = Math.min(...finite), y1 = Math.max(...finite);
  if (!finite.length || flat) { y0 = mean - 1; y1 = mean + 1; } else { const d = (y1 - y0) * 0.06; y0 -= d; y1 += d; }
  const yTicks = !finite.length ? [] : flat ? [[mean, fmt(Number(mean.toPrecision(6)))]] : ticks(y0, y1, 4, panel.counts);
  const left = Math.max(30, 10 + CHAR * Math.max(0, ...yTicks.map(([, t]) => t.length)));
  let x0 = steps.length ? steps[0] : 0, x1 = steps.length ? steps[steps.length - 1] : 1;
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const top = TOP + 8, bottom = H - BOTTOM - 6;  // the finite values' band; the edges keep the x marks
  const x = (v) => left + ((v - x0) / (x1 - x0)) * (W - left - RIGHT);
  const y = (v) => (flat || !finite.length) ? (top + bottom) / 2 : bottom - ((v - y0) / (y1 - y0)) * (bottom - top);
  const yOf = (p) => (p.bad === "-inf" ? H - BOTTOM - 1 : p.bad ? TOP + 1 : y(p.value));

  const full = `${panel.name} (${panel.unit})`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, "data-panel": panel.name, tabindex: 0, role: "group",
    "aria-label": `${full}: the arrow keys move along the steps, Enter lists that step's episodes`,
  });
  for (const [t, text] of yTicks) {
    root.append(svg("line", { x1: left, x2: W - RIGHT, y1: y(t), y2: y(t), class: "grid" }));
    const label = svg("text", { x: left - 4, y: y(t) + 3, "text-anchor": "end" });
    label.textContent = text;
    root.append(label);
  }
  if (steps.length) {
    for (const [t, text] of ticks(x0, x1, 5, true).filter(([t]) => t >= steps[0] && t <= steps[steps.length - 1])) {
      const label = svg("text", { x: x(t), y: H - BOTTOM + 13, "text-anchor": "middle" });
      label.textContent = text;
      root.append(label);
    }
  }
  root.append(svg("line", { x1: left, x2: left, y1: TOP, y2: H - BOTTOM, class: "axis" }));
  root.append(svg("line", { x1: left, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM, class: "axis" }));

  const legend = el("div", { class: "legend" });
  const color = (i) => COLORS[i % COLORS.length];
  keys.forEach((key, i) => {
    const points = series[key];
    const values = points.filter((p) => !p.bad).map((p) => p.value);
    const lineFlat = values.length > 1 && isFlat(values);
    // the line, broken where a value is not finite: one path of several pieces
    let d = "", run = [];
    const end = () => {
      if (run.length) d += run.map((p, j) => `${j ? "L" : "M"}${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
      run = [];
    };
    for (const p of points) { if (p.bad) end(); else run.push(p); }
    end();
    root.append(svg("path", { d, fill: "none", stroke: color(i), "stroke-width": lineFlat ? 1.2 : 1.6, opacity: lineFlat ? 0.7 : 1, "data-key": key }));
    points.forEach((p, j) => {
      if (p.bad) {
        const mark = svg("text", { x: x(p.step), y: yOf(p) + 4, "text-anchor": "middle", class: "nonfinite", "data-step": p.step, "data-key": key, "data-value": p.bad });
        mark.textContent = "×";
        root.append(mark);
        return;
      }
      const alone = !(points[j - 1] && !points[j - 1].bad) && !(points[j + 1] && !points[j + 1].bad);
      if (points.length <= 60 || alone) root.append(svg("circle", { cx: x(p.step), cy: y(p.value), r: 2.6, fill: color(i), "data-step": p.step, "data-key": key }));
    });
    const bad = points.filter((p) => p.bad);
    const notes = [];
    if (lineFlat) notes.push(`flat at ${fmt(Number((values.reduce((a, b) => a + b, 0) / values.length).toPrecision(6)))}`);
    if (bad.length) notes.push(`${bad.length} not finite`);
    legend.append(el("span", {}, el("i", { class: "swatch", style: `background:${color(i)}` }), key + (notes.length ? ` (${notes.join(", ")})` : "")));
  });
  if (!finite.length) {
    const bad = all.filter((p) => p.bad);
    const kinds = [...new Set(bad.map((p) => p.bad))].join("/");
    const lines = bad.length
      ? ["no finite values:", `${kinds} at steps ${listSteps([...new Set(bad.map((p) => p.step))].sort((a, b) => a - b))}`]
      : ["no values logged"];
    lines.forEach((line, j) => {
      const note = svg("text", { x: (left + W - RIGHT) / 2, y: (top + bottom) / 2 + 14 * (j - 0.3), "text-anchor": "middle", class: "empty" });
      note.textContent = line;
      root.append(note);
    });
  }
  const guide = svg("line", { y1: TOP, y2: H - BOTTOM, stroke: "#9ca3af", "stroke-dasharray": "3 3", visibility: "hidden", "pointer-events": "none" });
  const ring = svg("circle", { r: 5, fill: "none", stroke: "#111827", "stroke-width": 1.5, visibility: "hidden", "pointer-events": "none" });
  root.append(guide, ring);
  const readout = el("div", { class: "readout", "aria-live": "polite" });

  // what is logged at a step: [key, point] for each series that has it
  const at = (step) => keys.map((k) => [k, series[k].find((p) => p.step === step)]).filter(([, p]) => p);
  let current = null;  // {step, key}: where the read-out is
  const show = (step, key) => {
    current = { step, key };
    guide.setAttribute("x1", x(step));
    guide.setAttribute("x2", x(step));
    guide.setAttribute("visibility", "visible");
    const here = at(step);
    const point = here.find(([k]) => k === key)?.[1];
    if (point) {
      ring.setAttribute("cx", x(step));
      ring.setAttribute("cy", yOf(point));
      ring.setAttribute("visibility", "visible");
    }
    readout.replaceChildren(`step ${step}: `, ...here.flatMap(([k, p], j) => [
      j ? ", " : "",
      el("span", { class: k === key ? "at" : null }, `${k} `, p.bad ? el("b", { class: "bad" }, p.bad) : fmt(p.value)),
    ]));
  };
  const hide = () => {
    guide.setAttribute("visibility", "hidden");
    ring.setAttribute("visibility", "hidden");
  };
  // The step nearest the pointer, and of the series logged there, the one nearest in height.
  const nearest = (event) => {
    const box = root.getBoundingClientRect();
    const px = (event.clientX - box.left) * (W / box.width), py = (event.clientY - box.top) * (H / box.height);
    let best = null;
    for (const p of all) {
      const score = Math.abs(x(p.step) - px) * 1000 + Math.abs(yOf(p) - py);
      if (!best || score < best.score) best = { score, step: p.step };
    }
    if (!best) return null;
    let key = null, gap = Infinity;
    for (const [k, p] of at(best.step)) if (Math.abs(yOf(p) - py) < gap) { gap = Math.abs(yOf(p) - py); key = k; }
    return { step: best.step, key };
  };
  root.addEventListener("mousemove", (event) => {
    const hit = nearest(event);
    if (hit) show(hit.step, hit.key);
  });
  root.addEventListener("mouseleave", () => { if (document.activeElement !== root) hide(); });
  root.addEventListener("click", (event) => {
    const hit = nearest(event);
    if (hit) onPick(hit.step, hit.key);
  });
  root.addEventListener("focus", () => {
    if (!steps.length) return;
    const step = current ? current.step : steps[steps.length - 1];
    show(step, current?.key ?? at(step)[0][0]);
  });
  root.addEventListener("blur", hide);
  root.addEventListener("keydown", (event) => {
    if (!steps.length) return;
    const i = current ? steps.indexOf(current.step) : steps.length - 1;
    const move = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: steps.length - 1, PageUp: i - 10, PageDown: i + 10 }[event.key];
    if (move !== undefined) {
      const step = steps[Math.min(steps.length - 1, Math.max(0, move))];
      const here = at(step).map(([k]) => k);
      show(step, here.includes(current?.key) ? current.key : here[0]);
    } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      const here = at(current.step).map(([k]) => k);
      const j = here.indexOf(current.key) + (event.key === "ArrowDown" ? 1 : -1);
      show(current.step, here[(j + here.length) % here.length]);
    } else if (event.key === "Enter" || event.key === " ") {
      if (current) onPick(current.step, current.key);
    } else {
      return;
    }
    event.preventDefault();
  });
  return el("div", { class: "panel" }, el("div", { class: "ptitle", title: full }, el("b", {}, panel.name), ` (${panel.unit})`), root, readout, legend);
}
