"""The `google.api.http` path template syntax, compiled to a matcher.

Template = "/" Segments [ Verb ] ;
Segments = Segment { "/" Segment } ;
Segment  = "*" | "**" | LITERAL | Variable ;
Variable = "{" FieldPath [ "=" Segments ] "}" ;
Verb     = ":" LITERAL ;
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote


class TemplateError(ValueError):
    """A path template the contract should never contain."""


@dataclass(frozen=True)
class Variable:
    field_path: str  # dotted proto field path, e.g. "car_id" or "car.name"
    multi_segment: bool  # True when the variable may span "/" (a `**` pattern)


@dataclass(frozen=True)
class PathTemplate:
    template: str
    verb: str
    variables: tuple[Variable, ...]
    # OpenAPI form: every variable as `{field_path}`, verb kept.
    openapi_path: str
    literal_count: int
    _regex: re.Pattern[str]

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> percent-decoded value, or None when the path does not fit."""
        found = self._regex.fullmatch(raw_path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, variable in enumerate(self.variables):
            raw = found.group(f"v{index}")
            # A multi-segment value keeps its "/" separators; a single segment decodes fully.
            values[variable.field_path] = (
                "/".join(unquote(part) for part in raw.split("/")) if variable.multi_segment else unquote(raw)
            )
        return values


_SEGMENT = r"[^/]+"
_ANY_SEGMENTS = r".+"


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return _SEGMENT
    if segment == "**":
        return _ANY_SEGMENTS
    if not segment or any(c in segment for c in "{}=*"):
        raise TemplateError(f"bad segment {segment!r}")
    return re.escape(segment)


def parse(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"template must start with '/': {template!r}")
    body, verb = template[1:], ""
    # The verb is a ":" after the last "/" that is not inside a variable.
    last_slash = body.rfind("/")
    last_close = body.rfind("}")
    colon = body.rfind(":")
    if colon > max(last_slash, last_close):
        body, verb = body[:colon], body[colon + 1 :]
        if not verb:
            raise TemplateError(f"empty verb in {template!r}")

    parts: list[str] = []
    variables: list[Variable] = []
    openapi: list[str] = []
    literals = 0
    position = 0
    for token in _tokens(body, template):
        if token.startswith("{"):
            inner = token[1:-1]
            name, _, pattern = inner.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
                raise TemplateError(f"bad variable {token!r} in {template!r}")
            sub_segments = pattern.split("/") if pattern else ["*"]
            regex = "/".join(_segment_regex(s) for s in sub_segments)
            multi = "**" in sub_segments or len(sub_segments) > 1
            parts.append(f"(?P<v{position}>{regex})")
            variables.append(Variable(name, multi))
            openapi.append("{" + name + "}")
            position += 1
        else:
            parts.append(_segment_regex(token))
            openapi.append(token)
            literals += 0 if token in ("*", "**") else 1
    regex = "/" + "/".join(parts) + (re.escape(":" + verb) if verb else "")
    return PathTemplate(
        template=template,
        verb=verb,
        variables=tuple(variables),
        openapi_path="/" + "/".join(openapi) + (f":{verb}" if verb else ""),
        literal_count=literals,
        _regex=re.compile(regex),
    )


def _tokens(body: str, template: str) -> list[str]:
    """Split on "/" outside braces."""
    tokens: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            tokens.append(body[start:index])
            start = index + 1
        if depth not in (0, 1):
            raise TemplateError(f"unbalanced braces in {template!r}")
    if depth:
        raise TemplateError(f"unbalanced braces in {template!r}")
    tokens.append(body[start:])
    return tokens
