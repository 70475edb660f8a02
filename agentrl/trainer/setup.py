"""Building what a run trains: tokenizer, learner model, engine model, learner.

Owns model resolution (``--model`` or the default model shipped in
``agentrl/models/default``) and the separation of the learner's weights from the engine's
own copy, which receives them through ``update_weights`` after each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentrl import learner as learners
from agentrl.algos.base import Algorithm
from agentrl.engines.base import Engine
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.errors import ModelLoadError
from agentrl.learner import Learner, lora
from agentrl.trainer import ranks
from agentrl.trainer.config import TrainConfig
from agentrl.trainer.ranks import LeaderLearner

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


@dataclass
class Models:
    tokenizer: Any
    learner: Learner
    engine: Engine
    pad_token_id: int


def resolve_model(name: str | None) -> str:
    if name is not None:
        return name
    if not (DEFAULT_MODEL / "config.json").is_file():
        raise ModelLoadError(
            f"the default model is missing from {DEFAULT_MODEL}; build it: python scripts/build_default_model.py"
        )
    return str(DEFAULT_MODEL)


def make_learner(config: TrainConfig, algorithm: Algorithm) -> Learner:
    """The learner of this rank: rank 0 of several leads the others (``agentrl.trainer.ranks``)."""
    path = resolve_model(config.model)
    torch.manual_seed(config.seed)
    policy = load_model(path, config.device, dtype=config.learner.weights_dtype).train()
    if config.lora.enabled:
        policy = lora.apply(policy, config.lora, base=path)
    learner = learners.make(policy, algorithm, config.learner)
    leads = ranks.rank() == 0 and ranks.learner_ranks(config.asynchronous.workers) > 1
    return LeaderLearner(learner) if leads else learner


def load_models(config: TrainConfig, algorithm: Algorithm) -> Models:
    path = resolve_model(config.model)
    tokenizer = load_tokenizer(path)
    learner = make_learner(config, algorithm)
    engine = make_engine(config.engine, path, tokenizer, device=config.device, seed=config.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Models(tokenizer=tokenizer, learner=learner, engine=engine, pad_token_id=pad)
