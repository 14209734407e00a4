"""Progress bars for a continuation: `progress, close = progress_bars()` gives the callback that
`AudioLM.continue_audio` / `generate_continuation` / `generate_batches` / `stream` take
(`progress(stage, done, total)`), drawing one tqdm bar per stage on stderr, and `close()`.
Stages: "semantic" (tokens), "coarse" and "fine" (frames), "codec" (decoding), and "samples"
(samples done, when many samples run in several batches)."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

UNITS = {"semantic": "token", "coarse": "frame", "fine": "frame", "samples": "sample"}


def progress_bars() -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """(progress callback drawing one tqdm bar per stage on stderr, close())."""
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(
                total=total, desc=stage, unit=UNITS.get(stage, "step"), leave=True, dynamic_ncols=True
            )
        bar.total = total
        bar.n = done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return progress, close
