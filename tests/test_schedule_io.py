"""sampling.schedule_io and sampling.live: schedule records written by a live stream read back through the same
validator, malformed lines named, the --prompts text form, the sampling block merged with explicit choices."""
import json
import signal

import numpy as np
import pytest

from streamdit_jax.evaluation import expand_schedule
from streamdit_jax.sampling.live import Pacer, ScheduleRecorder, StreamOutput
from streamdit_jax.sampling.schedule_io import (SAMPLING_KEYS, check_schedule_record, format_schedule_record,
                                                parse_prompts, read_schedules, sampling_choices,
                                                write_schedule_record, write_schedules)
from streamdit_jax.sampling.schedules import LivePrompt

RED, BLUE, GREEN = "a red circle moving left", "a blue square moving up", "a green triangle moving down"
SAMPLING = {"reference_frames": 0, "chunk": 2, "steps_per_chunk": 1, "guidance": 3.0, "warmup_frames": 8}


def test_a_written_record_reads_back_as_written_and_keeps_the_line_format(tmp_path):
    path = str(tmp_path / "live.schedule.jsonl")
    write_schedule_record(path, 7, 48, {0: RED, 20: BLUE}, SAMPLING)
    text = open(path).read()
    assert text == json.dumps({"seed": 7, "num_frames": 48, "prompts": {"0": RED, "20": BLUE},
                               "sampling": SAMPLING}) + "\n"
    [item] = read_schedules(path)
    assert item == {"line": 1, "seed": 7, "num_frames": 48, "prompts": {0: RED, 20: BLUE}, "targets": None,
                    "sampling": SAMPLING}
    assert not [p for p in tmp_path.iterdir() if p.name != "live.schedule.jsonl"]  # no temporary file left


def test_a_record_leaves_out_switches_not_yet_written_but_keeps_frame_0(tmp_path):
    path = str(tmp_path / "r.jsonl")
    write_schedule_record(path, 0, 10, {20: GREEN, 0: RED, 9: BLUE, 10: GREEN}, SAMPLING)
    assert read_schedules(path)[0]["prompts"] == {0: RED, 9: BLUE}


def test_several_schedules_round_trip_and_omit_an_absent_sampling_block_and_targets(tmp_path):
    path = str(tmp_path / "s.jsonl")
    schedules = [{"seed": 1000 + i, "num_frames": 64, "prompts": {0: RED, 32: BLUE}} for i in range(3)]
    write_schedules(path, schedules)
    assert all("sampling" not in json.loads(line) and "targets" not in json.loads(line) for line in open(path))
    assert read_schedules(path) == [dict(s, line=i + 1, sampling=None, targets=None) for i, s in enumerate(schedules)]


def test_the_writer_refuses_a_record_the_reader_would_refuse_and_writes_nothing(tmp_path):
    path = tmp_path / "r.jsonl"
    for kw, needle in [(dict(seed=-1), "seed=-1 must be an int in [0, 4294967295]"),
                       (dict(num_frames=0), "num_frames=0 must be >= 1"),
                       (dict(prompts={4: RED}), "no prompt at frame 0"),
                       (dict(sampling={"guidance": float("nan")}), "sampling.guidance=nan must be a finite number"),
                       (dict(sampling={"chunks": 2}), "sampling has unknown keys ['chunks']")]:
        args = dict(dict(seed=1, num_frames=8, prompts={0: RED}, sampling=SAMPLING), **kw)
        with pytest.raises(ValueError) as e:
            write_schedule_record(str(path), **args)
        assert needle in str(e.value)
        with pytest.raises(ValueError, match="frame index must be in"):
            format_schedule_record(1, 8, {0: RED, 8: BLUE})
    assert not path.exists()


def test_free_text_prompts_are_recorded_and_only_the_evaluators_reading_refuses_them(tmp_path):
    path = str(tmp_path / "r.jsonl")
    write_schedule_record(path, 1, 8, {0: RED, 4: "hello"}, SAMPLING)  # a live stream takes any prompt
    assert read_schedules(path, scorable=False)[0]["prompts"] == {0: RED, 4: "hello"}
    with pytest.raises(ValueError, match=r"schedules line 1 is malformed \(schedule entry 4: caption 'hello'"):
        read_schedules(path)


@pytest.mark.parametrize("line,needle", [
    ("not json", "line 2 is malformed (Expecting value"),
    ('{"num_frames": 8, "prompts": {"0": "%s"}}' % RED, "line 2 is malformed ('seed')"),
    ('{"seed": -1, "num_frames": 8, "prompts": {"0": "a red circle"}}',
     "line 2 is malformed (seed=-1 must be an int in [0, 4294967295]"),
    ('{"seed": 1, "num_frames": 0, "prompts": {"0": "%s"}}' % RED, "line 2 is malformed (num_frames=0 must be >= 1)"),
    ('{"seed": 1, "num_frames": 8, "prompts": {"0": "%s", "8": "%s"}}' % (RED, BLUE),
     "line 2 is malformed (schedule entry 8: '%s': frame index must be in [0, 8))" % BLUE),
    ('{"seed": 1, "num_frames": 8, "prompts": {"2": "%s"}}' % RED, "line 2 is malformed (the prompt schedule has no "
                                                                   "prompt at frame 0"),
    ('{"seed": 1, "num_frames": 8, "prompts": {"0": "x"}, "sampling": {"guidance": NaN}}',
     "line 2 is malformed (sampling.guidance=nan must be a finite number in [1, 100]"),
    ('{"seed": 1, "num_frames": 8, "prompts": {"0": "x"}, "sampling": {"chunks": 2}}',
     "sampling has unknown keys ['chunks']"),
    ('{"seed": 1, "num_frames": 8, "prompts": {"0": "x"}, "sampling": [2]}', "sampling must be an object"),
    ('{"seed": 1, "num_frames": 8, "prompts": ["x"]}', "line 2 is malformed ("),
    ('{"seed": 1, "num_frames": 8, "prompts": {"0": "%s", "4": "hello"}}' % RED,
     "line 2 is malformed (schedule entry 4: caption 'hello'"),
])
def test_a_malformed_line_is_named_with_what_is_wrong(tmp_path, line, needle):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"seed": 0, "num_frames": 8, "prompts": {"0": RED}}) + "\n" + line + "\n")
    with pytest.raises(ValueError) as e:
        read_schedules(str(path), "--schedules")
    assert str(e.value).startswith("--schedules line 2 is malformed (") and needle in str(e.value), str(e.value)


def test_blank_lines_are_skipped_and_counted_and_empty_or_missing_files_are_named(tmp_path):
    path = tmp_path / "s.jsonl"
    record = json.dumps({"seed": 3, "num_frames": 8, "prompts": {"0": RED}})
    path.write_text(f"\n{record}\n  \n{record}\n")
    assert [item["line"] for item in read_schedules(str(path))] == [2, 4]
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="--schedules='.*s.jsonl' holds no schedules"):
        read_schedules(str(path), "--schedules")
    with pytest.raises(ValueError, match="schedules='/nonexistent/s.jsonl' cannot be read"):
        read_schedules("/nonexistent/s.jsonl")


def test_sampling_choices_take_explicit_choices_then_the_record_then_the_checkpoints_defaults():
    recorded = [{"line": 1, "sampling": {"chunk": 4, "guidance": 1.0}}, {"line": 2, "sampling": {"chunk": 4,
                                                                                                   "guidance": 1.0}}]
    choices, notes = sampling_choices(recorded, {"guidance": 2.0, "steps_per_chunk": 1}, prefix="--")
    assert choices == {"chunk": 4, "steps_per_chunk": 1, "guidance": 2.0, "reference_frames": None,
                       "warmup_frames": None}
    assert notes == ["note: --guidance=2.0 overrides the schedules' recorded guidance=1.0 (the replay differs from "
                     "the recorded stream)", "sampling settings from the schedules' record: {'chunk': 4, "
                     "'guidance': 1.0}"]
    choices, notes = sampling_choices([{"seed": 0}], {})  # no record, no choice: every default
    assert choices == dict.fromkeys(SAMPLING_KEYS) and notes == []
    with pytest.raises(ValueError, match="--schedules lines 1 and 3 hold different sampling settings"):
        sampling_choices([recorded[0], {"line": 3, "sampling": None}], {}, name="--schedules")


def test_parse_prompts_reads_the_text_form_and_names_a_bad_entry():
    assert parse_prompts(f"0:{RED}; 64 : {BLUE} ") == {0: RED, 64: BLUE}
    assert parse_prompts("0:a: b") == {0: "a: b"}  # the first colon splits
    for text, needle in [(" ", "--prompts is empty; give e.g. --prompts='0:a red circle moving left'"),
                         ("abc", "--prompts entry 'abc' is malformed"),
                         ("0:x;-4:y", "--prompts entry '-4:y' is malformed"),
                         ("0: ", "--prompts entry '0: ' is malformed"),
                         ("4:x", "--prompts: the prompt schedule has no prompt at frame 0")]:
        with pytest.raises(ValueError) as e:
            parse_prompts(text, "--prompts")
        assert needle in str(e.value)


class FakeWriter:
    def __init__(self):
        self.frames = []

    def write(self, frames):
        self.frames.append(frames)

    def close(self):
        return sum(len(f) for f in self.frames)


def live_chunks(live: LivePrompt, num_frames: int, chunk: int, switches: dict):
    """A stand-in stream: each chunk's frames hold the index of the prompt LivePrompt.at gave for their frame (read
    in stream order, as the Streamer does); ``switches`` {chunk index: prompt} are typed while that chunk is out."""
    prompts = []
    for start in range(0, num_frames, chunk):
        if start // chunk in switches:
            live.set(switches[start // chunk])
        prompt = live.at(start)
        prompts += [prompt] * chunk
        yield np.full((chunk, 2, 2, 3), [RED, BLUE, GREEN].index(prompt), np.uint8)


def test_a_live_sessions_record_replays_its_prompts_frame_for_frame(tmp_path):
    path = str(tmp_path / "live.gif.schedule.jsonl")
    live = LivePrompt(RED)
    recorder = ScheduleRecorder(path, live, 5, SAMPLING)
    writer, first = FakeWriter(), []
    previous = signal.getsignal(signal.SIGINT)
    try:
        output = StreamOutput(writer, Pacer(1000), recorder)
        output.write_all(live_chunks(live, 24, 2, {3: BLUE, 7: GREEN}), on_recording=lambda: first.append(True))
    finally:
        signal.signal(signal.SIGINT, previous)  # StreamOutput takes Ctrl-C over, as an application's stream does
    assert output.close() == 24 == output.written and output.error is None and first == [True]
    assert output.pacer.chunks == 12
    streamed = [[RED, BLUE, GREEN][int(f[0, 0, 0])] for frames in writer.frames for f in frames]
    [item] = read_schedules(path)  # the evaluator's reading, through the same validator the writer used
    assert item["prompts"] == {0: RED, 6: BLUE, 14: GREEN} and item["num_frames"] == 24 and item["seed"] == 5
    assert expand_schedule(item["prompts"], item["num_frames"]) == streamed
    assert sampling_choices([item], {})[0] == SAMPLING  # a replay takes the recorded sampler


def test_a_record_rewritten_mid_stream_is_a_whole_readable_record_of_the_frames_so_far(tmp_path):
    path = str(tmp_path / "r.jsonl")
    live = LivePrompt(RED)
    recorder = ScheduleRecorder(path, live, 0, SAMPLING)
    live.at(0)
    assert recorder.update(4) is True and recorder.update(6) is False  # unchanged: not rewritten
    live.set(BLUE)
    live.at(8)
    live.set(GREEN)
    live.at(12)  # denoised ahead of the written frames
    assert recorder.update(10) is False  # a switch: rewritten, but not the first write
    assert check_schedule_record(json.loads(open(path).read())) == {
        "seed": 0, "num_frames": 10, "prompts": {0: RED, 8: BLUE}, "targets": None, "sampling": SAMPLING}
    assert recorder.update(11) is False  # nothing new written out: not rewritten
    assert json.loads(open(path).read())["num_frames"] == 10
    recorder.update(14)  # the switch read ahead at 12 is out now: a killed session's record must hold it
    assert read_schedules(path)[0]["prompts"] == {0: RED, 8: BLUE, 12: GREEN}
    recorder.close(16)
    assert read_schedules(path)[0]["prompts"] == {0: RED, 8: BLUE, 12: GREEN}


def test_targets_round_trip_and_make_free_text_prompts_scorable(tmp_path):
    free = {0: "A crimson ball drifting leftwards.", 32: "look: a navy cube gliding upwards"}
    targets = {0: RED, 32: BLUE}
    path = str(tmp_path / "t.jsonl")
    write_schedules(path, [{"seed": 3, "num_frames": 64, "prompts": free, "targets": targets}])
    [item] = read_schedules(path)  # scorable: the targets are checked, not the free-text prompts
    assert item["prompts"] == free and item["targets"] == targets
    with pytest.raises(ValueError, match="line 1 is malformed.*does not follow the shapes-world grammar"):
        write_schedules(path, [{"seed": 3, "num_frames": 64, "prompts": free}])
        read_schedules(path)
    assert read_schedules(path, scorable=False)[0]["targets"] is None


def test_targets_at_other_frames_than_the_prompts_are_named():
    record = {"seed": 0, "num_frames": 64, "prompts": {"0": "free text", "32": "more"}}
    with pytest.raises(ValueError, match=r"prompts at \[0, 32\], targets at \[0\]"):
        check_schedule_record({**record, "targets": {"0": RED}})
    with pytest.raises(ValueError, match="targets must be an object"):
        check_schedule_record({**record, "targets": [RED, BLUE]})
    with pytest.raises(ValueError, match="schedule entry 32: caption 'a red blob' does not follow"):
        check_schedule_record({**record, "targets": {"0": RED, "32": "a red blob"}})


def test_reworded_schedules_keep_the_canonical_captions_as_targets():
    from streamdit_jax.evaluation.schedule import default_schedules, reword_schedules
    canonical = default_schedules(count=3)
    reworded = reword_schedules(canonical, "heldout")
    assert reword_schedules(canonical, "heldout") == reworded  # deterministic
    for before, after in zip(canonical, reworded):
        assert after["targets"] == before["prompts"] and after["seed"] == before["seed"]
        assert set(after["prompts"]) == set(before["prompts"])
        assert not set(after["prompts"].values()) & set(before["prompts"].values())
        check_schedule_record(after)
