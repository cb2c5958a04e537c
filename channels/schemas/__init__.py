"""JSON Schemas of the speaker platforms' response formats, written from each platform's documentation.

Contract tests validate every response a channel renders against these; they are data, not code, so
that a reviewer can compare them with the platform's reference side by side.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parent
PLATFORMS = ("alexa", "kakao", "nugu")


@cache
def response_validator(platform: str) -> Draft202012Validator:
    """A validator for one platform's response body (``alexa``, ``kakao`` or ``nugu``)."""
    if platform not in PLATFORMS:
        raise ValueError(f"no response schema for platform {platform!r}")
    schema = json.loads((SCHEMA_DIR / f"{platform}_response.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
