"""Wire helpers for provider protocols.

``dumps_exact`` writes JSON whose ``Decimal`` values are JSON *numbers* with exactly their
decimal digits (``Decimal("100.10")`` -> ``100.10``) — for protocols such as QIWI's that want
numbers, without ever passing money through ``float``.
"""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any


def dumps_exact(obj: Any) -> bytes:
    marks: dict[str, str] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"not a finite amount: {value}")
            mark = f"__dec_{uuid.uuid4().hex}__"
            marks[mark] = format(value, "f")
            return mark
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj), ensure_ascii=False)
    for mark, number in marks.items():
        text = text.replace(f'"{mark}"', number)
    return text.encode("utf-8")
