"""One home per cache contract: the heads side-file name, the map channel table, the video fingerprint."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from p4d.cache_schema import contract

PACKAGE = Path(__file__).resolve().parents[2] / "p4d"


def code_lines(path: Path) -> list[str]:
    """Lines of code outside docstrings and comments (good enough for literal hunting)."""
    text = re.sub(r'"""(.*?)"""', "", path.read_text(), flags=re.S)
    return [line.split("#")[0] for line in text.splitlines()]


def test_heads_file_name_is_written_once():
    homes = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
             if any('"heads.safetensors"' in line for line in code_lines(p))]
    assert homes == ["cache_schema/contract.py"]


def test_map_channel_table_is_one_object():
    from p4d.heads import MODALITY_CHANNELS

    assert MODALITY_CHANNELS is contract.MAP_CHANNELS
    assert contract.MAP_CHANNELS == {"depth": 1, "flow": 2, "motion": 1, "camray": 6}
    tables = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
              if any(re.search(r'\{"depth": 1, "flow": 2', line) for line in code_lines(p))]
    assert len(tables) == 1


def test_fingerprint_has_one_home_and_hashes_size_and_first_mib(tmp_path):
    from p4d.precompute import plan
    from p4d.train import data

    assert plan.file_fingerprint is contract.file_fingerprint is data.file_fingerprint
    payload = bytes(range(256)) * 5000                                  # 1.28 MB: the tail past 1 MiB is ignored
    path = tmp_path / "v.mp4"
    path.write_bytes(payload)
    expected = hashlib.sha256(b"1280000\0" + payload[: 1 << 20]).hexdigest()[:16]
    assert contract.file_fingerprint(path) == (1_280_000, expected)
    path.write_bytes(payload[:-1] + b"\1")                               # a change past the first MiB ...
    assert contract.file_fingerprint(path) == (1_280_000, expected)      # ... is not seen (by design)
    assert contract.file_fingerprint(tmp_path / "missing.mp4") == (0, "")
