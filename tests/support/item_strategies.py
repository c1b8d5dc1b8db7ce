"""Hypothesis strategies for DynamoDB items in botocore's form (B as bytes).

Every type tag, numbers in several spellings (38 digits, exponents), empty strings and
binary, NUL and astral characters, tag-like map keys and attribute names, nesting, and
columns that mix type tags across items. Shared by the codec tests.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["numbers", "strings", "blobs", "scalars", "attr_values", "attr_names", "items_st"]

# DynamoDB numbers: up to 38 significant digits, exponent -130..+125, sent as
# the exact digit string.  Generate several spellings of the same shapes.
_EDGE_NUMBERS = [
    "0",
    "-0",
    "-0.001",
    "1.000",
    "12.50",
    "1.2345678901234567890123456789012345678E-130",
    "-9.9E+125",
    "99999999999999999999999999999999999999",
    "-1E-130",
    "1e125",
    "0.0000",
]


@st.composite
def _numbers(draw) -> str:
    mantissa = draw(st.text("0123456789", min_size=1, max_size=38))
    sign = draw(st.sampled_from(["", "-"]))
    form = draw(st.sampled_from(["int", "point", "exp"]))
    if form == "int":
        return sign + mantissa
    if form == "point":
        cut = draw(st.integers(0, len(mantissa)))
        return f"{sign}{mantissa[:cut] or '0'}.{mantissa[cut:] or '0'}"
    exp = draw(st.integers(-130, 125))
    marker = draw(st.sampled_from(["E", "e"]))
    plus = "+" if exp >= 0 and draw(st.booleans()) else ""
    head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{sign}{head}{marker}{plus}{exp}"


numbers = st.one_of(st.sampled_from(_EDGE_NUMBERS), _numbers())
strings = st.one_of(
    st.just(""),
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "Ünïcødé ✓", "🦄" * 3, '{"S":"x"}', '"B":']),
)
blobs = st.one_of(st.just(b""), st.binary(max_size=40), st.just(b"\x00\x00\xff"))

scalars = st.one_of(
    strings.map(lambda s: {"S": s}),
    numbers.map(lambda n: {"N": n}),
    blobs.map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(strings, min_size=1, max_size=5, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=5, unique=True).map(lambda v: {"NS": v}),
    st.lists(blobs, min_size=1, max_size=5, unique=True).map(lambda v: {"BS": v}),
)

# Map keys: include tag-like names ("B", "BS", "S") to exercise the nested
# base64 decoding, which must not confuse a map key "B" with a B value.
map_keys = st.one_of(st.sampled_from(["B", "BS", "S", "M", "", "k"]), st.text(max_size=8))

attr_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.dictionaries(map_keys, children, max_size=4).map(lambda m: {"M": m}),
        st.lists(children, max_size=4).map(lambda l: {"L": l}),
    ),
    max_leaves=12,
)

# A small shared pool of names so items overlap on columns (with mixed types
# per column across items), plus the odd free-form unicode name.
attr_names = st.one_of(
    st.sampled_from(["pk", "sk", "a", "b", "payload", "B", "S"]),
    st.text(min_size=1, max_size=6),
)
items_st = st.lists(
    st.dictionaries(attr_names, attr_values, max_size=6), max_size=12
)
