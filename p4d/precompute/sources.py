"""Where precompute finds its videos: a folder, a list file, or the trainer's conversation file.

* a directory: every entry below it with a video extension (recursive), files or not: a dangling
  link or a folder named ``x.mp4`` is planned too, and recorded failed with its reason;
* a ``.txt``/``.lst`` file: one path or URL per line (``#`` comments, blank lines skipped;
  relative paths are relative to the list file);
* a LLaVA-style conversation ``.json`` (a list of records) or ``.jsonl`` (one record per line)
  whose records name a video under ``"video"`` (relative to the file's folder, or to
  ``video_root``): the very files the trainer will read. Records without a video (image or
  text-only records) are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from p4d.errors import ConfigError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
CONVERSATION_EXTENSIONS = (".json", ".jsonl")


def _resolve(entry: str, base: Path) -> str:
    p = Path(entry)
    return entry if "://" in entry or p.is_absolute() else str(base / p)


def _conversation_records(src: Path) -> list[dict]:
    text = src.read_text()
    try:
        if src.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"VIDEOS {src}: not valid JSON{'L' if src.suffix == '.jsonl' else ''} ({exc})") from None
    if not isinstance(data, list):
        raise ConfigError(f"VIDEOS {src}: expected a JSON list of conversation records, got {type(data).__name__}")
    return data


def list_videos(source: str | Path, *, video_root: str | Path | None = None) -> list[str]:
    """Sorted, de-duplicated video paths named by ``source`` (see the module docstring)."""
    src = Path(source)
    suffix = src.suffix.lower()
    if src.is_dir():
        paths = [str(p) for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS]
    elif src.is_file() and suffix in LIST_EXTENSIONS:
        lines = (line.strip() for line in src.read_text().splitlines())
        paths = [_resolve(line, src.parent) for line in lines if line and not line.startswith("#")]
    elif src.is_file() and suffix in CONVERSATION_EXTENSIONS:
        base = Path(video_root) if video_root else src.parent
        paths = [_resolve(str(r["video"]), base) for r in _conversation_records(src)
                 if isinstance(r, dict) and r.get("video")]
    elif src.is_file() and suffix in VIDEO_EXTENSIONS:
        paths = [str(src)]
    else:
        found = "no such path" if not src.exists() else f"a {suffix or 'extension-less'} file"
        raise ConfigError(
            f"VIDEOS {source!s}: expected a directory of videos, a .txt list of paths, a conversation "
            f".json/.jsonl or a video file; found {found}"
        )
    paths = sorted(set(paths))
    if not paths:
        raise ConfigError(f"VIDEOS {source!s}: names no video files (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    return paths
