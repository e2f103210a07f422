"""Pydantic request and response types for common payloads."""
