"""The ``agentrl`` command line: ``envs list``, ``envs check``, ``eval``."""
