"""``agentrl view``: a local web page of the episodes of runs and evaluations.

Owns the viewer: ``sources`` opens the run and eval folders given (their episode stores and
curves), ``table`` filters, sorts and pages every episode's index row in columns (numpy, so a
query over 100,000 episodes takes milliseconds), ``app`` serves the JSON API and the page, and
``static/`` holds the page itself (HTML, CSS and plain JS that draws its charts as inline SVG:
nothing is fetched from elsewhere). It reads the episode store (``agentrl.episodes``) and, for the
curves, ``agentrl plot``'s panels and metrics reader (``agentrl.cli.plot_cmd``, whose reading of
``metrics.jsonl`` is ``agentrl.trainer.history``'s: a file reader, the one module of the trainer
package that comes in, without torch or the loop). ``agentrl/cli/view_cmd.py`` starts it;
docs/view.md describes it.
"""

from __future__ import annotations

from agentrl.view.app import make_app

__all__ = ["make_app"]
