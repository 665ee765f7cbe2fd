"""Column checks run on Spark schema objects alone: pyspark's types need no JVM (skipped without pyspark)."""

import pytest

pytest.importorskip("pyspark", reason="the schema checks read pyspark's type objects")
from pyspark.ml.linalg import VectorUDT  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from occam.data.schema import check_columns, conversions  # noqa: E402
from occam.errors import DatasetError  # noqa: E402


def schema(**fields):
    return T.StructType([T.StructField(name, data_type) for name, data_type in fields.items()])


def test_numbers_arrays_and_vectors_are_planned():
    plan = conversions(
        schema(
            a=T.IntegerType(),
            b=T.DoubleType(),
            c=T.ArrayType(T.FloatType()),
            d=T.ArrayType(T.DoubleType()),
            v=VectorUDT(),
            s=T.StringType(),
        )
    )
    assert plan == {"a": "keep", "b": "float32", "c": "keep", "d": "array_float32", "v": "vector", "s": "keep"}


def test_unencodable_columns_are_all_named_with_their_fix():
    with pytest.raises(DatasetError) as info:
        conversions(
            schema(
                ok=T.FloatType(),
                m=T.MapType(T.StringType(), T.IntegerType()),
                st=T.StructType([T.StructField("x", T.IntegerType())]),
                nested=T.ArrayType(T.ArrayType(T.FloatType())),
            )
        )
    message = str(info.value)
    assert "'m' is a map" in message
    assert "df.select('st.*')" in message
    assert "'nested' is an array of ArrayType" in message and "flatten" in message
    assert "'ok'" not in message


def test_missing_columns_are_named_with_those_that_exist():
    with pytest.raises(DatasetError, match=r"\['label'\] not found; the data has \['features', 'y'\]"):
        check_columns(schema(features=T.FloatType(), y=T.IntegerType()), ["features", "label"])
