"""stagepipe example service: a small FastAPI app with an in-memory item store."""

__version__ = "0.1.0"
