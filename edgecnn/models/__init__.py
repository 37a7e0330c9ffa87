"""The model zoo: one registry, one builder per network, each family declared once."""

from edgecnn.models.registry import (
    ModelInfo,
    Reference,
    create_model,
    declare_family,
    get_model_info,
    list_families,
    list_models,
    register_model,
)

__all__ = [
    "ModelInfo",
    "Reference",
    "create_model",
    "declare_family",
    "get_model_info",
    "list_families",
    "list_models",
    "register_model",
]
