// An episode's token stream, token-exact from tokens.pieces: the tokens the policy sampled
// (mask 1) shaded by one per-token quantity, the rest (prompt, template, observations) plain.
// Tokens the clip removed (learner.clipped 1) are struck through; tokens the objective left
// out of the loss (mask 1, learner.in_loss 0) get a dashed outline. Hovering a token shows
// every quantity of it in the info line above the stream. A control character in a piece shows
// as its escape (\x1b, \u202e), styled apart from the text.

import { el, fmt, shown } from "./api.js";

// Where each quantity lives (the learner's, or the sample's own) and how it is coloured:
// "low" (a logprob: the further below 0, the stronger), "high", "signed" (around a centre), "flag".
export const QUANTITIES = {
  logprob: { label: "logprob (learner)", learner: true, scale: "low" },
  entropy: { label: "entropy", learner: true, scale: "high" },
  advantage: { label: "advantage", learner: true, scale: "signed", center: 0 },
  ratio: { label: "ratio to π_old", learner: true, scale: "signed", center: 1 },
  weight: { label: "weight (gradient push)", learner: true, scale: "signed", center: 0 },
  mask: { label: "mask (sampled)", learner: false, scale: "flag" },
  version: { label: "policy version", learner: false, scale: "high" },
  behavior_logprob: { label: "behaviour logprob", learner: false, scale: "low" },
};
const COLOR = { low: [234, 88, 12], high: [124, 58, 237], neg: [220, 38, 38], pos: [37, 99, 235], flag: [22, 163, 74] };

export function valuesOf(record, quantity) {
  return QUANTITIES[quantity].learner ? record.learner?.[quantity] : record.tokens[quantity];
}

// The range the colours span, over the sampled tokens of every record shown (one scale for a comparison).
export function domainOf(records, quantity) {
  const spec = QUANTITIES[quantity];
  let lo = Infinity, hi = -Infinity;
  for (const record of records) {
    const values = valuesOf(record, quantity);
    if (!values) continue;
    record.tokens.mask.forEach((m, i) => {
      if (m && typeof values[i] === "number") { lo = Math.min(lo, values[i]); hi = Math.max(hi, values[i]); }
    });
  }
  if (lo === Infinity) return null;
  if (spec.scale === "signed") {
    const extent = Math.max(Math.abs(lo - spec.center), Math.abs(hi - spec.center)) || 1;
    return [spec.center - extent, spec.center + extent];
  }
  if (spec.scale === "low") return [Math.min(lo, 0) || -1, 0];
  if (spec.scale === "flag") return [0, 1];
  return lo === hi ? [lo, lo + 1] : [lo, hi];
}

// A token's background for `value`, given the quantity's range; "" for no value.
export function colorOf(quantity, domain, value) {
  if (typeof value !== "number" || !domain) return "";
  const spec = QUANTITIES[quantity];
  let rgb, t;
  if (spec.scale === "signed") {
    t = (value - spec.center) / (domain[1] - spec.center);
    rgb = t < 0 ? COLOR.neg : COLOR.pos;
    t = Math.abs(t);
  } else if (spec.scale === "low") {
    t = value / domain[0];
    rgb = COLOR.low;
  } else if (spec.scale === "flag") {
    t = value ? 0.6 : 0;
    rgb = COLOR.flag;
  } else {
    t = (value - domain[0]) / (domain[1] - domain[0]);
    rgb = COLOR.high;
  }
  t = Math.min(1, Math.max(0, t));
  return `rgba(${rgb.join(",")},${(0.06 + 0.74 * t).toFixed(3)})`;
}

// The stream's element; shade(quantity, domain) recolours it.
export function tokenStream(record) {
  const { pieces, mask } = record.tokens;
  const learner = record.learner;
  const stream = el("div", { class: "stream", "data-episode": record.id });
  const info = el("div", { class: "tokinfo" }, "hover a token: its id, turn, version and every per-token quantity");
  const spans = pieces.map((piece, i) => {
    const span = document.createElement("span");
    span.className = mask[i] ? "tok s" : "tok ctx";
    if (mask[i] && learner) {
      if (learner.clipped?.[i] === 1) span.classList.add("clipped");
      if (learner.in_loss?.[i] === 0) span.classList.add("filtered");
    }
    span.dataset.i = i;
    span.append(shown(piece));
    return span;
  });
  stream.append(...spans);
  let chosen = null, hovered = null;
  stream.addEventListener("mouseover", (event) => {
    const span = event.target.closest(".tok");
    if (!span) return;
    hovered?.classList.remove("hover");
    hovered = span;
    span.classList.add("hover");
    info.replaceChildren(...infoOf(record, Number(span.dataset.i), chosen));
    // grow only: a line that shrank back would move the stream under the pointer, and hover another token
    info.style.minHeight = `${Math.max(info.offsetHeight, parseFloat(info.style.minHeight) || 0)}px`;
  });
  const shade = (quantity, domain) => {
    chosen = quantity;
    const values = valuesOf(record, quantity);
    spans.forEach((span, i) => { span.style.backgroundColor = mask[i] && values ? colorOf(quantity, domain, values[i]) : ""; });
    if (hovered) info.replaceChildren(...infoOf(record, Number(hovered.dataset.i), chosen));
  };
  return { node: el("div", {}, info, stream), shade };
}

// Every quantity of token i, each in a span named by data-q (the chosen one in bold).
function infoOf(record, i, chosen) {
  const t = record.tokens, l = record.learner;
  const item = (q, label, value) => el("span", { "data-q": q }, `${label} `, q === chosen ? el("b", {}, value) : value);
  const out = [
    item("index", "#", i), item("piece", "text", el("span", {}, "\u201c", shown(t.pieces[i], true), "\u201d")), item("id", "id", t.ids[i]),
    item("turn", "turn", t.turn[i]), item("version", "version", t.version[i]), item("mask", "mask", t.mask[i]),
    item("behavior_logprob", "behaviour logprob", fmt(t.behavior_logprob[i])),
  ];
  if (l) {
    for (const q of ["logprob", "ratio", "advantage", "entropy", "weight"]) out.push(item(q, q, fmt(l[q]?.[i])));
    out.push(item("in_loss", "in loss", l.in_loss?.[i] ? "yes" : "no"), item("clipped", "clipped", l.clipped?.[i] ? "yes" : "no"));
  } else {
    out.push(el("span", { class: "note" }, "no learner values (an evaluation, or not trained on)"));
  }
  return out;
}

// The legend of a shading: its colour ramp from end to end, and the marks.
export function legendOf(quantity, domain) {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((f) => colorOf(quantity, domain, domain ? domain[0] + f * (domain[1] - domain[0]) : 0));
  const ramp = domain
    ? el("span", {}, `${fmt(domain[0])} `, el("i", { class: "ramp", style: `background:linear-gradient(to right,${stops.join(",")})` }), ` ${fmt(domain[1])}`)
    : el("span", { class: "note" }, `no ${QUANTITIES[quantity].label} in these episodes`);
  return [
    ramp,
    el("span", {}, el("span", { class: "tok s clipped" }, "abc"), " clipped (weight 0)"),
    el("span", {}, el("span", { class: "tok s filtered" }, "abc"), " filtered (not in the loss)"),
    el("span", {}, el("span", { class: "tok ctx" }, "abc"), " not sampled (prompt, template, observation)"),
  ];
}
