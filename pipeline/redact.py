"""Secrets in URIs never leave the process.

A URI may carry credentials: ``user:password@host`` (an MLflow server behind basic auth, an S3
endpoint) or query values (a signed download's ``?token=…``, ``X-Amz-Signature=…``). Before a URI
is printed, logged, written to a file (checkpoints, manifests, results) or sent to MLflow, the
password and every query value are replaced by ``***``; the scheme, user, host, port and path stay,
so the message still says where. The process itself keeps and uses the real URI.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")


def redact_uri(uri: str) -> str:
    """``uri`` with its password (or a lone user token) and its query values masked."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # not parseable (e.g. a broken IPv6 host): keep only the scheme
        return f"{uri.split('://', 1)[0]}://{MASK}"
    if "@" not in parts.netloc and not parts.query:
        return uri  # nothing to mask (and urlunsplit would respell e.g. sqlite:////path)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    query = "&".join(f"{name}={MASK}" if has_value else name
                     for name, has_value, _ in (item.partition("=") for item in parts.query.split("&")))
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


def redact_text(text: str) -> str:
    """Every URI in ``text`` redacted (``redact_uri``)."""
    return URI.sub(lambda match: redact_uri(match.group()), text)


def redact_data(node: Any) -> Any:
    """A copy of plain data (dicts, lists, strings, numbers) with every URI in its strings redacted."""
    if isinstance(node, str):
        return redact_text(node)
    if isinstance(node, dict):
        return {key: redact_data(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(redact_data(item) for item in node)
    return node


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the URIs in every record it passes (message and arguments merged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (default: the root logger), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
