"""``python -m agentrl``: the ``agentrl`` command (what ``torchrun -m agentrl train`` runs on each rank)."""

import sys

from agentrl.cli.main import main

sys.exit(main())
