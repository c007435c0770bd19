"""SIMPLON REST client (protocols.md 1.2) used by the DECTRIS driver.

Method names follow upstream's DEigerClient (``sendDetectorCommand``,
``detectorConfig``, ...) so user code written against LiberTEM-live keeps
working. Every request has a timeout, and every failure becomes a
:class:`DetectorAPIError` that says which URL failed and why, because "the
acquisition hangs" is the worst possible symptom of a misconfigured DCU.
"""
from __future__ import annotations

import json
from typing import Any

import requests

API_VERSION = "1.8.0"


class DetectorAPIError(RuntimeError):
    """A SIMPLON request failed: no answer, refused, or a non-2xx reply."""

    def __init__(self, message: str, url: str, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


class SimplonClient:
    """Talks to ``http://host:port/<module>/api/1.8.0/...``."""

    def __init__(self, host: str, port: int = 80, timeout: float = 5.0, api_version: str = API_VERSION) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.api_version = api_version
        self._session = requests.Session()

    # ------------------------------------------------------------ plumbing

    def _url(self, module: str, task: str, name: str) -> str:
        return f"http://{self.host}:{self.port}/{module}/api/{self.api_version}/{task}/{name}"

    def _request(self, method: str, url: str, body: Any = None, content_type: str = "application/json; charset=utf-8") -> Any:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            r = self._session.request(method, url, data=data if method == "PUT" else None,
                                      headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise DetectorAPIError(f"{method} {url}: no answer within {self.timeout} s", url) from None
        except requests.ConnectionError as e:
            raise DetectorAPIError(
                f"{method} {url}: connection refused or failed: is the detector control unit reachable "
                f"at {self.host}:{self.port}? ({e.__class__.__name__})", url) from None
        if not 200 <= r.status_code < 300:
            raise DetectorAPIError(
                f"{method} {url}: HTTP {r.status_code}: {r.text[:500]}", url, r.status_code, r.text)
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            raise DetectorAPIError(f"{method} {url}: reply is not JSON: {r.text[:200]!r}", url, r.status_code, r.text) from None

    def _get(self, module: str, task: str, name: str) -> Any:
        return self._request("GET", self._url(module, task, name))

    def _put(self, module: str, task: str, name: str, value: Any = None, has_value: bool = True) -> Any:
        body = {"value": value} if has_value else None
        return self._request("PUT", self._url(module, task, name), body)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "SimplonClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ API

    def version(self, module: str = "detector") -> str:
        """API version string reported by ``module`` (e.g. "1.8.0")."""
        url = f"http://{self.host}:{self.port}/{module}/api/version/"
        reply = self._request("GET", url)
        return reply["value"] if isinstance(reply, dict) else str(reply)

    def sendDetectorCommand(self, name: str, value: Any = None) -> Any:  # noqa: N802 - upstream name
        """PUT detector/command/<name>; ``arm`` returns ``{"sequence id": N}``."""
        url = self._url("detector", "command", name)
        if value is None:
            return self._request("PUT", url, None, content_type="text/html")
        return self._request("PUT", url, {"value": value})

    def sendStreamCommand(self, name: str) -> Any:  # noqa: N802
        return self._request("PUT", self._url("stream", "command", name), None, content_type="text/html")

    def detectorConfig(self, name: str) -> dict[str, Any]:  # noqa: N802
        """The full parameter description (``value``, ``value_type``, ...)."""
        return self._get("detector", "config", name)

    def setDetectorConfig(self, name: str, value: Any) -> list[str]:  # noqa: N802
        """Returns the list of parameters that changed."""
        return self._put("detector", "config", name, value)

    def detectorStatus(self, name: str) -> dict[str, Any]:  # noqa: N802
        return self._get("detector", "status", name)

    def streamConfig(self, name: str) -> dict[str, Any]:  # noqa: N802
        return self._get("stream", "config", name)

    def setStreamConfig(self, name: str, value: Any) -> list[str]:  # noqa: N802
        return self._put("stream", "config", name, value)

    def streamStatus(self, name: str) -> dict[str, Any]:  # noqa: N802
        return self._get("stream", "status", name)

    def fileWriterConfig(self, name: str) -> dict[str, Any]:  # noqa: N802
        return self._get("filewriter", "config", name)

    def setFileWriterConfig(self, name: str, value: Any) -> list[str]:  # noqa: N802
        return self._put("filewriter", "config", name, value)

    def detectorConfigKeys(self) -> list[str]:  # noqa: N802
        return self._get("detector", "config", "keys")
