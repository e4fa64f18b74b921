"""The one ValidationError formatter: `where: problem` per error, no input echoed."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from service_kit import describe, problem_lines


class Inner(BaseModel):
    rate: float = Field(gt=0)


class Body(BaseModel):
    name: str
    inner: Inner
    items: list[int] = []

    @field_validator("name")
    @classmethod
    def _short(cls, value: str) -> str:
        if len(value) > 3:
            raise ValueError("name is longer than 3 characters")
        return value


def _error(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        Body.model_validate(data)
    return raised.value


def test_one_line_per_error_at_its_json_path() -> None:
    lines = problem_lines(_error({"name": "ab", "inner": {"rate": 0}, "items": [1, "x"]}))
    assert lines == [
        "inner.rate: Input should be greater than 0",
        "items.1: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_a_validators_message_loses_pydantics_prefix_and_is_not_placed_twice() -> None:
    assert problem_lines(_error({"name": "abcd", "inner": {"rate": 1}})) == [
        "name is longer than 3 characters"
    ]


def test_an_error_of_the_whole_input_is_placed_at_whole() -> None:
    with pytest.raises(ValidationError) as raised:
        Body.model_validate_json("{not json")
    assert describe(raised.value, whole="body").startswith("body: Invalid JSON")
    assert describe(raised.value).startswith("Invalid JSON")


def test_describe_joins_and_replace_rewords_by_type() -> None:
    error = _error({"inner": {"rate": "secret-value"}})
    assert describe(error) == (
        "name: Field required; inner.rate: Input should be a valid number, unable to parse "
        "string as a number"
    )
    assert "secret-value" not in describe(error)
    assert problem_lines(error, replace={"missing": "required"})[0] == "name: required"
    assert problem_lines(error, where=lambda loc: "/".join(map(str, loc)))[1].startswith(
        "inner/rate: "
    )
