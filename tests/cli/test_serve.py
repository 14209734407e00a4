"""`audiolm serve`: the HTTP API (Starlette's TestClient and a live uvicorn on localhost), its
limits, a bounded load test, and the page in a real headless browser (Debian's chromium and
chromium-driver through selenium; skipped with the reason where they are absent)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

starlette = pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from starlette.testclient import TestClient  # noqa: E402

from audiolm.cli.app import main  # noqa: E402
from audiolm.cli.web import Limits, create_app, decode_upload  # noqa: E402
from audiolm.core.wav_stream import UNKNOWN  # noqa: E402
from audiolm.inference.pipeline import AudioLM  # noqa: E402
from tests.helpers import tone  # noqa: E402

SR = 24000


@pytest.fixture(scope="module")
def recipe(tiny_pipeline) -> Path:
    return tiny_pipeline


@pytest.fixture(scope="module")
def client(recipe):
    with TestClient(create_app({"tiny": recipe}, Limits(max_upload_bytes=400_000, max_seconds=5))) as c:
        yield c


def _wav_bytes(wav: torch.Tensor, sr: int = SR) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav.T.numpy(), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _pcm(body: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(body[44:], "<i2").astype(np.float32) / 32767)[None]


def test_page_info_and_bundled_prompts(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="spectrogram"' in page.text and "__AUDIOLM_INFO__" not in page.text
    info = client.get("/api/info").json()
    assert info["pipelines"] == ["tiny"] and set(info["prompts"]) == {"speech", "music"}
    assert info["limits"]["max_seconds"] == 5
    prompt = client.get("/api/prompts/speech.wav")
    assert prompt.status_code == 200 and prompt.content[:4] == b"RIFF"
    for name in ("nosuch", "..%2F..%2Fpyproject", "%2Fetc%2Fpasswd"):
        assert client.get(f"/api/prompts/{name}.wav").status_code == 404


def test_continue_streams_the_continuation(client, recipe):
    """The API's WAV is continue_audio's audio (same seed) behind a streaming header."""
    wav = tone(0.5)
    r = client.post(
        "/api/continue?seconds=0.6&seed=3&temperature=0.9",
        content=_wav_bytes(wav),
        headers={"content-type": "audio/wav"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.headers["x-audiolm-seed"] == "3"
    body = r.content
    assert body[:4] == b"RIFF" and struct.unpack("<I", body[40:44])[0] == UNKNOWN
    lm = AudioLM.from_pretrained(recipe)
    prompt_wav, sr = decode_upload(_wav_bytes(wav))
    expected = lm.continue_audio(prompt_wav, sr, seconds=0.6, seed=3, temperature=0.9)[0]
    assert int(r.headers["x-audiolm-prompt-samples"]) == lm.encode_prompt(prompt_wav, sr).audio.shape[-1]
    got = _pcm(body)
    assert got.shape == expected.shape and torch.allclose(got, expected.clamp(-1, 1), atol=2 / 32767)


@pytest.mark.parametrize(
    "query, body, kind, status, message",
    [
        ("seconds=1", b"just text", "text/plain", 415, "Content-Type audio/*"),
        ("seconds=1", b"RIFF....WAVEnot really", "audio/wav", 415, "not audio this server can read"),
        ("seconds=1", b"x" * 500_000, "audio/wav", 413, "limit"),
        ("seconds=99", None, "audio/wav", 400, "seconds must be in (0, 5]"),
        ("seconds=abc", None, "audio/wav", 400, "seconds must be a number"),
        ("seconds=1&pipeline=..%2Fetc", None, "audio/wav", 400, "unknown pipeline"),
        ("seconds=1&temperature=-1", None, "audio/wav", 400, "temperature must be in"),
        ("seconds=1&first_chunk_seconds=2", None, "audio/wav", 400, "first_chunk_seconds must be in"),
        ("seconds=1", b"", "audio/wav", 400, "body is empty"),
        ("seconds=1", "short", "audio/wav", 422, "shorter than"),
        ("seconds=1", "silent", "audio/wav", 422, "silent"),
    ],
)
def test_bad_requests_get_a_clear_4xx(client, query, body, kind, status, message):
    if body is None:
        body = _wav_bytes(tone(0.3))
    elif body == "short":
        body = _wav_bytes(tone(0.01))
    elif body == "silent":
        body = _wav_bytes(torch.zeros(1, SR // 2))
    r = client.post(f"/api/continue?{query}", content=body, headers={"content-type": kind})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


# -- a live server on localhost -----------------------------------------------------------------


class LiveServer:
    def __init__(self, app) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def post(self, query: str, body: bytes, timeout: float = 300) -> tuple[int, dict, bytes, float]:
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("POST", f"/api/continue?{query}", body=body, headers={"Content-Type": "audio/wav"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.perf_counter() - start

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(recipe, request):
    limits = getattr(request, "param", Limits(max_seconds=10))
    server = LiveServer(create_app({"tiny": recipe}, limits))
    yield server
    server.stop()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_load_eight_concurrent_requests_all_answered(live):
    """Bounded load test: 2 rounds of 8 concurrent requests, every one answered in full, none
    lost, and memory flat between rounds."""
    body = _wav_bytes(tone(0.5))
    expected_len = 44 + 2 * (round(0.5 * 75) - 1 + round(0.5 * 75)) * 320  # prompt (whole frames) + 0.5 s

    def round_of(n):
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda i: live.post(f"seconds=0.5&seed={i}", body), range(n)))

    rss = []
    for _ in range(2):
        results = round_of(8)
        assert [status for status, *_ in results] == [200] * 8
        assert all(len(data) == expected_len for _, _, data, _ in results)
        assert len({data for _, _, data, _ in results}) == 8  # 8 seeds, 8 different continuations
        rss.append(_rss_mb())
    assert rss[1] - rss[0] < 40, rss


@pytest.mark.parametrize("live", [Limits(max_seconds=10, max_waiting=1)], indirect=True)
def test_queue_bound_gives_503_not_a_crash(live):
    body = _wav_bytes(tone(0.5))
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: live.post(f"seconds=4&seed={i}", body), range(5)))
    statuses = [status for status, *_ in results]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    for status, headers, data, _ in results:
        if status == 503:
            assert headers.get("retry-after") == "5" and "busy" in json.loads(data)["error"]
    # the server is still there and serves the next request
    assert live.post("seconds=0.2&seed=1", body)[0] == 200


def test_client_gone_mid_stream_frees_the_worker(live):
    body = _wav_bytes(tone(0.5))
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request("POST", "/api/continue?seconds=8&seed=0", body=body, headers={"Content-Type": "audio/wav"})
    r = conn.getresponse()
    assert r.status == 200 and r.read(44)[:4] == b"RIFF"
    conn.close()  # hang up mid-stream
    start = time.perf_counter()
    status, _, data, _ = live.post("seconds=0.2&seed=1", body)
    assert status == 200 and len(data) > 44
    assert time.perf_counter() - start < 60


def test_serve_cli_errors(capsys):
    assert main(["serve", "--port", "0"]) == 2
    assert "--port must be in" in capsys.readouterr().err
    assert main(["serve", "--pipeline", "nosuch"]) == 2
    assert "unknown pipeline 'nosuch'" in capsys.readouterr().err


# -- the page in a real browser ----------------------------------------------------------------


def _chrome():
    """A headless chromium driven by selenium, or a skip with the reason."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service  # optional dependency (selenium)

    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_page_in_headless_chromium(live):
    """The page loads, the bundled speech prompt is submitted, audio arrives and plays, the
    spectrogram is drawn with the seam."""
    browser = _chrome()
    try:
        browser.set_script_timeout(120)
        browser.get(live.url + "/")
        assert "Continue a prompt" in browser.title or "continue" in browser.title
        browser.execute_script(
            "document.getElementById('seconds').value = '1.5'; document.getElementById('bundled').value = 'speech';"
        )
        browser.find_element("id", "go").click()
        deadline = time.time() + 180
        state = {}
        while time.time() < deadline:
            state = browser.execute_script("return window.audiolmState")
            if state["done"] or state["error"]:
                break
            time.sleep(0.2)
        assert state["done"] and not state["error"], state
        assert state["chunks"] >= 2 and state["bytes"] > 44 and state["scheduledSeconds"] > 1.5
        assert state["firstAudioMs"] is not None and state["promptSamples"] > 0 and state["plotted"]
        # the plot: the canvas holds a picture and the cyan seam
        pixels = browser.execute_script("""
            const c = document.getElementById('spectrogram'), g = c.getContext('2d');
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let lit = 0, cyan = 0;
            for (let i = 0; i < d.length; i += 4) {
              if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
              if (d[i] < 60 && d[i + 1] > 200 && d[i + 2] > 200) cyan++;
            }
            return [lit, cyan, c.width * c.height];""")
        lit, cyan, total = pixels
        assert lit > total * 0.05 and cyan > 100, pixels
        # the finished audio plays in the <audio> element
        played = browser.execute_async_script("""
            const done = arguments[arguments.length - 1], a = document.getElementById('player');
            a.play().then(() => setTimeout(() => done([a.currentTime, a.duration]), 800), (e) => done(String(e)));""")
        assert isinstance(played, list) and played[0] > 0.1 and played[1] > 1.5, played
    finally:
        browser.quit()


def test_page_records_a_prompt_in_headless_chromium(live):
    """Recording (chromium's fake microphone: a beep) -> a WAV made in the page -> uploaded ->
    a continuation comes back."""
    browser = _chrome()
    try:
        browser.get(live.url + "/")
        browser.execute_script("document.getElementById('seconds').value = '0.5';")
        browser.find_element("id", "record").click()
        time.sleep(1.5)
        browser.find_element("id", "stop").click()
        assert "s recorded" in browser.find_element("id", "recorded").text
        browser.find_element("id", "go").click()
        deadline = time.time() + 120
        state = {}
        while time.time() < deadline:
            state = browser.execute_script("return window.audiolmState")
            if state["done"] or state["error"]:
                break
            time.sleep(0.2)
        assert state["done"] and not state["error"], state
        assert state["promptSamples"] > 0 and state["scheduledSeconds"] > 0.5
    finally:
        browser.quit()
