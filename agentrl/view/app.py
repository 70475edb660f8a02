"""The viewer's web app: a JSON API over the sources, and the page that reads it.

Owns the routes: ``/`` (the page) and ``/static/*`` (its assets, shipped in the package), and
under ``/api/``: ``sources``, ``facets`` (the values each filter takes), ``kinds`` (the tool-error
kinds found), ``curves?source=``, ``episodes`` (one page of the table, ``table.Filters``) and
``episode?source=&id=`` (one whole record; in the query, as a source's name may hold a slash).
Every request looks at each store's index and rebuilds the table when one changed, so a run still
training shows its new steps on a reload.
Numbers JSON cannot hold (NaN, infinities) go out as the strings "nan", "inf" and "-inf".
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from agentrl.errors import AgentRLError
from agentrl.view.sources import Source, open_sources
from agentrl.view.table import Filters, Table

STATIC = Path(__file__).resolve().parent / "static"


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
            raise HTTPException(404, f"no episode {episode_id!r} in {source} (its ids look like train-3-17)")
        return {"source": source} | record

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

    @app.get("/api/kinds")
    def kinds() -> Json:
        table = catalog.table()
        counts: dict[str, int] = {}
        for found in table.kinds(np.flatnonzero(table.numbers["tool_errors"] > 0)):
            for kind in found:
                counts[kind] = counts.get(kind, 0) + 1
        return Json(dict(sorted(counts.items())))

    @app.get("/api/curves")
    def curves(source: str) -> Json:
        return Json(catalog.source(source).curves())

    @app.get("/api/episodes")
    def episodes(filters: Annotated[Filters, Query()]) -> Json:
        if filters.source is not None and filters.source not in catalog.by_name:
            known = ", ".join(catalog.by_name)
            raise HTTPException(400, f"source={filters.source}: no such source; the sources are {known}")
        return Json(catalog.table().page(filters))

    @app.get("/api/episode")
    def episode(source: str, episode_id: Annotated[str, Query(alias="id")]) -> Json:
        return Json(catalog.episode(source, episode_id))

    return app
