"""Every ``p4d train`` setting as a ``--SECTION.FIELD`` flag, with its default and its comment.

Read from :class:`~p4d.train.config.TrainConfig` itself (the dataclass fields and the ``# ...``
comment on each field's line), so ``train --help`` and ``train --print-config`` cannot drift
from the config.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from functools import cache
from typing import Any

from p4d.train.config import TrainConfig

_COMMENT = re.compile(r"^\s*(\w+)\s*:.*?#\s*(.*)$")


@cache
def _comments(cls: type) -> dict[str, str]:
    """{field: the comment on its line} from the dataclass's source."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    return {m.group(1): m.group(2).strip() for m in map(_COMMENT.match, lines) if m}


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if value == "":
        return '""' 
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(_text(v) for v in value)
    return str(value)


def settings(cfg: TrainConfig | None = None) -> list[tuple[str, str, str, str]]:
    """(flag, value in ``cfg``, default, comment) for every setting, in the config's order."""
    default = TrainConfig()
    cfg = default if cfg is None else cfg
    rows = []
    for f in dataclasses.fields(TrainConfig):
        section, section_default = getattr(cfg, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(section):
            notes = _comments(type(section))
            for sub in dataclasses.fields(section):
                rows.append((f"--{f.name}.{sub.name.replace('_', '-')}", _text(getattr(section, sub.name)),
                             _text(getattr(section_default, sub.name)), notes.get(sub.name, "")))
        else:
            rows.append((f"--{f.name.replace('_', '-')}", _text(section), _text(section_default),
                         _comments(TrainConfig).get(f.name, "")))
    return rows


def _yaml_value(value: Any) -> str:
    """``value`` as one YAML flow scalar/list (what ``yaml.safe_load`` reads back as the same value)."""
    import yaml

    value = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def format_settings(cfg: TrainConfig | None = None) -> str:
    """Every setting as YAML that ``--config`` reads back: ``section:`` then ``  field: value``, each
    line commented with its flag, its default (``(changed)`` where it differs) and what it does::

        optim:
          lr_llm: 3.0e-05  # --optim.lr-llm; default 2e-05 (changed); LLM (or its LoRA adapters)
    """
    default = TrainConfig()
    cfg = default if cfg is None else cfg
    tree = cfg.to_dict()
    rows: list[tuple[str, str]] = []  # (yaml text, comment)
    flags = iter(settings(cfg))
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(getattr(cfg, f.name)):
            rows.append((f"{f.name}:", ""))
            for sub in dataclasses.fields(getattr(cfg, f.name)):
                rows.append((f"  {sub.name}: {_yaml_value(tree[f.name][sub.name])}", _comment(next(flags))))
        else:
            rows.append((f"{f.name}: {_yaml_value(tree[f.name])}", _comment(next(flags))))
    width = max(len(text) for text, _ in rows) + 2
    head = ("# p4d train settings (defaults < --recipe < --config < flags); "
            "`p4d train --config THIS_FILE` reads this back")
    return "\n".join([head] + [text.ljust(width) + comment if comment else text for text, comment in rows])


def _comment(row: tuple[str, str, str, str]) -> str:
    flag, value, default, note = row
    return f"# {flag}; default {default}" + (" (changed)" if value != default else "") + (f"; {note}" if note else "")


def help_epilog() -> str:
    """The settings table for ``p4d train --help``: ``--SECTION.FIELD DEFAULT  # what it does``."""
    rows = settings()
    width = max(len(flag) + len(default) for flag, _, default, _ in rows) + 2
    lines = [f"{flag} {default}".ljust(width) + (f"# {note}" if note else "") for flag, _, default, note in rows]
    return ("Every setting is a flag --SECTION.FIELD VALUE (or `SECTION: {FIELD: VALUE}` in --config YAML); "
            "defaults shown:\n\n\b\n" + "\n".join(lines))  # \b: click keeps the lines as they are
