"""The live page's server (streamdit_jax.serving) on a real port with the bundled model's Streamer: the page and its
assets come from the server alone, bad prompts are refused with messages, a posted prompt switches the stream at a
chunk boundary, viewers share one stream, a slow viewer loses frames in its own bounded queue without holding up
anyone, a viewer that leaves is freed, and the session's record replays exactly through the evaluator's reader."""
import asyncio
import base64
import itertools
import os
import re
import socket
import threading
import time

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp")

from streamdit_jax.evaluation.driver import evaluate_streamer  # noqa: E402
from streamdit_jax.sampling.pretrained import load_streamer  # noqa: E402
from streamdit_jax.sampling.schedule_io import read_schedules  # noqa: E402
from streamdit_jax.serving.app import ServerThread, make_app  # noqa: E402
from streamdit_jax.serving.broadcaster import Broadcaster  # noqa: E402
from streamdit_jax.serving.session import LiveSession, decode_frame  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(REPO, "experiments", "checkpoints", "shapes_minilm")
RED, BLUE = "a red circle moving left", "a blue square moving up"
FPS = 16
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def streamer():
    _, streamer = load_streamer(BUNDLED, queue_size=1)  # as experiments.serve: a switch lands after few chunks
    return streamer


def start_server(streamer, **options) -> ServerThread:
    return ServerThread(make_app(streamer, RED, **{"fps": FPS, "heartbeat": 60.0, **options})).start()


@pytest.fixture(scope="module")
def server(streamer):
    """One session for the tests that need no fresh stream; small socket buffers, so a viewer that does not read
    soon blocks its connection (the other viewers, on loopback, keep up anyway)."""
    server = start_server(streamer, viewer_queue=4, send_buffer_bytes=1024)
    yield server
    server.stop()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_S))


async def read_frames(ws, frames: dict, until, patience: float = 30.0) -> None:
    """Frames of ``ws`` into ``frames`` {index: (prompt id, frame)} until ``until(index)``; fails when none comes
    for ``patience`` seconds (a stalled stream)."""
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), patience)
        except asyncio.TimeoutError:
            raise AssertionError(f"no frame for {patience} s after frame {max(frames, default=None)}") from None
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        index, prompt_id, frame = decode_frame(msg.data)
        frames[index] = (prompt_id, frame)
        if until(index):
            return


async def get_state(http, url) -> dict:
    async with http.get(url + "/state") as r:
        return await r.json()


def raw_viewer(port: int) -> socket.socket:
    """A WebSocket viewer that never reads a frame, with the smallest receive buffer the kernel allows."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /frames HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # the handshake's answer only, byte by byte: no frame is read
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_broadcaster_never_blocks_and_bounds_every_queue():
    hub = Broadcaster()
    woken = threading.Event()
    fast, slow = hub.subscribe(maxsize=4, wake=woken.set), hub.subscribe(maxsize=4)
    got = []
    for i in range(1000):
        assert hub.publish(i) == 2
        got.append(fast.pop())
    assert woken.is_set() and got == list(range(1000)) and fast.dropped == 0
    assert slow.depth() == 4 and slow.max_depth == 4 and slow.dropped == 996
    assert [slow.pop() for _ in range(5)] == [996, 997, 998, 999, None]  # the newest survive
    hub.unsubscribe(slow)
    assert hub.publish("x") == 1 and slow.closed and slow.pop() is None


class ColourSource:
    """A Streamer-like source without a model: each chunk a flat frame whose colour names the prompt read for it."""

    def sampling_settings(self):
        return {"chunk": 2}

    def frames(self, live, num_frames, seed):
        for start in itertools.count(0, 2):
            value = 255 if "blue" in live.at(start) else 0
            yield np.full((2, 4, 4, 3), value, np.uint8)


def test_the_record_file_keeps_the_switches_streamed(tmp_path):
    path = tmp_path / "live.schedule.jsonl"
    session = LiveSession(ColourSource(), RED, fps=100, record_path=str(path))
    viewer = session.broadcaster.subscribe(maxsize=1000)
    session.start()
    try:
        while session.published < 6:
            time.sleep(0.01)
        after = session.set_prompt(f"  {BLUE} ")["after_frame"]
        while session.state()["prompt"] != BLUE:
            time.sleep(0.01)
        (live,) = read_schedules(str(path))  # written once the switch was streamed, while the stream runs
        received = [decode_frame(m)[:2] for m in iter(viewer.pop, None)]
    finally:
        session.stop()
    (final,) = read_schedules(str(path))
    switch = max(live["prompts"])
    assert live["prompts"] == {0: RED, switch: BLUE} and switch >= after and switch % 2 == 0
    assert final["prompts"] == live["prompts"] and final["num_frames"] == session.published
    assert received == [(i, int(i >= switch)) for i in range(len(received))] and len(received) > switch


def test_the_page_and_its_assets_come_from_the_server_alone(server):
    url = server.url

    async def fetch_all():
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/") as r:
                assert r.status == 200 and r.content_type == "text/html"
                page = await r.text()
            refs = re.findall(r'(?:src|href)="([^"]*)"', page)
            assets = {}
            for ref in refs:
                if ref.startswith("/static/"):
                    async with http.get(url + ref) as r:
                        assert r.status == 200, ref
                        assets[ref] = await r.text()
            return page, refs, assets

    page, refs, assets = run(fetch_all())
    assert set(assets) == {"/static/app.js", "/static/style.css"}
    for ref in refs:  # our own paths (never protocol-relative) or inline data
        assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith("data:"), ref
    for name, text in [("/", page), *assets.items()]:
        assert not re.search(r"\b(?:https?|wss?|ftp):\/\/[\w\[]", text), name  # no absolute URL of another host
        assert "@import" not in text and not re.search(r"url\(\s*['\"]?(?!data:)", text), name
    for element in ('<canvas id="video"', 'id="prompt-input"', 'id="current-prompt"', 'href="/schedule.jsonl"',
                    'id="fps"', 'id="ttff"', 'id="latency"'):
        assert element in page


def test_bad_prompts_are_refused_with_a_message(server):
    url = server.url

    async def post_all():
        out = []
        async with aiohttp.ClientSession() as http:
            for kw in ({"json": {"prompt": "x" * 2048}}, {"data": b'{"prompt": "a blue'}, {"json": {"prompt": "  "}},
                       {"data": b"[1, 2]"}, {"json": {"prompt": 7}}, {"data": b"x" * 10_000},
                       {"json": {"prompt": BLUE}, "headers": {"Origin": "http://elsewhere.example"}}):
                async with http.post(url + "/prompt", **kw) as r:
                    body = await r.json()
                    out.append((r.status, body.get("error", body)))
            out.append((await get_state(http, url))["prompts"])
        return out

    *answers, prompts = run(post_all())
    assert answers[0][0] == 413 and "2048 bytes" in answers[0][1] and "1024" in answers[0][1]
    assert answers[1][0] == 400 and "JSON" in answers[1][1]
    assert answers[2][0] == 400 and "empty" in answers[2][1]
    assert answers[3][0] == 400 and '"prompt"' in answers[3][1]
    assert answers[4][0] == 400 and "string" in answers[4][1]
    assert answers[5][0] == 413 and "body" in answers[5][1]
    assert answers[6][0] == 403 and "elsewhere.example" in answers[6][1]
    assert prompts == {"0": RED}  # none of them reached the stream


def test_two_viewers_receive_the_same_frames(server):
    url = server.url

    async def watch_twice():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url + "/frames") as a, http.ws_connect(url + "/frames") as b:
                first, second = {}, {}
                await read_frames(a, first, lambda i: i >= 3)
                end = max(first) + 12
                await asyncio.gather(read_frames(a, first, lambda i: i >= end),
                                     read_frames(b, second, lambda i: i >= end))
                return first, second, await get_state(http, url)

    first, second, state = run(watch_twice())
    both = sorted(set(first) & set(second))
    assert len(both) >= 8, (sorted(first), sorted(second))  # (a viewer starved by a busy machine may drop some)
    for i in both:
        assert first[i][0] == second[i][0] and np.array_equal(first[i][1], second[i][1]), i
    assert state["viewers"] == 2 and state["measured_fps"] > 0


def test_a_slow_viewer_stalls_neither_the_other_viewer_nor_the_producer(server):

    async def watch_beside_a_slow_viewer():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url + "/frames") as fast:
                frames, arrivals = {}, []
                await read_frames(fast, frames, lambda i: True)
                slow = raw_viewer(server.port)  # never reads: its socket buffers fill, then its queue
                try:
                    t0 = time.monotonic()
                    while True:  # until the slow viewer has lost frames (or its queue outgrew its bound)
                        await read_frames(fast, frames, lambda i: arrivals.append(time.monotonic()) or i % 4 == 0,
                                          patience=5.0)
                        state = await get_state(http, server.url)
                        queues = state["viewer_queues"]
                        if time.monotonic() - t0 > 30 or any(q["dropped"] >= 8 or q["depth"] > q["maxsize"]
                                                              for q in queues):
                            break
                    end = max(frames) + 4
                    await read_frames(fast, frames, lambda i: arrivals.append(time.monotonic()) or i >= end,
                                      patience=5.0)
                    return frames, np.diff(arrivals), queues
                finally:
                    slow.close()

    frames, gaps, queues = run(watch_beside_a_slow_viewer())
    assert len(queues) == 2 and all(q["max_depth"] <= q["maxsize"] == 4 for q in queues), queues
    fast_queue, slow_queue = sorted(queues, key=lambda q: q["dropped"])
    assert slow_queue["dropped"] >= 8, queues  # frames went on while it was stuck
    # the fast viewer missed nothing (but for a frame or two a busy machine may keep it from reading in time)
    missed = set(range(min(frames), max(frames) + 1)) - set(frames)
    assert fast_queue["dropped"] <= 2 and len(missed) <= 2, (queues, sorted(missed))
    assert gaps.max() < 2.0, gaps.max()  # ... and never waited long for the next frame


def test_a_viewer_that_leaves_is_freed(server):

    async def come_and_go():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url + "/frames") as ws:
                await read_frames(ws, {}, lambda i: i >= 1)
                assert (await get_state(http, server.url))["viewers"] == 1
            counts = [(await get_state(http, server.url))["viewers"]]  # a clean close
            sock = raw_viewer(server.port)
            sock.recv(64)
            counts.append((await get_state(http, server.url))["viewers"])
            sock.close()  # gone without a close frame
            for _ in range(50):
                state = await get_state(http, server.url)
                if state["viewers"] == 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # nobody watches: the stream holds still
            return counts + [state["viewers"]], state["frames"], (await get_state(http, server.url))["frames"]

    counts, frames_then, frames_later = run(come_and_go())
    assert counts == [0, 1, 0]
    assert frames_later <= frames_then + 1


class Recording:
    """A Streamer that keeps the frames it streams (what the evaluator was given)."""

    def __init__(self, streamer):
        self.streamer, self.chunks = streamer, []

    def frames(self, *args, **kw):
        for chunk in self.streamer.frames(*args, **kw):
            self.chunks.append(chunk)
            yield chunk

    def sampling_settings(self):
        return self.streamer.sampling_settings()


def test_a_posted_prompt_switches_at_a_chunk_boundary_and_the_record_replays_exactly(server, streamer, tmp_path):
    server.stop()  # the Streamer streams one stream at a time: this test starts its own session at frame 0
    server = start_server(streamer, viewer_queue=64)  # its viewer must not lose a frame: compared with the replay
    chunk = streamer.partition.c

    async def switch():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url + "/frames") as ws:
                frames = {}
                await read_frames(ws, frames, lambda i: i >= 7)
                async with http.post(server.url + "/prompt", data=f'{{"prompt": "{BLUE}"}}') as r:
                    assert r.status == 200
                    answer = await r.json()
                seen = max(frames)
                limit = seen + 12 * chunk + streamer.partition.B  # the queues' chunks and more: it must be there
                await read_frames(ws, frames, lambda i: frames[i][0] == 1 or i >= limit)
                assert frames[max(frames)][0] == 1, f"no frame of the posted prompt by frame {max(frames)}"
                end = max(frames) + 2 * chunk
                await read_frames(ws, frames, lambda i: i >= end)
                state = await get_state(http, server.url)
                async with http.get(server.url + "/schedule.jsonl") as r:
                    assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
                    record = await r.text()
        return frames, answer, seen, state, record

    try:
        frames, answer, seen, state, record = run(switch())
    finally:
        server.stop()
    assert answer["prompt"] == BLUE and answer["after_frame"] >= seen + 1
    assert state["prompt"] == BLUE and state["pending"] is None
    path = tmp_path / "session.schedule.jsonl"
    path.write_text(record)
    (item,) = read_schedules(str(path))  # the evaluator's reader (experiments.evaluate --schedules=)
    switch_at = min(i for i, (prompt_id, _) in frames.items() if prompt_id == 1)
    assert item["prompts"] == {0: RED, switch_at: BLUE} and item["seed"] == 0
    assert switch_at >= answer["after_frame"] and switch_at % chunk == 0  # after the post, at a chunk boundary
    assert all(prompt_id == (i >= switch_at) for i, (prompt_id, _) in frames.items())
    assert item["sampling"] == streamer.sampling_settings() and item["num_frames"] >= max(frames) + 1
    assert sorted(frames) == list(range(len(frames)))
    recording = Recording(streamer)
    result = evaluate_streamer(recording, [item])  # what experiments.evaluate runs on the record
    replay = np.concatenate(recording.chunks)
    assert len(replay) == item["num_frames"] and result["sampling"] == item["sampling"]
    for i, (_, frame) in frames.items():
        assert np.array_equal(frame, replay[i]), f"frame {i} differs from the replay"
