// One episode, or two side by side: the facts (reward and its parts, turns, tool errors by kind),
// the conversation with each tool call, its status and time under the turn that made it, and the
// token stream. A single episode lists the others of its task, in its run and in the other sources,
// to compare with.

import { api, el, enc, fmt, showError, yesNo } from "./api.js";
import { QUANTITIES, domainOf, legendOf, tokenStream, valuesOf } from "./tokens.js";

let shading = null;  // the quantity chosen, kept from one episode to the next
let asked = 0;  // the latest view asked for: an older answer arriving after it is dropped

export async function showEpisodes(pairs) {
  const mine = ++asked;
  let records;
  try {
    records = await Promise.all(pairs.map(([source, id]) => api("api/episode", { source, id })));
  } catch (error) {
    if (mine !== asked) return;
    showError(error);
    document.getElementById("panes").replaceChildren();
    return;
  }
  if (mine !== asked) return;
  showError(null);
  const panes = document.getElementById("panes");
  panes.classList.toggle("two", records.length === 2);
  const streams = records.map((record) => tokenStream(record));
  panes.replaceChildren(...records.map((record, i) => pane(record, streams[i], records.length === 1)));
  const select = document.getElementById("shade");
  const usable = (q) => records.some((r) => valuesOf(r, q));
  select.replaceChildren(...Object.entries(QUANTITIES).map(([q, spec]) =>
    el("option", { value: q, disabled: !usable(q) }, spec.label + (usable(q) ? "" : " (none here)"))));
  if (!shading || !usable(shading)) shading = usable("logprob") ? "logprob" : "behavior_logprob";
  const apply = () => {
    const domain = domainOf(records, shading);
    streams.forEach((s) => s.shade(shading, domain));
    document.getElementById("legend").replaceChildren(...legendOf(shading, domain));
    stick();
  };
  select.value = shading;
  select.onchange = () => { shading = select.value; apply(); };
  apply();
  if (records.length === 1) await compareWith(records[0]);
}

// The info line stays in sight under the header and the shading bar while a long stream scrolls.
function stick() {
  const head = document.querySelector("header").offsetHeight;
  const bar = document.querySelector(".detail-bar").offsetHeight;
  document.documentElement.style.setProperty("--head", `${head}px`);
  document.documentElement.style.setProperty("--stick", `${head + bar}px`);
}
window.addEventListener("resize", () => { if (!document.getElementById("detail").hidden) stick(); });

function pane(record, stream, single) {
  const facts = el("div", { class: "facts" },
    el("span", {}, el("b", {}, record.source), " · ", el("a", { href: `#/episode/${enc(record.source)}/${enc(record.id)}` }, record.id)),
    el("span", {}, `${record.split} step `, el("b", {}, record.step)),
    el("span", {}, `env ${record.env}`),
    el("span", {}, `task ${record.task_id}`),
    el("span", {}, "reward ", el("b", {}, fmt(record.reward)), components(record.reward_components)),
    el("span", {}, "correct ", yesNo(record.correct)),
    el("span", {}, `answer ${fmt(record.answer)} (gold ${fmt(record.info?.gold)})`),
    el("span", {}, `${record.turns} turns, ${record.tool_calls} tool calls`),
    el("span", {}, `tool errors ${record.tool_errors}`, kinds(record.tool_errors_by_kind)),
    el("span", {}, `parse errors ${record.parse_errors}`),
    el("span", {}, `stop ${record.stop_reason}${record.truncated ? " (truncated)" : ""}`),
    el("span", {}, `staleness ${record.staleness}`),
    el("span", {}, `${record.sampled_tokens} sampled of ${record.tokens.ids.length} tokens`),
    record.error ? el("span", { class: "no" }, `error: ${record.error}`) : null,
  );
  return el("article", { class: "pane", "data-source": record.source, "data-id": record.id },
    facts,
    single ? el("div", { class: "compare-with" }, "compare with: looking for the same task…") : null,
    el("h3", {}, "Conversation"), conversation(record),
    el("h3", {}, "Tokens"), stream.node);
}

function components(parts) {
  const entries = Object.entries(parts || {});
  return entries.length ? ` (${entries.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")})` : "";
}

function kinds(byKind) {
  const entries = Object.entries(byKind || {});
  return entries.length ? ` (${entries.map(([k, v]) => `${k} ${v}`).join(", ")})` : "";
}

// The messages; under the k-th assistant turn, the tool calls it made (info.tool_log turn k).
function conversation(record) {
  const log = record.info?.tool_log || [];
  let turn = -1;
  return el("div", {}, record.messages.map((message) => {
    const body = el("pre", {}, typeof message.content === "string" ? message.content : JSON.stringify(message.content, null, 1));
    const node = el("div", { class: `message ${message.role}` }, el("div", { class: "role" }, message.role), body);
    if (message.role === "assistant") {
      turn += 1;
      for (const entry of log.filter((e) => e.turn === turn)) node.append(toolCall(entry));
    }
    return node;
  }));
}

function toolCall(entry) {
  const calls = entry.calls?.length
    ? entry.calls.map((c) => `${c.name}(${JSON.stringify(c.arguments ?? {})})`).join("; ")
    : "(no call could be read)";
  const seconds = typeof entry.seconds === "number" ? `${fmt(entry.seconds * 1000)} ms` : "";
  return el("div", { class: "call" }, `⚙ ${calls}`,
    el("span", { class: `status ${entry.status === "ok" ? "ok" : "bad"}` }, entry.status), ` ${seconds}`);
}

// The other episodes of this task: the rest of its group (same step), then by source and split,
// one link per step that ran the task (to the episode of the same sample index there, if any).
async function compareWith(record) {
  const box = document.querySelector(".compare-with");
  const found = await api("api/episodes", { task_id: record.task_id, sort: "step", order: "asc", limit: 1000 });
  const others = found.rows.filter((r) => !(r.source === record.source && r.id === record.id));
  if (!others.length) {
    box.textContent = `compare with: no other episode of task ${record.task_id} in these sources`;
    return;
  }
  const link = (r, text, title) => el("a", {
    href: `#/compare/${enc(record.source)}/${enc(record.id)}/${enc(r.source)}/${enc(r.id)}`,
    title, "data-source": r.source, "data-split": r.split, "data-step": r.step, "data-id": r.id,
  }, text);
  const group = (r) => r.source === record.source && r.split === record.split && r.step === record.step;
  const lines = [];
  const siblings = others.filter(group);
  if (siblings.length) {
    lines.push(["its group (same step)", siblings.map((r) => link(r, `#${r.id.split("-").pop()} (reward ${fmt(r.reward)})`))]);
  }
  const steps = new Map();  // "source split" -> step -> its episodes of the task
  for (const r of others.filter((r) => !group(r))) {
    const where = `${r.source} ${r.split}`;
    if (!steps.has(where)) steps.set(where, new Map());
    const at = steps.get(where);
    if (!at.has(r.step)) at.set(r.step, []);
    at.get(r.step).push(r);
  }
  for (const [where, at] of steps) {
    const [source, split] = where.split(" ");
    const label = source === record.source ? `same task, ${split} steps` : `same task in ${source}, ${split} steps`;
    lines.push([label, [...at].map(([step, rows]) => {
      const pick = rows.find((r) => r.sample_index === record.sample_index) || rows[0];
      const rewards = rows.map((r) => fmt(r.reward)).join(" ");
      return link(pick, `${step}`, `${split} step ${step}: ${rows.length} episode(s), rewards ${rewards}`);
    })]);
  }
  const more = found.total > found.rows.length ? [el("div", { class: "note" }, `(the first ${found.rows.length} of ${found.total} episodes of the task)`)] : [];
  box.replaceChildren(el("b", {}, `compare with (task ${record.task_id}):`),
    ...lines.map(([label, links]) => el("div", { class: "links" }, el("span", {}, `${label}:`), links)), ...more);
}
