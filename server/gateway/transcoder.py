"""HTTP request -> request message: path values, query parameters and the JSON (or raw) body.

Input is protojson: camelCase or proto names, unknown fields ignored. Query parameters name
fields by dotted path, repeat for repeated fields, take enums by name, `google.type.Date` as
`YYYY-MM-DD` and Timestamps as RFC 3339. Every bad value is a VALIDATION_ERROR naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format, message
from google.protobuf.descriptor import FieldDescriptor

from server.gateway.routes import Route
from services.errors import invalid_field

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
_DATE = "google.type.Date"
_FROM_JSON_STRING = ("google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask")
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
# ASCII only: `\d` alone also matches other scripts' digits (full-width U+FF10..), which int() takes.
_DATE_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_PARSE_ERROR_FIELD = re.compile(r"Failed to parse (\w+) field")
_MAX_DESCRIPTION = 200


def _field(message_descriptor: Any, name: str) -> Any:
    """A field by proto name or JSON name."""
    found = message_descriptor.fields_by_name.get(name)
    if found is not None:
        return found
    for candidate in message_descriptor.fields:
        if candidate.json_name == name:
            return candidate
    return None


def _resolve(root: message.Message, dotted: str) -> tuple[message.Message, FieldDescriptor, str] | None:
    """The message holding the leaf field, the leaf, and the proto path; None for unknown names."""
    target = root
    proto_parts: list[str] = []
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        field = _field(target.DESCRIPTOR, part)
        if field is None:
            return None
        proto_parts.append(field.name)
        if index == len(parts) - 1:
            return target, field, ".".join(proto_parts)
        if field.message_type is None or field.is_repeated:
            return None
        target = getattr(target, field.name)
    return None


def _scalar(field: FieldDescriptor, text: str, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text
    if kind == FieldDescriptor.TYPE_BOOL:
        if text in ("true", "false"):
            return text == "true"
        raise invalid_field(path, "must be true or false")
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if not re.fullmatch(r"-?\d{1,20}", text, re.ASCII) or not low <= int(text) <= high:
            raise invalid_field(path, f"must be an integer from {low} to {high}")
        return int(text)
    if kind in _FLOATS:
        try:
            value = float(text)
        except ValueError:
            raise invalid_field(path, "must be a number") from None
        if kind == FieldDescriptor.TYPE_FLOAT and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise invalid_field(path, "is out of range for a float")
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        enum: Any = field.enum_type
        if text in enum.values_by_name:
            return enum.values_by_name[text].number
        if re.fullmatch(r"-?\d+", text, re.ASCII) and int(text) in enum.values_by_number:
            return int(text)
        names = ", ".join(v.name for v in enum.values)
        raise invalid_field(path, f"must be one of {names}")
    if kind == FieldDescriptor.TYPE_BYTES:
        try:
            padded = text + "=" * (-len(text) % 4)
            return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_field(path, "must be base64") from None
    raise invalid_field(path, "cannot be set from a URL")


def _set_message(target: message.Message, text: str, path: str) -> None:
    name = target.DESCRIPTOR.full_name
    if name == _DATE:
        found = _DATE_TEXT.fullmatch(text)
        if found is None:
            raise invalid_field(path, "must be a date as YYYY-MM-DD")
        year, month, day = (int(g) for g in found.groups())
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise invalid_field(path, "must be a date as YYYY-MM-DD")
        target.year, target.month, target.day = year, month, day  # type: ignore[attr-defined]
        return
    if name in _FROM_JSON_STRING:
        try:
            target.FromJsonString(text)  # type: ignore[attr-defined]
        except (ValueError, TypeError):
            expected = "an RFC 3339 time" if name.endswith("Timestamp") else "a JSON string value"
            raise invalid_field(path, f"must be {expected}") from None
        return
    if name in _WRAPPERS:
        inner: Any = target.DESCRIPTOR.fields_by_name["value"]
        target.value = _scalar(inner, text, path)  # type: ignore[attr-defined]
        return
    raise invalid_field(path, "cannot be set from a URL")


def _assign(root: message.Message, dotted: str, values: list[str], *, strict: bool) -> str | None:
    """Set a field from URL text; returns the proto path, or None for an unknown (ignored) name."""
    resolved = _resolve(root, dotted)
    if resolved is None:
        if strict:
            raise invalid_field(dotted, "no such field")
        return None
    holder, field, path = resolved
    if not field.is_repeated and len(values) > 1:
        raise invalid_field(path, "given more than once")
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        raise invalid_field(path, "cannot be set from a URL")
    container = getattr(holder, field.name)
    for text in values:
        if field.message_type is not None:
            item = container.add() if field.is_repeated else container
            _set_message(item, text, path)
        elif field.is_repeated:
            container.append(_scalar(field, text, path))
        else:
            setattr(holder, field.name, _scalar(field, text, path))
    return path


def _parse_error_path(route: Route, text: str) -> str:
    """The proto path named in a json_format error chain, e.g. `car.daily_rate.amount_minor`."""
    message_descriptor: Any = route.input_class.DESCRIPTOR
    parts: list[str] = []
    for json_name in _PARSE_ERROR_FIELD.findall(text):
        field = _field(message_descriptor, json_name) if message_descriptor is not None else None
        if field is None:
            break
        parts.append(field.name)
        message_descriptor = field.message_type
    return ".".join(parts) or (route.body if route.body not in ("", "*") else "body")


def _check_value(field: Any, value: Any, path: str) -> None:
    """Reject JSON shapes that json_format would silently drop with unknown fields ignored."""
    if value is None:
        return
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        if not isinstance(value, dict):
            raise invalid_field(path, "must be a JSON object")
        for item in value.values():
            _check_single(entry.fields_by_name["value"], item, path)
    elif field.is_repeated:
        if not isinstance(value, list):
            raise invalid_field(path, "must be a JSON array")
        for item in value:
            _check_single(field, item, path)
    else:
        _check_single(field, value, path)


def _check_single(field: Any, value: Any, path: str) -> None:
    if field.message_type is not None:
        # Well-known types have their own JSON forms; json_format judges those strictly.
        if not field.message_type.full_name.startswith("google.protobuf."):
            _check_message(field.message_type, value, path)
    elif (
        (field.type in _INT_RANGES or field.type in _FLOATS)
        and isinstance(value, str)
        and not value.isascii()
    ):
        # json_format reads numbers in strings with int()/float(), which take any script's digits.
        raise invalid_field(path, "must be a number in ASCII digits")
    elif field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, str):
        enum: Any = field.enum_type
        if value not in enum.values_by_name:
            names = ", ".join(v.name for v in enum.values)
            raise invalid_field(path, f"must be one of {names}")


def _check_message(message_descriptor: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid_field(path or "body", "must be a JSON object")
    for key, item in value.items():
        field = _field(message_descriptor, key)
        if field is not None:
            _check_value(field, item, f"{path}.{field.name}" if path else field.name)


def _parse_json_body(route: Route, request: message.Message, raw: bytes) -> None:
    body_name = route.body if route.body != "*" else "body"
    if not raw.strip():
        return
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid_field(body_name, "must be valid JSON") from None
    if route.body == "*":
        _check_message(request.DESCRIPTOR, document, "")
        wrapped: dict[str, Any] = document
    else:
        field: Any = request.DESCRIPTOR.fields_by_name[route.body]
        _check_value(field, document, route.body)
        wrapped = {field.json_name: document}
    try:
        json_format.ParseDict(wrapped, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as error:
        text = str(error)
        raise invalid_field(_parse_error_path(route, text), text[:_MAX_DESCRIPTION]) from None


def build_request(
    route: Route,
    path_values: dict[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str,
) -> message.Message:
    """The request message of one HTTP request; DomainError(VALIDATION_ERROR) for bad input."""
    request = route.input_class()
    raw_field = route.raw_body_field
    if raw_field is not None:
        http_body = getattr(request, raw_field.name)
        http_body.content_type = content_type
        http_body.data = body
    elif route.body:
        _parse_json_body(route, request, body)

    # Path values win over the body, as in grpc-gateway.
    for dotted, text in path_values.items():
        holder = _resolve(request, dotted)
        if holder is not None:
            holder[0].ClearField(holder[1].name)
        _assign(request, dotted, [text], strict=True)

    if route.body == "*":
        return request  # every field comes from the body; query parameters have nothing to fill
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    bound = {p.split(".")[0] for p in path_values} | ({route.body} if route.body else set())
    for key, values in grouped.items():
        resolved = _resolve(request, key)
        if resolved is None or resolved[2].split(".")[0] in bound:
            continue  # unknown names are ignored, like unknown JSON fields
        _assign(request, key, values, strict=False)
    return request
