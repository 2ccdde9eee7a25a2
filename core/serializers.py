"""Serializer behaviour every API input shares."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (also in nested serializers), so a client's typo
    (`quantitiy`) is a 400 instead of a silently ignored value."""

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
