"""`from ckpp import ExpressionPipeline`: the public Python API under the project's name (docs/api.md).

The code lives in models.pipeline (the model zoo) and ckpp_tools (the data toolkit); this package only names
the public entry points, imported on first use so `import ckpp` costs nothing (torch loads with a model).
"""
from ckpp_tools import __version__

__all__ = ["ExpressionPipeline", "ExpressionOutput", "FaceInfo", "list_models", "CkppError", "UsageError",
           "__version__"]


def __getattr__(name):
    if name in ("ExpressionPipeline", "ExpressionOutput", "FaceInfo", "list_models"):
        from models import pipeline

        return getattr(pipeline, name)
    if name in ("CkppError", "UsageError"):
        from ckpp_tools import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'ckpp' has no attribute {name!r}")
