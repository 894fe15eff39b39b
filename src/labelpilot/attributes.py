"""Attributes per label class, and tags per image.

A class may declare the attributes its shapes carry, CVAT's way: each has a `name`, a
`type` (`checkbox`, `select`, `text`, `number`), for a select its `values`, for a number
optional `min` / `max`, and a `default`. A person's edit is checked against the schema of
the shape's class (a wrong type or a value outside the choices is refused, naming the
attribute); attributes the schema does not declare (brought by an import) are kept as
they are. Imports are not checked: nothing is lost on the way in.

Tags classify a whole image (`indoor`, `blurry`, `night`): a short list of strings.
"""

from __future__ import annotations

import math
from typing import Any

from labelpilot.errors import ValidationError

TYPES = ("checkbox", "select", "text", "number")
MAX_ATTRIBUTES = 50
MAX_CHOICES = 200
MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_TEXT = 2000


def check_schema(schema: Any, label: str) -> list[dict[str, Any]]:
    """The attribute schema of class `label`, checked and normalised (defaults filled:
    unticked, the first choice, empty text, the minimum or 0)."""
    where = f"attributes of class {label!r}"
    if not isinstance(schema, list):
        raise ValidationError(f"{where}: a list of attributes is expected")
    if len(schema) > MAX_ATTRIBUTES:
        raise ValidationError(f"{where}: {len(schema)} attributes, over the limit of {MAX_ATTRIBUTES}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, spec in enumerate(schema):
        at = f"{where}, item {i + 1}"
        if not isinstance(spec, dict):
            raise ValidationError(f"{at}: an object with name and type is expected")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValidationError(f"{at}: `name` must be a non-empty string of up to 100 characters")
        name = name.strip()
        if name in seen:
            raise ValidationError(f"{at}: {name!r} is declared twice")
        seen.add(name)
        kind = spec.get("type")
        if kind not in TYPES:
            raise ValidationError(f"{at} ({name}): `type` must be one of {', '.join(TYPES)}, "
                                  f"not {kind!r}")
        unknown = set(spec) - {"name", "type", "values", "default", "min", "max"}
        if unknown:
            raise ValidationError(f"{at} ({name}): unknown field(s) {', '.join(sorted(unknown))}")
        item: dict[str, Any] = {"name": name, "type": kind}
        if kind == "select":
            values = spec.get("values")
            if (not isinstance(values, list) or not values or len(values) > MAX_CHOICES
                    or not all(isinstance(v, str) and v.strip() for v in values)):
                raise ValidationError(f"{at} ({name}): a select needs `values`, 1 to "
                                      f"{MAX_CHOICES} non-empty strings")
            item["values"] = list(dict.fromkeys(v.strip() for v in values))
        elif "values" in spec:
            raise ValidationError(f"{at} ({name}): only a select has `values`")
        if kind == "number":
            for bound in ("min", "max"):
                if bound in spec:
                    if not _is_number(spec[bound]):
                        raise ValidationError(f"{at} ({name}): `{bound}` must be a number")
                    item[bound] = spec[bound]
            if "min" in item and "max" in item and item["min"] > item["max"]:
                raise ValidationError(f"{at} ({name}): `min` is over `max`")
        elif "min" in spec or "max" in spec:
            raise ValidationError(f"{at} ({name}): only a number has `min` and `max`")
        default = spec.get("default", _default(item))
        item["default"] = _value(item, default, f"{at} ({name}): default")
        out.append(item)
    return out


def _default(spec: dict[str, Any]) -> Any:
    return {"checkbox": False, "select": (spec.get("values") or [""])[0], "text": "",
            "number": spec.get("min", 0)}[spec["type"]]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _value(spec: dict[str, Any], v: Any, where: str) -> Any:
    kind = spec["type"]
    if kind == "checkbox":
        if not isinstance(v, bool):
            raise ValidationError(f"{where} must be true or false, not {v!r}")
    elif kind == "select":
        if v not in spec["values"]:
            raise ValidationError(f"{where} must be one of {', '.join(spec['values'])}, not {v!r}")
    elif kind == "text":
        if not isinstance(v, str) or len(v) > MAX_TEXT:
            raise ValidationError(f"{where} must be text of up to {MAX_TEXT} characters")
    else:
        if not _is_number(v):
            raise ValidationError(f"{where} must be a number, not {v!r}")
        if ("min" in spec and v < spec["min"]) or ("max" in spec and v > spec["max"]):
            raise ValidationError(f"{where} must be between {spec.get('min', '-inf')} and "
                                  f"{spec.get('max', 'inf')}, not {v}")
    return v


def check_values(schema: list[dict[str, Any]], attributes: dict[str, Any], label: str) -> None:
    """Refuse a shape's attributes that break its class's schema (undeclared ones pass)."""
    for spec in schema:
        if spec["name"] in attributes:
            _value(spec, attributes[spec["name"]],
                   f"attribute {spec['name']!r} of a {label!r} shape")


def check_tags(tags: Any) -> list[str]:
    """An image's tags, checked: strings, trimmed, each once, in the order given."""
    if not isinstance(tags, list):
        raise ValidationError("tags must be a list of strings")
    out: list[str] = []
    for t in tags:
        if not isinstance(t, str) or not t.strip() or len(t.strip()) > MAX_TAG_LENGTH:
            raise ValidationError(f"a tag is a non-empty string of up to {MAX_TAG_LENGTH} "
                                  f"characters, not {t!r}")
        if t.strip() not in out:
            out.append(t.strip())
    if len(out) > MAX_TAGS:
        raise ValidationError(f"{len(out)} tags, over the limit of {MAX_TAGS} per image")
    return out
