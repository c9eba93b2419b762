"""``key=value`` arguments for the commands that are not Hydra apps (predict, generate, tsne, report, ...).

One convention for every nnlab command: ``nnlab <command> key=value ...``, like ``nnlab train``. A command
declares its keys (name, default, type, help, and the range or choices a value must fall in); this module
parses them, answers ``--help`` with the keys, and refuses a bad value or an unknown key with one line that
names the key, the value and what is valid (the nearest valid key, for a misspelt one).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nnlab.utils.errors import ConfigError

REQUIRED = object()  # a key's default when the command cannot run without it


@dataclass(frozen=True)
class Key:
    """One ``key=value`` argument. ``type`` is int, float, bool, str, Path or list (of str); ``check`` returns
    what a bad value must be (e.g. ``"must be >= 1"``) or None for a good one."""

    name: str
    default: Any
    help: str
    type: type = str
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    item: type = str  # the type of a list's items

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def at_least(lo: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= lo else f"must be >= {lo:g}"


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def existing_file(v: Path) -> str | None:
    if v.is_dir():
        return "is a directory, not a file"
    return None if v.is_file() else "does not exist"


def existing_dir(v: Path) -> str | None:
    if v.is_file():
        return "is a file, not a directory"
    return None if v.is_dir() else "does not exist"


@dataclass(frozen=True)
class Command:
    """A command's keys; ``positional`` names what bare arguments (no ``key=``) are, if the command takes any."""

    name: str
    summary: str
    keys: Sequence[Key]
    positional: str | None = None
    examples: Sequence[str] = field(default_factory=tuple)
    prog: str | None = None  # how it is called, when not `nnlab <name>` (a benchmark script)

    @property
    def where(self) -> str:
        return self.prog or f"nnlab {self.name}"

    def usage(self) -> str:
        lines = [f"{self.where}: {self.summary}", "", f"usage: {self.where} key=value ..."]
        if self.positional:
            lines[-1] += f" [{self.positional} ...]"
        lines += ["", "keys:"]
        width = max(len(k.name) for k in self.keys) + 2
        for k in self.keys:
            if k.required:
                default = "(required)"
            elif k.default is None:
                default = "(default: none)"
            else:
                shown = ",".join(map(str, k.default)) if isinstance(k.default, list | tuple) else k.default
                default = f"(default: {str(shown).lower() if isinstance(shown, bool) else shown})"
            extra = f"; one of {', '.join(k.choices)}" if k.choices else ""
            lines.append(f"  {k.name:<{width}}{k.help}{extra} {default}")
        if self.examples:
            lines += ["", "examples:", *(f"  {e}" for e in self.examples)]
        return "\n".join(lines)


_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "on": True, "off": False}
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false"}
_LIST_WORDS = {int: "integers", float: "numbers"}


def _convert(key: Key, raw: str) -> Any:
    if raw.lower() in ("null", "none", "~") and key.type is not bool and key.default is None:
        return None
    try:
        if key.type is bool:
            return _BOOLS[raw.lower()]
        if key.type is int:
            return int(raw)
        if key.type is float:
            return float(raw)
    except (KeyError, ValueError):
        raise ConfigError(f"{key.name}={raw!r} must be {_TYPE_WORDS[key.type]}") from None
    if key.type is list:
        inner = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
        items = [w.strip() for w in inner.split(",") if w.strip()]
        if key.item is str:
            return items
        try:
            return [key.item(w) for w in items]
        except ValueError:
            raise ConfigError(f"{key.name}={raw!r} must be a list of {_LIST_WORDS[key.item]}, e.g. [1,2]") from None
    if key.type is Path:
        return Path(raw).expanduser()
    return raw


def _typed(key: Key, value: Any) -> Any:
    """``value`` (from a composed config: YAML already typed it) as ``key.type``, or the one-line refusal."""
    if key.type is bool:
        ok = isinstance(value, bool)
    elif key.type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif key.type is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif key.type is Path:
        ok = isinstance(value, str)
        value = Path(value).expanduser() if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{key.name}={value!r} must be {_TYPE_WORDS.get(key.type, key.type.__name__)}")
    return value


def check_value(key: Key, name: str, value: Any, raw: object) -> None:
    """The choices and range of ``key`` for ``value`` (already of its type); ``raw`` is how the user wrote it."""
    if value is None:
        return
    bad = [v for v in value if v not in key.choices] if key.choices and isinstance(value, list) else []
    if key.choices and (bad or (not isinstance(value, list) and value not in key.choices)):
        raise ConfigError(f"{name}={raw!r} is not a valid choice; choose one of: {', '.join(key.choices)}")
    if key.check and (problem := key.check(value)):
        raise ConfigError(f"{name}={raw} {problem}")


def is_assignment(arg: str) -> bool:
    """``key=value`` with an identifier-like key (``a=b`` in a sentence with spaces before '=' is text)."""
    name, eq, _ = arg.partition("=")
    return bool(eq) and name.replace(".", "_").replace("-", "_").isidentifier()


def nearest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate a misspelling most likely meant: one sharing its last part (``model.lr`` ->
    ``model.optimizer.lr``), else the closest spelling."""
    leaf = word.rsplit(".", 1)[-1]
    same_leaf = [c for c in candidates if c.rsplit(".", 1)[-1] == leaf and c != word]
    if same_leaf:
        head = word.split(".", 1)[0]
        return min(same_leaf, key=lambda c: (c.split(".", 1)[0] != head, len(c)))
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_error(key: str, valid: Sequence[str], where: str) -> ConfigError:
    guess = nearest(key, valid)
    hint = f"did you mean {guess}?" if guess else f"valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"{key} is not a key of {where}; {hint} (see `{where} --help`)")


def parse(cmd: Command, argv: Sequence[str]) -> SimpleNamespace:
    """The command's arguments: defaults, overridden by ``key=value``; bare arguments go to ``positional``.

    Raises ConfigError (one line) for an unknown key, a repeated key, a value of the wrong type, out of range or
    not among the choices, a missing required key, or bare arguments where the command takes none."""
    by_name = {k.name: k for k in cmd.keys}
    where = cmd.where
    values: dict[str, Any] = {}
    raws: dict[str, str] = {}
    bare: list[str] = []
    for arg in argv:
        if not is_assignment(arg):
            if arg.startswith("-"):
                raise ConfigError(f"{where} takes key=value arguments, not {arg!r} (see `{where} --help`)")
            bare.append(arg)
            continue
        name, _, raw = arg.partition("=")
        name = name.replace("-", "_")
        if name not in by_name:
            raise unknown_key_error(name, list(by_name), where)
        if name in values:
            raise ConfigError(f"{name} is given twice; give it once")
        key = by_name[name]
        value = _convert(key, raw)
        if key.type is not Path:
            check_value(key, name, value, raw)
        values[name] = value
        raws[name] = raw
    # paths last: a value that is wrong in itself is named before one that names a missing file
    for name in [n for n in values if by_name[n].type is Path]:
        check_value(by_name[name], name, values[name], raws[name])
    if bare and not cmd.positional:
        raise ConfigError(f"{where} takes only key=value arguments; {bare[0]!r} is not one (see `{where} --help`)")
    missing = [k.name for k in cmd.keys if k.required and k.name not in values]
    if missing:
        raise ConfigError(f"{where} needs {' and '.join(f'{m}=...' for m in missing)} (see `{where} --help`)")
    ns = SimpleNamespace(**{k.name: values.get(k.name, k.default) for k in cmd.keys})
    if cmd.positional:
        setattr(ns, cmd.positional, bare)
    return ns


def parse_script(cmd: Command, argv: Sequence[str] | None = None) -> SimpleNamespace:
    """``parse`` for a script's ``main``: ``--help`` prints the keys and exits 0; a refusal is one line, exit 2."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(cmd.usage())
        sys.exit(0)
    try:
        return parse(cmd, argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
