"""Architectures of the seed papers, one module per paper, behind one registry."""

from train.models.registry import (
    ModelSpec,
    create_model,
    get_spec,
    keras_module,
    list_models,
    register_model,
)

__all__ = ["ModelSpec", "create_model", "get_spec", "keras_module", "list_models", "register_model"]
