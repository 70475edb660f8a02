// The page: the sources in the header, then by the hash either the curves and the table
// (#/?filters), one episode (#/episode/SOURCE/ID) or two side by side (#/compare/S1/ID1/S2/ID2).

import { api, el, fmt, showError } from "./api.js";
import { lineChart } from "./charts.js";
import { showEpisodes } from "./episode.js";
import { fillFilters, setUpTable, showTable, tableHash } from "./table.js";

let sources = [];
let curvesDrawn = false;

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
    el("span", { title: s.path }, i ? " · " : "", el("b", {}, s.name), ` (${s.kind}, ${s.episodes.toLocaleString()} episodes)`)));
  return true;
}

function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const detail = parts[0] === "episode" || parts[0] === "compare";
  document.getElementById("home").hidden = detail;
  document.getElementById("detail").hidden = !detail;
  if (parts[0] === "episode") {
    document.title = `${parts[2]} · agentrl view`;
    showEpisodes([[parts[1], parts[2]]]);
  } else if (parts[0] === "compare") {
    document.title = `${parts[2]} vs ${parts[4]} · agentrl view`;
    showEpisodes([[parts[1], parts[2]], [parts[3], parts[4]]]);
  } else {
    document.title = "agentrl view";
    if (!curvesDrawn) drawCurves();
    showTable(new URLSearchParams(query || ""));
  }
}

// Each run's panels (a click on a point: that step's episodes) and each evaluation's numbers.
async function drawCurves() {
  curvesDrawn = true;
  const box = document.getElementById("curves");
  const blocks = await Promise.all(sources.map(async (source) => {
    const curves = await api("api/curves", { source: source.name });
    const head = el("h2", {}, `${source.name}: ${source.kind === "eval" ? "evaluation" : "curves"}`);
    const note = curves.note ? el("p", { class: "note" }, curves.note) : null;
    const numbers = Object.keys(curves.numbers).length
      ? el("table", { class: "numbers" }, Object.entries(curves.numbers).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, fmt(v)))))
      : null;
    const pick = (step, key) => {
      const params = new URLSearchParams({ source: source.name, step, split: key.startsWith("eval/") ? "eval" : "train" });
      location.hash = tableHash(params);
      document.getElementById("episodes").scrollIntoView();
    };
    const panels = el("div", { class: "panels" }, curves.panels.map((panel) => lineChart(panel, pick)));
    return el("section", { "data-source": source.name }, head, note, numbers, panels);
  }));
  box.replaceChildren(...blocks);
}

start();
