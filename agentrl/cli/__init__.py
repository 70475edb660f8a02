"""The ``agentrl`` command line: ``envs``, ``algos``, ``tools``, ``train``, ``eval``, ``plot``, ``serve``.

Sets, before torch loads, torch's C++ log level to errors that end the process
(``TORCH_CPP_LOG_LEVEL=FATAL`` unless the user set it): the command reports a failed rendezvous or
collective in one line from the Python exception, which torch's C++ layer would otherwise precede
with its own multi-line log and stack.
"""

import os

os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
