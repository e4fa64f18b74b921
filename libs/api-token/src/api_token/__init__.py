"""The bearer token (environment variable API_TOKEN) of the testbed's services.

The package exports the FastAPI-free part (``api_token.token``), so a client that only
sends the token does not import FastAPI; the server side is ``api_token.guard``.
"""

from __future__ import annotations

from api_token.token import ENV_NAME, MIN_LENGTH, Verdict, bearer, generate, judge, validate

__all__ = ["ENV_NAME", "MIN_LENGTH", "Verdict", "bearer", "generate", "judge", "validate"]
