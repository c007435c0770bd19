"""The simulator's SIMPLON REST subset (API 1.8.0) over stdlib HTTP.

Only routing, parameter validation and JSON replies live here; what a
command *does* is the simulator's business (:class:`CommandTarget`). The
server speaks HTTP/1.0 (one request per connection), so no handler thread
lingers on a keep-alive connection after ``stop()``.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

API_VERSION = "1.8.0"
MODULES = ("detector", "stream", "filewriter", "monitor", "system")


class RestError(Exception):
    """Turned into an HTTP error reply with a JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Param:
    """Description of one config parameter: type, access and allowed values."""

    value_type: str  # "uint", "float", "string", "bool", "int", "darray"
    access: str = "rw"
    allowed: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None

    def describe(self, value: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"value": value, "value_type": self.value_type, "access_mode": self.access}
        if self.allowed is not None:
            d["allowed_values"] = list(self.allowed)
        if self.min is not None:
            d["min"] = self.min
        if self.max is not None:
            d["max"] = self.max
        if self.unit is not None:
            d["unit"] = self.unit
        return d

    def coerce(self, name: str, value: Any) -> Any:
        """Validate a PUT value; RestError(400) if it does not fit."""
        if self.access != "rw":
            raise RestError(400, f"{name} is read-only")
        t = self.value_type
        try:
            if t == "uint" or t == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                value = int(value)
                if t == "uint" and value < 0:
                    raise ValueError
            elif t == "float":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
            elif t == "bool":
                if not isinstance(value, bool):
                    raise ValueError
            elif t == "string":
                if not isinstance(value, str):
                    raise ValueError
        except (TypeError, ValueError):
            raise RestError(400, f"invalid value {value!r} for {name} (expected {t})") from None
        if self.allowed is not None and value not in self.allowed:
            raise RestError(400, f"invalid value {value!r} for {name}, allowed: {list(self.allowed)}")
        if self.min is not None and value < self.min:
            raise RestError(400, f"{name}={value!r} below minimum {self.min}")
        if self.max is not None and value > self.max:
            raise RestError(400, f"{name}={value!r} above maximum {self.max}")
        return value


DETECTOR_PARAMS: dict[str, Param] = {
    "x_pixels_in_detector": Param("uint", "r"),
    "y_pixels_in_detector": Param("uint", "r"),
    "bit_depth_image": Param("uint", "r"),
    "bit_depth_readout": Param("uint", "r"),
    "count_time": Param("float", min=1e-7, max=3600.0, unit="s"),
    "frame_time": Param("float", min=1e-7, max=3600.0, unit="s"),
    "nimages": Param("uint", min=1, max=2**31 - 1),
    "ntrigger": Param("uint", min=1, max=2**31 - 1),
    "trigger_mode": Param("string", allowed=("exte", "exts", "inte", "ints")),
    "compression": Param("string", allowed=("bslz4", "lz4", "none")),
    "roi_mode": Param("string", allowed=("disabled", "merge2x2", "lines")),
    "roi_y_size": Param("uint", min=2, max=4096),
    "roi_bit_depth": Param("uint", allowed=(8, 16)),
    "mask_to_zero": Param("bool"),
    "auto_summation": Param("bool"),
    "countrate_correction_applied": Param("bool"),
    "description": Param("string", "r"),
    "detector_number": Param("string", "r"),
    "software_version": Param("string", "r"),
    "sensor_material": Param("string", "r"),
    "x_pixel_size": Param("float", "r", unit="m"),
    "y_pixel_size": Param("float", "r", unit="m"),
    "pixel_mask": Param("darray", "r"),
}

STREAM_PARAMS: dict[str, Param] = {
    "mode": Param("string", allowed=("enabled", "disabled")),
    "header_detail": Param("string", allowed=("all", "basic", "none")),
    # appendices would add message parts the simulator does not produce
    "header_appendix": Param("string", allowed=("",)),
    "image_appendix": Param("string", allowed=("",)),
    # stream V1 (legacy JSON parts) or stream V2 (CBOR)
    "format": Param("string", allowed=("legacy", "cbor")),
}

FILEWRITER_PARAMS: dict[str, Param] = {
    "mode": Param("string", allowed=("enabled", "disabled")),
    "name_pattern": Param("string"),
    "nimages_per_file": Param("uint", max=2**31 - 1),
}


def darray(arr: np.ndarray) -> dict[str, Any]:
    """Encode a 2-D array as a SIMPLON "darray" value (shape is [x, y])."""
    arr = np.ascontiguousarray(arr)
    return {
        "__darray__": [1, 0, 0],
        "type": arr.dtype.str,
        "shape": [int(arr.shape[1]), int(arr.shape[0])],
        "filters": ["base64"],
        "data": base64.b64encode(arr.tobytes()).decode(),
    }


class CommandTarget(Protocol):
    """What the REST layer needs from the simulator."""

    lock: threading.RLock
    detector_config: dict[str, Any]
    stream_config: dict[str, Any]
    filewriter_config: dict[str, Any]

    def detector_status(self) -> dict[str, Any]: ...
    def stream_status(self) -> dict[str, Any]: ...
    def check_detector_put(self, name: str, value: Any) -> list[str]: ...
    def command(self, module: str, name: str, value: Any) -> dict[str, Any]: ...
    def pixel_mask(self) -> np.ndarray: ...


class SimplonApp:
    """Request router: (method, path, body) -> (status, JSON-able reply)."""

    def __init__(self, target: CommandTarget) -> None:
        self.t = target

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        try:
            return 200, self._route(method, path, body)
        except RestError as e:
            return e.status, {"error": str(e)}

    def _route(self, method: str, path: str, body: bytes) -> Any:
        path = path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if len(parts) < 3 or parts[0] not in MODULES or parts[1] != "api":
            raise RestError(404, f"unknown path {path}")
        module = parts[0]
        if parts[2] == "version" and len(parts) == 3:
            if method != "GET":
                raise RestError(405, f"{method} not allowed on {path}")
            return {"value": API_VERSION, "value_type": "string"}
        if parts[2] != API_VERSION:
            raise RestError(404, f"unsupported API version {parts[2]!r} (have {API_VERSION})")
        if len(parts) != 5:
            raise RestError(404, f"unknown path {path}")
        task, name = parts[3], parts[4]
        if task == "config":
            return self._config(method, module, name, body, path)
        if task == "status":
            if method != "GET":
                raise RestError(405, f"{method} not allowed on {path}")
            return self._status(module, name, path)
        if task == "command":
            if method != "PUT":
                raise RestError(405, f"{method} not allowed on {path}")
            value = None
            if body.strip():
                try:
                    value = json.loads(body).get("value")
                except (ValueError, AttributeError):
                    value = None  # LT-live sends empty text/html bodies; tolerate junk
            return self.t.command(module, name, value)
        raise RestError(404, f"unknown path {path}")

    def _params(self, module: str) -> tuple[dict[str, Param], dict[str, Any]]:
        if module == "detector":
            return DETECTOR_PARAMS, self.t.detector_config
        if module == "stream":
            return STREAM_PARAMS, self.t.stream_config
        if module == "filewriter":
            return FILEWRITER_PARAMS, self.t.filewriter_config
        raise RestError(404, f"module {module} has no configuration in the simulator")

    def _config(self, method: str, module: str, name: str, body: bytes, path: str) -> Any:
        params, store = self._params(module)
        if name == "keys":
            if method != "GET":
                raise RestError(405, f"{method} not allowed on {path}")
            return [k for k in params if k in store or k == "pixel_mask"]
        if name not in params or (name not in store and name != "pixel_mask"):
            raise RestError(404, f"unknown {module} config parameter {name!r}")
        p = params[name]
        if method == "GET":
            with self.t.lock:
                value = darray(self.t.pixel_mask()) if name == "pixel_mask" else store[name]
            return p.describe(value)
        if method != "PUT":
            raise RestError(405, f"{method} not allowed on {path}")
        try:
            obj = json.loads(body)
            value = obj["value"]
        except (ValueError, TypeError, KeyError):
            raise RestError(400, f'PUT {path} needs a JSON body {{"value": ...}}') from None
        value = p.coerce(name, value)
        with self.t.lock:
            if module == "detector":
                changed = self.t.check_detector_put(name, value)
            else:
                changed = [name] if store.get(name) != value else []
            store[name] = value
        return changed

    def _status(self, module: str, name: str, path: str) -> Any:
        if module == "detector":
            st = self.t.detector_status()
        elif module == "stream":
            st = self.t.stream_status()
        elif module == "filewriter":
            st = {"state": "ready" if self.t.filewriter_config.get("mode") == "enabled" else "disabled"}
        else:
            raise RestError(404, f"unknown path {path}")
        if name == "keys":
            return list(st)
        if name not in st:
            raise RestError(404, f"unknown {module} status parameter {name!r}")
        v = st[name]
        return {"value": v, "value_type": "uint" if isinstance(v, int) else "string", "access_mode": "r"}


def make_server(app: SimplonApp, host: str, port: int, verbose: bool) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server for ``app``."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a silent client cannot hold a handler thread forever
        server_version = "libertem-live-dectris-sim"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            status, reply = app.handle(self.command, self.path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_PUT = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if verbose:
                log.info("%s %s", self.address_string(), format % args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    return Server((host, port), Handler)

