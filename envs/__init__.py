"""agentrl's built-in environments (installed as ``agentrl_envs``).

Each registers through the ``agentrl.envs`` entry-point group in ``pyproject.toml``, the
same way a third-party package does. Environments see text only: no torch, no tokens.
"""
