"""The SIMPLON REST client: the DECTRIS control plane (configure, arm, disarm).

Method names follow upstream's DEigerClient (``sendDetectorCommand``,
``detectorConfig``, ...) so user code written against LiberTEM-live keeps
working. Every request has a timeout, and every failure becomes a
:class:`DetectorAPIError` that says which URL failed and why, because "the
acquisition hangs" is the worst possible symptom of a misconfigured DCU.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import requests

from libertem_live_dectris.errors import DetectorAPIError
from libertem_live_dectris.wire import SeriesConfig

API_VERSION = "1.8.0"

__all__ = ["API_VERSION", "DetectorAPIError", "SimplonClient", "read_darray"]


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

    # ------------------------------------------------------------ helpers of the driver

    def series_config(self) -> SeriesConfig:
        """The configuration the next series will have, read back from the
        detector (what the stream's header will announce)."""
        raw = {k: self.detectorConfig(k)["value"] for k in (
            "trigger_mode", "nimages", "ntrigger", "x_pixels_in_detector",
            "y_pixels_in_detector", "bit_depth_image", "compression")}
        return SeriesConfig(trigger_mode=raw["trigger_mode"], nimages=int(raw["nimages"]),
                            ntrigger=int(raw["ntrigger"]),
                            width=int(raw["x_pixels_in_detector"]),
                            height=int(raw["y_pixels_in_detector"]),
                            bit_depth=int(raw["bit_depth_image"]),
                            compression=raw["compression"], raw=raw)

    def pixel_mask(self) -> np.ndarray:
        """The detector's pixel mask, (height, width); nonzero = defective."""
        return read_darray(self.detectorConfig("pixel_mask")["value"])


def read_darray(value: dict[str, Any]) -> np.ndarray:
    """Decode a SIMPLON "darray" (base64 data, numpy type, shape width-first)."""
    if "base64" not in value.get("filters", ["base64"]):
        raise ValueError(f"unsupported darray filters {value.get('filters')!r}")
    raw = base64.b64decode(value["data"])
    shape = value["shape"]
    return np.frombuffer(raw, dtype=value["type"]).reshape((shape[1], shape[0]))
