"""Which Spark column types Petastorm can carry, and the conversions that make more of them fit."""

from __future__ import annotations

from typing import Any

from occam.errors import DatasetError

_NUMERIC = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "BooleanType")


def _type_name(data_type: Any) -> str:
    return type(data_type).__name__


def check_columns(schema: Any, wanted: list[str]) -> None:
    """Every column fit needs must exist; say which are missing and which exist."""
    names = [f.name for f in schema.fields]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DatasetError(
            f"column(s) {missing} not found; the data has {names}. Pass features=... and label=... naming your columns"
        )


def conversions(schema: Any) -> dict[str, str]:
    """Per column, how to convert it before writing: ``keep``, ``float32``, ``vector`` or ``array_float32``.

    Raises :class:`DatasetError` naming every column Petastorm cannot encode and the fix for each.
    """
    plan: dict[str, str] = {}
    problems: list[str] = []
    for field in schema.fields:
        kind = _type_name(field.dataType)
        if kind == "DoubleType":
            plan[field.name] = "float32"
        elif kind in _NUMERIC or kind in ("StringType", "BinaryType"):
            plan[field.name] = "keep"
        elif kind == "VectorUDT":
            plan[field.name] = "vector"
        elif kind == "ArrayType":
            element = _type_name(field.dataType.elementType)
            if element == "DoubleType":
                plan[field.name] = "array_float32"
            elif element in _NUMERIC:
                plan[field.name] = "keep"
            else:
                problems.append(
                    f"{field.name!r} is an array of {element}: only arrays of numbers can be fed to a model; "
                    "flatten nested arrays (pyspark.sql.functions.flatten) or encode the values as numbers"
                )
        elif kind == "StructType":
            problems.append(
                f"{field.name!r} is a struct: select its fields as columns, e.g. df.select('{field.name}.*')"
            )
        elif kind == "MapType":
            problems.append(f"{field.name!r} is a map: turn its keys into columns, or drop it with df.drop(...)")
        else:
            problems.append(
                f"{field.name!r} has type {kind}, which Petastorm cannot encode: cast it to a number or a "
                "string, or drop it"
            )
    if problems:
        raise DatasetError("these columns cannot be converted for training:\n- " + "\n- ".join(problems))
    return plan


def apply_conversions(df: Any, plan: dict[str, str]) -> Any:
    """Return ``df`` with the planned conversions applied (float64 to float32, vectors to arrays)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    columns = []
    for name, how in plan.items():
        col = F.col(f"`{name}`")
        if how == "float32":
            col = col.cast("float")
        elif how == "array_float32":
            col = col.cast("array<float>")
        elif how == "vector":
            col = vector_to_array(col, dtype="float32")
        columns.append(col.alias(name))
    return df.select(*columns)


def describe(schema: Any) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in schema.fields}
