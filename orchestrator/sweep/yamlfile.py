"""Reading a sweep file: YAML read strictly, and msgspec's errors said at their YAML path.

A sweep file is a few dozen values. The reader refuses what a sweep file never
needs and a hostile one would use: more than 1 MiB, nesting deeper than 32,
more than 10,000 values, anchors and aliases, a key written twice. Timestamps
stay text (``start: 2024-01-01`` is a date string, not a ``date``), and the
text of every float is kept, so "write decimals as quoted strings" can quote the
number as written.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
import yaml

from orchestrator import yaml_errors
from orchestrator.exceptions import OrchestratorError
from orchestrator.yaml_errors import (
    could_be_secret,
    describe_value,
    is_struct,
    scrubbed,
    shown_key,
    struct_fields,
    union_members,
    unknown_key,
)

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUES = 10_000
MAX_NUMBER_LENGTH = 100


class SweepError(OrchestratorError):
    """The sweep cannot run; the message names the file and the YAML path. Nothing ran."""


class Invalid(Exception):
    """A problem at a place in the file (a YAML path, or a line and column)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader: no aliases, bounded depth and size, no repeated keys."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.float_text: dict[int, str] = {}
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if self.check_event(yaml.AliasEvent):
            raise Invalid(
                _at(mark), "anchors and aliases (&name, *name) are not used in a sweep file"
            )
        if getattr(event, "anchor", None):
            raise Invalid(
                _at(mark), "anchors and aliases (&name, *name) are not used in a sweep file"
            )
        if self._depth >= MAX_DEPTH:
            raise Invalid(_at(mark), f"values nested more than {MAX_DEPTH} deep")
        self._values += 1
        if self._values > MAX_VALUES:
            raise Invalid(_at(mark), f"more than {MAX_VALUES:,} values; a sweep file holds dozens")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise Invalid(_at(node.start_mark), f"a number {len(node.value):,} characters long")
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        self.float_text[id(value)] = str(node.value)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise Invalid(_at(key_node.start_mark), "a key must be plain text")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise Invalid(_at(key_node.start_mark), "merge keys (<<) are not used here")
            key = self.construct_object(key_node)
            if key in first_line:
                raise Invalid(
                    _at(key_node.start_mark),
                    f"the key {shown_key(key)!r} appears twice (first at line {first_line[key]})",
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_timestamp_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_yaml_str(node)


StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", StrictLoader.construct_timestamp_as_text
)


class Document(msgspec.Struct, frozen=True):
    data: Any
    float_text: dict[int, str]  # the source text of each float, by id (they live with data)


def read_yaml(path: Path, what: str = "sweep file") -> Document:
    """The file's YAML, strictly read; Invalid (no path) for anything wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES and path.is_file():
            raise Invalid("", f"the file is {size:,} bytes; a {what} is a few kilobytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Invalid("", f"cannot read the {what}: no such file") from None
    except IsADirectoryError:
        raise Invalid("", f"cannot read the {what}: it is a directory, not a file") from None
    except OSError as exc:
        raise Invalid("", f"cannot read the {what}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("", f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        loader = StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        raise Invalid(
            "", f"not valid YAML: character {exc.character:#06x} is not allowed"
        ) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot parse"
        if "'\\t'" in problem:
            problem = "a tab character where YAML allows only spaces"
        raise Invalid(_at(mark), f"not valid YAML: {scrubbed(problem)}") from None
    except RecursionError:
        raise Invalid("", f"values nested more than {MAX_DEPTH} deep") from None
    finally:
        loader.dispose()
    return Document(data, loader.float_text)


# -- msgspec's errors in the file's terms ------------------------------------------

_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_MISMATCH = re.compile(
    r"Expected `[^`]+`, got `[^`]+`|Invalid enum value .*|Invalid decimal string"
)


def join(path: str, key: object) -> str:
    """``path.key`` (or ``path['odd key']``): a YAML path as messages show it."""
    if could_be_secret(str(key)):
        return f"{path}[{shown_key(key)}]"
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def bare(typ: Any) -> Any:
    """The type without Annotated and without an optional None."""
    if get_origin(typ) is Annotated:
        typ = get_args(typ)[0]
    members = [m for m in union_members(typ) if m is not types.NoneType]
    return members[0] if len(members) == 1 else typ


def convert(data: Any, typ: Any, path: str) -> Any:
    """msgspec.convert, its error raised as Invalid at the YAML path, in plain words."""
    try:
        return msgspec.convert(data, typ)
    except msgspec.ValidationError as exc:
        raise translate(exc, path, data, typ) from None


def translate(exc: msgspec.ValidationError, path: str, value: Any, typ: Any) -> Invalid:
    match = _AT.fullmatch(str(exc))
    assert match is not None
    message = match["message"]
    where = path
    for field, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", match["path"] or ""):
        struct = _struct_in(typ)
        if field:
            where = join(where, field)
            typ = struct_fields(struct)[field] if struct is not None else Any
            value = value.get(field) if isinstance(value, dict) else None
        else:
            where = f"{where}[{index}]"
            lists = [m for m in union_members(bare(typ)) if get_origin(m) is list]
            typ = get_args(lists[0])[0] if lists else Any
            value = value[int(index)] if isinstance(value, list) else None
    unknown = _UNKNOWN.fullmatch(message)
    if unknown:
        struct = _struct_in(typ)
        known = list(struct_fields(struct)) if struct is not None else []
        return Invalid(join(where, unknown["field"]), unknown_key(unknown["field"], known))
    missing = _MISSING.fullmatch(message)
    if missing:
        return Invalid(join(where, missing["field"]), "required, but missing")
    if _MISMATCH.fullmatch(message):
        return Invalid(where, expected(typ, value))
    struct = _struct_in(typ)
    lead = re.match(r"(?P<field>\w+)(?P<tail>(?:\[\d+\]|\.\w+)*): (?P<rest>.+)", message, re.S)
    if lead and struct is not None and lead["field"] in struct_fields(struct):
        return Invalid(join(where, lead["field"]) + lead["tail"], lead["rest"])
    return Invalid(where, message)


def _struct_in(typ: Any) -> Any:
    structs = [m for m in union_members(bare(typ)) if is_struct(m)]
    return structs[0] if structs else None


def expected(typ: Any, value: Any) -> str:
    text = f"expected {describe_type(typ)}, got {describe_value(value)}"
    if get_origin(bare(typ)) is Literal and isinstance(value, str):
        shown = describe_value(value) if could_be_secret(value) else repr(value)
        return f"{shown} is not one of {describe_type(typ)}"
    accepts = set(union_members(bare(typ)))
    if accepts & {int, float} and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return text
        return text + "; write the number without quotes"
    return text


def describe_type(typ: Any) -> str:
    return yaml_errors.describe_type(typ, bare)
