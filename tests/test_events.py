"""fer.event/1: round trips, a hypothesis round-trip property, decoder fuzzing, and agreement
between ``edge/events.py`` and ``docs/event.schema.json``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.contract import FER2013_LABELS, FERPLUS_LABELS
from edge.events import EVENT_TYPES, SCHEMA, Event, EventDecodeError, ModelRef

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "event.schema.json"
JSON_SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())

try:  # optional: not a dependency; the structural checks below run without it
    import jsonschema

    VALIDATOR: Any = jsonschema.Draft202012Validator(JSON_SCHEMA)
except ImportError:
    VALIDATOR = None


def sample(**kw: Any) -> Event:
    scores = {label: 0.0 for label in FER2013_LABELS}
    scores.update({"happy": 0.75, "neutral": 0.25})
    args: dict[str, Any] = {
        "device_id": "door-cam",
        "frame": 42,
        "track_id": 3,
        "type": "change",
        "bbox": [10, 20, 64, 64],
        "scores": scores,
        "model": ModelRef("bagga_cnn1", "ab" * 32),
    }
    args.update(kw)
    return Event.create(**args)


# ---- round trips ---------------------------------------------------------------------------


def test_round_trip_and_layout() -> None:
    e = sample()
    assert Event.from_json(e.to_json()) == e
    assert Event.from_dict(e.to_dict()) == e
    assert Event.from_json(e.to_json().encode()) == e
    d = json.loads(e.to_json())
    assert next(iter(d)) == "schema" and d["schema"] == SCHEMA
    assert d["emotion"] == "happy" and d["confidence"] == 0.75
    assert d["bbox"] == [10, 20, 64, 64] and isinstance(e.bbox, tuple)
    assert len(e.event_id) == 32 and e.ts.endswith("Z")
    assert sample().event_id != e.event_id


def test_ferplus_labels_round_trip() -> None:
    scores = {label: 1.0 / len(FERPLUS_LABELS) for label in FERPLUS_LABELS}
    scores["contempt"] += 0.01
    e = sample(scores=scores, type="start")
    assert e.emotion == "contempt"
    assert Event.from_json(e.to_json()) == e


def test_no_nan_in_json() -> None:
    e = dataclasses.replace(sample(), confidence=float("nan"))
    with pytest.raises(ValueError):
        e.to_json()


# ---- property: from_json(to_json(e)) == e ---------------------------------------------------

_text = st.text(min_size=1, max_size=40)
_prob = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_nonneg = st.integers(min_value=0, max_value=2**53)


@st.composite
def events(draw: st.DrawFn) -> Event:
    scores = draw(st.dictionaries(_text, _prob, min_size=1, max_size=9))
    return Event(
        event_id=draw(_text),
        device_id=draw(_text),
        ts=draw(_text),
        frame=draw(_nonneg),
        track_id=draw(_nonneg),
        type=draw(st.sampled_from(EVENT_TYPES)),  # type: ignore[arg-type]
        bbox=tuple(draw(st.lists(st.integers(-(2**31), 2**31), min_size=4, max_size=4))),  # type: ignore[arg-type]
        emotion=draw(st.sampled_from(sorted(scores))),
        confidence=draw(_prob),
        scores=scores,
        model=ModelRef(draw(st.text(max_size=20)), draw(st.text(max_size=64))),
    )


@settings(max_examples=300, deadline=None)
@given(events())
def test_property_json_round_trip(e: Event) -> None:
    assert Event.from_json(e.to_json()) == e
    if VALIDATOR is not None:
        VALIDATOR.validate(json.loads(e.to_json()))


# ---- fuzz: malformed input raises EventDecodeError, nothing else ----------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _decode_or_error(payload: Any) -> None:
    try:
        if isinstance(payload, (str, bytes)):
            Event.from_json(payload)
        else:
            Event.from_dict(payload)
    except EventDecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200), _json_values))
def test_fuzz_arbitrary_input(payload: Any) -> None:
    _decode_or_error(payload)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(sample().to_dict())),
    st.one_of(_json_values, st.just("__drop__")),
)
def test_fuzz_one_key_mutated(key: str, value: Any) -> None:
    d = sample().to_dict()
    if value == "__drop__":
        del d[key]
    else:
        d[key] = value
    _decode_or_error(d)
    _decode_or_error(json.dumps(d, allow_nan=True))


@pytest.mark.parametrize(
    "payload",
    [
        "[" * 100_000,  # nesting bomb
        '{"a":' * 100_000,
        sample().to_json().replace('"confidence":0.75', '"confidence":1' + "0" * 400),
        sample().to_json().replace('"frame":42', '"frame":1' + "0" * 5000),
        sample().to_json().replace('"confidence":0.75', '"confidence":NaN'),
        sample().to_json().replace('"confidence":0.75', '"confidence":Infinity'),
        sample().to_json().replace('"frame":42', '"frame":true'),
        sample().to_json().replace('"frame":42', '"frame":42.0'),
        sample().to_json().replace('"emotion":"happy"', '"emotion":"bored"'),
        sample().to_json().replace('"fer.event/1"', '"fer.event/2"'),
        sample().to_json()[:-1],
        b"\xff\xfe\x00",
        "",
        "null",
    ],
)
def test_malformed_payloads(payload: str | bytes) -> None:
    with pytest.raises(EventDecodeError):
        Event.from_json(payload)


# ---- the JSON Schema agrees with the dataclass ----------------------------------------------


def test_schema_matches_dataclass() -> None:
    fields = {f.name for f in dataclasses.fields(Event)}
    assert JSON_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert JSON_SCHEMA["title"] == SCHEMA
    assert JSON_SCHEMA["additionalProperties"] is False
    assert set(JSON_SCHEMA["required"]) == fields
    props = JSON_SCHEMA["properties"]
    assert set(props) == fields
    assert set(sample().to_dict()) == fields
    assert props["schema"]["const"] == SCHEMA
    assert props["type"]["enum"] == list(EVENT_TYPES)
    assert props["frame"] == {**props["frame"], "type": "integer", "minimum": 0}
    assert props["track_id"]["type"] == "integer" and props["track_id"]["minimum"] == 0
    assert (props["bbox"]["minItems"], props["bbox"]["maxItems"]) == (4, 4)
    assert props["bbox"]["items"] == {"type": "integer"}
    for key in ("confidence",):
        assert (props[key]["minimum"], props[key]["maximum"]) == (0, 1)
    assert props["scores"]["additionalProperties"]["maximum"] == 1
    assert props["scores"]["minProperties"] == 1
    model_fields = {f.name for f in dataclasses.fields(ModelRef)}
    assert set(props["model"]["required"]) == model_fields == set(props["model"]["properties"])
    for key in ("event_id", "device_id", "ts", "emotion"):
        assert props[key]["type"] == "string" and props[key]["minLength"] == 1


def _invalid_variants() -> list[dict[str, Any]]:
    base = sample().to_dict()
    out: list[dict[str, Any]] = []
    for key in base:
        d = dict(base)
        del d[key]
        out.append(d)
    for key, bad in [
        ("schema", "fer.event/2"),
        ("type", "begin"),
        ("frame", -1),
        ("track_id", "3"),
        ("bbox", [1, 2, 3]),
        ("bbox", [1, 2, 3, "4"]),
        ("confidence", 1.5),
        ("scores", {}),
        ("scores", {"happy": 2}),
        ("model", {"name": "x"}),
        ("event_id", ""),
        ("extra", 1),
    ]:
        out.append({**base, key: bad})
    return out


@pytest.mark.parametrize("bad", _invalid_variants())
def test_schema_and_decoder_reject_the_same_events(bad: dict[str, Any]) -> None:
    with pytest.raises(EventDecodeError):
        Event.from_dict(bad)
    if VALIDATOR is not None:
        assert not VALIDATOR.is_valid(bad)


def test_schema_accepts_samples() -> None:
    if VALIDATOR is None:
        pytest.skip(
            "jsonschema is not installed; structure checked by test_schema_matches_dataclass"
        )
    for kind in EVENT_TYPES:
        VALIDATOR.validate(json.loads(sample(type=kind).to_json()))


def test_seen_events_is_bounded() -> None:
    from edge.events import SeenEvents

    seen = SeenEvents(capacity=2)
    assert [seen.check_and_add(i) for i in ("a", "b", "a")] == [False, False, True]
    seen.check_and_add("c")  # forgets "a", the oldest
    assert seen.check_and_add("a") is False and seen.check_and_add("c") is True


def test_event_type_is_one_strenum() -> None:
    from edge.events import EventType

    assert list(EVENT_TYPES) == [t.value for t in EventType] == ["start", "change", "update", "end"]
    for kind in EventType:
        ev = sample(type=kind)
        d = json.loads(ev.to_json())
        assert d["type"] == kind.value and type(d["type"]) is str
        back = Event.from_json(ev.to_json())
        assert back.type is kind and back == ev
        # Code that compares with plain strings (monitor, dashboard) keeps working.
        assert back.type == kind.value and {kind.value: 1}[back.type] == 1
