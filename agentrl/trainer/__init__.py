"""The training loop (synchronous now), its config, checkpoints and run directory."""
