"""Running model-written code in a sandbox that holds (Docker or bubblewrap).

``session.PythonSession`` is the interface: one persistent interpreter per episode, a hard
timeout, output caps. ``backends`` chooses and builds a backend from a name (``docker``,
``bwrap``, ``auto``). Every limit on a sandbox as a whole is enforced from the host:
``cgroups`` (memory, tasks and CPU per sandbox, and a kill nothing inside escapes),
``seccomp`` (the system calls refused), ``channel`` (the bytes the host reads per call),
``reaper`` and ``owner`` (what a run that died left behind). ``repl`` is the interpreter that
runs inside, trusted with nothing. There is no unsandboxed backend; docs/sandbox.md is the
threat model.
"""
