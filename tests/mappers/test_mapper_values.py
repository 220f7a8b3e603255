import pytest

from mappers.sdk import ModelProperty, PropertyType, WriteRejected
from mappers.sdk._values import check_write, normalize, parse, to_text


def prop(ptype: PropertyType, **kw: str) -> ModelProperty:
    return ModelProperty(name="p", type=ptype, **kw)


@pytest.mark.parametrize(
    ("ptype", "raw", "text"),
    [
        (PropertyType.INT, 21.0, "21"),
        (PropertyType.INT, "0x10", "16"),
        (PropertyType.INT, True, "1"),
        (PropertyType.DOUBLE, 3, "3.0"),
        (PropertyType.FLOAT, 0.1, "0.1"),
        (PropertyType.BOOLEAN, 1, "true"),
        (PropertyType.BOOLEAN, "off", "false"),
        (PropertyType.BYTES, b"\x01\xff", "01ff"),
        (PropertyType.STRING, 12, "12"),
    ],
)
def test_normalize_and_text(ptype: PropertyType, raw: object, text: str) -> None:
    p = prop(ptype)
    assert to_text(normalize(raw, p), p) == text


def test_parse_errors_name_property_and_type() -> None:
    with pytest.raises(ValueError, match=r"property p is INT: '1.5' is not an integer"):
        parse("1.5", prop(PropertyType.INT))
    with pytest.raises(ValueError, match="BOOLEAN"):
        parse("maybe", prop(PropertyType.BOOLEAN))


def test_write_checks() -> None:
    assert check_write(prop(PropertyType.INT, minimum="0", maximum="100"), "42") == 42
    with pytest.raises(WriteRejected, match="above the maximum 100"):
        check_write(prop(PropertyType.INT, minimum="0", maximum="100"), "101")
    with pytest.raises(WriteRejected, match="below the minimum 0"):
        check_write(prop(PropertyType.DOUBLE, minimum="0"), "-0.5")
    with pytest.raises(WriteRejected, match="ReadOnly"):
        check_write(prop(PropertyType.INT, access_mode="ReadOnly"), "1")
    with pytest.raises(WriteRejected, match="not a number"):
        check_write(prop(PropertyType.FLOAT), "warm")
    with pytest.raises(WriteRejected, match="not defined in the device's model"):
        check_write(None, "1", name="ghost")
