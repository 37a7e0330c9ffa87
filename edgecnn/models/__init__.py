"""The model zoo: one registry, one builder per network."""

from edgecnn.models.registry import (
    ModelInfo,
    Reference,
    create_model,
    get_model_info,
    list_families,
    list_models,
    register_model,
)

__all__ = [
    "ModelInfo",
    "Reference",
    "create_model",
    "get_model_info",
    "list_families",
    "list_models",
    "register_model",
]
