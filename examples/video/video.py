"""The paper's CPU-bound workload: transcode an object's video with FFmpeg.

Function (see package.yaml):
  transcode  reads the main object's file `video`, runs `ffmpeg` on it and
             writes the result as file `video` of the call's output object
             (a new `video` object, as in the paper's Listing 1); the source
             object is untouched (the binding is immutable). Answers
             `{"output", "format", "scale", "bytes"}`.

Args (query parameters of the call), all optional:
  scale    WIDTHxHEIGHT or WIDTH:HEIGHT; -1 or -2 for one side keeps the
           aspect ratio (-2: even). Default -2:360.
  format   mp4 (H.264/AAC, default), webm (VP8/Vorbis) or mkv (H.264/AAC).
  timeout  seconds FFmpeg may run, 1..240 (default 120); it is killed past it.

Without FFmpeg the call fails at once with how to install it. The `FFMPEG`
environment variable names another binary (default `ffmpeg` on PATH).

Run by the platform as a process function, from the repository root:
  PYTHONPATH=sdk/python python3 examples/video/video.py
"""

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any, List, Tuple

import oprc

KEY = "video"
DEFAULT_SCALE = "-2:360"
MAX_SIDE = 8192
DEFAULT_TIMEOUT_S = 120
# Below the function's `config.timeout` (package.yaml), so FFmpeg is
# stopped here, with a clear message, before the node gives up on the call.
MAX_TIMEOUT_S = 240
# How much of FFmpeg's error output a failure quotes.
STDERR_TAIL = 600

# Output format: (muxer, video codec args, audio codec args).
FORMATS = {
    "mp4": ("mp4", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "mkv": ("matroska", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "webm": ("webm", ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "1M"], ["-c:a", "libvorbis"]),
}

# The source is untrusted: FFmpeg may only read the local file (no network,
# no playlists or concat lists that name other files), with the demuxers of
# ordinary video containers.
INPUT_GUARD = [
    "-protocol_whitelist", "file",
    "-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,gif,yuv4mpegpipe",
]

INSTALL_HINT = (
    "install it on the machine that runs this function, e.g. `apt-get install ffmpeg` "
    "(Debian/Ubuntu), `dnf install ffmpeg` (Fedora) or `brew install ffmpeg` (macOS), "
    "or set FFMPEG to its path in the function's `provision.process.env`"
)

app = oprc.App()


def ffmpeg_binary() -> str:
    """The FFmpeg executable's path; a clear failure when there is none."""
    name = os.environ.get("FFMPEG") or "ffmpeg"
    found = shutil.which(name)
    if found is None:
        raise oprc.TaskError(f"ffmpeg is not installed (`{name}` not found on PATH): {INSTALL_HINT}")
    return found


def side(text: str, raw: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise oprc.TaskError(f"`scale` is WIDTHxHEIGHT or WIDTH:HEIGHT, got {raw!r}") from None
    if n in (-1, -2) or 2 <= n <= MAX_SIDE:
        return n
    raise oprc.TaskError(f"a `scale` side is -1, -2 or 2..{MAX_SIDE}, got {n} in {raw!r}")


def parse_scale(raw: str) -> Tuple[int, int]:
    m = re.fullmatch(r"\s*(-?\d+)\s*[x:]\s*(-?\d+)\s*", raw)
    if m is None:
        raise oprc.TaskError(f"`scale` is WIDTHxHEIGHT or WIDTH:HEIGHT (e.g. 640x360, -2:480), got {raw!r}")
    w, h = side(m.group(1), raw), side(m.group(2), raw)
    if w < 0 and h < 0:
        raise oprc.TaskError(f"`scale` may keep the aspect ratio on one side only, got {raw!r}")
    return w, h


def options(ctx: oprc.Context) -> Tuple[Tuple[int, int], str, int]:
    scale = parse_scale(ctx.arg("scale", DEFAULT_SCALE) or DEFAULT_SCALE)
    fmt = (ctx.arg("format", "mp4") or "mp4").lower()
    if fmt not in FORMATS:
        raise oprc.TaskError(f"`format` is one of {', '.join(sorted(FORMATS))}, got {fmt!r}")
    timeout = ctx.int_arg("timeout", DEFAULT_TIMEOUT_S)
    if not 1 <= timeout <= MAX_TIMEOUT_S:
        raise oprc.TaskError(f"`timeout` is 1..{MAX_TIMEOUT_S} seconds, got {timeout}")
    return scale, fmt, timeout


def command(ffmpeg: str, source: str, target: str, scale: Tuple[int, int], fmt: str) -> List[str]:
    muxer, video, audio = FORMATS[fmt]
    w, h = scale
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *INPUT_GUARD, "-i", source,
        "-map", "0:v:0", "-map", "0:a:0?",
        "-vf", f"scale={w}:{h}",
        *video, *audio,
        "-f", muxer, target,
    ]


def tail(stderr: bytes) -> str:
    text = " ".join(stderr.decode("utf-8", "replace").split())
    return text[-STDERR_TAIL:] or "no error output"


def run_ffmpeg(argv: List[str], timeout: int) -> None:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise oprc.TaskError(f"ffmpeg is not installed (`{argv[0]}` cannot be run): {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        # subprocess.run has killed FFmpeg and reaped it.
        raise oprc.TaskError(f"ffmpeg did not finish within {timeout} s (arg `timeout`); it was stopped") from None
    if done.returncode != 0:
        raise oprc.TaskError(f"ffmpeg failed (exit status {done.returncode}): {tail(done.stderr)}")


@app.function("transcode")
def transcode(ctx: oprc.Context) -> Any:
    """Transcodes main's `video` into the output object's `video`."""
    scale, fmt, timeout = options(ctx)
    ffmpeg = ffmpeg_binary()
    out = ctx.output
    if out is None:
        raise oprc.TaskError("transcode needs an output object: bind it with `outputCls`")
    main = ctx.main
    if KEY not in main.file_keys:
        raise oprc.TaskError(
            f"object {main.id} has no `{KEY}` yet: upload one first "
            f"(PUT /api/classes/{main.cls}/objects/{main.id}/files/{KEY})"
        )
    with tempfile.TemporaryDirectory(prefix="oprc-video-") as tmp:
        source = os.path.join(tmp, "source")
        target = os.path.join(tmp, f"out.{fmt}")
        main.download_file(KEY, source)
        run_ffmpeg(command(ffmpeg, source, target, scale, fmt), timeout)
        sent = out.write_file(KEY, target)
    scale_text = f"{scale[0]}:{scale[1]}"
    out.data = {"source": main.id, "format": fmt, "scale": scale_text, "bytes": sent}
    return {"output": out.id, "format": fmt, "scale": scale_text, "bytes": sent}


if __name__ == "__main__":
    app.run()
