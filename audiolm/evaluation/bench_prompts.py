"""`audiolm bench prompts`: several prompts of different lengths, one batch vs one by one.

`AudioLM.continue_prompts` runs prompts of any lengths through the three stages as one batch
(left-padded, masked, per-row positions and windows: `inference/decode.py`); the alternative is
`generate_continuation` once per prompt. Both give the same tokens (checked here: `equal`),
so the only difference is time. Prompts are encoded once, outside the timing; each way runs
once untimed (warm-up) and then `repeats` times; the fastest run counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from audiolm.core.timing import synced_clock
from audiolm.evaluation.bench_continue import bench_prompt


@dataclass
class PromptsResult:
    pipeline: str
    device: str
    prompt_seconds: list[float]
    seconds: float
    batched_s: float  # continue_prompts, all prompts at once
    one_by_one_s: float  # generate_continuation per prompt, summed
    speedup: float
    equal: bool  # every prompt's tokens the same both ways

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bench_prompts(lm, prompt_seconds: list[float], seconds: float, repeats: int = 1, seed: int = 0) -> PromptsResult:
    prompts = [
        lm.encode_prompt(bench_prompt(s, lm.sample_rate, seed + i), lm.sample_rate)
        for i, s in enumerate(prompt_seconds)
    ]
    clock = synced_clock(lm.device)

    def batched():
        return lm.continue_prompts(prompts, seconds=seconds, seed=seed)

    def one_by_one():
        return [lm.generate_continuation(None, None, seconds=seconds, seed=seed, prompt=p) for p in prompts]

    best: dict[str, float] = {}
    outputs: dict[str, list] = {}
    for name, run in (("batched", batched), ("one_by_one", one_by_one)):
        for i in range(repeats + 1):  # run 0 warms up
            start = clock()
            outputs[name] = run()
            took = clock() - start
            if i:
                best[name] = min(best.get(name, float("inf")), took)
    equal = all(
        torch.equal(a.codes, b.codes) and torch.equal(a.semantic, b.semantic)
        for a, b in zip(outputs["batched"], outputs["one_by_one"])
    )
    return PromptsResult(
        pipeline=lm.recipe.name,
        device=str(lm.device),
        prompt_seconds=[round(p.audio.shape[-1] / lm.sample_rate, 3) for p in prompts],
        seconds=seconds,
        batched_s=best["batched"],
        one_by_one_s=best["one_by_one"],
        speedup=best["one_by_one"] / best["batched"],
        equal=equal,
    )


def format_result(machine: str, r: PromptsResult) -> str:
    prompts = ", ".join(f"{s:g}" for s in r.prompt_seconds)
    return "\n".join(
        [
            f"machine: {machine}",
            f"pipeline {r.pipeline} on {r.device}: {len(r.prompt_seconds)} prompts of {prompts} s, "
            f"{r.seconds:g} s continuation each",
            f"one batch (continue_prompts): {r.batched_s:.2f} s",
            f"one by one (generate_continuation): {r.one_by_one_s:.2f} s",
            f"speed-up {r.speedup:.2f}x; same tokens both ways: {'yes' if r.equal else 'NO'}",
        ]
    )
