"""The JSON API under /api/ (django-ninja): URLs, views, pydantic request schemas, serializers, JSON errors.

Kept import-light on purpose: `ml_platform.web.forms` reads `BoundedJSONDecoder` from here, and the view modules
import the forms, so the views are only imported by `ml_platform.api.urls`.
"""

from ml_platform.api.parsing import BoundedJSONDecoder

__all__ = ["BoundedJSONDecoder"]
