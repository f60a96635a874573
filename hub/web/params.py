"""The bounds of the API's path and query parameters, declared so that OpenAPI describes them and a value past
them is a 422 naming the parameter: ids fit the database's 64-bit integers, text has no NUL and a sane length."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

from hub.core.bounds import MAX_INT

NO_NUL = r"^[^\x00]*$"

ClientId = Annotated[int, Path(ge=1, le=MAX_INT, description="A client's id.")]
ItemId = Annotated[int, Path(ge=1, le=MAX_INT, description="The id of a merge or a dead letter.")]
OtherClientId = Annotated[int, Query(ge=1, le=MAX_INT, description="The client merged into this one.")]
SearchText = Annotated[str | None, Query(max_length=255, pattern=NO_NUL)]
Token = Annotated[str, Query(max_length=64, pattern=NO_NUL)]
OptionalToken = Annotated[str | None, Query(max_length=255, pattern=NO_NUL)]
ItemKinds = Annotated[list[Literal["interaction", "deal", "task"]] | None, Query(description="Only these kinds.")]
