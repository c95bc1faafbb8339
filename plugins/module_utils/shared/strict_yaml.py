"""Strict loading of the YAML and JSON files damon-fleet reads.

One loader for every file the tool reads itself (the ``damon-fleet damon plan``
spec, the boot-time applier's rendered config):

* duplicate mapping keys are refused (PyYAML and ``json`` keep the last one);
* YAML 1.1 base-60 numbers are not resolved (``1:30`` stays the string ``"1:30"``
  instead of becoming 90), nor are YAML 1.1 octals (``010`` stays ``"010"``) or
  base-60 floats; plain decimal and ``0x`` hex integers still load as integers;
* only the safe tags (no Python objects);
* errors are :class:`StrictLoadError` (a ``ValueError``) with one line naming the
  source, and the line when known, never quoting more than a short excerpt.

Standard library for JSON; PyYAML only when the text is not JSON.  Runs on
Python 3.8+ (managed hosts).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_QUOTE = 80


class StrictLoadError(ValueError):
    """The text cannot be loaded; the message names the source."""


def excerpt(text: str, limit: int = MAX_QUOTE) -> str:
    """``repr`` of at most ``limit`` characters of ``text`` (``...`` when cut)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + "..."


def _json_pairs(source: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise StrictLoadError(f"{source}: duplicate key {excerpt(key)}")
            out[key] = value
        return out

    return hook


def load_json(text: str, source: str) -> Any:
    """JSON with duplicate keys refused; ``json.JSONDecodeError`` when not JSON."""
    return json.loads(text, object_pairs_hook=_json_pairs(source))


# YAML 1.2-like integers and floats: no base 60, no leading-zero octal.
_INT_RE = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o[0-7_]+)$", re.ASCII)
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    re.ASCII,
)


def _strict_loader() -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
        """SafeLoader without base-60/octal resolution, refusing duplicate keys."""

    resolvers: dict[Any, list[tuple[str, Any]]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [
            (tag, rx)
            for tag, rx in entries
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ]
        if kept:
            resolvers[first] = kept
    Loader.yaml_implicit_resolvers = resolvers
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_RE, list("-+0123456789"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))

    def construct_int(loader: Any, node: Any) -> int:
        text = str(loader.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0x"):
            return sign * int(text[2:], 16)
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        return sign * int(text, 10)

    def construct_mapping(loader: Any, node: Any) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in out
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found duplicate key " + excerpt(str(key)),
                    key_node.start_mark,
                )
            out[key] = loader.construct_object(value_node, deep=True)
        return out

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    return Loader


def load_yaml(text: str, source: str) -> Any:
    """YAML (safe tags only) with the rules of this module."""
    try:
        import yaml
    except ImportError:
        raise StrictLoadError(f"{source}: not JSON, and PyYAML is not installed") from None
    try:
        return yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(err.problem or err.context or "invalid YAML").split())
        raise StrictLoadError(f"{source}:{where}: {problem[:200]}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        detail = " ".join(str(err).split())[:200]
        raise StrictLoadError(f"{source}: invalid YAML: {detail}") from None


def load_text(text: str, source: str) -> Any:
    """JSON when the text is JSON, else YAML; duplicate keys refused in both."""
    try:
        return load_json(text, source)
    except StrictLoadError:
        raise
    except (ValueError, RecursionError):
        pass
    return load_yaml(text, source)
