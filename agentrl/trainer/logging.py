"""Run metrics: a JSONL file always, and wandb when asked (with a table of sampled episodes at
each evaluation).

Owns the metrics sink only. ``metrics.jsonl`` gets one line per step, flushed at once, so
a killed run keeps everything it logged (``agentrl.trainer.history`` cuts it back to the
checkpoint on resume). wandb is imported only when chosen; without a network set
``WANDB_MODE=offline`` (the default here when no API key is configured). A resumed run
continues the same wandb run, rewound to the checkpoint's step (``resume_from``), so wandb
too holds one value per step; offline, ``wandb sync`` the run's folders in order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        *,
        use_wandb: bool = False,
        name: str = "",
        config: dict[str, Any] | None = None,
        wandb_id: str | None = None,
        resume_step: int = 0,
    ):
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._wandb: Any = None
        self.wandb_id = wandb_id
        if use_wandb:
            try:
                import wandb
            except ImportError:
                raise AgentRLError("--logger wandb needs the wandb package: pip install wandb") from None
            os.environ.setdefault("WANDB_MODE", "offline" if not os.environ.get("WANDB_API_KEY") else "online")
            where: dict[str, Any] = {"id": wandb_id, "resume": "allow"} if wandb_id else {}
            if wandb_id and resume_step:
                where = {"resume_from": f"{wandb_id}?_step={resume_step}"}
            self._wandb = wandb.init(project="agentrl", name=name, dir=str(run_dir), config=config, **where)
            self.wandb_id = self._wandb.id

    def log(self, step: int, metrics: dict[str, float], tables: dict[str, list[dict[str, Any]]] | None = None) -> None:
        """One step's metrics; ``tables`` (rows of episodes, by name) go to wandb only, as
        ``wandb.Table``s logged with the step (the episode store holds every episode anyway)."""
        self._file.write(json.dumps({"step": step, **metrics}) + "\n")
        self._file.flush()
        if self._wandb is not None:
            import wandb

            logged: dict[str, Any] = dict(metrics)
            for name, rows in (tables or {}).items():
                if rows:
                    columns: list[Any] = list(rows[0])
                    logged[name] = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
            self._wandb.log(logged, step=step)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
