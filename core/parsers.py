"""The JSON parser every endpoint uses: DRF's, plus what the standard library lets
through and the rest of the stack cannot take, refused as a 400 `parse_error`:

- nesting deep enough to exhaust the recursion limit (json raises RecursionError, which
  DRF's parser does not catch: a 500);
- lone UTF-16 surrogates (`"\\ud800"` is valid JSON, but not Unicode: such a string
  cannot be encoded again, so echoing it in an answer is a 500, and PostgreSQL refuses it).

NUL characters are left to the serializers' fields, which name the field
(`null_characters_not_allowed`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

_NOT_TEXT = re.compile("[\ud800-\udfff]")


def json_text_check(data: Any) -> Any:
    """Raise ParseError if any key or string in `data` is not storable text."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _NOT_TEXT.search(value):
                raise ParseError("Strings must be valid Unicode (no lone surrogates).")
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return data


def json_loads(raw: bytes | str) -> Any:
    """`json.loads` for untrusted bodies: ParseError for anything that is not good JSON."""
    try:
        return json_text_check(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ParseError("The body is not valid JSON.") from None


class TextJSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        return json_text_check(data)
