"""Writing small files so that a reader (or a kill) never sees a half-written one."""
from __future__ import annotations

import os


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file beside it, flushed to disk and renamed over ``path``:
    at every moment ``path`` holds the old content or the new, whole."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
