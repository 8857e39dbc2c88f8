"""An OpenAPI 3.1 document generated from the gateway's routes and the contract's descriptors.

Descriptions come from the `.proto` comments kept in the generated descriptor set; each
operation carries its access rule, rate-limit tier and cache TTL as `x-` extensions.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from exodrive.v1 import options_pb2
from google.protobuf import descriptor, descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from server.gateway.routes import HTTP_BODY, Route, RouteTable

Schema = dict[str, Any]

ERROR_SCHEMA = "Error"
BEARER = "bearerAuth"
DESCRIPTOR_SET = "exodrive.binpb"

_INT32 = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_UINT32 = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32)
_INT64 = (
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
)
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated camelCase field paths."},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
}
# In URLs (path and query), dates and times are plain strings.
_URL_FORMS: dict[str, Schema] = {
    "google.type.Date": {"type": "string", "format": "date"},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}

_ERROR: Schema = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "timestamp", "traceId"],
            "properties": {
                "code": {"type": "string", "description": "The ErrorInfo reason, else the gRPC code name."},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "description": "google.rpc details: ErrorInfo, BadRequest, RetryInfo, QuotaFailure.",
                    "items": {"type": "object", "properties": {"@type": {"type": "string"}}},
                },
                "timestamp": {"type": "string", "format": "date-time"},
                "traceId": {"type": "string"},
            },
        },
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
    },
}


def _comments() -> dict[str, str]:
    """Full name of each service, method, message and field -> its leading comment."""
    raw = resources.files("exodrive.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(raw)
    comments: dict[str, str] = {}
    for file in files.file:
        names: dict[tuple[int, ...], str] = {}
        for si, service in enumerate(file.service):
            names[(6, si)] = f"{file.package}.{service.name}"
            for mi, method in enumerate(service.method):
                names[(6, si, 2, mi)] = f"{file.package}.{service.name}.{method.name}"

        def walk(
            messages: Any, prefix: str, path: tuple[int, ...], tag: int, names: dict[tuple[int, ...], str]
        ) -> None:
            for index, item in enumerate(messages):
                full = f"{prefix}.{item.name}"
                here = (*path, tag, index)
                names[here] = full
                for fi, field in enumerate(item.field):
                    names[(*here, 2, fi)] = f"{full}.{field.name}"
                walk(item.nested_type, full, here, 3, names)

        walk(file.message_type, file.package, (), 4, names)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            if name is not None and location.leading_comments.strip():
                comments[name] = " ".join(location.leading_comments.split())
    return comments


class _Builder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Schema] = {ERROR_SCHEMA: _ERROR}

    def ref(self, message: descriptor.Descriptor) -> Schema:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name.startswith("google.protobuf.") and message.full_name.endswith("Value"):
            return self.field(message.fields_by_name["value"], wrapper=True)
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder first: messages may recurse
            schema: Schema = {
                "type": "object",
                "properties": {f.json_name: self.field(f) for f in message.fields},
            }
            if message.full_name in self.comments:
                schema["description"] = self.comments[message.full_name]
            self.schemas[message.full_name] = schema
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def scalar(self, field: FieldDescriptor) -> Schema:
        kind = field.type
        if kind in _INT32:
            return {"type": "integer", "format": "int32"}
        if kind in _UINT32:
            return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
        if kind in _INT64:
            # protojson writes 64-bit integers as strings.
            return {"type": "string", "format": "int64", "pattern": r"^-?[0-9]{1,20}$"}
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return {"type": "number"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if kind == FieldDescriptor.TYPE_ENUM:
            enum: Any = field.enum_type
            return {"type": "string", "enum": [v.name for v in enum.values]}
        return {"type": "string"}

    def field(self, field: FieldDescriptor, *, wrapper: bool = False) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            schema: Schema = {
                "type": "object",
                "additionalProperties": self.field(message.fields_by_name["value"]),
            }
        else:
            item = self.ref(message) if message is not None else self.scalar(field)
            schema = {"type": "array", "items": item} if field.is_repeated and not wrapper else item
        description = self.comments.get(field.full_name)
        if description and "$ref" not in schema:
            schema["description"] = description
        return schema

    def url_field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        item = dict(_URL_FORMS[message.full_name]) if message is not None else self.scalar(field)
        return {"type": "array", "items": item} if field.is_repeated else item


def _query_fields(
    message: Any, prefix: str, proto_prefix: str, depth: int = 0
) -> list[tuple[str, str, FieldDescriptor]]:
    """(JSON dotted name, proto dotted name, leaf) of every field a query parameter can set."""
    found: list[tuple[str, str, FieldDescriptor]] = []
    for field in message.fields:
        name, proto = prefix + field.json_name, proto_prefix + field.name
        nested = field.message_type
        if nested is None or nested.full_name in _URL_FORMS:
            found.append((name, proto, field))
        elif (
            not field.is_repeated
            and not nested.GetOptions().map_entry
            and depth < 3
            and not nested.full_name.startswith("google.protobuf.")
        ):
            found.extend(_query_fields(nested, name + ".", proto + ".", depth + 1))
    return found


def _leaf(message: Any, dotted: str) -> FieldDescriptor:
    field: FieldDescriptor | None = None
    for part in dotted.split("."):
        field = message.fields_by_name[part]
        if field.message_type is not None:
            message = field.message_type
    assert field is not None
    return field


_TIER_NAMES = {
    options_pb2.RATE_LIMIT_TIER_UNSPECIFIED: "CALLER",  # public, authenticated or admin by caller
    options_pb2.RATE_LIMIT_TIER_BOOKING_CREATE: "BOOKING_CREATE",
    options_pb2.RATE_LIMIT_TIER_WEBHOOK: "WEBHOOK",
    options_pb2.RATE_LIMIT_TIER_EXEMPT: "EXEMPT",
}
_SIGNATURE_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


def _operation(builder: _Builder, route: Route, operation_id: str) -> Schema:
    method = route.method.descriptor
    input_message: Any = route.input_class.DESCRIPTOR
    comment = builder.comments.get(method.full_name, method.name)
    parameters: list[Schema] = []
    for variable in route.template.variables:
        leaf = _leaf(input_message, variable.field_path)
        parameters.append(
            {"name": variable.field_path, "in": "path", "required": True, "schema": builder.url_field(leaf)}
        )
    if route.body != "*":
        bound = {v.field_path.split(".")[0] for v in route.template.variables} | {route.body}
        for name, proto, leaf in _query_fields(input_message, "", ""):
            if proto.split(".")[0] in bound:
                continue
            parameter: Schema = {
                "name": name,
                "in": "query",
                "required": False,
                "schema": builder.url_field(leaf),
            }
            if leaf.full_name in builder.comments:
                parameter["description"] = builder.comments[leaf.full_name]
            parameters.append(parameter)

    policy = route.method.policy
    access = options_pb2.Access.Name(route.method.access).removeprefix("ACCESS_")
    operation: Schema = {
        "operationId": operation_id,
        "tags": [method.containing_service.name],
        "summary": comment.split(". ")[0].rstrip("."),
        "description": comment,
        "x-grpc-method": route.grpc_path,
        "x-access": access,
        "x-rate-limit-tier": _TIER_NAMES.get(policy.rate_limit_tier, "CALLER"),
    }
    if policy.cache.ttl_seconds:
        operation["x-cache-ttl-seconds"] = policy.cache.ttl_seconds
    if access == "PUBLIC":
        operation["security"] = [{}, {BEARER: []}]
    elif access == "PROVIDER":
        operation["security"] = [{}]
        parameters.extend(
            {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
            for header in _SIGNATURE_HEADERS
        )
    else:
        operation["security"] = [{BEARER: []}]
    if parameters:
        operation["parameters"] = parameters

    raw_field = route.raw_body_field
    if raw_field is not None:
        operation["requestBody"] = {
            "required": True,
            "description": "The provider's exact bytes; they are verified as received.",
            "content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}},
        }
    elif route.body:
        body_schema = (
            builder.ref(input_message)
            if route.body == "*"
            else builder.field(input_message.fields_by_name[route.body])
        )
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }

    output: Any = route.output_class.DESCRIPTOR
    if route.response_body:
        output_schema = builder.field(output.fields_by_name[route.response_body])
    else:
        output_schema = builder.ref(output)
    if output.full_name == HTTP_BODY:
        success_content: Schema = {"*/*": {"schema": {}}}
    else:
        success_content = {"application/json": {"schema": output_schema}}
    success = "201" if route.is_creation else "200"
    operation["responses"] = {
        success: {"description": "OK", "content": success_content},
        "default": {
            "description": "An error: the body carries the reason, message, details and trace id.",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
        },
    }
    return operation


def openapi_document(routes: RouteTable) -> Schema:
    builder = _Builder(_comments())
    paths: dict[str, Schema] = {}
    seen: dict[str, int] = {}
    for route in routes.routes():
        base_id = f"{route.method.descriptor.containing_service.name}_{route.method.descriptor.name}"
        seen[base_id] = seen.get(base_id, 0) + 1
        operation_id = base_id if seen[base_id] == 1 else f"{base_id}{seen[base_id]}"
        item = paths.setdefault(route.template.openapi_path, {})
        item[route.http_method.lower()] = _operation(builder, route, operation_id)
    tags = sorted(
        {route.method.descriptor.containing_service for route in routes.routes()}, key=lambda s: s.name
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ExoDrive API",
            "version": "v1",
            "description": "HTTP/JSON gateway to the exodrive.v1 gRPC services. JSON is protojson: camelCase "
            "fields, 64-bit integers as strings, enums by name. Dates in URLs are YYYY-MM-DD.",
        },
        "tags": [{"name": s.name, "description": builder.comments.get(s.full_name, "")} for s in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
