"""The viewer's web app: a JSON API over the sources, and the page that reads it.

Owns the routes: ``/`` (the page) and ``/static/*`` (its assets, shipped in the package), and
under ``/api/``: ``sources``, ``facets`` (the values each filter takes), ``kinds`` (the tool-error
kinds found), ``curves?source=``, ``episodes`` (one page of the table, ``table.Filters``),
``episode?source=&id=`` (one whole record; in the query, as a source's name may hold a slash) and
``related?source=&id=`` (the episodes to compare it with). An unknown source is a 404 on every
route; a parameter a route does not take, or one given twice, a 422.
Every request looks at each store's index and rebuilds the table when one changed, so a run still
training shows its new steps on a reload.
Numbers JSON cannot hold (NaN, infinities) go out as the strings "nan", "inf" and "-inf".
"""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from agentrl.errors import AgentRLError
from agentrl.view.sources import Source, open_sources
from agentrl.view.table import Filters, Table

STATIC = Path(__file__).resolve().parent / "static"
PARAMETERS = {
    "/api/sources": set(),
    "/api/facets": set(),
    "/api/kinds": {"source"},
    "/api/curves": {"source"},
    "/api/episodes": set(Filters.model_fields),
    "/api/episode": {"source", "id"},
    "/api/related": {"source", "id"},
}
"""The query parameters each API route takes: any other, or one given twice, is a 422."""


class Json(JSONResponse):
    """A JSON response that carries NaN and infinities as strings rather than failing on them."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:  # rare: walk the content only when it holds a non-finite number
            text = json.dumps(finite(content), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class Catalog:
    """The sources, and the table over their rows, rebuilt when a store's index changed."""

    def __init__(self, sources: list[Source]):
        self.sources = sources
        self.by_name = {s.name: s for s in sources}
        self._lock = threading.Lock()
        self._seen: list[list[dict[str, Any]]] = []
        self._table = Table([])

    def source(self, name: str) -> Source:
        if name not in self.by_name:
            raise HTTPException(404, f"no source named {name!r}; the sources are {', '.join(self.by_name)}")
        return self.by_name[name]

    def table(self) -> Table:
        with self._lock:  # requests run on a thread pool; the stores' caches are not thread-safe
            rows = [s.store.rows() for s in self.sources]
            if len(rows) != len(self._seen) or any(a is not b for a, b in zip(rows, self._seen, strict=True)):
                self._table = Table([(s.name, r) for s, r in zip(self.sources, rows, strict=True)])
                self._seen = rows
            return self._table

    def episode(self, source: str, episode_id: str) -> dict[str, Any]:
        store = self.source(source).store
        with self._lock:
            try:
                record = store.episode(episode_id)
            except AgentRLError as exc:  # a damaged step file: say which, as the store words it
                raise HTTPException(500, str(exc)) from None
        if record is None:
            shape = "" if re.fullmatch(r"(train|eval)-\d+-\d+", episode_id) else " (its ids look like train-3-17)"
            raise HTTPException(404, f"no episode {episode_id!r} in {source}{shape}")
        return {"source": source} | record

    def related(self, source: str, episode_id: str) -> dict[str, Any]:
        """The episodes to set beside ``episode_id``: the rest of its group (same source, split,
        step and group), and every other (source, split, step) that ran its task, its own source
        first, each by step; no cap (a row is small)."""
        self.source(source)
        table = self.table()
        names, codes = table.labels["source"].names, table.labels["source"].codes
        mine = np.flatnonzero(table.labels["source"].equals(source)).tolist()
        own = next((i for i in mine if table.rows[i]["id"] == episode_id), None)
        if own is None:
            raise HTTPException(404, f"no episode {episode_id!r} in {source}")
        me = table.rows[own]
        same_task = np.flatnonzero(table.labels["task_id"].equals(me["task_id"])).tolist()
        group: list[dict[str, Any]] = []
        elsewhere: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for i in same_task:
            row, name = table.rows[i], names[codes[i]]
            place = (name, row["split"], row["step"])
            if place == (source, me["split"], me["step"]) and row.get("group_id") == me.get("group_id"):
                if i != own:
                    group.append({"source": name} | row)
                continue
            brief = {"id": row["id"], "reward": row["reward"], "correct": row.get("correct")}
            elsewhere.setdefault(place, []).append(brief)
        order = sorted(elsewhere, key=lambda p: (p[0] != source, self._position(p[0]), p[1] != me["split"], p[2]))
        steps = [
            {"source": n, "split": split, "step": step, "episodes": elsewhere[(n, split, step)]}
            for n, split, step in order
        ]
        return {"task_id": me["task_id"], "group": group, "elsewhere": steps}

    def _position(self, name: str) -> int:
        return next(i for i, s in enumerate(self.sources) if s.name == name)

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.summary() for s in self.sources]


def make_app(dirs: list[str | Path]) -> FastAPI:
    """The viewer of the run and eval folders ``dirs``; reads their indexes now, so a folder that
    cannot be shown is an ``AgentRLError`` before anything is served."""
    catalog = Catalog(open_sources(dirs))
    catalog.table()
    app = FastAPI(title="agentrl view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catalog = catalog
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/sources")
    def sources() -> Json:
        return Json(catalog.summaries())

    @app.get("/api/facets")
    def facets() -> Json:
        return Json(catalog.table().facets())

    @app.middleware("http")
    async def only_known_parameters(request: Request, call_next: Any) -> Any:
        """A parameter a route does not take, or one given twice, is a 422 naming it (not ignored)."""
        allowed = PARAMETERS.get(request.url.path)
        if allowed is not None:
            keys = [k for k, _ in request.query_params.multi_items()]
            unknown = sorted({k for k in keys if k not in allowed})
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if unknown or twice:
                what = f"unknown parameter {', '.join(unknown)}" if unknown else f"{', '.join(twice)} given twice"
                takes = ", ".join(sorted(allowed)) or "no parameters"
                return Json({"detail": f"{request.url.path}: {what} (it takes {takes})"}, status_code=422)
        return await call_next(request)

    @app.get("/api/kinds")
    def kinds(source: str | None = None) -> Json:
        table = catalog.table()
        counts: dict[str, int] = {}
        errors = table.numbers["tool_errors"] > 0
        if source is not None:
            catalog.source(source)
            errors &= table.labels["source"].equals(source)
        for found in table.kinds(np.flatnonzero(errors)):
            for kind in found:
                counts[kind] = counts.get(kind, 0) + 1
        return Json(dict(sorted(counts.items())))

    @app.get("/api/curves")
    def curves(source: str) -> Json:
        return Json(catalog.source(source).curves())

    @app.get("/api/episodes")
    def episodes(filters: Annotated[Filters, Query()]) -> Json:
        if filters.source is not None:
            catalog.source(filters.source)  # an unknown one is a 404, as on every route
        return Json(catalog.table().page(filters))

    @app.get("/api/episode")
    def episode(source: str, episode_id: Annotated[str, Query(alias="id")]) -> Json:
        return Json(catalog.episode(source, episode_id))

    @app.get("/api/related")
    def related(source: str, episode_id: Annotated[str, Query(alias="id")]) -> Json:
        return Json(catalog.related(source, episode_id))

    return app
