"""The local web demo and HTTP API behind `audiolm serve` (Starlette; the `serve` extra).

    GET  /                       the page: upload / record / pick a bundled prompt, listen as it streams
    GET  /api/info               JSON: pipelines, bundled prompts, limits, queue length
    GET  /api/prompts/NAME.wav   a bundled prompt (held in memory; NAME is looked up, never a path)
    POST /api/continue?pipeline=P&seconds=S&seed=N&temperature=T[&continuation_only=1][&first_chunk_seconds=F]
         body: the prompt audio (Content-Type audio/*: wav, flac, ogg, mp3)
         -> 200, a 16-bit WAV streamed as it is generated (header of unknown length), headers
            X-Audiolm-Sample-Rate, X-Audiolm-Prompt-Samples (where the continuation starts), X-Audiolm-Seed;
            4xx JSON {"error": ...} for a bad request, 503 when the queue is full

    curl --data-binary @prompt.wav -H 'Content-Type: audio/wav' \\
         'http://127.0.0.1:8000/api/continue?seconds=4&seed=0' -o out.wav

Limits (`Limits`): body size, continuation seconds, generations waiting. One generation runs at
a time (the stages' KV caches belong to the loaded pipeline): requests queue on one worker
thread in arrival order, and the queue has a bound past which requests get 503 at once. Nothing
from a request names a file: pipelines are picked from a fixed list, uploads are decoded from
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import threading
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from audiolm.core.audio import load_audio
from audiolm.core.errors import AudiolmError
from audiolm.core.paths import CHECKPOINTS_DIR
from audiolm.core.wav_stream import pcm16, wav_header
from audiolm.inference.pipeline import AudioLM

BUNDLED_PROMPTS = {"speech": "prompts/speech_prompt.wav", "music": "prompts/music_prompt.wav"}


@dataclass
class Limits:
    max_upload_bytes: int = 10 * 1024 * 1024
    max_seconds: float = 30.0
    max_waiting: int = 8  # generations queued behind the running one; more get 503
    max_temperature: float = 2.0


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def decode_upload(data: bytes) -> tuple[torch.Tensor, int]:
    """Audio file bytes -> ([channels, samples] float32, sample rate), from memory only."""
    try:
        array, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        reason = str(e).rpartition(": ")[2] or type(e).__name__  # drop libsndfile's "<BytesIO object at ...>"
        raise HTTPError(415, f"the upload is not audio this server can read (wav, flac, ogg, mp3): {reason}") from None
    if array.size == 0:
        raise HTTPError(422, "the uploaded audio is empty")
    return torch.from_numpy(np.ascontiguousarray(array.T)), int(sr)


class _Job:
    """One generation: the worker thread puts messages, the response drains them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()

    def put(self, message: tuple) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)


class Server:
    """Pipelines (loaded on first use), the worker thread and the queue bound."""

    def __init__(self, pipelines: Mapping[str, str | Path], limits: Limits | None = None, device: str = "cpu") -> None:
        """pipelines: the names offered -> what `AudioLM.from_pretrained` loads for each."""
        if not pipelines:
            raise AudiolmError("serve: no pipelines to offer")
        self.sources = dict(pipelines)
        self.pipelines = list(pipelines)
        self.limits = limits or Limits()
        self.device = device
        self._loaded: dict[str, AudioLM] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audiolm-generate")
        self._pending = 0  # submitted generations not finished (running + waiting)
        self.prompts = self._bundled_prompts()

    @staticmethod
    def _bundled_prompts() -> dict[str, bytes]:
        found = {}
        for name, rel in BUNDLED_PROMPTS.items():
            path = CHECKPOINTS_DIR / rel
            if path.is_file():
                found[name] = path.read_bytes()
        return found

    def lm(self, name: str) -> AudioLM:
        """The loaded pipeline `name` (worker thread only)."""
        if name not in self._loaded:
            self._loaded[name] = AudioLM.from_pretrained(self.sources[name], device=self.device)
        return self._loaded[name]

    def info(self) -> dict:
        return {
            "pipelines": self.pipelines,
            "prompts": sorted(self.prompts),
            "limits": asdict(self.limits),
            "generations_pending": self._pending,
        }

    # -- one generation (on the worker thread) -----------------------------------------------

    def _generate(self, job: _Job, pipeline: str, wav: torch.Tensor, sr: int, options: dict) -> None:
        if job.cancelled.is_set():  # the client left while the request was queued
            job.put(("end",))
            return
        try:
            lm = self.lm(pipeline)
            with warnings.catch_warnings():  # only this thread touches the filters while it runs
                warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
                prompt = lm.encode_prompt(wav, sr)
            start = 0 if options["continuation_only"] else prompt.audio.shape[-1]
            job.put(("start", lm.sample_rate, start))
            stream = lm.stream(
                None,
                None,
                seconds=options["seconds"],
                seed=options["seed"],
                temperature=options["temperature"],
                prompt=prompt,
                continuation_only=options["continuation_only"],
                first_chunk_seconds=options["first_chunk_seconds"],
            )
            for chunk in stream:
                if job.cancelled.is_set():
                    stream.close()
                    break
                job.put(("audio", pcm16(chunk[0])))
            job.put(("end",))
        except AudiolmError as e:
            job.put(("error", 422, str(e)))
        except Exception as e:  # reported to the client, never kills the worker
            job.put(("error", 500, f"generation failed: {type(e).__name__}: {e}"))

    # -- HTTP ---------------------------------------------------------------------------------

    def _options(self, request: Request) -> tuple[str, dict]:
        q = request.query_params
        pipeline = q.get("pipeline", self.pipelines[0])
        if pipeline not in self.pipelines:
            raise HTTPError(400, f"unknown pipeline '{pipeline}'; available: {', '.join(self.pipelines)}")

        def number(name: str, cast, default):
            text = q.get(name)
            if text is None or text == "":
                return default
            try:
                value = cast(text)
            except ValueError:
                raise HTTPError(400, f"{name} must be a number, got '{text}'") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise HTTPError(400, f"{name} must be finite, got '{text}'")
            return value

        seconds = number("seconds", float, 4.0)
        if not 0 < seconds <= self.limits.max_seconds:
            raise HTTPError(400, f"seconds must be in (0, {self.limits.max_seconds:g}], got {seconds:g}")
        seed = number("seed", int, None)
        if seed is None:
            seed = int.from_bytes(np.random.default_rng().bytes(4), "little") >> 1
        if not 0 <= seed < 2**32:
            raise HTTPError(400, f"seed must be an integer in [0, 2^32), got {seed}")
        temperature = number("temperature", float, None)
        if temperature is not None and not 0 <= temperature <= self.limits.max_temperature:
            raise HTTPError(400, f"temperature must be in [0, {self.limits.max_temperature:g}], got {temperature:g}")
        only = q.get("continuation_only", "0").lower() in ("1", "true", "yes")
        first = number("first_chunk_seconds", float, None)
        if first is not None and not 0 < first <= seconds:
            raise HTTPError(400, f"first_chunk_seconds must be in (0, seconds], got {first:g}")
        return pipeline, {
            "seconds": seconds,
            "seed": seed,
            "temperature": temperature,
            "continuation_only": only,
            "first_chunk_seconds": first,
        }

    async def _read_body(self, request: Request) -> bytes:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not kind.startswith("audio/") and kind != "application/octet-stream":
            raise HTTPError(415, f"send the prompt as audio (Content-Type audio/*), got '{kind or 'none'}'")
        limit = self.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"upload is {int(declared)} bytes, the limit is {limit}")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise HTTPError(413, f"upload is over the limit of {limit} bytes")
        if not body:
            raise HTTPError(400, "the request body is empty: send the prompt audio")
        return bytes(body)

    async def continue_(self, request: Request) -> Response:
        try:
            pipeline, options = self._options(request)
            body = await self._read_body(request)
            wav, sr = await asyncio.get_running_loop().run_in_executor(None, decode_upload, body)
        except HTTPError as e:
            return _error(e.status, e.message)
        except ClientDisconnect:
            return Response(status_code=400)
        if self._pending > self.limits.max_waiting:
            return JSONResponse(
                {"error": f"busy: {self._pending} generations running or queued; try again shortly"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        job = _Job(asyncio.get_running_loop())
        self._pending += 1
        future = asyncio.get_running_loop().run_in_executor(
            self._worker, self._generate, job, pipeline, wav, sr, options
        )
        future.add_done_callback(lambda _: self._finished())
        try:
            first = await job.queue.get()  # waits while queued
        except asyncio.CancelledError:
            job.cancelled.set()
            raise
        if first[0] == "error":
            return _error(first[1], first[2])
        _, sample_rate, prompt_samples = first

        async def body_stream():
            try:
                yield wav_header(sample_rate, 1, None)
                while True:
                    message = await job.queue.get()
                    if message[0] == "audio":
                        yield message[1]
                    else:  # "end", or an error after the header went out: the stream just ends
                        return
            finally:
                job.cancelled.set()  # client gone or done: the worker stops at its next chunk

        headers = {
            "X-Audiolm-Sample-Rate": str(sample_rate),
            "X-Audiolm-Prompt-Samples": str(prompt_samples),
            "X-Audiolm-Seed": str(options["seed"]),
            "Cache-Control": "no-store",
        }
        return StreamingResponse(body_stream(), media_type="audio/wav", headers=headers)

    def _finished(self) -> None:
        self._pending -= 1

    async def page(self, request: Request) -> Response:
        html = resources.files("audiolm.cli").joinpath("web_page.html").read_text(encoding="utf-8")
        return HTMLResponse(html.replace("__AUDIOLM_INFO__", json.dumps(self.info())))

    async def api_info(self, request: Request) -> Response:
        return JSONResponse(self.info())

    async def prompt(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = self.prompts.get(name)
        if data is None:
            return _error(404, f"no bundled prompt '{name}'; available: {', '.join(sorted(self.prompts))}")
        return Response(data, media_type="audio/wav")

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def create_app(pipelines: Mapping[str, str | Path], limits: Limits | None = None, device: str = "cpu") -> Starlette:
    server = Server(pipelines, limits, device)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.close()

    app = Starlette(
        routes=[
            Route("/", server.page),
            Route("/api/info", server.api_info),
            Route("/api/prompts/{name}.wav", server.prompt),
            Route("/api/continue", server.continue_, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.server = server
    return app


def prompt_audio(name: str) -> tuple[torch.Tensor, int]:
    """A bundled prompt (for tests and the bench)."""
    return load_audio(Path(CHECKPOINTS_DIR) / BUNDLED_PROMPTS[name])
