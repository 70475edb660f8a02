"""Running model-written code in a sandbox that holds (Docker or bubblewrap).

``session.PythonSession`` is the interface: one persistent interpreter per episode, a hard
timeout, output caps. ``backends`` chooses and builds a backend from a name
(``docker``, ``bwrap``, ``auto``). There is no unsandboxed backend.
"""
