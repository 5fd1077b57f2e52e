"""The live page's web server (aiohttp): one model streaming, any number of viewers, prompts from any of them.

Routes of ``make_app(source, prompt)``:

* ``GET /``: the page (``static/index.html``, its script and style under ``/static/``; nothing from elsewhere);
* ``GET /frames``: a WebSocket of binary messages, one per frame: ``session.HEADER`` (frame index, prompt id) then
  the frame as PNG, released in real time at the session's fps;
* ``POST /prompt``: ``{"prompt": "..."}`` switches the prompt from the next chunk; 400 for a body that is not such
  JSON or an empty prompt, 413 for a prompt over ``MAX_PROMPT_BYTES`` (or a body over ``MAX_BODY_BYTES``), 403 for
  a browser request from another origin (a page elsewhere cannot drive the stream); errors are ``{"error": why}``;
* ``GET /state``: the session's figures as JSON (``LiveSession.state``);
* ``GET /schedule.jsonl``: the session's record (``schedule_io``), which ``experiments.evaluate --schedules=``
  replays frame for frame (503 before the first frame).

Why a WebSocket of PNG frames rather than MJPEG over HTTP: every frame carries its index and the id of the prompt it
was generated under, so the page shows which prompt is on screen and when a posted switch arrived (an MJPEG
``<img>`` exposes neither); PNG keeps the flat colours of the frames exact, so what the canvas shows is what the
evaluator scores (JPEG shifts them), and frames of 32x32 pixels are ~200 bytes anyway; the page draws onto a
canvas it can read back; and the client's close (or a dead connection, by the heartbeat) ends the viewer at once.

Each viewer has a small bounded queue (``broadcaster.Viewer``, drop-oldest) filled by the one producer thread, which
never waits for a viewer. The kernel and transport buffers of a viewer's connection are kept small too
(``send_buffer_bytes``), so a slow viewer's frames are dropped in its queue, not delayed in buffers: it sees the
newest frames. ``ServerThread`` runs an app on its own thread and event loop (tests, notebooks).
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from typing import Optional
from urllib.parse import urlsplit

from aiohttp import web

from streamdit_jax.serving.session import MAX_PROMPT_BYTES, LiveSession, PromptTooLong

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_BODY_BYTES = 4 * MAX_PROMPT_BYTES  # JSON escapes may make a prompt's body longer than the prompt
SESSION = web.AppKey("session", LiveSession)
OPTIONS = web.AppKey("options", dict)
SOCKETS = web.AppKey("sockets", set)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SESSION].state(), headers={"Cache-Control": "no-store"})


async def schedule(request: web.Request) -> web.Response:
    line = request.app[SESSION].record_line()
    if line is None:
        return _error(503, "no frame has been streamed yet; the record starts with the first frame")
    return web.Response(text=line, content_type="application/x-ndjson", headers={
        "Content-Disposition": 'attachment; filename="session.schedule.jsonl"', "Cache-Control": "no-store"})


def _foreign_origin(request: web.Request) -> bool:
    """A browser's request sent by a page of another origin (its Origin header names another host)."""
    origin = request.headers.get("Origin")
    return bool(origin) and origin != "null" and urlsplit(origin).netloc != request.host


async def post_prompt(request: web.Request) -> web.Response:
    if _foreign_origin(request):
        return _error(403, f"prompts are taken from this server's own page, not from {request.headers['Origin']}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"request body is {request.content_length} bytes; a prompt may have at most "
                           f"{MAX_PROMPT_BYTES} bytes")
    body = bytearray()
    async for data in request.content.iter_any():
        body += data
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"request body is over {MAX_BODY_BYTES} bytes; a prompt may have at most "
                               f"{MAX_PROMPT_BYTES} bytes")
    try:
        payload = json.loads(bytes(body))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        return _error(400, f'body must be JSON like {{"prompt": "a blue square moving up"}}: {e}')
    if not isinstance(payload, dict) or "prompt" not in payload:
        return _error(400, 'body must be a JSON object with a "prompt" string, like '
                           '{"prompt": "a blue square moving up"}')
    try:
        result = request.app[SESSION].set_prompt(payload["prompt"])
    except PromptTooLong as e:
        return _error(413, str(e))
    except ValueError as e:
        return _error(400, str(e))
    return web.json_response(result)


async def _send_frames(ws: web.WebSocketResponse, viewer, ready: asyncio.Event) -> None:
    """The viewer's queued frames to its socket, in order, until the viewer is closed."""
    while True:
        ready.clear()
        message = viewer.pop()
        if message is None:
            if viewer.closed:
                return
            await ready.wait()
            continue
        await ws.send_bytes(message)


async def _until_client_leaves(ws: web.WebSocketResponse) -> None:
    """Reads (and ignores) what the client sends: ends when it closes or the connection is lost."""
    async for _ in ws:
        pass


def _small_buffers(request: web.Request, nbytes: Optional[int]) -> None:
    if not nbytes or request.transport is None:
        return
    request.transport.set_write_buffer_limits(high=nbytes)
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, nbytes)


async def frames(request: web.Request) -> web.WebSocketResponse:
    options = request.app[OPTIONS]
    nbytes = options["send_buffer_bytes"]
    ws = web.WebSocketResponse(heartbeat=options["heartbeat"], compress=False,  # PNG does not deflate further
                               writer_limit=nbytes or 2 ** 16)
    await ws.prepare(request)
    _small_buffers(request, nbytes)
    loop, ready = asyncio.get_running_loop(), asyncio.Event()

    def wake() -> None:  # called from the producer's thread
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    viewer = request.app[SESSION].broadcaster.subscribe(options["viewer_queue"], wake=wake)
    request.app[SOCKETS].add(ws)
    tasks = [asyncio.create_task(_send_frames(ws, viewer, ready)), asyncio.create_task(_until_client_leaves(ws))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        request.app[SESSION].broadcaster.unsubscribe(viewer)
        request.app[SOCKETS].discard(ws)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # a reset connection's error ends its viewer only
        if not ws.closed:
            try:
                await asyncio.wait_for(ws.close(), timeout=1.0)
            except (asyncio.TimeoutError, ConnectionError):
                pass
    return ws


async def _start_session(app: web.Application) -> None:
    app[SESSION].start()


async def _close_sockets(app: web.Application) -> None:
    app[SESSION].broadcaster.close()  # every viewer's sender returns, its handler closes the socket
    for ws in list(app[SOCKETS]):
        try:
            await asyncio.wait_for(ws.close(code=1001, message=b"server shutdown"), timeout=1.0)
        except (asyncio.TimeoutError, ConnectionError):
            pass


async def _stop_session(app: web.Application) -> None:
    await asyncio.get_running_loop().run_in_executor(None, app[SESSION].stop)


def make_app(source, prompt: str, *, fps: int = 8, seed: int = 0, viewer_queue: int = 4,
             record_path: Optional[str] = None, heartbeat: float = 20.0,
             send_buffer_bytes: Optional[int] = 64 * 1024) -> web.Application:
    """The live page's app over ``source`` (a ``Streamer``, or anything with its ``frames(schedule, num_frames,
    seed)`` and ``sampling_settings()``), starting from ``prompt`` (``LiveSession``: ``fps``, ``seed``,
    ``record_path``). The stream starts with the app (its first frame waits for a viewer) and stops with it.
    ``viewer_queue``: frames each viewer's queue holds (>= 1); ``heartbeat``: seconds between WebSocket pings (a
    client that stops answering is dropped); ``send_buffer_bytes``: the socket and transport buffers of each
    viewer's connection (None: the system's). ValueError names a bad argument."""
    if not isinstance(viewer_queue, int) or viewer_queue < 1:
        raise ValueError(f"viewer_queue={viewer_queue!r} must be an int >= 1 (frames a viewer's queue holds)")
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SESSION] = LiveSession(source, prompt, fps=fps, seed=seed, record_path=record_path)
    app[OPTIONS] = {"viewer_queue": viewer_queue, "heartbeat": heartbeat, "send_buffer_bytes": send_buffer_bytes}
    app[SOCKETS] = set()
    app.router.add_get("/", index)
    app.router.add_get("/frames", frames)
    app.router.add_post("/prompt", post_prompt)
    app.router.add_get("/state", state)
    app.router.add_get("/schedule.jsonl", schedule)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.on_startup.append(_start_session)
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_stop_session)
    return app


async def start_site(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Serves ``app`` on host:port (0: a free port): (the runner, to ``cleanup()``; the port bound)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]


class ServerThread:
    """``app`` served on its own thread and event loop: ``start()`` returns once it listens (``port``, ``url``),
    ``stop()`` shuts it down (viewers closed, the session stopped)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host, self.port = app, host, port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="streamdit-server")
        self._runner: Optional[web.AppRunner] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        self._runner, self.port = asyncio.run_coroutine_threadsafe(
            start_site(self.app, self.host, self.port), self.loop).result()
        return self

    def stop(self) -> None:
        """Idempotent."""
        if self.loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result()
            self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
