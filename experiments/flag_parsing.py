"""app.run's flags_parser for every entry point: any flag error (an unknown flag or ``--config.KEY``, a value that
does not parse, a missing required flag) prints ``error: ...`` in one line and exits 2, instead of absl's traceback
or its exit 1 (the convention of these tools: 2 = bad input)."""
from __future__ import annotations

import difflib
import re
import sys
from typing import Optional, Sequence

from absl import flags
from ml_collections import ConfigDict

def _override_paths(argv: Sequence[str], name: str) -> list[str]:
    """The KEY of every --NAME.KEY[=VALUE] / --noNAME.KEY in argv (as config_flags reads them)."""
    pattern = re.compile(r"-{1,2}(no)?%s\." % re.escape(name))
    return [arg.split("=", 1)[0].split(".", 1)[1] for arg in argv if pattern.match(arg)]


def _config_arg(argv: Sequence[str], name: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        m = re.match(r"-{1,2}%s(=(.*))?$" % re.escape(name), arg)
        if m:
            return m.group(2) if m.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
    return None


def unknown_override(argv: Sequence[str], name: str = "config",
                     flag_values: Optional[flags.FlagValues] = None) -> Optional[str]:
    """A one-line message naming the first --NAME.KEY of argv that the config file's ConfigDict lacks, with the
    valid keys at that level (None when every override exists or the config cannot be loaded)."""
    path = _config_arg(argv, name)
    if path is None:
        return None
    try:
        config = (flags.FLAGS if flag_values is None else flag_values)[name].parser.parse(path)
    except Exception:  # pylint: disable=broad-except  # the load's own error is reported by the caller
        return None
    for override in _override_paths(argv, name):
        node, parts = config, override.split(".")
        for depth, part in enumerate(parts):
            if isinstance(node, ConfigDict) and part in node:
                node = node[part]
                continue
            parent = ".".join(parts[:depth])
            if not isinstance(node, ConfigDict):
                return f"--{name}.{override}: {name}.{parent} is a value ({node!r}), not a group of keys"
            keys = sorted(node.keys())
            close = difflib.get_close_matches(part, keys, n=1)
            hint = f" (did you mean {'.'.join(parts[:depth] + [close[0]])!r}?)" if close else ""
            where = f"{name}.{parent}" if parent else name
            teachers = ("" if "model" in config else  # a distillation overlay (distill_config_dict)
                        "; the other settings of a distillation (model, data world, buffer, chunk sizes, schedule, "
                        "autoencoder) are the teacher's")
            return (f"--{name}.{override}: unknown config key {'.'.join(parts[:depth + 1])!r}{hint}; valid keys of "
                    f"{where}: {', '.join(keys)}{teachers}")
    return None


def parse_flags(argv: list[str]) -> list[str]:
    """app.run's flags_parser: parses absl flags; any flag error (an unknown --config.KEY, a value that does not
    parse, a missing required flag) prints ``error: ...`` in one line and exits 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = str(e)
    except (AttributeError, KeyError):  # config_flags looks an unknown override up in the ConfigDict
        message = unknown_override(argv)
        if message is None:
            raise
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
