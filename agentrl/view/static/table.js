// The episode table: the filter bar and the sort are the hash's query (#/?split=eval&sort=reward),
// so a view can be linked, reloaded and gone back to; the server filters, sorts and pages.

import { api, el, enc, fmt, showError, yesNo } from "./api.js";

// [field, heading, how a cell shows]; every field but id is a sort key of the server's.
const COLUMNS = [
  ["source", "source"], ["id", "episode"], ["step", "step"], ["split", "split"], ["env", "env"],
  ["task_id", "task"], ["reward", "reward"], ["correct", "correct"], ["turns", "turns"],
  ["tool_calls", "tool calls"], ["tool_errors", "tool errors"], ["parse_errors", "parse errors"],
  ["truncated", "truncated"], ["stop_reason", "stop"], ["staleness", "staleness"], ["sampled_tokens", "tokens"],
];
const NUMERIC = new Set(["step", "reward", "turns", "tool_calls", "tool_errors", "parse_errors", "staleness", "sampled_tokens"]);
const form = () => document.getElementById("filters");
let current = new URLSearchParams();
let asked = 0;  // the latest request: an older answer arriving after it is dropped

export function tableHash(params) {
  const query = params.toString();
  return query ? `#/?${query}` : "#/";
}

function go(params) {
  location.hash = tableHash(params);
}

// The filter bar's options: the sources, environments and stop reasons (again after a reload).
export function fillFilters(sources, facets) {
  const fill = (name, values) => {
    const select = form().elements[name];
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...values.map((v) => el("option", { value: v }, v)));
    select.value = chosen;
  };
  fill("source", sources.map((s) => s.name));
  fill("env", facets.env);
  fill("stop_reason", facets.stop_reason);
}

// The table's events: the filter bar, a heading's click (sort), the pager.
export function setUpTable() {
  const head = document.querySelector("#table thead tr");
  head.replaceChildren(...COLUMNS.map(([field, heading]) => el("th", { "data-sort": field === "id" ? null : field }, heading)));
  head.addEventListener("click", (event) => {
    const field = event.target.closest("th")?.dataset.sort;
    if (!field) return;
    const params = new URLSearchParams(current);
    const descending = params.get("sort") === field ? params.get("order") !== "asc" : false;
    params.set("sort", field);
    params.set("order", descending ? "asc" : "desc");
    params.delete("offset");
    go(params);
  });
  form().addEventListener("change", () => go(fromForm()));
  form().addEventListener("submit", (event) => { event.preventDefault(); go(fromForm()); });
  form().addEventListener("reset", (event) => {
    event.preventDefault();
    for (const input of form().elements) if (input.name) input.value = "";  // now: a change before the hash's event builds on it
    go(new URLSearchParams({ limit: current.get("limit") || "50" }));
  });
  let loaded = false;
  form().elements.kind.addEventListener("focus", async () => {  // the kinds are read from the step files: on first need
    if (loaded) return;
    loaded = true;
    const kinds = await api("api/kinds");
    document.getElementById("kinds").replaceChildren(...Object.keys(kinds).map((k) => el("option", { value: k }, `${kinds[k]} episodes`)));
  });
  const page = (delta) => () => {
    const params = new URLSearchParams(current);
    const limit = Number(params.get("limit") || 50);
    params.set("offset", Math.max(0, Number(params.get("offset") || 0) + delta * limit));
    go(params);
  };
  document.getElementById("prev").addEventListener("click", page(-1));
  document.getElementById("next").addEventListener("click", page(1));
  document.getElementById("limit").addEventListener("change", (event) => {
    const params = new URLSearchParams(current);
    params.set("limit", event.target.value);
    params.delete("offset");
    go(params);
  });
}

// The hash's query from the filter bar, keeping the sort and page size (a new filter: page one).
function fromForm() {
  const params = new URLSearchParams();
  for (const input of form().elements) {
    if (input.name && input.value !== "") params.set(input.name, input.value.trim());
  }
  for (const key of ["sort", "order", "limit"]) if (current.has(key)) params.set(key, current.get(key));
  return params;
}

export async function showTable(params) {
  current = params;
  for (const input of form().elements) if (input.name) input.value = params.get(input.name) || "";
  document.getElementById("limit").value = params.get("limit") || "50";
  const sort = params.get("sort") || "step";
  const order = params.get("order") || "desc";
  for (const th of document.querySelectorAll("#table th")) {
    th.classList.toggle("sorted", th.dataset.sort === sort);
    th.textContent = th.textContent.replace(/ [▲▼]$/, "") + (th.dataset.sort === sort ? (order === "asc" ? " ▲" : " ▼") : "");
  }
  const mine = ++asked;
  let page;
  try {
    page = await api("api/episodes", Object.fromEntries(params));
    if (mine !== asked) return;
    showError(null);
  } catch (error) {
    if (mine === asked) showError(error);
    return;
  }
  const last = Math.min(page.offset + page.limit, page.total);
  document.getElementById("count").textContent = page.total
    ? `${(page.offset + 1).toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()} episodes`
    : "no episode matches these filters";
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= page.total;
  document.querySelector("#table tbody").replaceChildren(...page.rows.map(row));
}

function row(r) {
  const href = `#/episode/${enc(r.source)}/${enc(r.id)}`;
  const cells = COLUMNS.map(([field]) => {
    const value = r[field];
    if (field === "id") return el("td", {}, el("a", { href }, value));
    if (field === "correct") return el("td", {}, yesNo(value));
    if (field === "truncated") return el("td", {}, value ? "yes" : "no");
    return el("td", { class: NUMERIC.has(field) ? "num" : null }, fmt(value));
  });
  return el("tr", { "data-source": r.source, "data-id": r.id, onclick: () => { location.hash = href; } }, cells);
}
