"""agentrl: reinforcement learning for LLM agents in multi-turn text environments.

The package is split along the boundaries of the design:

- ``agentrl.envs``: the environment API (text in, text out), the entry-point registry and
  ``check_env``. Built-in environments live in ``agentrl_envs``, tools in ``agentrl_tools``.
- ``agentrl.engines``: inference engines (token ids in, token ids and logprobs out).
- ``agentrl.rollout``: runs many episodes at once and records token-exact trajectories.
- ``agentrl.cli``: the ``agentrl`` command.
"""

__version__ = "0.1.0"
