"""Recipes: YAML files mapped onto frozen dataclasses.

A recipe is a YAML mapping. Each command owns a top-level frozen dataclass (its *schema*);
`load_recipe(path, Schema, overrides)` reads the file, applies `--set a.b=value` overrides,
and builds the dataclass tree, checking every key and type on the way. Errors are one line
naming the file, the dotted key and the fix (the nearest valid key for typos).

Three kinds of fields beyond plain scalars/lists/nested dataclasses:
- a *registry* section (`field(metadata={"registry": lookup})`): the mapping's `name:` picks a
  dataclass from a registry (e.g. the unlearning method) and the rest is loaded into it;
- a *passthrough* mapping (`field(metadata={"keys": valid_keys})`): kept as a plain dict but its
  keys are checked against a set (e.g. `train:` must be `transformers.TrainingArguments` fields);
- `base: other.yaml` at the top of a file extends that recipe (deep merge, this file wins).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from lethe.errors import LetheError

log = logging.getLogger(__name__)

MISSING = dataclasses.MISSING


def nearest(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    match = difflib.get_close_matches(str(name), sorted(map(str, choices)), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def registry_field(lookup: Callable[[str], type], names: Callable[[], list[str]], default=MISSING,
                   default_factory=MISSING):
    """A dataclass field whose mapping's `name:` chooses the dataclass via `lookup(name)`."""
    meta = {"registry": lookup, "registry_names": names}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def passthrough_field(valid_keys: Callable[[], set[str]],
                      key_types: Callable[[], dict[str, Any]] | None = None):
    """A dict field kept as is (e.g. TrainingArguments kwargs), its keys checked on load.

    `key_types` maps keys to annotations; scalar ones (int, float, bool, str) are checked and
    converted like ordinary fields, so `learning_rate: fast` fails at load time.
    """
    return dataclasses.field(default_factory=dict,
                             metadata={"keys": valid_keys, "key_types": key_types})


# ---------------------------------------------------------------------------------------------
# reading files


def read_yaml(path: str | Path) -> dict:
    """Read one recipe file (following `base:`), returning the merged raw mapping."""
    path = Path(path)
    if not path.is_file():
        raise LetheError(f"recipe file not found: {path} (check the path; shipped recipes are "
                         f"under recipes/)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise LetheError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise LetheError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise LetheError(f"{path}: a recipe must be a YAML mapping (key: value), "
                         f"got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is not None:
        base_path = (path.parent / str(base)).resolve()
        raw = deep_merge(read_yaml(base_path), raw)
    return raw


def deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "name" not in value:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise LetheError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.learning_rate=1e-4")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise LetheError(f"--set {text!r}: empty key; write dotted keys like method.beta=0.1")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict, schema: type, overrides) -> dict:
    """Set each `a.b=value` in `raw`, refusing keys the schema does not have.

    The one rule for switching a registry section (`--set method.name=X`,
    `--set rewriter.name=X`, `--set rewriter.base.name=X`): the keys the new entry also has are
    kept, the others are dropped (and logged), and the new entry's defaults fill the rest."""
    raw = _copy(raw)
    for text in overrides or ():
        parts, value = parse_override(text)
        registry = _check_override_path(schema, raw, parts, text)
        node = raw
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if registry is not None and node.get("name") != value:
            _drop_foreign_keys(node, registry, value, text, ".".join(parts[:-1]))
        node[parts[-1]] = value
    return raw


def _drop_foreign_keys(node: dict, registry, name, text: str, dotted: str) -> None:
    """`--set method.name=grad_diff` on a recipe written for npo_gdr: keep the keys the new
    method also has (alpha), drop the ones it does not (beta), and say so."""
    valid = {f.name for f in dataclasses.fields(_lookup(registry, name, f"--set {text}", dotted))}
    dropped = [k for k in node if k != "name" and k not in valid]
    for key in dropped:
        del node[key]
    if dropped:
        log.info("--set %s: dropped %s (not settings of %s)", text,
                 ", ".join(f"{dotted}.{k}" for k in dropped), name)


def _check_override_path(schema: type, raw: dict, parts: list[str], text: str):
    """Refuse a path the schema does not have; returns the registry field when the path
    ends at a registry's `name` (switching the method/rewriter), else None."""
    cls, node = schema, raw
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the recipe"
        if cls is None:  # inside a free-form dict: anything goes
            return None
        if isinstance(cls, set):  # passthrough section with known keys
            if part not in cls:
                raise LetheError(f"--set {text}: unknown key '{part}' in {where}{nearest(part, cls)}")
            return None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        if part not in fields:
            raise LetheError(f"--set {text}: unknown key '{part}' in {where}"
                             f"{nearest(part, fields)}")
        f = fields[part]
        sub = node.get(part) if isinstance(node, dict) else None
        if "registry" in f.metadata:
            name = (sub or {}).get("name") if isinstance(sub, dict) else None
            if name is None:
                default = _default_of(f)
                name = getattr(default, "name", None)
            if depth + 1 < len(parts) and parts[depth + 1] == "name":
                return f if depth + 2 == len(parts) else None
            cls = _lookup(f, name, f"--set {text}", ".".join(parts[:depth + 1])) if name else None
        elif "keys" in f.metadata:
            cls = set(f.metadata["keys"]())
        else:
            cls = _dataclass_in(hints[part])
        node = sub if isinstance(sub, dict) else {}


# ---------------------------------------------------------------------------------------------
# building dataclasses


def load_recipe(path: str | Path | None, schema: type, overrides=()):
    """Read `path` (None: the schema's own defaults), apply `overrides` (["a.b=1", ...]) and
    build a `schema` instance. Every command loads its recipe here, so `--set` means the same
    everywhere (see `apply_overrides`)."""
    raw = read_yaml(path) if path is not None else to_dict(schema())
    raw = apply_overrides(raw, schema, overrides)
    return build(schema, raw, source=str(path) if path is not None else "the default recipe")


def build(cls: type, raw: Mapping | None, source: str = "<recipe>", where: str = ""):
    """Build dataclass `cls` from mapping `raw`; errors name `source` and the dotted key."""
    raw = {} if raw is None else raw
    label = where or "the recipe"
    if not isinstance(raw, Mapping):
        raise LetheError(f"{source}: {label} must be a mapping (key: value), "
                         f"got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            raise LetheError(f"{source}: unknown key '{key}' in {label}{nearest(key, fields)}")
    kwargs = {}
    for name, f in fields.items():
        dotted = f"{where}.{name}" if where else name
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise LetheError(f"{source}: missing required key '{dotted}'")
            continue
        value = raw[name]
        if "registry" in f.metadata:
            kwargs[name] = _build_registry(f, value, source, dotted)
        elif "keys" in f.metadata:
            kwargs[name] = _build_passthrough(f, value, source, dotted)
        else:
            default = _default_of(f)
            if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
                # A partial mapping refines the default section: `retain: {field: body}`
                # keeps the default split rather than the dataclass's own field defaults.
                value = {**to_dict(default), **value}
            kwargs[name] = convert(hints[name], value, source, dotted)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ validation
        raise LetheError(f"{source}: {label}: {err}") from None


def _build_registry(f, value, source, dotted):
    if value is None:
        return _default_of(f)
    if isinstance(value, str):
        value = {"name": value}
    default = _default_of(f)
    if isinstance(value, Mapping) and "name" not in value and hasattr(default, "name"):
        # A mapping without `name:` refines the default entry, as a partial plain section does.
        value = {**to_dict(default), **value}
    if not isinstance(value, Mapping) or "name" not in value:
        raise LetheError(f"{source}: {dotted} must be a mapping with a 'name:' key, "
                         f"got {_show(value)}")
    cls = _lookup(f, value["name"], source, dotted)
    return build(cls, value, source, dotted)


def _build_passthrough(f, value, source, dotted):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LetheError(f"{source}: {dotted} must be a mapping, got {_show(value)}")
    valid = f.metadata["keys"]()
    types_of = f.metadata.get("key_types")
    types_of = types_of() if types_of else {}
    out = {}
    for key, item in value.items():
        if key not in valid:
            raise LetheError(f"{source}: unknown key '{key}' in {dotted}{nearest(key, valid)}")
        tp = types_of.get(key)
        scalar = tp in (int, float, bool, str) or typing.get_origin(tp) in (
            typing.Union, types.UnionType) and all(a in (int, float, bool, str, type(None))
                                                   for a in typing.get_args(tp))
        out[key] = convert(tp, item, source, f"{dotted}.{key}") if scalar else item
    return out


def _lookup(f, name, source, dotted):
    try:
        return f.metadata["registry"](name)
    except KeyError:
        names = f.metadata["registry_names"]()
        raise LetheError(f"{source}: unknown {dotted} name '{name}'{nearest(name, names)}; "
                         f"valid: {', '.join(sorted(names))}") from None


def _default_of(f):
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def convert(tp, value, source: str, dotted: str):
    """Check/convert one YAML value to annotation `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, source, dotted)
            except LetheError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise LetheError(f"{source}: {dotted}: '{value}' is not one of "
                             f"{', '.join(map(str, args))}{nearest(value, args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source, dotted)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if origin is tuple or tp is tuple or origin is list or tp is list:
                raise LetheError(f"{source}: {dotted}: expected a list, got {_show(value)}")
        item = args[0] if args else Any
        items = [convert(item, v, source, f"{dotted}[{i}]") for i, v in enumerate(value)]
        return tuple(items)  # tuples keep the frozen dataclass hashable and immutable
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise LetheError(f"{source}: {dotted}: expected a mapping, got {_show(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): convert(vt, v, source, f"{dotted}.{k}") for k, v in value.items()}
    if tp in _SCALARS:
        return _SCALARS[tp](value, source, dotted)
    return value


def _to_bool(value, source: str, dotted: str) -> bool:
    if isinstance(value, bool):
        return value
    raise LetheError(f"{source}: {dotted}: expected true or false, got {_show(value)}")


def _to_int(value, source: str, dotted: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise LetheError(f"{source}: {dotted}: expected an integer, got {_show(value)}")


def _to_float(value, source: str, dotted: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    raise LetheError(f"{source}: {dotted}: expected a number, got {_show(value)}")


def _to_str(value, source: str, dotted: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise LetheError(f"{source}: {dotted}: expected a string, got {_show(value)}")


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _dataclass_in(tp):
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _show(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def _copy(raw):
    if isinstance(raw, dict):
        return {k: _copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_copy(v) for v in raw]
    return raw


# ---------------------------------------------------------------------------------------------
# back to plain data


def to_dict(obj) -> Any:
    """Plain dicts/lists for YAML/JSON output (`--dry-run`, model cards, results.json)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=False)
