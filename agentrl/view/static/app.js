// The page: the sources in the header, then by the hash either the curves and the table
// (#/?filters), one episode (#/episode/SOURCE/ID) or two side by side (#/compare/S1/ID1/S2/ID2).
// Each source's curves are a block that folds (the first run's open), so the table stays near the top.

import { api, duration, el, fmt, plain, shown, showError } from "./api.js";
import { lineChart } from "./charts.js";
import { showEpisodes } from "./episode.js";
import { fillFilters, setUpTable, showTable, tableHash } from "./table.js";

let sources = [];
let curvesDrawn = false;
const narrow = window.matchMedia("(max-width: 640px)");
const opened = new Map();  // source name -> whether its block is open (the user's folding, kept over a reload)

async function start() {
  setUpTable();
  if (!(await load())) return;
  document.getElementById("refresh").addEventListener("click", async () => {
    curvesDrawn = false;
    if (await load()) route();
  });
  window.addEventListener("hashchange", route);
  route();
}

// The sources and the filters' options, read again on a reload (a run still training).
async function load() {
  try {
    sources = await api("api/sources");
    fillFilters(sources, await api("api/facets"));
  } catch (error) {
    showError(error);
    return false;
  }
  document.getElementById("sources").replaceChildren(...sources.map((s, i) =>
    el("span", { title: s.path }, i ? " · " : "", el("b", {}, shown(s.name, true)), ` (${s.kind}, ${s.episodes.toLocaleString()} episodes)`)));
  return true;
}

function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const detail = parts[0] === "episode" || parts[0] === "compare";
  document.getElementById("home").hidden = detail;
  document.getElementById("detail").hidden = !detail;
  if (parts[0] === "episode") {
    document.title = `${plain(parts[2])} · agentrl view`;
    showEpisodes([[parts[1], parts[2]]]);
  } else if (parts[0] === "compare") {
    document.title = `${plain(parts[2])} vs ${plain(parts[4])} · agentrl view`;
    showEpisodes([[parts[1], parts[2]], [parts[3], parts[4]]]);
  } else {
    document.title = "agentrl view";
    if (!curvesDrawn) drawCurves();
    showTable(new URLSearchParams(query || ""));
  }
}

function range(steps) {
  if (!steps.length) return null;
  return steps.length === 1 ? `step ${steps[0]}` : `steps ${steps[0]}–${steps[steps.length - 1]} (${steps.length} kept)`;
}

// One block a source: its summary line (what, how many episodes, which steps) that opens it,
// then its panels (a click on a point: that step's episodes), or an evaluation's numbers and
// what made it. A run's curves are read when its block first opens.
function drawCurves() {
  curvesDrawn = true;
  const firstRun = sources.find((s) => s.kind === "run") || sources[0];
  document.getElementById("curves").replaceChildren(...sources.map((source) => {
    const steps = ["train", "eval"].map((split) => range(source.steps?.[split] || []) && `${split} ${range(source.steps[split])}`).filter(Boolean);
    const what = { run: "run", eval: "evaluation", store: "episodes only" }[source.kind] || source.kind;
    const summary = el("summary", {}, el("b", { class: "name" }, shown(source.name, true)),
      el("span", { class: "note" }, ` · ${what} · ${source.episodes.toLocaleString()} episodes${steps.length ? " · " + steps.join(", ") : ""}`),
      el("span", { class: "headline" }));
    const body = el("div", { class: "block-body" }, el("p", { class: "note" }, "reading…"));
    // folded but the first run's (none on a phone: the table comes first there), unless the user unfolded it
    const open = opened.has(source.name) ? opened.get(source.name) : source === firstRun && !narrow.matches;
    const block = el("details", { class: "source-block", "data-source": source.name, open }, summary, body);
    let filled = false;
    const fill = async () => {
      if (filled) return;
      filled = true;
      try {
        body.replaceChildren(...await contents(source, block));
      } catch (error) {
        body.replaceChildren(el("p", { class: "note" }, `could not read the curves: ${error.message}`));
      }
    };
    block.addEventListener("toggle", () => { opened.set(source.name, block.open); if (block.open) fill(); });
    if (open || source.kind === "eval") fill();  // an evaluation's numbers are small: its headline shows folded
    return block;
  }));
}

async function contents(source, block) {
  const curves = await api("api/curves", { source: source.name });
  const out = [], facts = [];
  if (source.note) out.push(el("p", { class: "note" }, shown(source.note)));
  if (curves.note) out.push(el("p", { class: "note" }, shown(curves.note)));
  const numbers = Object.entries(curves.numbers || {});
  if (numbers.length) {
    const value = (k, v) => (/(_s|_seconds)$/.test(k) && typeof v === "number" ? duration(v) : fmt(v));
    facts.push(el("table", { class: "numbers" }, el("caption", {}, "metrics.json"),
      numbers.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, value(k, v))))));
    const headline = numbers.filter(([k]) => ["accuracy", "mean_reward", "pass@1"].includes(k));
    block.querySelector(".headline").textContent = headline.length ? ` · ${headline.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}` : "";
  }
  if (source.made_by && Object.keys(source.made_by).length) facts.push(madeBy(source.made_by));
  else if (source.kind === "eval") facts.push(el("p", { class: "note" }, "metrics.json says nothing of what made this evaluation (an older agentrl, or still running)"));
  if (facts.length) out.push(el("div", { class: "eval-facts" }, facts));
  if (source.kind === "eval" && !numbers.length) out.push(el("p", { class: "note" }, "metrics.json has no numbers yet (still running?)"));
  else if (!curves.panels.length && !numbers.length && !curves.note) out.push(el("p", { class: "note" }, "no curves: this folder has only its episodes"));
  const pick = (step, key) => {
    const params = new URLSearchParams({ source: source.name, step, split: key.startsWith("eval/") ? "eval" : "train" });
    location.hash = tableHash(params);
    document.getElementById("episodes").scrollIntoView();
  };
  if (curves.panels.length) {
    out.push(el("p", { class: "note hint" }, "Move over a chart to read its values; click a point to list that step's episodes. By keyboard: Tab to a chart, ← → (and ↑ ↓ between its lines), Enter."));
    out.push(el("div", { class: "panels" }, curves.panels.map((panel) => lineChart(panel, pick))));
  }
  return out;
}

// What made an evaluation (metrics.json's made_by): the model, environment, sampling and the rest,
// a nested part (sampling, rollout) on one line of its own.
function madeBy(made) {
  const value = (v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.entries(v).flatMap(([k, w], i) => [i ? ", " : "", el("span", { class: "key" }, k), " ", value(w)]);
    }
    if (v && typeof v === "object" && !Object.keys(v).length) return "none";
    if (Array.isArray(v)) return v.length ? shown(JSON.stringify(v), true) : "none";
    if (typeof v === "string") return shown(v, true);
    if (v === null) return "none";
    return fmt(v);
  };
  return el("table", { class: "numbers made-by" }, el("caption", {}, "made by"),
    Object.entries(made).map(([k, v]) => el("tr", { "data-key": k }, el("td", {}, k), el("td", {}, value(v)))));
}

start();
