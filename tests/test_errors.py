"""p4d.errors: the shared check of a mapping's keys against a config dataclass."""

from dataclasses import dataclass

import pytest

from p4d.errors import ConfigError, check_fields


@dataclass
class _Two:
    a: int = 0
    b: int = 0


def test_check_fields_names_owner_unknown_and_known_keys():
    check_fields("Two", _Two, {"a": 1})  # a subset of the fields is fine
    with pytest.raises(ConfigError, match=r"^Two: unknown fields \['c', 'z'\]; expected some of \['a', 'b'\]$"):
        check_fields("Two", _Two, {"a": 1, "z": 2, "c": 3})
    with pytest.raises(ConfigError, match="^Two: expected a mapping, found list$"):
        check_fields("Two", _Two, [("a", 1)])
