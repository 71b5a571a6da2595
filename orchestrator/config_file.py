"""Reading the config file: strict YAML, refused as fast as it is read when built to
hurt, and every problem said at its place in the file.

Over 1 MiB, nested over 32 deep, aliases expanding it beyond 10,000 values (a
"billion laughs"), an integer of over 100 digits: each is refused while the YAML
is composed, before anything is built. A key that looks like a credential is
refused wherever it is (DESIGN rule 8). msgspec's errors are translated into the
YAML path, what was expected and what was found.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec
import yaml

from orchestrator.yaml_errors import (
    could_be_secret,
    describe_type,
    describe_value,
    is_struct,
    scrubbed,
    shown_key,
    struct_fields,
    union_members,
    unknown_key,
)

API_KEY_ENV = "BYBIT_API_KEY"
API_SECRET_ENV = "BYBIT_API_SECRET"

# What a config file may hold. A config is a few kilobytes and a few dozen values,
# nested three or four deep; far beyond that is a mistake or an attack (a "billion
# laughs" file: aliases that refer to lists of aliases, expanding exponentially).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32  # lists and mappings nested in one another
MAX_VALUES = 10_000  # values (scalars, lists, mappings), counting each alias expanded
MAX_TEXT = 1_000_000  # characters of all scalars, counting each alias expanded
MAX_NUMBER_LENGTH = 100  # characters of an unquoted whole number

# The settings the file holds (orchestrator.config.Config): a parameter, not an
# import, as config.py imports this module.
S = TypeVar("S", bound=msgspec.Struct)


class Invalid(Exception):
    """A problem at a place in the file (a YAML path, or a line and column)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def read(path: Path, schema: type[S]) -> S:
    """The config file at ``path`` as ``schema``; Invalid, without the path, for
    anything wrong with it."""
    return _decode(_read(path), schema)


def decode(text: str, schema: type[S]) -> S:
    """Config text (a run's journal keeps its config's) as ``schema``; Invalid if wrong."""
    return _decode(text, schema)


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES and path.is_file():
            raise Invalid(
                "",
                f"the file is {size:,} bytes; a config is a few kilobytes "
                f"(at most {MAX_FILE_BYTES:,} bytes)",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Invalid("", "cannot read the config: no such file") from None
    except IsADirectoryError:
        raise Invalid("", "cannot read the config: it is a directory, not a file") from None
    except OSError as exc:
        raise Invalid("", f"cannot read the config: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("", f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def _decode(text: str, schema: type[S]) -> S:
    try:
        loader = _Loader(text)  # refuses control characters here, before parsing
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise Invalid(
            f"line {line}, column {column}",
            f"not valid YAML: character {exc.character:#06x} is not allowed",
        ) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:  # the composer stops at MAX_DEPTH first; this is a safety net
        raise Invalid("", f"values nested too deeply (a config needs {_NEEDED_DEPTH})") from None
    finally:
        loader.dispose()
    _refuse_secrets(data, "", set(), set())
    if data is None:
        raise Invalid(
            "", "the file holds no settings (empty or only comments); expected mode, pairs, ..."
        )
    if not isinstance(data, dict):
        raise Invalid(
            "",
            "the top level must be a mapping of settings (mode, pairs, trading, ...), "
            f"found {describe_value(data)}",
        )
    _check_shape(data, schema, "", loader.float_text)
    try:
        config = msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        raise _translate(exc, "", data, schema) from None
    return config


_NEEDED_DEPTH = "3 or 4 levels"


def _at(mark: Any) -> str:
    """Where a YAML mark points, as "line L, column C" (nothing without a mark)."""
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, made stricter and more literal for a config file.

    It also refuses, while composing and before anything is built, a file nested
    deeper than MAX_DEPTH, or one whose aliases expand it beyond MAX_VALUES values
    or MAX_TEXT characters: an alias costs the size of what it refers to, which is
    known once that is composed, so a "billion laughs" file stops at its first
    lines, in microseconds.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        # The source text of every float, by object id (they live as long as the
        # loaded tree), so a float-for-decimal hint shows the digits as written.
        self.float_text: dict[int, str] = {}
        self._depth = 0
        self._values = 0  # values composed so far, aliases expanded
        self._text = 0  # characters of scalars composed so far, aliases expanded
        self._aliases = 0
        # Expanded (values, characters) of each composed node, by id (the nodes
        # live as long as the composed tree).
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._aliases += 1
            # An alias to a list or mapping still being composed (it contains the
            # alias) counts once here; _refuse_secrets refuses it.
            values, text = self._sizes.get(id(node), (1, 0))
            self._count(values, text, mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise Invalid(
                _at(mark),
                f"lists or mappings nested more than {MAX_DEPTH} deep; a config needs "
                f"{_NEEDED_DEPTH}",
            )
        values, text = self._values, self._text
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            self._count(1, len(node.value), mark)
        else:
            self._count(1, 0, mark)
        self._sizes[id(node)] = (self._values - values, self._text - text)
        return node

    def _count(self, values: int, text: int, mark: Any) -> None:
        self._values += values
        self._text += text
        if self._values <= MAX_VALUES and self._text <= MAX_TEXT:
            return
        what = (
            f"more than {MAX_VALUES:,} values"
            if self._values > MAX_VALUES
            else f"more than {MAX_TEXT:,} characters of text"
        )
        if self._aliases:
            raise Invalid(
                _at(mark),
                f"the aliases (*name) expand the file to {what}; a config holds a few "
                "dozen values (refusing a 'billion laughs' file)",
            )
        raise Invalid(_at(mark), f"the file holds {what}; a config holds a few dozen values")

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to read an integer of over 4,300 digits (a ValueError).
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise Invalid(
                _at(node.start_mark),
                f"a number {len(node.value):,} characters long; no setting needs more than "
                f"{MAX_NUMBER_LENGTH}",
            )
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        self.float_text[id(value)] = str(node.value)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys; a second `trading:` would silently
        # replace the first.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    problem=f"the key {shown_key(key)!r} appears twice "
                    f"(first at line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_timestamp_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_yaml_str(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# An unquoted 2024-01-01 would become a date; data.start and data.end are text.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_as_text)


def _syntax_error(exc: yaml.MarkedYAMLError) -> Invalid:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "cannot parse"
    if "'\\t'" in problem:
        return Invalid(where, "not valid YAML: a tab character where YAML allows only spaces")
    if exc.context and problem.startswith("but "):  # "expected a single document ..., but ..."
        problem = f"{exc.context}, {problem}"
    elif exc.context and exc.context_mark and exc.problem:
        context = exc.context_mark
        problem += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
    return Invalid(where, f"not valid YAML: {scrubbed(problem)}")


_SECRET_KEY = re.compile(
    r"(?:^|_)(?:api_?key|api_?secret|secret(?:_?key)?|password|passwd|passphrase"
    r"|token|private_?key)(?:_|$)"
)


def _refuse_secrets(value: Any, path: str, open_containers: set[int], done: set[int]) -> None:
    """Refuse any key that looks like a credential, wherever it is, without its value.

    Each mapping and list is looked at once, however many aliases refer to it
    (``done``): walking every alias again costs as much as expanding them.
    """
    if not isinstance(value, dict | list) or id(value) in done:
        return
    if id(value) in open_containers:
        raise Invalid(path, "a YAML alias refers to a mapping or list that contains it")
    open_containers.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        where = _join(path, key) if isinstance(value, dict) else f"{path}[{key}]"
        if isinstance(value, dict) and _SECRET_KEY.search(str(key).lower().replace("-", "_")):
            raise Invalid(
                where,
                "keys and secrets are read only from environment variables "
                f"({API_KEY_ENV} and {API_SECRET_ENV}); remove it from the file",
            )
        _refuse_secrets(item, where, open_containers, done)
    open_containers.remove(id(value))
    done.add(id(value))


def _check_shape(value: Any, typ: Any, path: str, float_text: dict[int, str]) -> None:
    """What msgspec cannot say well: unknown keys (with a suggestion), floats given for
    decimals, and the real key of a bad mapping entry (msgspec prints ``[...]``)."""
    typ = _bare(typ, value)
    if is_struct(typ) and isinstance(value, dict):
        fields = struct_fields(typ)
        for key, item in value.items():
            where = _join(path, key)
            if key not in fields:
                raise Invalid(where, unknown_key(key, list(fields)))
            _check_shape(item, fields[key], where, float_text)
    elif get_origin(typ) is list and isinstance(value, list):
        (item_type,) = get_args(typ)
        for i, item in enumerate(value):
            _check_shape(item, item_type, f"{path}[{i}]", float_text)
    elif get_origin(typ) is dict and isinstance(value, dict):
        _, item_type = get_args(typ)
        for key, item in value.items():
            where = _join(path, key)
            if not isinstance(key, str):
                raise Invalid(where, f"expected a text key, got {describe_value(key)}")
            _check_shape(item, item_type, where, float_text)
            try:
                msgspec.convert(item, item_type)
            except msgspec.ValidationError as exc:
                raise _translate(exc, where, item, item_type) from None
    # An unquoted 0.1 is a binary float by the time it reaches msgspec. Integers are
    # accepted: YAML reads them as exact Python ints and msgspec converts those to
    # Decimal exactly (even beyond 64 bits), so `leverage: 1` loses nothing.
    elif typ is Decimal and isinstance(value, float):
        written = float_text.get(id(value), repr(value))
        raise Invalid(path, f'write decimals as quoted strings, e.g. "{written}"')


# A msgspec error: "<message>" or "<message> - at `$.pairs[1].perp`".
_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_TYPE_MISMATCH = re.compile(
    r"Expected `[^`]+`, got `[^`]+`|Invalid enum value .*|Invalid decimal string"
)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def _translate(exc: msgspec.ValidationError, path: str, value: Any, typ: Any) -> Invalid:
    """msgspec's error, relative to ``value`` of type ``typ`` found at ``path``, in the
    file's terms: the YAML path, what was expected and what was found."""
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    where = path
    typ = _bare(typ, value)
    # Struct fields and list indexes only: _check_shape has checked every mapping entry.
    for field, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", match["path"] or ""):
        if field:
            where = _join(where, field)
            value = value[field]
            typ = _bare(struct_fields(typ)[field], value)
        else:
            where = f"{where}[{index}]"
            value = value[int(index)]
            typ = _bare(get_args(typ)[0], value)
    if _TYPE_MISMATCH.fullmatch(message):
        return Invalid(where, _expected(typ, value))
    missing = _MISSING_FIELD.fullmatch(message)
    if missing:
        return Invalid(_join(where, missing["field"]), "required, but missing")
    return _from_post_init(where, typ, message)


def _from_post_init(where: str, typ: Any, message: str) -> Invalid:
    """Move the field a ``__post_init__`` message starts with into the path:
    "delta_drift_tolerance must be ..." at trading -> trading.delta_drift_tolerance."""
    fields = struct_fields(typ) if is_struct(typ) else {}
    # "field: ...", "field[1]: ...", "field.sub: ..." (config.py's form)
    lead = re.match(r"(?P<field>\w+)(?P<tail>(?:\[\d+\]|\.\w+)*): (?P<rest>.+)", message, re.S)
    if lead and lead["field"] in fields:
        return Invalid(_join(where, lead["field"]) + lead["tail"], lead["rest"])
    # "field must ..." (settings.py's form)
    for field in fields:
        if message.startswith(field + " "):
            return Invalid(_join(where, field), message[len(field) + 1 :])
    return Invalid(where, message)


def _expected(typ: Any, value: Any) -> str:
    text = f"expected {describe_type(typ)}, got {describe_value(value)}"
    accepts = set(union_members(typ))
    if accepts & {int, float} and isinstance(value, str) and _is_number(value):
        if re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()):
            return text + "; YAML reads 1e-4 as text: write 1.0e-4"
        return text + "; write the number without quotes"
    if str in accepts and isinstance(value, bool):
        return text + "; YAML reads yes, no, on, off, true and false as booleans: quote the text"
    if value is None and is_struct(typ):
        return text + "; remove the key to keep the defaults"
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _join(path: str, key: object) -> str:
    if could_be_secret(str(key)):
        return f"{path}[{shown_key(key)}]"
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _bare(typ: Any, value: Any = None) -> Any:
    """The type without its annotations; of a union (``pairs``: a list or "auto"), the
    member a container ``value`` is (its list, its struct), so that what is inside is
    checked and named as that member's."""
    typ = get_args(typ)[0] if get_origin(typ) is Annotated else typ
    if get_origin(typ) in (Union, UnionType):
        for member in get_args(typ):
            member = _bare(member)
            if (isinstance(value, list) and get_origin(member) is list) or (
                isinstance(value, dict) and (is_struct(member) or get_origin(member) is dict)
            ):
                return member
    return typ
