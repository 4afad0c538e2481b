"""Which names look secret, and scrubbing known secret values out of free text.

One rule for every place that might print a value next to its name: the log redactor (bot/logs.py),
config error messages (bot/config.py) and the CLI's last-resort error line (bot/cli.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

REDACTED = "**********"

# anywhere in the name: `api_secret`, `API_SECRETT` (misspelt), `db_password`, `okx_passphrase`
_SECRET_PARTS = ("secret", "password", "passwd", "passphrase", "signature", "credential", "apikey", "privatekey")
# the name's last word: `api_key`, `apiKey`, `auth_token`, `accessToken`; not `tokens` (a rate-limit
# bucket's level) nor `token_price_quote` (the deal's token is the traded asset, not a credential)
_SECRET_LAST_WORD = ("key", "token", "pwd")
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def looks_secret(name: str) -> bool:
    """`api_secret`, `MMBOT__CCXT__API_KEY`, `authToken`, `Signature`, `passphrase2`: True.
    `tokens`, `token_price_quote`, `order_size_base`: False."""
    lowered = name.lower()
    if any(part in lowered.replace("_", "").replace("-", "") for part in _SECRET_PARTS):
        return True
    words = [w for w in (w.lower().rstrip("0123456789") for w in _WORD.findall(name)) if w]  # `key_2`: `key`
    return bool(words) and words[-1].endswith(_SECRET_LAST_WORD)


def secret_values_in(environ: Mapping[str, str]) -> list[str]:
    """The values of the environment variables whose names look secret (non-empty ones)."""
    return [value for name, value in environ.items() if value and looks_secret(name)]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by REDACTED (longest first, so a
    secret that contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
