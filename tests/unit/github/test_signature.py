"""Webhook HMAC signatures (`X-Hub-Signature-256`)."""

from __future__ import annotations

import pytest

from tracemark_common.errors import Unauthorized
from tracemark_common.prs.signature import signature_for, verify_signature

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
GITHUB_DOCS_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_docs_test_vector() -> None:
    assert signature_for(SECRET, BODY) == GITHUB_DOCS_VECTOR
    verify_signature(SECRET, BODY, GITHUB_DOCS_VECTOR)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        GITHUB_DOCS_VECTOR.upper(),
        GITHUB_DOCS_VECTOR[:-1] + "0",
        "sha1=" + "0" * 40,
        GITHUB_DOCS_VECTOR + "00",
        "sha256=" + "é" * 64,
        "x" * 100_000,
    ],
)
def test_bad_signatures(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verify_signature(SECRET, BODY, header)


def test_other_body_or_secret() -> None:
    with pytest.raises(Unauthorized):
        verify_signature(SECRET, BODY + b" ", GITHUB_DOCS_VECTOR)
    with pytest.raises(Unauthorized):
        verify_signature("other", BODY, GITHUB_DOCS_VECTOR)
    with pytest.raises(Unauthorized):
        verify_signature("", BODY, signature_for("", BODY))
