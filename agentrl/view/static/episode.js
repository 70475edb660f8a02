// One episode, or two side by side: the facts (reward and its parts, turns, tool errors by kind),
// the conversation with each tool call, its status and time under the turn that made it, and the
// token stream. A single episode lists the others of its task to compare with (the server's
// /api/related): the rest of its group, then each step of its own source and of the others that
// ran the task. Everything the model or the environment wrote shows its control characters as
// visible escapes (\x1b, \u202e).

import { api, duration, el, enc, fmt, plural, shown, showError, yesNo } from "./api.js";
import { QUANTITIES, domainOf, legendOf, tokenStream, valuesOf } from "./tokens.js";

let chosenShading = null;  // the quantity the user picked, kept from one episode to the next
let asked = 0;  // the latest view asked for: an older answer arriving after it is dropped
const NEAR = 5;  // steps shown on each side of the episode's own before "show all"

export async function showEpisodes(pairs) {
  const mine = ++asked;
  let records;
  try {
    records = await Promise.all(pairs.map(([source, id]) => api("api/episode", { source, id })));
  } catch (error) {
    if (mine !== asked) return;
    showError(error);
    document.getElementById("panes").replaceChildren();
    document.getElementById("legend").replaceChildren();
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
  // the user's choice where these episodes have it; else logprob, else the behaviour logprob
  // (an evaluation has no learner numbers): a fallback that is not remembered as a choice
  const fallback = usable("logprob") ? "logprob" : "behavior_logprob";
  const shading = () => (chosenShading && usable(chosenShading) ? chosenShading : fallback);
  const apply = () => {
    const quantity = shading();
    const domain = domainOf(records, quantity);
    streams.forEach((s) => s.shade(quantity, domain));
    const note = chosenShading && chosenShading !== quantity
      ? el("span", { class: "note" }, `(${QUANTITIES[chosenShading].label}, your choice, is not in ${records.length > 1 ? "these episodes" : "this episode"})`)
      : null;
    document.getElementById("legend").replaceChildren(...legendOf(quantity, domain), note || "");
    stick();
  };
  select.value = shading();
  select.onchange = () => { chosenShading = select.value; apply(); };
  apply();
  if (records.length === 1) await compareWith(records[0], mine);
}

// The info line stays in sight under the header and the shading bar while a long stream scrolls
// (on a wide screen: on a narrow one the header and the bar scroll away, style.css).
function stick() {
  const head = document.querySelector("header").offsetHeight;
  const bar = document.querySelector(".detail-bar").offsetHeight;
  document.documentElement.style.setProperty("--head", `${head}px`);
  document.documentElement.style.setProperty("--stick", `${head + bar}px`);
}
window.addEventListener("resize", () => { if (!document.getElementById("detail").hidden) stick(); });

function pane(record, stream, single) {
  const facts = el("div", { class: "facts" },
    el("span", {}, el("b", {}, shown(record.source, true)), " · ", el("a", { href: `#/episode/${enc(record.source)}/${enc(record.id)}` }, shown(record.id, true))),
    el("span", {}, `${record.split} step `, el("b", {}, record.step)),
    el("span", {}, "env ", shown(record.env, true)),
    el("span", { class: "task" }, "task ", shown(record.task_id, true)),
    el("span", {}, "reward ", el("b", {}, fmt(record.reward)), components(record.reward_components)),
    el("span", {}, "correct ", yesNo(record.correct)),
    el("span", { class: "answer" }, "answer ", shown(record.answer, true), " (gold ", shown(record.info?.gold, true), ")"),
    el("span", {}, `${plural(record.turns, "turn")}, ${plural(record.tool_calls, "tool call")}`),
    el("span", {}, `${plural(record.tool_errors, "tool error")}`, kinds(record.tool_errors_by_kind)),
    el("span", {}, plural(record.parse_errors, "parse error")),
    el("span", {}, "stop ", shown(record.stop_reason, true), record.truncated ? " (truncated)" : ""),
    el("span", {}, `staleness ${record.staleness}`),
    el("span", {}, `${record.sampled_tokens} sampled of ${plural(record.tokens.ids.length, "token")}`),
    record.error ? el("span", { class: "no" }, "error: ", shown(record.error, true)) : null,
  );
  return el("article", { class: "pane", "data-source": record.source, "data-id": record.id },
    facts,
    single ? el("div", { class: "compare-with" }, "compare with: looking for the same task…") : null,
    el("h3", {}, "Conversation"), conversation(record),
    el("h3", {}, "Tokens"), stream.node);
}

function components(parts) {
  const entries = Object.entries(parts || {});
  return entries.length ? [" (", ...entries.flatMap(([k, v], i) => [i ? ", " : "", shown(k, true), ` ${fmt(v)}`]), ")"] : "";
}

function kinds(byKind) {
  const entries = Object.entries(byKind || {});
  return entries.length ? [" (", ...entries.flatMap(([k, v], i) => [i ? ", " : "", shown(k, true), ` ${v}`]), ")"] : "";
}

// The messages; under the k-th assistant turn, the tool calls it made (info.tool_log turn k).
function conversation(record) {
  const log = record.info?.tool_log || [];
  let turn = -1;
  return el("div", {}, record.messages.map((message) => {
    const text = typeof message.content === "string" ? message.content : JSON.stringify(message.content, null, 1);
    const node = el("div", { class: `message ${message.role}` }, el("div", { class: "role" }, shown(message.role, true)), el("pre", {}, shown(text)));
    if (message.role === "assistant") {
      turn += 1;
      for (const entry of log.filter((e) => e.turn === turn)) node.append(toolCall(entry));
    }
    return node;
  }));
}

function toolCall(entry) {
  const calls = entry.calls?.length
    ? entry.calls.flatMap((c, i) => [i ? "; " : "", shown(`${c.name}(${JSON.stringify(c.arguments ?? {})})`, true)])
    : ["(no call could be read)"];
  const time = typeof entry.seconds === "number" ? el("span", { class: "time" }, duration(entry.seconds)) : "";
  return el("div", { class: "call" }, "⚙ ", calls,
    el("span", { class: `status ${entry.status === "ok" ? "ok" : "bad"}` }, shown(entry.status, true)), " ", time);
}

// The other episodes of this task (GET /api/related): the rest of its group (same source, split,
// step and group), then for its own source and then each other one, by split, the steps that ran
// the task: the nearest ones to this episode's step, and all of them on a click. A step's link
// opens the comparison with its best match (the same reward if one has it, else its first);
// hovering it gives that step's rewards.
async function compareWith(record, mine) {
  let related;
  try {
    related = await api("api/related", { source: record.source, id: record.id });
  } catch (error) {
    if (mine !== asked) return;
    document.querySelector(".compare-with").replaceChildren(`compare with: the other episodes of the task could not be listed (${error.message})`);
    return;
  }
  if (mine !== asked) return;
  const box = document.querySelector(".compare-with");
  const link = (source, split, step, id, text, title) => el("a", {
    href: `#/compare/${enc(record.source)}/${enc(record.id)}/${enc(source)}/${enc(id)}`,
    title, "data-source": source, "data-split": split, "data-step": step, "data-id": id,
  }, text);
  const lines = [];
  if (related.group.length) {
    lines.push(el("div", { class: "links" }, el("span", { class: "label" }, `its group (${record.split} step ${record.step}, ${plural(related.group.length, "other")}):`),
      related.group.map((r) => link(r.source, r.split, r.step, r.id, [shown(r.id, true), ` (${fmt(r.reward)})`],
        `${r.id}: reward ${fmt(r.reward)}, ${r.correct === true ? "correct" : r.correct === false ? "wrong" : "not graded"}`))));
  }
  // the steps by (source, split), in the server's order (its own source first); structured, never parsed from a label
  const places = [];
  for (const entry of related.elsewhere) {
    let place = places.find((p) => p.source === entry.source && p.split === entry.split);
    if (!place) places.push(place = { source: entry.source, split: entry.split, steps: [] });
    place.steps.push(entry);
  }
  for (const place of places) lines.push(stepLine(record, place, link));
  if (!lines.length) {
    box.replaceChildren("compare with: no other episode of task ", shown(record.task_id, true), " in these sources");
    return;
  }
  box.replaceChildren(el("b", {}, "compare with (task ", shown(related.task_id, true), "):"), ...lines);
}

function stepLine(record, place, link) {
  const own = place.source === record.source;
  const label = own ? `same task, ${place.split} steps` : [`same task in `, el("b", {}, shown(place.source, true)), `, ${place.split} steps`];
  const steps = [...place.steps].sort((a, b) => a.step - b.step);
  const links = steps.map((entry) => {
    const pick = entry.episodes.find((e) => e.reward === record.reward) || entry.episodes[0];
    const rewards = entry.episodes.map((e) => fmt(e.reward)).join(" ");
    const same = own && place.split === record.split && entry.step === record.step;
    const title = `${place.split} step ${entry.step}${same ? " (another group)" : ""}: ${plural(entry.episodes.length, "episode")}, rewards ${rewards}`;
    return link(place.source, place.split, entry.step, pick.id, same ? `${entry.step} (another group)` : String(entry.step), title);
  });
  // the nearest: NEAR before the episode's step and NEAR after (more of one side where the other is short)
  const before = steps.filter((e) => e.step < record.step).length;
  const sameStep = steps.filter((e) => e.step === record.step).length;
  const after = steps.length - before - sameStep;
  const takeBefore = Math.min(before, Math.max(NEAR, 2 * NEAR - after));
  const takeAfter = Math.min(after, Math.max(NEAR, 2 * NEAR - takeBefore));
  const near = new Set(links.slice(before - takeBefore, before + sameStep + takeAfter));
  const line = el("div", { class: "links", "data-source": place.source, "data-split": place.split }, el("span", { class: "label" }, label, ":"));
  if (near.size === links.length) {
    line.append(...links);
    return line;
  }
  const gapBefore = before - takeBefore, gapAfter = after - takeAfter;
  const all = el("button", { type: "button", class: "all", "aria-expanded": "false" }, `show all ${links.length} steps`);
  const draw = (everything) => {
    const shownLinks = everything ? links : links.filter((a) => near.has(a));
    const dots = (n) => el("span", { class: "note" }, `… ${n} earlier`);
    line.replaceChildren(line.firstChild,
      !everything && gapBefore ? dots(gapBefore) : "",
      ...shownLinks,
      !everything && gapAfter ? el("span", { class: "note" }, `… ${gapAfter} later`) : "",
      all);
    all.textContent = everything ? "show the nearest only" : `show all ${links.length} steps`;
    all.setAttribute("aria-expanded", String(everything));
  };
  let everything = false;
  all.addEventListener("click", () => { everything = !everything; draw(everything); });
  draw(false);
  return line;
}
