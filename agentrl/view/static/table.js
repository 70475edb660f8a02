// The episode table: the filter bar and the sort are the hash's query (#/?split=eval&sort=reward),
// so a view can be linked, reloaded and gone back to; the server filters, sorts and pages.
// A query the server refuses clears the table and marks the field it named, whose text stays
// as typed (the number fields are text fields, so "abc" stays to be corrected).

import { api, el, enc, fmt, plain, shown, showError, yesNo } from "./api.js";

// [field, heading, how a cell shows]; every field but id is a sort key of the server's.
const COLUMNS = [
  ["source", "source"], ["id", "episode"], ["step", "step"], ["split", "split"], ["env", "env"],
  ["task_id", "task"], ["reward", "reward"], ["correct", "correct"], ["turns", "turns"],
  ["tool_calls", "tool calls"], ["tool_errors", "tool errors"], ["parse_errors", "parse errors"],
  ["truncated", "truncated"], ["stop_reason", "stop"], ["staleness", "staleness"], ["sampled_tokens", "tokens"],
];
const NUMERIC = new Set(["step", "reward", "turns", "tool_calls", "tool_errors", "parse_errors", "staleness", "sampled_tokens"]);
const LIMITS = [25, 50, 100, 250, 1000];
const form = () => document.getElementById("filters");
let current = new URLSearchParams();
let sources = [];  // the sources' summaries (their kept steps: a step a run did not keep is said so)
let asked = 0;  // the latest request: an older answer arriving after it is dropped

export function tableHash(params) {
  const query = params.toString();
  return query ? `#/?${query}` : "#/";
}

function go(params) {
  location.hash = tableHash(params);
}

// The filter bar's options: the sources, environments and stop reasons (again after a reload).
export function fillFilters(summaries, facets) {
  sources = summaries;
  const fill = (name, values) => {
    const select = form().elements[name];
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...values.map((v) => el("option", { value: v }, plain(v))));
    select.value = chosen;
  };
  fill("source", summaries.map((s) => s.name));
  fill("env", facets.env);
  fill("stop_reason", facets.stop_reason);
}

// The table's events: the filter bar, a heading's button (sort), the pager, a row's click or Enter.
export function setUpTable() {
  const head = document.querySelector("#table thead tr");
  head.replaceChildren(...COLUMNS.map(([field, heading]) => el("th", { "data-sort": field === "id" ? null : field, scope: "col" },
    field === "id" ? heading : el("button", { type: "button", class: "sort", title: `sort by ${heading} (again: the other way)` }, heading))));
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
    go(new URLSearchParams(current.has("limit") ? { limit: current.get("limit") } : {}));
  });
  let loaded = false;
  form().elements.kind.addEventListener("focus", async () => {  // the kinds: on first need
    if (loaded) return;
    loaded = true;
    try {
      const kinds = await api("api/kinds");
      document.getElementById("kinds").replaceChildren(...Object.keys(kinds).map((k) => el("option", { value: k }, `${kinds[k]} episodes`)));
    } catch (error) {
      loaded = false;
      showError(error);
    }
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
  const body = document.querySelector("#table tbody");
  body.addEventListener("click", (event) => {
    const tr = event.target.closest("tr[data-href]");
    if (tr && !event.target.closest("a")) location.hash = tr.dataset.href;
  });
  body.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr[data-href]");
    if (tr && event.target === tr && event.key === "Enter") location.hash = tr.dataset.href;
  });
}

// The hash's query from the filter bar, keeping the sort and page size (a new filter: page one).
function fromForm() {
  const params = new URLSearchParams();
  for (const input of form().elements) {
    if (input.name && input.value.trim() !== "") params.set(input.name, input.value.trim());
  }
  for (const key of ["sort", "order", "limit"]) if (current.has(key)) params.set(key, current.get(key));
  return params;
}

// The rows drop-down holds the page size asked for, even one it does not offer (#/?limit=7).
function showLimit(limit) {
  const select = document.getElementById("limit");
  const sizes = [...new Set([...LIMITS, ...(/^\d+$/.test(limit) ? [Number(limit)] : [])])].sort((a, b) => a - b);
  const values = /^\d+$/.test(limit) ? sizes.map(String) : [...sizes.map(String), limit];
  select.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  select.value = limit;
}

export async function showTable(params) {
  current = params;
  const known = new Set([...form().elements].map((input) => input.name).filter(Boolean));
  for (const stale of form().querySelectorAll("option.unknown")) stale.remove();
  for (const input of form().elements) {
    if (!input.name) continue;
    const value = params.get(input.name) || "";
    if (input.tagName === "SELECT" && value && ![...input.options].some((o) => o.value === value)) {
      input.append(el("option", { value, class: "unknown" }, plain(value)));  // a value from the address the stores lack: kept in sight
    }
    input.value = value;
    input.classList.remove("invalid");
    input.removeAttribute("aria-invalid");
  }
  showLimit(params.get("limit") || "50");
  const sort = params.get("sort") || "step";
  const order = params.get("order") || "desc";
  for (const th of document.querySelectorAll("#table th[data-sort]")) {
    const on = th.dataset.sort === sort;
    th.classList.toggle("sorted", on);
    th.setAttribute("aria-sort", on ? (order === "asc" ? "ascending" : "descending") : "none");
    const button = th.querySelector("button");
    button.textContent = button.textContent.replace(/ [▲▼]$/, "") + (on ? (order === "asc" ? " ▲" : " ▼") : "");
  }
  const mine = ++asked;
  let page;
  try {
    page = await api("api/episodes", Object.fromEntries(params));
    if (mine !== asked) return;
    showError(null);
  } catch (error) {
    if (mine !== asked) return;
    showError(error);
    refused(error, known);
    return;
  }
  const limit = page.limit, total = page.total;
  if (page.offset > 0 && page.offset >= total) {  // past the last page (an old link, a shorter run): go to the last page
    const last = new URLSearchParams(params);
    const offset = total ? Math.floor((total - 1) / limit) * limit : 0;
    if (offset) last.set("offset", offset);
    else last.delete("offset");
    location.replace(tableHash(last));
    return;
  }
  const last = Math.min(page.offset + limit, total);
  document.getElementById("count").replaceChildren(total
    ? `${(page.offset + 1).toLocaleString()}–${last.toLocaleString()} of ${total.toLocaleString()} episodes`
    : nothing(params));
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= total;
  document.querySelector("#table tbody").replaceChildren(...page.rows.map(row));
}

// A refused query: no rows, no count, and the fields the server named marked (their text kept).
function refused(error, known) {
  document.getElementById("count").replaceChildren(el("span", { class: "no" }, `refused: ${error.message}`));
  document.getElementById("prev").disabled = true;
  document.getElementById("next").disabled = true;
  document.querySelector("#table tbody").replaceChildren();
  const named = new Set(error.fields || []);
  for (const name of known) if (new RegExp(`(^|[^\\w])${name}([^\\w]|$)`).test(error.message)) named.add(name);
  for (const name of named) {
    const input = form().elements[name] || (name === "limit" ? document.getElementById("limit") : null);
    if (!input) continue;
    input.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
  }
}

// Why a page is empty: a step the run did not keep the episodes of, or simply no match.
function nothing(params) {
  const step = params.get("step");
  if (step === null || !/^-?\d+$/.test(step)) return "no episode matches these filters";
  const n = Number(step);
  const splits = params.get("split") ? [params.get("split")] : ["train", "eval"];
  const chosen = params.get("source") ? sources.filter((s) => s.name === params.get("source")) : sources;
  const kept = chosen.flatMap((s) => splits.flatMap((split) => s.steps?.[split] || []));
  if (!chosen.length || kept.includes(n)) return "no episode matches these filters";
  const where = params.get("source") ? `${params.get("source")} kept no ${splits.join(" or ")} episodes at step ${n}` : `no source kept ${splits.join(" or ")} episodes at step ${n}`;
  const steps = chosen.length === 1 && splits.length === 1 ? chosen[0].steps?.[splits[0]] || [] : [];
  if (steps.length >= 2) {
    const every = everyOf(steps);
    if (every > 1 && n > steps[0] && n < steps[steps.length - 1]) return `${where} (the run keeps every ${ordinal(every)} step's)`;
    return `${where} (it kept steps ${steps[0]}–${steps[steps.length - 1]}${every > 1 ? `, every ${ordinal(every)}` : ""})`;
  }
  return steps.length ? `${where} (it kept step ${steps[0]} only)` : where;
}

// The usual gap between kept steps (the last step is kept as well, off the rhythm).
function everyOf(steps) {
  const counts = new Map();
  for (let i = 1; i < steps.length; i += 1) counts.set(steps[i] - steps[i - 1], (counts.get(steps[i] - steps[i - 1]) || 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
}

function ordinal(n) {
  const tail = n % 100 >= 11 && n % 100 <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${n}${tail}`;
}

function row(r) {
  const href = `#/episode/${enc(r.source)}/${enc(r.id)}`;
  const cells = COLUMNS.map(([field]) => {
    const value = r[field];
    if (field === "id") return el("td", {}, el("a", { href, tabindex: -1 }, shown(value, true)));
    if (field === "correct") return el("td", {}, yesNo(value));
    if (field === "truncated") return el("td", {}, value ? "yes" : "no");
    if (NUMERIC.has(field)) return el("td", { class: "num" }, fmt(value));
    return el("td", {}, shown(value, true));
  });
  return el("tr", { "data-source": r.source, "data-id": r.id, "data-href": href, tabindex: 0 }, cells);
}
