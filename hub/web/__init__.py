"""The HTTP face of the hub (FastAPI)."""
