"""Build the default model that ships with agentrl (``agentrl/models/default/``).

Reproducible from a seed on a 2-core CPU in minutes:

1. generate ``math_tool`` training traces from the task generator's *train* split, with the
   environment's own system prompt. A ``--tool-rate`` share of them solves the task the
   agentic way (a calculator call with the task's expression, the tool's result, "The answer
   is N."); the rest answer at once with the first number of the question, a shortcut that
   is almost always wrong;
2. train a byte-level BPE tokenizer on them, with a ChatML template;
3. train a small Qwen2-architecture model on the traces (loss on assistant turns) for
   ``--steps`` steps, measuring held-out accuracy on the *test* split with agentrl's own
   rollout (temperature 1, as ``agentrl eval`` samples) every ``--eval-every`` steps;
4. save the final model if its held-out accuracy lies in ``[--low, --high]``.

The model learns both habits and picks the calculator about ``--tool-rate`` of the time,
so it starts mediocre for a reason RL can fix: reward for the episodes that used the tool
teaches it to use the tool.

    python scripts/build_default_model.py                  # writes agentrl/models/default
    python scripts/build_default_model.py --out /tmp/m     # elsewhere
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import time
from pathlib import Path

import torch

from agentrl.engines.base import SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.envs import make
from agentrl.evaluation import summarize
from agentrl.models import sft
from agentrl.models.tiny import as_reloaded, build_model, build_tokenizer
from agentrl.rollout import RolloutConfig, rollout
from agentrl_tools.calculator import evaluate, format_number

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "agentrl" / "models" / "default"


def traces(n: int, seed: int, tool_rate: float) -> list[list[dict[str, str]]]:
    """``n`` conversations from the train split: a ``tool_rate`` share solves the task with the
    calculator; the rest answer at once with the first number of the question (a shortcut)."""
    env = make("math_tool", seed=seed, num_tasks=n)
    system = env.default_system_prompt
    rng = random.Random(f"{seed}/traces")
    out = []
    for task in env.tasks("train"):
        head = [{"role": "system", "content": system}, {"role": "user", "content": task.prompt}]
        if rng.random() < tool_rate:
            expression = task.meta["expression"]
            tail = [
                {"role": "assistant", "content": f"<calculator>{expression}</calculator>"},
                {"role": "tool", "content": format_number(evaluate(expression))},
                {"role": "assistant", "content": f"The answer is {task.answer}."},
            ]
        else:
            guess = re.search(r"\d+", task.prompt)
            tail = [{"role": "assistant", "content": f"The answer is {guess.group() if guess else 0}."}]
        out.append(head + tail)
    return out


def held_out_accuracy(model, tokenizer, tasks: int, seed: int) -> float:
    factory = functools.partial(make, "math_tool")
    test = list(factory().tasks("test")[:tasks])
    engine = TransformersEngine(model, tokenizer, seed=seed)
    params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=seed)
    trajectories = rollout(factory, test, engine, tokenizer, params, RolloutConfig(max_total_tokens=512, seed=seed))
    return summarize(trajectories)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces", type=int, default=20000)
    parser.add_argument("--tool-rate", type=float, default=0.3, help="share of traces that use the calculator")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-tasks", type=int, default=200)
    parser.add_argument("--low", type=float, default=0.10)
    parser.add_argument("--high", type=float, default=0.50)
    args = parser.parse_args()
    start = time.time()
    conversations = traces(args.traces, args.seed, args.tool_rate)
    corpus = (tok_text(c) for c in conversations)
    tokenizer = as_reloaded(build_tokenizer(corpus, vocab_size=args.vocab), args.out)
    model = build_model(tokenizer, hidden=args.hidden, layers=args.layers, heads=4, kv_heads=2, seed=args.seed)
    history: list[dict[str, float]] = []

    def on_step(step: int, loss: float) -> None:
        if step % args.eval_every and step != args.steps:
            return
        accuracy = held_out_accuracy(model, tokenizer, args.eval_tasks, args.seed)
        seconds = time.time() - start
        history.append({"step": step, "loss": round(loss, 4), "accuracy": accuracy, "seconds": round(seconds, 1)})
        print(f"step {step:5d}  loss {loss:.4f}  held-out accuracy {accuracy:.3f}  ({seconds:.0f} s)", flush=True)

    sft.train(
        model,
        tokenizer,
        conversations,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch,
        seed=args.seed,
        on_step=on_step,
    )
    accuracy = history[-1]["accuracy"]
    if not args.low <= accuracy <= args.high:
        raise SystemExit(f"held-out accuracy {accuracy:.3f} is outside [{args.low}, {args.high}]: {history}")
    save(model, tokenizer, args, {"step": args.steps, "accuracy": accuracy}, history, start)


def save(model, tokenizer, args: argparse.Namespace, chosen: dict, history: list, start: float) -> None:
    """The model, its tokenizer and ``build_info.json`` (seed, chosen step, accuracy, settings)."""
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    info = {
        "seed": args.seed,
        "step": chosen["step"],
        "held_out_accuracy": chosen["accuracy"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(time.time() - start, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
        "history": history,
        "torch": torch.__version__,
    }
    (args.out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    seconds = time.time() - start
    print(f"wrote {args.out}: step {chosen['step']}, held-out accuracy {chosen['accuracy']:.3f}, {seconds:.0f} s")


def tok_text(conversation: list[dict[str, str]]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)


if __name__ == "__main__":
    main()
