"""The one rule for which names look secret (log keys, config fields, environment variables)."""

from __future__ import annotations

import pytest

from bot.secret_names import REDACTED, looks_secret, scrub, secret_values_in


@pytest.mark.parametrize(
    "name",
    [
        "api_key", "api_secret", "api_password", "API_SECRETT", "MMBOT__CCXT__API_KEY", "MMBOT__CCXT__API_SECRETT",
        "apiKey", "secretKey", "privateKey", "private_key", "auth_token", "accessToken", "token", "token2",
        "Signature", "key_2", "passphrase", "okx_passphrase", "db_password", "passwd", "key", "MMBOT__FOO__WALLET_KEY",
        "client-secret", "credentials",
    ],
)  # fmt: skip
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "tokens", "token_price_quote", "tokens_lent_base", "dex_token_fraction", "order_size_base", "venue",
        "symbol", "keys_seen", "event", "url", "MMBOT__QUOTER__GAMMA_PER_QUOTE", "sort_keys", "",
    ],
)  # fmt: skip
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def test_scrub_masks_every_occurrence_longest_first() -> None:
    assert scrub("a hunter2 b hunter2x", ["hunter2", "hunter2x"]) == f"a {REDACTED} b {REDACTED}"
    assert scrub("nothing here", ["", "zz"]) == "nothing here"


def test_secret_values_come_from_secret_looking_variables_only() -> None:
    env = {"MMBOT__CCXT__API_SECRET": "s3", "MMBOT__QUOTER__GAMMA_PER_QUOTE": "5", "HOME_TOKEN": "", "X_KEY": "k"}
    assert sorted(secret_values_in(env)) == ["k", "s3"]
