"""Constants of LitServe's ``litserve.constants``."""

#: Where a LitAPI is served when it names no ``api_path``.
DEFAULT_API_PATH = "/predict"
_DEFAULT_LIT_API_PATH = DEFAULT_API_PATH  # LitServe's name
