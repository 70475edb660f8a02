"""Build a tiny Qwen2-architecture model (own tokenizer and ChatML template) in a folder.

    python scripts/make_tiny_model.py runs/tiny                      # warm-started: calls the calculator
    python scripts/make_tiny_model.py runs/tiny --warm-start-steps 0 # random weights

A stand-in until the shipped default model exists; useful for trying the commands and for
tests. Takes seconds on a CPU.
"""

from __future__ import annotations

import argparse

from agentrl.models.tiny import TEMPLATES, make_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--template", choices=sorted(TEMPLATES), default="chatml")
    parser.add_argument("--warm-start-steps", type=int, default=150, help="supervised steps on calculator traces")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = make_tiny_model(
        args.out,
        template=args.template,
        warm_start_steps=args.warm_start_steps,
        seed=args.seed,
        hidden=args.hidden,
        layers=args.layers,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
