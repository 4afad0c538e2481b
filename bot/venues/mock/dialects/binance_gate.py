"""What Binance checks before a REST request reaches the matching engine: the API key, the HMAC
signature, the timestamp against `recvWindow`, and the request-weight and order-count limits.

Every rule is Binance's documented one (binance-spot-api-docs at a5e0bc3, `rest-api.md` "SIGNED
Endpoint security" / "Timing security", `errors.md`, `rest-api/limits`; the USD-M futures "General
Info" page says the same for /fapi):

- security types: NONE (public), USER_STREAM (API key only: listenKey), SIGNED (TRADE / USER_DATA:
  key + `timestamp` + `signature`). A missing or unknown key answers HTTP 401 `-2014 API-key format
  invalid.` / `-2015`; a signature that is not the HMAC-SHA256 of the total parameters (query string
  then body, `signature` excluded) answers 400 `-1022`. With no secret configured the dialect checks
  only that a 64-hex-digit signature is present (a dialect run "with any key").
- timing: processed only if `timestamp < serverTime + 1000` and `serverTime - timestamp <=
  recvWindow` (default 5000, at most 60000: `-1131`), else 400 `-1021`;
- weights: every response carries `X-MBX-USED-WEIGHT-1M` (the fixed calendar minute's total for this
  "IP"); a request over the limit answers HTTP 429 `-1003` with `Retry-After` (seconds to the next
  minute); a client that keeps sending after 429s is banned: HTTP 418 `-1003 Way too much request
  weight used; IP banned until <ms>` for `ban_s` (the docs: "from 2 minutes to 3 days");
- orders: `X-MBX-ORDER-COUNT-10S` and `-1D` (spot) / `-1M` (USD-M) on order placements; over the
  limit HTTP 429 `-1015 Too many new orders; current limit is N orders per TEN_SECONDS.`

ccxt's side of it: `binance.sign` adds `timestamp`, `recvWindow` (options.recvWindow = 10000) and
the hex `signature`, and sends the X-MBX-APIKEY header; `binance.handle_errors` raises DDoSProtection
on HTTP 418/429 and maps the codes through `exceptions['exact']` (-1021 InvalidNonce, -1022
AuthenticationError, -2014/-2015 AuthenticationError, -1003/-1015 RateLimitExceeded).

Limits are per "IP": one client here. Spot (api) and USD-M (fapi) keep separate counters, as they are
separate services with separate limits (spot 6000 weight/min, 100 orders/10 s, 200000/day; USD-M
2400 weight/min, 300 orders/10 s, 1200/min: their exchangeInfo `rateLimits`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MINUTE_MS = 60_000
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class Refusal(Exception):
    """A Binance error answer: HTTP status, code, message, extra headers."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def response(self, extra_headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(
            {"code": self.code, "msg": self.msg}, status=self.status, headers={**(extra_headers or {}), **self.headers}
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """One service's limits (exchangeInfo `rateLimits`)."""

    weight_per_minute: int
    orders_per_10s: int
    orders_long: int  # per day (spot) or per minute (USD-M)
    long_interval_ms: int
    long_header: str  # "X-MBX-ORDER-COUNT-1D" | "X-MBX-ORDER-COUNT-1M"
    long_name: str  # "DAY" | "MINUTE"

    def rate_limits(self) -> list[dict[str, Any]]:
        long_num = 1
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_per_minute,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": self.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": self.long_name, "intervalNum": long_num, "limit": self.orders_long},
        ]


SPOT_LIMITS = Limits(6000, 100, 200_000, 86_400_000, "X-MBX-ORDER-COUNT-1D", "DAY")
FUTURES_LIMITS = Limits(2400, 300, 1200, MINUTE_MS, "X-MBX-ORDER-COUNT-1M", "MINUTE")


@dataclass(slots=True)
class _Counters:
    limits: Limits
    minute: int = -1  # the calendar minute `weight` counts
    weight: int = 0
    refused_in_minute: int = 0  # 429s answered this minute
    banned_until_ms: int = 0
    orders: dict[tuple[int, int], int] = field(default_factory=dict)  # (interval ms, bucket) -> count


class Gate:
    """The checks above for one dialect server. `check` raises `Refusal`; `headers` are what every
    answer (refusals included) carries."""

    def __init__(
        self,
        *,
        api_secret: str | None = None,
        spot_limits: Limits = SPOT_LIMITS,
        futures_limits: Limits = FUTURES_LIMITS,
        ban_after_429s: int = 10,
        ban_s: float = 120.0,
    ) -> None:
        self.api_secret = api_secret
        self._counters = {"spot": _Counters(spot_limits), "linear": _Counters(futures_limits)}
        self.ban_after_429s = ban_after_429s
        self.ban_s = ban_s
        self.api_keys: set[str] = set()  # keys seen signing a valid request (USER_STREAM needs one)

    def limits(self, category: str) -> Limits:
        return self._counters[category].limits

    # ---- weights --------------------------------------------------------------------------------

    def spend(self, category: str, weight: int, now_ms: int) -> dict[str, str]:
        """Count `weight` against this minute, or raise 429 / 418; the used-weight header."""
        c = self._counters[category]
        minute = now_ms // MINUTE_MS
        if minute != c.minute:
            c.minute, c.weight, c.refused_in_minute = minute, 0, 0
        if now_ms < c.banned_until_ms:
            retry = str(max(1, -(-(c.banned_until_ms - now_ms) // 1000)))
            raise Refusal(
                418, -1003,
                f"Way too much request weight used; IP banned until {c.banned_until_ms}. "
                "Please use WebSocket Streams for live updates to avoid bans.",
                {"Retry-After": retry, "X-MBX-USED-WEIGHT-1M": str(c.weight)},
            )  # fmt: skip
        if c.weight + weight > c.limits.weight_per_minute:
            c.refused_in_minute += 1
            if c.refused_in_minute > self.ban_after_429s:  # did not back off after the 429s
                c.banned_until_ms = now_ms + int(self.ban_s * 1000)
                return self.spend(category, weight, now_ms)
            retry = str(max(1, -(-((minute + 1) * MINUTE_MS - now_ms) // 1000)))
            raise Refusal(
                429, -1003,
                f"Too much request weight used; current limit is {c.limits.weight_per_minute} request weight per "
                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                {"Retry-After": retry, "X-MBX-USED-WEIGHT-1M": str(c.weight)},
            )  # fmt: skip
        c.weight += weight
        return {"X-MBX-USED-WEIGHT-1M": str(c.weight)}

    def count_order(self, category: str, now_ms: int) -> dict[str, str]:
        """One new order against the 10 s and the long interval, or raise 429 -1015."""
        c = self._counters[category]
        lim = c.limits
        keys = ((10_000, now_ms // 10_000), (lim.long_interval_ms, now_ms // lim.long_interval_ms))
        c.orders = {k: v for k, v in c.orders.items() if k in keys}  # older buckets are over
        counts = [c.orders.get(k, 0) for k in keys]
        if counts[0] >= lim.orders_per_10s:
            raise Refusal(
                429, -1015, f"Too many new orders; current limit is {lim.orders_per_10s} orders per TEN_SECONDS."
            )
        if counts[1] >= lim.orders_long:
            raise Refusal(
                429, -1015, f"Too many new orders; current limit is {lim.orders_long} orders per {lim.long_name}."
            )
        for k in keys:
            c.orders[k] = c.orders.get(k, 0) + 1
        return {"X-MBX-ORDER-COUNT-10S": str(counts[0] + 1), lim.long_header: str(counts[1] + 1)}

    # ---- security -------------------------------------------------------------------------------

    def api_key(self, request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise Refusal(401, -2014, "API-key format invalid.")
        return key

    def check_signed(self, request: web.Request, body: str, params: dict[str, str], now_ms: int) -> None:
        """SIGNED: the key, the signature over the total params, the timing rule."""
        key = self.api_key(request)
        signature = params.get("signature", "")
        if "timestamp" not in params:
            raise Refusal(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if not signature:
            raise Refusal(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        total = "&".join(
            part
            for part in (request.query_string + "&" + body).split("&")
            if part and not part.startswith("signature=")
        )
        if not self._signature_ok(total, signature):
            raise Refusal(400, -1022, "Signature for this request is not valid.")
        self.check_timing(params, now_ms)
        self.api_keys.add(key)

    def check_ws_signed(self, params: dict[str, Any], now_ms: int) -> None:
        """A websocket API request's signature: `key=value` pairs sorted by key, signature excluded
        (web-socket-api.md "SIGNED request security"); the same timing rule."""
        if not params.get("apiKey"):
            raise Refusal(401, -2014, "API-key format invalid.")
        if "timestamp" not in params:
            raise Refusal(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        payload = "&".join(f"{k}={_ws_value(params[k])}" for k in sorted(params) if k != "signature")
        if not self._signature_ok(payload, str(params.get("signature") or "")):
            raise Refusal(400, -1022, "Signature for this request is not valid.")
        self.check_timing({k: str(v) for k, v in params.items()}, now_ms)

    def _signature_ok(self, payload: str, signature: str) -> bool:
        if not HEX64.fullmatch(signature):
            return False
        if self.api_secret is None:
            return True  # no secret configured: any key, any well-formed signature
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.lower())  # HMAC signatures are not case-sensitive

    @staticmethod
    def check_timing(params: dict[str, str], now_ms: int) -> None:
        try:
            timestamp = int(params["timestamp"])
            recv_window = float(params.get("recvWindow") or 5000)
        except ValueError:
            raise Refusal(400, -1100, "Illegal characters found in parameter 'timestamp'.") from None
        if recv_window > 60_000:
            raise Refusal(400, -1131, "recvWindow must be less than 60000")
        if timestamp >= now_ms + 1000:
            raise Refusal(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_ms - timestamp > recv_window:
            raise Refusal(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def _ws_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
