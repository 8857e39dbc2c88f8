"""HTTP routes derived from the `google.api.http` rules of the contract's methods.

Every method of the policy table with an HTTP rule (and its additional bindings) becomes a route;
adding an RPC with a rule to the contract needs no code here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import message, message_factory

from server.gateway.path_template import PathTemplate, parse
from server.policy import MethodInfo, PolicyTable

HTTP_BODY = "google.api.HttpBody"


@dataclass(frozen=True)
class Route:
    http_method: str  # "GET", "POST", ...
    template: PathTemplate
    # "" (no body), "*" (the whole request) or the name of the request field the body fills.
    body: str
    # Name of the response field that is the HTTP body, or "" for the whole response.
    response_body: str
    method: MethodInfo
    input_class: type[message.Message]
    output_class: type[message.Message]

    @property
    def grpc_path(self) -> str:
        return self.method.full_name

    # Derived once per route, not per request (the dataclass is frozen, the rule never changes).
    @cached_property
    def is_creation(self) -> bool:
        """A POST with a body to a `Create*` method answers 201; everything else 200."""
        return (
            self.http_method == "POST"
            and self.body != ""
            and self.method.descriptor.name.startswith("Create")
        )

    @cached_property
    def raw_body_field(self) -> Any:
        """The request field that receives the raw HTTP body (a `google.api.HttpBody`)."""
        if self.body in ("", "*"):
            return None
        field = self.input_class.DESCRIPTOR.fields_by_name[self.body]
        if field.message_type is not None and field.message_type.full_name == HTTP_BODY:
            return field
        return None

    @cached_property
    def answers_http_body(self) -> bool:
        """The HTTP response is a `google.api.HttpBody` (raw bytes), not protojson."""
        output: Any = self.output_class.DESCRIPTOR
        if self.response_body:
            output = output.fields_by_name[self.response_body].message_type
        return output is not None and output.full_name == HTTP_BODY


def _rule_pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise ValueError("HTTP rule without a pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    path: str = getattr(rule, kind)
    return kind.upper(), path


def _routes_of(method: MethodInfo) -> list[Route]:
    options = method.descriptor.GetOptions()
    http: Any = annotations_pb2.http  # the stubs type extensions loosely
    if not options.HasExtension(http):
        return []
    rule: http_pb2.HttpRule = options.Extensions[http]
    input_class: Any = message_factory.GetMessageClass(method.descriptor.input_type)
    output_class: Any = message_factory.GetMessageClass(method.descriptor.output_type)
    routes = []
    for binding in [rule, *rule.additional_bindings]:
        verb, path = _rule_pattern(binding)
        routes.append(
            Route(
                http_method=verb,
                template=parse(path),
                body=binding.body,
                response_body=binding.response_body,
                method=method,
                input_class=input_class,
                output_class=output_class,
            )
        )
    return routes


class RouteTable:
    """Finds the route of a request: verbs and more literal segments win over looser templates."""

    def __init__(self, policies: PolicyTable) -> None:
        routes = [route for info in policies.methods() for route in _routes_of(info)]
        routes.sort(
            key=lambda r: (r.template.verb == "", -r.template.literal_count, -len(r.template.template))
        )
        self._routes = routes
        # A request is matched against its own method's routes only (in the same order); the
        # others are tried just to name the allowed methods of a 405.
        self._by_method: dict[str, list[Route]] = {}
        for route in routes:
            self._by_method.setdefault(route.http_method, []).append(route)

    def routes(self) -> list[Route]:
        return list(self._routes)

    def match(self, http_method: str, raw_path: str) -> tuple[Route, dict[str, str]] | list[str]:
        """The route and its path values, or the methods allowed on that path (empty: no such path)."""
        for route in self._by_method.get(http_method, ()):
            values = route.template.match(raw_path)
            if values is not None:
                return route, values
        return sorted({r.http_method for r in self._routes if r.template.match(raw_path) is not None})
