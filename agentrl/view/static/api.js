// The page's small shared parts: calling the JSON API, building elements, showing numbers,
// durations and text a model or an environment wrote (control characters made visible).

// A refused request: the server's words, its status, and the query fields it named.
export class ApiError extends Error {
  constructor(message, status, fields) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

export async function api(path, params = {}) {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const response = await fetch(url);
  let body;
  try {
    body = await response.json();
  } catch {
    body = { detail: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) throw new ApiError(detail(body), response.status, fieldsOf(body));
  return body;
}

// FastAPI's error body as one line: a string detail as is, a validation error as
// "field: message (given: "value")", so the refused value shows whatever field held it.
function detail(body) {
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => {
      const where = (d.loc || []).slice(1).join(".") || "query";
      const given = typeof d.input === "string" || typeof d.input === "number" ? ` (given: ${JSON.stringify(d.input)})` : "";
      return `${where}: ${String(d.msg).replace(/^Value error, /, "")}${given}`;
    }).join("; ");
  }
  return JSON.stringify(body);
}

function fieldsOf(body) {
  return Array.isArray(body.detail) ? body.detail.map((d) => (d.loc || [])[1]).filter((f) => typeof f === "string") : [];
}

export function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

// el("a", {href: "#/", class: "x"}, "text", child): an element with attributes and children.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Characters that would hide, garble or reorder text: C0 controls (but newline and tab), DEL, C1
// controls, and the bidi controls (embeddings, overrides, isolates, marks). As `agentrl show`
// prints them: \x1b, and \u202e for those above 0xff.
const HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const HIDDEN_INLINE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const NAMED = { "\n": "\\n", "\t": "\\t" };

export function escapeOf(ch) {
  if (NAMED[ch]) return NAMED[ch];
  const code = ch.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

// `text` as nodes to append, each hidden character a visible escape (<span class="esc">\x1b</span>);
// `inline` (a line of its own: ids, answers, table cells) escapes newlines and tabs too.
export function shown(text, inline = false) {
  if (text === null || text === undefined) return "–";
  const s = String(text);
  const pattern = inline ? HIDDEN_INLINE : HIDDEN;
  if (!pattern.test(s)) return s;
  const out = document.createDocumentFragment();
  let run = "";
  for (const ch of s) {
    if (ch.length === 1 && pattern.test(ch)) {
      if (run) out.append(run);
      run = "";
      out.append(el("span", { class: "esc", title: `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}` }, escapeOf(ch)));
    } else {
      run += ch;
    }
  }
  if (run) out.append(run);
  return out;
}

// The same as one string (a tooltip, the window's title): the escapes without their style.
export function plain(text) {
  return String(text ?? "–").replace(new RegExp(HIDDEN_INLINE.source, "g"), escapeOf);
}

// A number for reading: six significant digits at most, no float noise; strings (nan, inf) as is.
export function fmt(value) {
  if (typeof value !== "number") return value === null || value === undefined ? "–" : String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

// A number from the API: a number, or NaN and infinities sent as "nan", "inf", "-inf".
export function numberOf(value) {
  if (typeof value === "number") return value;
  if (value === "nan") return NaN;
  if (value === "inf") return Infinity;
  if (value === "-inf") return -Infinity;
  return null;
}

// A duration in seconds as a person reads it: 8.3 µs, 12 ms, 1.4 s, 3 min 20 s.
export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return fmt(seconds);
  const a = Math.abs(seconds);
  const two = (v) => String(Math.abs(v) >= 100 ? Math.round(v) : Number(v.toPrecision(2)));
  if (a === 0) return "0 s";
  if (a < 1e-6) return `${two(seconds * 1e9)} ns`;
  if (a < 1e-3) return `${two(seconds * 1e6)} µs`;
  if (a < 1) return `${two(seconds * 1e3)} ms`;
  if (a < 60) return `${two(seconds)} s`;
  const minutes = Math.floor(a / 60), rest = Math.round(a - 60 * minutes);
  if (minutes < 60) return `${seconds < 0 ? "-" : ""}${minutes} min ${rest} s`;
  return `${seconds < 0 ? "-" : ""}${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// "1 turn", "2 turns".
export function plural(n, thing) {
  return `${n} ${thing}${n === 1 ? "" : "s"}`;
}

export function yesNo(value) {
  if (value === null || value === undefined) return el("span", {}, "–");
  return el("span", { class: value ? "yes" : "no" }, value ? "yes" : "no");
}

export const enc = encodeURIComponent;
