// The page's small shared parts: calling the JSON API, building elements, showing numbers.

export async function api(path, params = {}) {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(detail(body));
  return body;
}

// FastAPI's error body as one line: a string detail as is, a validation error as "field: message".
function detail(body) {
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => `${d.loc.slice(1).join(".") || "query"}: ${d.msg.replace(/^Value error, /, "")}`).join("; ");
  }
  return JSON.stringify(body);
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

// A number for reading: six significant digits at most, no float noise; strings (nan, inf) as is.
export function fmt(value) {
  if (typeof value !== "number") return value === null || value === undefined ? "–" : String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

export function yesNo(value) {
  if (value === null || value === undefined) return el("span", {}, "–");
  return el("span", { class: value ? "yes" : "no" }, value ? "yes" : "no");
}

export const enc = encodeURIComponent;
