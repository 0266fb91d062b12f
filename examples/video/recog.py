"""The steps of `video.df_exp_recog`, the paper's expression-recognition dataflow.

Light, deterministic stand-ins (standard library only: no FFmpeg, no model):
the point is the dataflow, not the vision. Every result is derived from
SHA-256 hashes, so the same input always gives the same frames, faces and
expressions.

Functions (see package.yaml):
  extract-frames  on a `video`: frame descriptors into the data of the output
                  `image` object: `{"source", "seconds", "fromFile", "bytes",
                  "count", "frames": [{"index", "t", "digest"}]}`. Two frames
                  per second of the video's `data.seconds` (default 8, at most
                  120 frames). When the video has a file `video`, the frames'
                  digests are derived from the file's SHA-256 (streamed, never
                  decoded); without one, from the object's id.
  detect          on an `image`: fake face detection over its part `part` of the
                  frames (frames whose index is `part` modulo `parts`), every
                  `interval`-th of them, into the output `faces` object:
                  `{"source", "part", "parts", "interval", "frames", "faces":
                  [{"frame", "face", "box", "confidence"}], "count"}`. Sleeps
                  `cost_ms` (default 100) to stand for a real detector's work,
                  so parallel steps overlap visibly.
  recog           on an `image`: an expression per detected face, from the body
                  `{"detections": [<faces data>, ...]}` (the macro passes the
                  `faces` objects' data), into the output `expression` object:
                  `{"source", "parts", "faces", "expressions": [{"frame",
                  "face", "label"}], "summary": {label: count}, "detections":
                  [{"part", "startedAt", "endedAt"}]}`.

Every function records `startedAt` and `endedAt` (ms since the Unix epoch) in
the data of the object it writes and in its answer, so a caller sees the order
the steps ran in and which ones ran at the same time.

Run by the platform as a process function, from the repository root:
  PYTHONPATH=sdk/python python3 examples/video/recog.py
"""

import hashlib
import time
from typing import Any, Dict, List

import oprc

KEY = "video"
SAMPLE_FPS = 2
DEFAULT_SECONDS = 8
MAX_FRAMES = 120
MAX_PARTS = 16
MAX_INTERVAL = 1000
DEFAULT_COST_MS = 100
MAX_COST_MS = 10_000
MAX_FACES_PER_FRAME = 2
LABELS = ("neutral", "happy", "surprised", "sad", "angry")

app = oprc.App()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def digest(*parts: Any) -> bytes:
    """SHA-256 of the parts joined by `/`: every fake result comes from one."""
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def bounded_arg(ctx: oprc.Context, name: str, default: int, low: int, high: int) -> int:
    value = ctx.int_arg(name, default)
    if not low <= value <= high:
        raise oprc.TaskError(f"argument {name!r} is {low}..{high}, got {value}")
    return value


def output_of(ctx: oprc.Context, cls: str) -> oprc.ObjectView:
    out = ctx.output
    if out is None:
        raise oprc.TaskError(f"{ctx.fb_name} needs an output object: bind it with `outputCls: .{cls}`")
    return out


def seconds_of(data: Any) -> int:
    raw = data.get("seconds", DEFAULT_SECONDS) if isinstance(data, dict) else DEFAULT_SECONDS
    try:
        seconds = int(raw)
    except (TypeError, ValueError):
        raise oprc.TaskError(f"`data.seconds` of the video is a number of seconds, got {raw!r}") from None
    if seconds < 1:
        raise oprc.TaskError(f"`data.seconds` of the video is at least 1, got {seconds}")
    return seconds


def file_digest(main: oprc.ObjectView) -> Dict[str, Any]:
    """SHA-256 and size of the video's file, streamed."""
    sha = hashlib.sha256()
    size = 0
    with main.open_file(KEY) as stream:
        for chunk in stream.chunks(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return {"sha256": sha.hexdigest(), "bytes": size}


@app.function("extract-frames")
def extract_frames(ctx: oprc.Context) -> Any:
    """Frame descriptors of main's video into the output `image` object."""
    started = now_ms()
    out = output_of(ctx, "image")
    main = ctx.main
    seconds = seconds_of(main.data)
    count = min(MAX_FRAMES, seconds * SAMPLE_FPS)
    from_file = KEY in main.file_keys
    if from_file:
        source = file_digest(main)
        seed, size = source["sha256"], source["bytes"]
    else:
        seed, size = main.id, 0
    frames = [
        {"index": i, "t": i * 1000 // SAMPLE_FPS, "digest": digest(seed, i).hex()[:16]}
        for i in range(count)
    ]
    ended = now_ms()
    out.data = {
        "source": main.id,
        "seconds": seconds,
        "fromFile": from_file,
        "bytes": size,
        "count": count,
        "frames": frames,
        "startedAt": started,
        "endedAt": ended,
    }
    return {"count": count, "fromFile": from_file, "startedAt": started, "endedAt": ended}


def frames_of(main: oprc.ObjectView) -> List[Dict[str, Any]]:
    frames = main.data.get("frames") if isinstance(main.data, dict) else None
    if not isinstance(frames, list) or not all(isinstance(f, dict) and "index" in f for f in frames):
        raise oprc.TaskError(f"object {main.id} has no frames: make it with `extract-frames` on a video")
    return frames


def faces_in(frame: Dict[str, Any]) -> List[Dict[str, Any]]:
    h = digest(frame.get("digest", ""), frame["index"], "faces")
    faces = []
    for k in range(h[0] % (MAX_FACES_PER_FRAME + 1)):
        x, y, size, conf = h[1 + 4 * k : 5 + 4 * k]
        faces.append(
            {
                "frame": frame["index"],
                "face": k,
                "box": [x, y, 32 + size % 96, 32 + size % 96],
                "confidence": round(0.5 + conf / 510, 3),
            }
        )
    return faces


@app.function("detect")
def detect(ctx: oprc.Context) -> Any:
    """Fake faces in part `part` of main's frames, into the output `faces` object."""
    started = now_ms()
    out = output_of(ctx, "faces")
    parts = bounded_arg(ctx, "parts", 4, 1, MAX_PARTS)
    part = bounded_arg(ctx, "part", 0, 0, parts - 1)
    interval = bounded_arg(ctx, "interval", 1, 1, MAX_INTERVAL)
    cost_ms = bounded_arg(ctx, "cost_ms", DEFAULT_COST_MS, 0, MAX_COST_MS)
    mine = [f for f in frames_of(ctx.main) if f["index"] % parts == part][::interval]
    faces = [face for frame in mine for face in faces_in(frame)]
    # A real detector's work: the time that parallel steps share.
    time.sleep(cost_ms / 1000)
    ended = now_ms()
    out.data = {
        "source": ctx.main.id,
        "part": part,
        "parts": parts,
        "interval": interval,
        "frames": [f["index"] for f in mine],
        "faces": faces,
        "count": len(faces),
        "startedAt": started,
        "endedAt": ended,
    }
    return {"part": part, "count": len(faces), "startedAt": started, "endedAt": ended}


def detections_of(body: Any) -> List[Dict[str, Any]]:
    detections = body.get("detections") if isinstance(body, dict) else None
    if not isinstance(detections, list) or not all(
        isinstance(d, dict) and isinstance(d.get("faces"), list) for d in detections
    ):
        raise oprc.TaskError(
            "recog needs the body {\"detections\": [<data of faces objects>, ...]} "
            "(the macro passes them as ${dN|output|$.data})"
        )
    return detections


@app.function("recog")
def recog(ctx: oprc.Context) -> Any:
    """An expression per detected face, into the output `expression` object."""
    started = now_ms()
    out = output_of(ctx, "expression")
    detections = detections_of(ctx.body)
    expressions = []
    summary: Dict[str, int] = {}
    for d in detections:
        for face in d["faces"]:
            label = LABELS[digest(face.get("frame"), face.get("face"), face.get("box"))[0] % len(LABELS)]
            expressions.append({"frame": face.get("frame"), "face": face.get("face"), "label": label})
            summary[label] = summary.get(label, 0) + 1
    ended = now_ms()
    out.data = {
        "source": ctx.main.id,
        "parts": [d.get("part") for d in detections],
        "faces": len(expressions),
        "expressions": expressions,
        "summary": summary,
        "detections": [
            {"part": d.get("part"), "startedAt": d.get("startedAt"), "endedAt": d.get("endedAt")}
            for d in detections
        ],
        "startedAt": started,
        "endedAt": ended,
    }
    return {"faces": len(expressions), "summary": summary, "startedAt": started, "endedAt": ended}


if __name__ == "__main__":
    app.run()
