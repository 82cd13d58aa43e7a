"""Models: timm backbones created by name, weight sources, heads, and the preprocessing each model owns."""

from podium.models.factory import create_model, resolve_preprocessing

__all__ = ["create_model", "resolve_preprocessing"]
