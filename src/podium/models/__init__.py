"""Models: timm backbones created by name, weight sources, and the preprocessing each model owns."""

from podium.models.factory import create_model
from podium.models.preprocessing import Preprocessing, resolve_preprocessing

__all__ = ["create_model", "Preprocessing", "resolve_preprocessing"]
