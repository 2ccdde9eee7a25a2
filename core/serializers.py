"""Serializer behaviour every API input shares."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, empty


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (also in nested serializers), so a client's typo
    (`quantitiy`) is a 400 instead of a silently ignored value.

    Input that is plainly valid is checked by a fast path first (`_fast_serializer`): DRF
    builds a deep copy of every field for every serializer instance, most of an order's
    validation cost. Anything the fast path does not accept goes through DRF's own
    validation, which then decides and words the errors."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        str(name)[:100]: [
                            serializers.ErrorDetail("Unknown field.", code="unknown_field")
                        ]
                        for name in unknown[:20]
                    }
                )
        return super().to_internal_value(data)

    def run_validation(self, data: Any = empty) -> Any:
        if self.parent is None and not getattr(self, "partial", False):
            try:
                return self.validate(_fast_serializer(self, data))
            except (_NotFast, serializers.ValidationError, DjangoValidationError, SkipField):
                pass
        return super().run_validation(data)


class _NotFast(Exception):
    """The fast path does not decide this input: DRF's validation does."""


def _fast_serializer(serializer: serializers.Serializer, data: Any) -> dict[str, Any]:
    """What DRF's `to_internal_value` and `run_validators` return for `data`, for input
    that is valid as it stands, read from the class's declared (never bound) fields and
    checked with their own validators. Raises _NotFast for everything else: wrong types,
    whitespace to trim, a missing or unknown field, a field type or feature not handled
    here, a nested serializer with hooks of its own."""
    if type(data) is not dict or serializer.validators or not _plain(type(serializer)):
        raise _NotFast
    declared = serializer._declared_fields
    if not data.keys() <= declared.keys():
        raise _NotFast
    validated: dict[str, Any] = {}
    for name, field in declared.items():
        if field.read_only or field.source not in (None, name):
            raise _NotFast
        value = data.get(name, empty)
        if value is empty:
            if field.required:
                raise _NotFast
            if field.default is not empty:
                if callable(field.default):
                    raise _NotFast
                validated[name] = field.default
            continue
        value = _fast_field(field, value)
        hook = getattr(serializer, f"validate_{name}", None)
        if hook is not None:
            value = hook(value)
        validated[name] = value
    return validated


def _fast_field(field: serializers.Field, value: Any) -> Any:
    if value is None:
        if field.allow_null:
            return None
        raise _NotFast
    kind = type(field)
    if isinstance(field, StrictSerializer):
        # Its own hooks would see another context than under DRF: left to DRF.
        if _has_hooks(kind):
            raise _NotFast
        return _fast_serializer(field, value)
    convert = _CONVERTERS.get(kind)
    if convert is None:
        raise _NotFast
    value = convert(field, value)
    for validator in field.validators:
        if getattr(validator, "requires_context", False):
            raise _NotFast
        validator(value)
    return value


@functools.cache
def _plain(kind: type) -> bool:
    """Validates as StrictSerializer does, with the fields it declares."""
    return (
        kind.get_fields is serializers.Serializer.get_fields
        and kind.to_internal_value is StrictSerializer.to_internal_value
        and kind.run_validation is StrictSerializer.run_validation
        and kind.run_validators is serializers.Serializer.run_validators
    )


@functools.cache
def _has_hooks(kind: type) -> bool:
    own = set(dir(kind)) - set(dir(serializers.Serializer))
    return kind.validate is not serializers.Serializer.validate or any(
        name.startswith("validate_") for name in own
    )


def _char(field: serializers.CharField, value: Any) -> str:
    # DRF also takes numbers, strips whitespace and turns blanks into "": left to it.
    if type(value) is not str or (field.trim_whitespace and value != value.strip()):
        raise _NotFast
    if value == "" and not field.allow_blank:
        raise _NotFast
    return value


def _integer(field: serializers.IntegerField, value: Any) -> int:
    if type(value) is not int:  # not bool, not "5", not 5.0
        raise _NotFast
    return value


def _choice(field: serializers.ChoiceField, value: Any) -> Any:
    if type(value) is not str or value == "" or value not in field.choice_strings_to_values:
        raise _NotFast
    return field.choice_strings_to_values[value]


def _uuid(field: serializers.UUIDField, value: Any) -> uuid.UUID:
    if type(value) is not str:
        raise _NotFast
    try:
        return uuid.UUID(hex=value)
    except ValueError:
        raise _NotFast from None


def _list(field: serializers.ListField, value: Any) -> list[Any]:
    if type(value) is not list or (not value and not field.allow_empty):
        raise _NotFast
    return [_fast_field(field.child, item) for item in value]


_CONVERTERS: dict[type, Callable[[Any, Any], Any]] = {
    serializers.CharField: _char,
    serializers.EmailField: _char,
    serializers.IntegerField: _integer,
    serializers.ChoiceField: _choice,
    serializers.UUIDField: _uuid,
    serializers.ListField: _list,
}
