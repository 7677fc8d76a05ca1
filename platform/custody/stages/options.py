"""Stage settings: the keyword-only parameters of a stage's constructor, validated before it is built.

A stage declares its settings once, as keyword-only constructor parameters with type hints and
defaults (`def __init__(self, home, *, threshold: float = 0.8)`). Settings that arrive as data
(a run spec, a CLI flag) are checked here against those hints with pydantic in strict mode, so
`"0.8"` for a float or `1` for a bool is refused instead of silently coerced, and an error names
the stage and the key.
"""

from __future__ import annotations

import inspect
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from custody.stages.base import Stage
from custody.stages.runner import StageError


class StageOptionError(StageError):
    """An unknown setting, or one of the wrong type or value; names the stage and the key."""

    def __init__(self, stage: str, key: str, message: str) -> None:
        super().__init__(f"stage {stage}: option '{key}': {message}")
        self.stage, self.key = stage, key


def option_fields(cls: type[Stage]) -> dict[str, tuple[Any, Any]]:
    """The stage's settings: keyword-only constructor parameters, as name -> (type, default)."""
    hints = typing.get_type_hints(cls.__init__)
    return {
        p.name: (hints[p.name], p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def option_defaults(cls: type[Stage]) -> dict[str, Any]:
    return {name: default for name, (_, default) in option_fields(cls).items()}


@cache
def _model(cls: type[Stage]) -> type[BaseModel]:
    fields: dict[str, Any] = dict(option_fields(cls))
    return create_model(f"{cls.__name__}Options", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def validate_options(stage: str, cls: type[Stage], options: dict[str, Any] | None) -> dict[str, Any]:
    """Check `options` against the stage's settings; return only the keys given (defaults stay the stage's)."""
    if not options:
        return {}
    known = option_fields(cls)
    for key in options:
        if not isinstance(key, str) or key not in known:
            listed = ", ".join(sorted(known)) or "none: this stage takes no options"
            raise StageOptionError(stage, str(key), f"unknown option (known: {listed})")
    try:
        model = _model(cls).model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        where = "".join(f"[{part!r}]" for part in error["loc"][1:])
        value = options.get(key)
        raise StageOptionError(
            stage, key, f"{error['msg']}{' at ' + where if where else ''} (got {type(value).__name__} {value!r:.80})"
        ) from None
    return {key: getattr(model, key) for key in options}
