"""What the processes of one application user share, in Redis (the ``redis`` extra): the
bearer token (``RedisTokenCache``) and the remote's request budget (``RedisGovernor``).

Each decision is one Lua script, so it is atomic across processes and machines, and time is
Redis's own clock (``TIME``), so the processes need not agree on theirs."""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from typing import Any

from .auth import AccessToken
from .errors import Throttled
from .extras import MissingExtra
from .governor import BACKGROUND, Limits

try:
    import redis
except ModuleNotFoundError as error:
    raise MissingExtra("The shared token cache and governor", "redis", "redis") from error

logger = logging.getLogger("cdms_api.governor")


def user_key(*parts: str) -> str:
    """A short, stable name for one user of one remote (no secret goes into it)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, health_check_interval=30)


_DISCARD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenCache:
    """Tokens in Redis, each kept until it expires; one process renews while the others wait
    on a Redis lock, then read what it stored."""

    def __init__(self, url: str, prefix: str = "cdms:token:", renew_timeout_s: float = 60.0):
        self.redis, self.prefix, self.renew_timeout_s = connect(url), prefix, renew_timeout_s
        self._discard = self.redis.register_script(_DISCARD)

    def __repr__(self) -> str:
        return f"RedisTokenCache(prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + user_key(key)

    def get(self, key: str) -> AccessToken | None:
        stored = self.redis.get(self._key(key))
        if stored is None:
            return None
        expires_on, _, token = stored.decode().partition(" ")
        return AccessToken(token, float(expires_on))

    def put(self, key: str, token: AccessToken) -> None:
        ttl_ms = int((token.expires_on - time.time()) * 1000)
        if ttl_ms > 0:
            self.redis.set(self._key(key), f"{token.expires_on} {token.token}", px=ttl_ms)

    def discard(self, key: str, token: str) -> None:
        stored = self.get(key)
        if stored is not None and stored.token == token:
            self._discard(keys=[self._key(key)], args=[f"{stored.expires_on} {token}"])

    def renewing(self, key: str) -> Any:
        return self.redis.lock(
            self._key(key) + ":renewing",
            timeout=self.renew_timeout_s,
            blocking_timeout=self.renew_timeout_s,
        )


# KEYS: requests (zset start -> id), execution (zset end -> "id duration"), execution total,
#       in flight (zset lease expiry -> id), interactive waiters (zset heartbeat -> id), pause
# ARGV: id, priority, requests, window_s, execution_s, concurrency, lease_s, margin_s
# Answers "ok", or the seconds to wait before asking again.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local id, background = ARGV[1], ARGV[2] ~= '0'
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local execution, concurrency = tonumber(ARGV[5]), tonumber(ARGV[6])
local lease, margin = tonumber(ARGV[7]), tonumber(ARGV[8])
local horizon = now - window - margin
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
if #expired > 0 then
  local freed = 0
  for _, entry in ipairs(expired) do
    freed = freed + tonumber(string.match(entry, ' (.+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
  redis.call('INCRBYFLOAT', KEYS[3], -freed)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local wait = 0
local paused = tonumber(redis.call('GET', KEYS[6]) or '0')
if paused > now then
  wait = paused - now
elseif background and redis.call('ZCARD', KEYS[5]) > 0 then
  wait = 0.02
elseif redis.call('ZCARD', KEYS[4]) >= concurrency then
  wait = 0.01
elseif redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = tonumber(oldest[2]) - horizon
elseif tonumber(redis.call('GET', KEYS[3]) or '0') >= execution then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = tonumber(oldest[2]) - horizon
end
if wait > 0 then
  if not background then
    redis.call('ZADD', KEYS[5], now + 1, id)
    redis.call('PEXPIRE', KEYS[5], 2000)
  end
  return tostring(wait)
end
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZADD', KEYS[4], now + lease, id)
redis.call('ZREM', KEYS[5], id)
local keep = math.ceil((window + margin + lease) * 1000)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], keep) end
return 'ok'
"""

# KEYS: execution, execution total, in flight; ARGV: id, duration_s
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], now, ARGV[1] .. ' ' .. ARGV[2])
  redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: pause; ARGV: seconds
_PAUSE = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < until_ then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisPermit:
    def __init__(self, governor: RedisGovernor, id: str):
        self.governor, self.id = governor, id

    def release(self, duration_s: float) -> None:
        g = self.governor
        g._release(keys=[g.keys[1], g.keys[2], g.keys[3]], args=[self.id, f"{duration_s:.6f}"])


class RedisGovernor:
    """The service protection limits of one user, counted in Redis for all its processes:
    requests and execution time in a sliding window, requests in flight; interactive requests
    that wait keep background ones waiting; after a 429 every process holds back.

    ``margin_s``: the window is kept that much longer than the remote's, for the time between
    admitting a request and its arrival. ``lease_s``: a request in flight counts at most that
    long (a process killed mid-request gives its slot back then). ``max_wait_s``: a request
    that waits longer raises ``Throttled`` instead."""

    def __init__(
        self,
        url: str,
        user: str,
        limits: Limits | None = None,
        *,
        prefix: str = "cdms:governor:",
        margin_s: float = 0.25,
        lease_s: float = 180.0,
        max_wait_s: float = 300.0,
    ):
        self.limits = limits or Limits()
        self.redis = connect(url)
        base = f"{prefix}{user_key(user)}:"
        self.keys = [
            base + name for name in ("requests", "execution", "used", "flight", "waiting", "pause")
        ]
        self.margin_s, self.lease_s, self.max_wait_s = margin_s, lease_s, max_wait_s
        self._admit = self.redis.register_script(_ADMIT)
        self._release = self.redis.register_script(_RELEASE)
        self._pause = self.redis.register_script(_PAUSE)
        self.waited_s = 0.0  # time this process spent waiting for its turn

    def __repr__(self) -> str:
        return f"RedisGovernor({self.limits})"

    def admit(self, priority: int) -> RedisPermit:
        id, started = uuid.uuid4().hex, time.monotonic()
        limits = self.limits
        args = [
            id,
            "1" if priority == BACKGROUND else "0",
            limits.requests,
            limits.window_s,
            limits.execution_s,
            limits.concurrency,
            self.lease_s,
            self.margin_s,
        ]
        while True:
            answer = self._admit(keys=self.keys, args=args).decode()
            if answer == "ok":
                self.waited_s += time.monotonic() - started
                return RedisPermit(self, id)
            waited = time.monotonic() - started
            if waited > self.max_wait_s:
                raise Throttled(
                    f"waited {waited:.0f} s for the API budget shared by this user's processes",
                    retry_after=float(answer),
                )
            # short sleeps while requests are in flight, up to the wait the budget needs else
            time.sleep(min(float(answer), 1.0) * random.uniform(1.0, 1.2))

    def throttled(self, retry_after: float | None) -> None:
        seconds = retry_after if retry_after is not None else 1.0
        logger.warning("the remote throttled a request: every process holds back %.1f s", seconds)
        self._pause(keys=[self.keys[5]], args=[seconds])

    def reset(self) -> None:
        """Forget every count (tests and benchmarks start from an empty budget)."""
        self.redis.delete(*self.keys)
