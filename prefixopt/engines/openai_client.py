"""HTTP for the OpenAI-compatible engine: send a whole batch of JSON requests at once (bounded
by --max-concurrency), retry 429/5xx/connection errors with exponential backoff (Retry-After
honoured), and fail with ONE line naming the endpoint and what happened once retries run out.
The API key is sent as a header and never printed, logged or written anywhere.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefixopt.errors import PrefixoptError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_CAP_S = 30.0
TOP_LOGPROBS = 20  # the most OpenAI's chat API returns per position
# greedy, and none of a server's or model's default penalties (in-process passes none)
GREEDY = {"temperature": 0.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


class EngineUnavailable(PrefixoptError):
    """The endpoint stopped answering (after retries): nothing of the batch is kept."""


def api_key(env_name: str, workdir: str | Path = ".") -> str | None:
    """The key from the environment, else from a `.env` file in the working directory (KEY=VALUE
    lines, optional quotes, as python-dotenv reads them). None when neither has it (a local
    vLLM server needs no key)."""
    if os.environ.get(env_name):
        return os.environ[env_name]
    path = Path(workdir) / ".env"
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == env_name:
            return value.strip().strip("'\"") or None
    return None


@dataclass(frozen=True)
class Http:
    """Where and how to send: base URL (ending in /v1), the key (never shown: repr hides it),
    concurrency, per-request timeout and retries."""

    base_url: str
    key: str | None = None
    max_concurrency: int = 64
    timeout_s: float = 300.0
    max_retries: int = 5

    def __repr__(self) -> str:  # the key must never reach a log or a traceback
        return (f"Http(base_url={self.base_url!r}, key={'***' if self.key else None}, "
                f"max_concurrency={self.max_concurrency})")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


def get_json(http: Http, path: str) -> Any:
    """One GET (e.g. /models), with the same retries."""
    return asyncio.run(_send_all(http, "GET", path, [None]))[0]


def post_all(http: Http, path: str, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST every body to base_url + path, all in flight together (at most max_concurrency at
    once); the parsed JSON answers in body order. Raises EngineUnavailable after retries."""
    if not bodies:
        return []
    return asyncio.run(_send_all(http, "POST", path, list(bodies)))


async def _send_all(http: Http, method: str, path: str, bodies: list[Any]) -> list[Any]:
    import httpx

    limits = httpx.Limits(max_connections=http.max_concurrency,
                          max_keepalive_connections=http.max_concurrency)
    timeout = httpx.Timeout(http.timeout_s, connect=min(http.timeout_s, 30.0))
    gate = asyncio.Semaphore(http.max_concurrency)
    url = http.base_url.rstrip("/") + path
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=http.headers) as client:
        tasks = [asyncio.create_task(_send_one(client, gate, http, method, url, b))
                 for b in bodies]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:  # one request gave up: the batch is lost, stop the rest now
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


async def _send_one(client: Any, gate: asyncio.Semaphore, http: Http, method: str, url: str,
                    body: Any) -> Any:
    import httpx

    what = ""
    for attempt in range(http.max_retries + 1):
        wait = min(BACKOFF_CAP_S, 0.5 * 2 ** attempt) * (0.5 + random.random() / 2)
        async with gate:
            try:
                resp = await client.request(method, url, json=body)
            except httpx.TimeoutException as exc:
                what = f"no answer within {http.timeout_s:g} s ({type(exc).__name__})"
                resp = None
            except httpx.TransportError as exc:
                what = f"connection failed ({type(exc).__name__}: {exc})"
                resp = None
        if resp is not None:
            if resp.status_code < 400:
                return resp.json()
            what = f"HTTP {resp.status_code}: {_error_text(resp)}"
            if resp.status_code not in RETRY_STATUS:
                raise PrefixoptError(f"{url} refused the request ({what})")
            after = resp.headers.get("retry-after", "")
            if after.replace(".", "", 1).isdigit():
                wait = min(float(after), 120.0)
        if attempt < http.max_retries:
            await asyncio.sleep(wait)
    raise EngineUnavailable(f"{url}: {what}, still after {http.max_retries} retries")


def _error_text(resp: Any) -> str:
    """The server's own error message, one line (OpenAI and vLLM put it in error.message)."""
    try:
        data = resp.json()
        msg = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else (
            data.get("message") or data.get("detail") or data.get("error"))
        text = str(msg or resp.text)
    except Exception:  # noqa: BLE001 - not JSON
        text = resp.text
    return " ".join(text.split())[:300]
