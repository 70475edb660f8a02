"""Build the default model that ships with agentrl (``agentrl/models/default/``).

Reproducible from a seed on a 2-core CPU in minutes:

1. generate ``math_tool`` training traces from the task generator's *train* split (the
   environment's own system prompt, the task, a calculator call with the task's
   expression, the tool's result, "The answer is N.");
2. train a byte-level BPE tokenizer on them, with a ChatML template;
3. train a small Qwen2-architecture model on the traces (loss on assistant turns);
4. every ``--eval-every`` steps, measure held-out accuracy on the *test* split with
   agentrl's own rollout (temperature 1, as ``agentrl eval`` samples); keep the first
   checkpoint whose accuracy lies in ``[--low, --high]``, so the shipped model starts
   mediocre and RL has something to learn (supervised training passes through a sharp
   transition: the accuracy jumps from near 0 to near 1 within ~100 steps).

    python scripts/build_default_model.py                  # writes agentrl/models/default
    python scripts/build_default_model.py --out /tmp/m     # elsewhere
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
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


def traces(n: int, seed: int) -> list[list[dict[str, str]]]:
    env = make("math_tool", seed=seed, num_tasks=n)
    system = env.default_system_prompt
    out = []
    for task in env.tasks("train"):
        expression = task.meta["expression"]
        out.append(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": task.prompt},
                {"role": "assistant", "content": f"<calculator>{expression}</calculator>"},
                {"role": "tool", "content": format_number(evaluate(expression))},
                {"role": "assistant", "content": f"The answer is {task.answer}."},
            ]
        )
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
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--eval-from", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-tasks", type=int, default=200)
    parser.add_argument("--low", type=float, default=0.15)
    parser.add_argument("--high", type=float, default=0.40)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.time()
    conversations = traces(args.traces, args.seed)
    corpus = (tok_text(c) for c in conversations)
    tokenizer = as_reloaded(build_tokenizer(corpus, vocab_size=args.vocab), args.out)
    model = build_model(tokenizer, hidden=args.hidden, layers=args.layers, heads=4, kv_heads=2, seed=args.seed)
    history: list[dict[str, float]] = []
    chosen: dict[str, object] = {}

    def on_step(step: int, loss: float) -> bool:
        if step < args.eval_from or step % args.eval_every:
            return False
        accuracy = held_out_accuracy(model, tokenizer, args.eval_tasks, args.seed)
        history.append(
            {"step": step, "loss": round(loss, 4), "accuracy": accuracy, "seconds": round(time.time() - start, 1)}
        )
        print(
            f"step {step:5d}  loss {loss:.4f}  held-out accuracy {accuracy:.3f}  ({time.time() - start:.0f} s)",
            flush=True,
        )
        if args.low <= accuracy <= args.high:
            chosen.update(step=step, accuracy=accuracy, state=copy.deepcopy(model.state_dict()))
            return True
        return False

    sft.train(
        model,
        tokenizer,
        conversations,
        steps=args.max_steps,
        lr=args.lr,
        batch_size=args.batch,
        seed=args.seed,
        on_step=on_step,
    )
    if not chosen:
        raise SystemExit(f"no checkpoint had held-out accuracy in [{args.low}, {args.high}]: {history}")
    model.load_state_dict(chosen.pop("state"))  # type: ignore[arg-type]
    save(model, tokenizer, args, chosen, history, start)


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
