"""Multi-turn rollouts: many episodes at once against one engine, recorded token-exact."""

from agentrl.rollout.chat import ChatRenderer, TemplateBreak
from agentrl.rollout.io import read_trajectories, write_trajectories
from agentrl.rollout.runner import arollout, rollout
from agentrl.rollout.scheduler import EpisodeScheduler, Group, RolloutConfig

__all__ = [
    "ChatRenderer",
    "EpisodeScheduler",
    "Group",
    "RolloutConfig",
    "TemplateBreak",
    "arollout",
    "read_trajectories",
    "rollout",
    "write_trajectories",
]
