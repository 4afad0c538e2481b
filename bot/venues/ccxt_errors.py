"""Every ccxt error, mapped ONCE into what the adapter does about it.

The table maps a ccxt exception class to an `Action` and a stable reason string (the reason is what
`OrderRejected.reason` / `CancelRejected.reason` / `FeedStatus.reason` carry). Lookup walks the
exception's MRO, so the most specific class in the table wins and a new ccxt subclass falls back to
its parent's row. How each action is carried out depends on what failed:

| action  | create_order                         | cancel_order                 | market-data / private feed     |
|---------|--------------------------------------|------------------------------|--------------------------------|
| RETRY   | resend (same client id), then reject | resend, then CancelRejected  | reconnect after backoff        |
| BACKOFF | OrderRejected, pause new orders      | CancelRejected               | reconnect after a longer wait  |
| RESYNC  | treated as RETRY                     | treated as RETRY             | drop the book, fresh snapshot  |
| REJECT  | OrderRejected(reason)                | CancelRejected(reason)       | reconnect after backoff        |
| STOP    | raise VenueFatalError                | raise VenueFatalError        | raise VenueFatalError          |

STOP is for what no retry can fix (bad keys, a symbol the venue does not list, an unsupported call):
the runner shuts down cleanly (cancel all, flush the ledger) instead of hammering the venue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import ccxt


class Action(StrEnum):
    RETRY = "retry"
    BACKOFF = "backoff"
    RESYNC = "resync"
    REJECT = "reject"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class ErrorRule:
    action: Action
    reason: str


class VenueFatalError(Exception):
    """A venue error no retry can fix; the runner must stop. `reason` is the table's reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


_R = ErrorRule
ERROR_TABLE: dict[type[BaseException], ErrorRule] = {
    # --- fallbacks: ccxt's roots
    ccxt.BaseError: _R(Action.STOP, "venue_error_unknown"),
    ccxt.ExchangeError: _R(Action.REJECT, "venue_error"),
    ccxt.OperationFailed: _R(Action.RETRY, "operation_failed"),
    # --- configuration / account: nothing to retry
    ccxt.AuthenticationError: _R(Action.STOP, "auth_failed"),
    ccxt.PermissionDenied: _R(Action.STOP, "permission_denied"),
    ccxt.AccountNotEnabled: _R(Action.STOP, "account_not_enabled"),
    ccxt.AccountSuspended: _R(Action.STOP, "account_suspended"),
    ccxt.ArgumentsRequired: _R(Action.STOP, "arguments_required"),
    ccxt.BadSymbol: _R(Action.STOP, "bad_symbol"),
    ccxt.NotSupported: _R(Action.STOP, "not_supported"),
    ccxt.RestrictedLocation: _R(Action.STOP, "restricted_location"),
    ccxt.ManualInteractionNeeded: _R(Action.STOP, "manual_interaction_needed"),
    ccxt.ContractUnavailable: _R(Action.STOP, "contract_unavailable"),
    ccxt.InvalidProxySettings: _R(Action.STOP, "invalid_proxy_settings"),
    ccxt.ExchangeClosedByUser: _R(Action.STOP, "closed_by_user"),
    # --- this one request is refused; the next one may be fine
    ccxt.BadRequest: _R(Action.REJECT, "bad_request"),
    ccxt.OperationRejected: _R(Action.REJECT, "operation_rejected"),
    ccxt.MarketClosed: _R(Action.REJECT, "market_closed"),
    ccxt.NoChange: _R(Action.REJECT, "no_change"),
    ccxt.MarginModeAlreadySet: _R(Action.REJECT, "no_change"),
    ccxt.InvalidAddress: _R(Action.REJECT, "invalid_address"),  # withdrawals: never used by the bot
    ccxt.AddressPending: _R(Action.REJECT, "invalid_address"),
    ccxt.InsufficientFunds: _R(Action.REJECT, "insufficient_balance"),
    ccxt.InvalidOrder: _R(Action.REJECT, "invalid_order"),
    ccxt.OrderNotFound: _R(Action.REJECT, "unknown_order"),
    ccxt.OrderNotCached: _R(Action.REJECT, "unknown_order"),
    ccxt.OrderImmediatelyFillable: _R(Action.REJECT, "post_only_would_cross"),
    ccxt.OrderNotFillable: _R(Action.REJECT, "not_fillable"),
    ccxt.DuplicateOrderId: _R(Action.REJECT, "duplicate_client_id"),
    # --- transient: the request may not have arrived, or the venue is busy
    ccxt.NetworkError: _R(Action.RETRY, "network"),
    ccxt.RequestTimeout: _R(Action.RETRY, "timeout"),
    ccxt.BadResponse: _R(Action.RETRY, "bad_response"),
    ccxt.NullResponse: _R(Action.RETRY, "bad_response"),
    ccxt.CancelPending: _R(Action.RETRY, "cancel_pending"),
    ccxt.UnsubscribeError: _R(Action.RETRY, "unsubscribe_failed"),
    ccxt.DDoSProtection: _R(Action.BACKOFF, "rate_limited"),
    ccxt.RateLimitExceeded: _R(Action.BACKOFF, "rate_limited"),
    ccxt.ExchangeNotAvailable: _R(Action.BACKOFF, "exchange_unavailable"),
    ccxt.OnMaintenance: _R(Action.BACKOFF, "maintenance"),
    # --- order-book integrity (binance: sequence gap, okx: CRC32 mismatch). On a REST call
    # InvalidNonce means a clock/nonce problem, which a retry fixes.
    ccxt.InvalidNonce: _R(Action.RESYNC, "book_gap"),
    ccxt.ChecksumError: _R(Action.RESYNC, "book_checksum"),
    # --- raw transport errors that can escape ccxt's wrappers
    TimeoutError: _R(Action.RETRY, "timeout"),
    OSError: _R(Action.RETRY, "network"),
}


def classify(exc: BaseException) -> ErrorRule | None:
    """The table row for `exc` (most specific class wins), or None for a non-venue error (a bug)."""
    for klass in type(exc).__mro__:
        rule = ERROR_TABLE.get(klass)
        if rule is not None:
            return rule
    return None
