"""The ``agentrl`` command line: ``envs list``, ``envs check``, ``algos list``, ``eval``."""
