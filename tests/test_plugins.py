"""Typed plugins (edge/plugins.py): every ``type`` of a config union has exactly one backend that
is built from its config class, and a registry that disagrees with its union fails at import."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from edge.camera import SOURCES, create_source
from edge.camera.config import SourceConfig, source_override
from edge.config import validate_config
from edge.detect.config import DetectorConfig
from edge.plugins import build_registry, union_members
from edge.publish.config import SINK_CONFIG_MODELS, SinkConfig
from edge.publish.registry import SINKS, create_sink


def test_registries_cover_their_unions_exactly() -> None:
    for registry, union in ((SOURCES, SourceConfig), (SINKS, SinkConfig)):
        members = union_members(union)
        assert set(registry) == set(members) and len(members) >= 3
        for kind, cls in registry.items():
            assert cls.type == kind and cls.config_class is members[kind]
    assert SINK_CONFIG_MODELS == union_members(SinkConfig)
    assert set(union_members(DetectorConfig)) == {"haar", "yunet", "blazeface"}


@pytest.mark.parametrize("spec", ["0", "picamera2", "rtsp://cam/x", "a ! appsink", "clip.avi"])
def test_create_source_builds_the_backend_of_each_type(spec: str) -> None:
    cfg = validate_config({"source": source_override(spec)}).source
    src = create_source(cfg)  # nothing is opened: no camera needed
    assert type(src) is SOURCES[cfg.type] and src.type == cfg.type


def test_create_sink_builds_the_backend_of_each_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tables = {"stdout": {}, "jsonl": {"path": str(tmp_path / "e.jsonl")}, "mqtt": {}}
    for kind, cls in SINKS.items():
        assert type(create_sink({"type": kind, **tables[kind]}, device_id="d")) is cls


class _A(BaseModel):
    type: Literal["a"] = Field("a", description="a")


class _B(BaseModel):
    type: Literal["b"] = Field("b", description="b")


_AB = Annotated[_A | _B, Field(discriminator="type")]


class _PluginA:
    type = "a"
    config_class = _A


class _PluginB:
    type = "b"
    config_class = _B


def test_build_registry_refuses_mismatches() -> None:
    assert build_registry([_PluginA, _PluginB], _AB, "thing") == {"a": _PluginA, "b": _PluginB}
    with pytest.raises(RuntimeError, match="without a backend: b"):
        build_registry([_PluginA], _AB, "thing")
    with pytest.raises(RuntimeError, match="registered twice"):
        build_registry([_PluginA, _PluginA, _PluginB], _AB, "thing")

    class WrongConfig(_PluginB):
        config_class = _A  # type: ignore[assignment]

    with pytest.raises(RuntimeError, match="config_class"):
        build_registry([_PluginA, WrongConfig], _AB, "thing")
