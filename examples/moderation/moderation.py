"""Content moderation as a dataflow: `moderation.media.pipeline` (a MACRO).

The pipeline is declared once, on the base class `media`, and inherited by
`text` and `image`; its first step calls `extract` on the object, which each
class overrides (polymorphism: the step runs the function of the object's
class). Light, deterministic stand-ins, standard library only.

Functions (see package.yaml):
  extract-media  the base: nothing it knows how to look at; features `{}`.
  extract-text   counts the words of `data.text` and the flagged ones among
                 them (a small fixed word list).
  extract-image  reads fake pixel statistics from `data.pixels` (`skin`,
                 `red`, `dark`, fractions 0..1); without them derives them
                 from the object's id (SHA-256).
                 Each writes the output `evaluator` object's data:
                 `{"source": {"id", "cls"}, "kind", "features"}`.
  score          (INTERNAL: only the package's own macros and functions may
                 call it) scores the evaluator's features, in place:
                 `data.score = {"value" (0..1), "reasons"}`.
  evaluate       compares the score with arg `threshold` (0..1, default 0.5)
                 into the output `report` object: `{"source", "evaluator",
                 "kind", "score", "threshold", "verdict" ("flagged" | "ok"),
                 "reasons"}`.

Every function records `startedAt` and `endedAt` (ms since the Unix epoch):
at the top of the data of the object it creates (extract, evaluate), in
`data.score` for `score`, which updates the evaluator, and in its answer.

Run by the platform as a process function, from the repository root:
  PYTHONPATH=sdk/python python3 examples/moderation/moderation.py
"""

import hashlib
import re
import time
from typing import Any, Dict, List

import oprc

FLAGGED = frozenset({"attack", "fraud", "hate", "idiot", "kill", "scam", "spam", "stupid"})
WORD = re.compile(r"[a-z']+")
MAX_TEXT_CHARS = 1_000_000
PIXEL_STATS = ("skin", "red", "dark")
DEFAULT_THRESHOLD = 0.5

app = oprc.App()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def output_of(ctx: oprc.Context, cls: str) -> oprc.ObjectView:
    out = ctx.output
    if out is None:
        raise oprc.TaskError(f"{ctx.fb_name} needs an output object: bind it with `outputCls: .{cls}`")
    return out


def extracted(ctx: oprc.Context, kind: str, features: Dict[str, Any], started: int) -> Any:
    """Writes the evaluator (the output object) and answers what it holds."""
    out = output_of(ctx, "evaluator")
    main = ctx.main
    ended = now_ms()
    out.data = {
        "source": {"id": main.id, "cls": main.cls},
        "kind": kind,
        "features": features,
        "startedAt": started,
        "endedAt": ended,
    }
    return {"kind": kind, "features": features, "startedAt": started, "endedAt": ended}


@app.function("extract-media")
def extract_media(ctx: oprc.Context) -> Any:
    """The base class's extract: media of no known kind has no features."""
    return extracted(ctx, "media", {}, now_ms())


@app.function("extract-text")
def extract_text(ctx: oprc.Context) -> Any:
    """The words of `data.text`, and which of them are flagged."""
    started = now_ms()
    data = ctx.main.data if isinstance(ctx.main.data, dict) else {}
    text = data.get("text", "")
    if not isinstance(text, str):
        raise oprc.TaskError(f"`data.text` is a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise oprc.TaskError(f"`data.text` has {len(text)} characters, at most {MAX_TEXT_CHARS}")
    words = WORD.findall(text.lower())
    flagged = [w for w in words if w in FLAGGED]
    features = {"words": len(words), "flagged": len(flagged), "flaggedWords": sorted(set(flagged))}
    return extracted(ctx, "text", features, started)


def pixel_stats(main: oprc.ObjectView) -> Dict[str, float]:
    data = main.data if isinstance(main.data, dict) else {}
    given = data.get("pixels")
    if given is None:
        h = hashlib.sha256(f"{main.cls}/{main.id}".encode()).digest()
        return {name: round(h[i] / 255, 3) for i, name in enumerate(PIXEL_STATS)}
    if not isinstance(given, dict):
        raise oprc.TaskError("`data.pixels` is an object like {\"skin\": 0.2, \"red\": 0.1, \"dark\": 0.4}")
    stats = {}
    for name in PIXEL_STATS:
        value = given.get(name, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise oprc.TaskError(f"`data.pixels.{name}` is a fraction 0..1, got {value!r}")
        stats[name] = float(value)
    return stats


@app.function("extract-image")
def extract_image(ctx: oprc.Context) -> Any:
    """Pixel statistics of the image (given in its data, or made up from its id)."""
    started = now_ms()
    data = ctx.main.data if isinstance(ctx.main.data, dict) else {}
    features: Dict[str, Any] = dict(pixel_stats(ctx.main))
    features["fromData"] = "pixels" in data
    return extracted(ctx, "image", features, started)


def score_of(kind: str, features: Dict[str, Any]) -> Dict[str, Any]:
    reasons: List[str] = []
    if kind == "text":
        words, flagged = int(features.get("words", 0)), int(features.get("flagged", 0))
        value = min(1.0, 5 * flagged / max(1, words))
        if flagged:
            reasons.append(f"{flagged} flagged word(s) of {words}: {', '.join(features.get('flaggedWords', []))}")
    elif kind == "image":
        skin, red = float(features.get("skin", 0)), float(features.get("red", 0))
        value = min(1.0, 0.6 * skin + 0.4 * red)
        if skin >= 0.5:
            reasons.append(f"skin ratio {skin}")
        if red >= 0.5:
            reasons.append(f"red ratio {red}")
    else:
        value = 0.0
        reasons.append(f"nothing to score in {kind!r} media")
    return {"value": round(value, 3), "reasons": reasons}


@app.function("score")
def score(ctx: oprc.Context) -> Any:
    """Scores the evaluator's features into its own data (`data.score`)."""
    started = now_ms()
    main = ctx.main
    data = main.data if isinstance(main.data, dict) else {}
    if "features" not in data:
        raise oprc.TaskError(f"evaluator {main.id} has no features: it is made by `extract`")
    result = score_of(str(data.get("kind", "media")), data["features"] or {})
    result.update(startedAt=started, endedAt=now_ms())
    data["score"] = result
    main.data = data
    return {"score": result["value"], "reasons": result["reasons"], "startedAt": started, "endedAt": result["endedAt"]}


def threshold_of(ctx: oprc.Context) -> float:
    raw = ctx.arg("threshold") or str(DEFAULT_THRESHOLD)
    try:
        value = float(raw)
    except ValueError:
        raise oprc.TaskError(f"argument 'threshold' is a number 0..1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise oprc.TaskError(f"argument 'threshold' is 0..1, got {value}")
    return value


@app.function("evaluate")
def evaluate(ctx: oprc.Context) -> Any:
    """The verdict on the evaluator's score, into the output `report` object."""
    started = now_ms()
    out = output_of(ctx, "report")
    main = ctx.main
    data = main.data if isinstance(main.data, dict) else {}
    scored = data.get("score")
    if not isinstance(scored, dict) or "value" not in scored:
        raise oprc.TaskError(f"evaluator {main.id} has no score yet: `score` comes first (the pipeline runs it)")
    threshold = threshold_of(ctx)
    value = float(scored["value"])
    verdict = "flagged" if value >= threshold else "ok"
    ended = now_ms()
    out.data = {
        "source": data.get("source"),
        "evaluator": main.id,
        "kind": data.get("kind"),
        "score": value,
        "threshold": threshold,
        "verdict": verdict,
        "reasons": scored.get("reasons", []),
        "startedAt": started,
        "endedAt": ended,
    }
    return {"verdict": verdict, "score": value, "startedAt": started, "endedAt": ended}


if __name__ == "__main__":
    app.run()
