"""Merlin headers: the acquisition header (``HDR``) and per-frame ``MQ1`` headers.

Builders are used by the simulator, parsers by receivers; both live here so that a round trip is testable in one place and
the field order is written down once.

Geometry conventions: for sorted ``U..`` formats the header's
width/height are the final image size (quad 512x512, or 514x514 for ``2x2G``).
For raw ``R64`` they give the raw chip arrangement (one chip 256x256, quad
1024x256) and the decoded image size follows from the layout. For raw 24 bit
our simulator doubles the header width (two consecutive 12-bit images, see
``decode.py``), matching the LiberTEM MIB reader, which halves it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional

from .errors import MerlinProtocolError

CHIP = 256  # Medipix3 chip edge in pixels
GAP = 2  # gap pixels between chips in "G" layouts
COUNTER_DEPTHS = (1, 6, 12, 24)
PIXEL_FORMATS = ("U01", "U08", "U16", "U32", "U64", "R64")
LAYOUTS = ("1x1", "2x2", "2x2G", "Nx1", "Nx1G")

KEY_FRAMES = "Frames in Acquisition (Number)"
KEY_FRAMES_PER_TRIGGER = "Frames per Trigger (Number)"
KEY_SCAN_X = "ScanX"
KEY_SCAN_Y = "ScanY"
KEY_COUNTER_DEPTH = "Counter Depth (number)"
KEY_ASSEMBLY = "Assembly Size (NX1, 2X2)"


def data_offset_for(num_chips: int) -> int:
    """Frame header length: 256 + 128 per chip (384 single, 768 quad)."""
    return 256 + 128 * num_chips


def sorted_format_for(counter_depth: int) -> str:
    """Sorted pixel format for a counter depth (1,6 -> U08; 12 -> U16; 24 -> U32)."""
    try:
        return {1: "U08", 6: "U08", 12: "U16", 24: "U32"}[counter_depth]
    except KeyError:
        raise ValueError(f"counter depth must be one of {COUNTER_DEPTHS}, "
                         f"got {counter_depth!r}") from None


def layout_gap(layout: str) -> int:
    return GAP if layout.endswith("G") else 0


def decoded_shape(layout: str) -> tuple[int, int]:
    """Assembled image shape (H, W) of a chip layout (1x1 / 2x2 / 2x2G)."""
    if layout == "1x1":
        return (CHIP, CHIP)
    if layout in ("2x2", "2x2G"):
        s = 2 * CHIP + layout_gap(layout)
        return (s, s)
    raise ValueError(f"no fixed image shape for layout {layout!r}")


def num_chips_for(layout: str) -> int:
    if layout == "1x1":
        return 1
    if layout in ("2x2", "2x2G"):
        return 4
    raise ValueError(f"unsupported layout {layout!r}")


def header_geometry(layout: str, pixel_format: str, counter_depth: int) -> tuple[int, int]:
    """(width, height) as written in an MQ1 header for this configuration."""
    if pixel_format == "R64":
        chips = num_chips_for(layout)
        w = CHIP * chips * (2 if counter_depth == 24 else 1)
        return (w, CHIP)
    h, w = decoded_shape(layout)
    return (w, h)


# ---------------------------------------------------------------------------
# acquisition header
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AcquisitionHeader:
    """The parsed ``HDR`` message (only the keys a receiver needs are typed)."""

    frames_in_acquisition: int  # 0 = continuous
    frames_per_trigger: int
    scan_x: Optional[int] = None
    scan_y: Optional[int] = None
    counter_depth: Optional[int] = None
    assembly_size: Optional[str] = None
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def nav_shape(self) -> Optional[tuple[int, int]]:
        """(ScanY, ScanX) when the header has both, else None."""
        if self.scan_x is None or self.scan_y is None:
            return None
        return (self.scan_y, self.scan_x)


def build_acquisition_header(
    frames_in_acquisition: int,
    frames_per_trigger: int,
    *,
    scan_x: Optional[int] = None,
    scan_y: Optional[int] = None,
    counter_depth: Optional[int] = None,
    assembly_size: Optional[str] = None,
    extra: Optional[Mapping[str, str]] = None,
    pad_to: int = 2048,
) -> bytes:
    """The ``HDR`` payload (without MPX prefix), space-padded to ``pad_to`` bytes.

    Lines are ``Key:<TAB>Value`` joined by ``\\r\\n`` as the Merlin software
    writes them; a longer header is padded to the next multiple of ``pad_to``.
    """
    items: list[tuple[str, str]] = [
        ("Time and Date Stamp (day, mnth, yr, hr, min, s)", "01/01/2026 00:00:00"),
        ("Chip ID", "W000_A0"),
        ("Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX)", "Medipix 3RX"),
        (KEY_ASSEMBLY, f"{assembly_size:>6}" if assembly_size else "   1x1"),
        ("Chip Mode  (SPM, CSM, CM, CSCM)", "SPM"),
        ("Counter Depth (number)", str(counter_depth) if counter_depth else "12"),
        ("Gain", "SLGM"),
        ("Active Counters", "Alternating"),
        ("Thresholds (keV)", "1.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,"
                             "0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0"),
        (KEY_FRAMES, str(int(frames_in_acquisition))),
        (KEY_FRAMES_PER_TRIGGER, str(int(frames_per_trigger))),
        ("Trigger Start (Positive, Negative, Internal)", "Internal"),
        ("Trigger Stop (Positive, Negative, Internal)", "Internal"),
        ("Sensor Bias (V)", "120 V"),
        ("Software Version", "libertem_live_merlin sim"),
    ]
    if counter_depth is None:
        items = [kv for kv in items if kv[0] != KEY_COUNTER_DEPTH]
    if scan_x is not None:
        items.append((KEY_SCAN_X, str(int(scan_x))))
    if scan_y is not None:
        items.append((KEY_SCAN_Y, str(int(scan_y))))
    for k, v in (extra or {}).items():
        items.append((k, v))
    text = "HDR,\t\r\n" + "".join(f"{k}:\t{v}\r\n" for k, v in items) + "End\t"
    b = text.encode("latin-1")
    if pad_to > 0:
        size = -(-len(b) // pad_to) * pad_to
        b = b + b" " * (size - len(b))
    return b


def _int_field(value: str, what: str, context: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise MerlinProtocolError(
            f"{what} is not an integer: {value!r} (in {context})") from None


def parse_acquisition_header(payload: bytes | bytearray | memoryview) -> AcquisitionHeader:
    """Parse an ``HDR`` payload.

    Lines split at the first ``:``, both sides trimmed, parsing stops at the
    line ``End``. The two frame-count keys are required.
    """
    raw_bytes = bytes(payload)
    text = raw_bytes.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip() if lines else ""
    if not first.startswith("HDR"):
        raise MerlinProtocolError(
            f"acquisition header does not start with 'HDR': {raw_bytes[:64]!r}")
    fields: dict[str, str] = {}
    ended = False
    for line in lines[1:]:
        stripped = line.strip()
        if stripped == "End":
            ended = True
            break
        if not stripped:
            continue
        if ":" not in line:
            raise MerlinProtocolError(
                f"acquisition header line without ':' separator: {line!r}")
        k, v = line.split(":", 1)
        fields[k.strip()] = v.strip()
    if not ended:
        raise MerlinProtocolError(
            f"acquisition header has no 'End' line (last 64 bytes: {raw_bytes[-64:]!r})")
    for key in (KEY_FRAMES, KEY_FRAMES_PER_TRIGGER):
        if key not in fields:
            raise MerlinProtocolError(
                f"acquisition header lacks required key {key!r}; keys present: "
                f"{sorted(fields)!r}")
    ctx = "acquisition header"

    def opt_int(key: str) -> Optional[int]:
        return _int_field(fields[key], repr(key), ctx) if key in fields else None

    return AcquisitionHeader(
        frames_in_acquisition=_int_field(fields[KEY_FRAMES], repr(KEY_FRAMES), ctx),
        frames_per_trigger=_int_field(fields[KEY_FRAMES_PER_TRIGGER],
                                      repr(KEY_FRAMES_PER_TRIGGER), ctx),
        scan_x=opt_int(KEY_SCAN_X),
        scan_y=opt_int(KEY_SCAN_Y),
        counter_depth=opt_int(KEY_COUNTER_DEPTH),
        assembly_size=fields.get(KEY_ASSEMBLY),
        raw=fields,
    )


# ---------------------------------------------------------------------------
# frame header
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameHeader:
    """A parsed ``MQ1`` frame header."""

    sequence: int
    data_offset: int
    num_chips: int
    width: int  # as written in the header (raw: chip arrangement)
    height: int
    pixel_format: str  # U01/U08/U16/U32/U64/R64
    layout: str  # stripped: "1x1", "2x2", "2x2G", "Nx1", ...
    chip_select: int = 1
    timestamp: str = ""
    shutter_time_s: float = 0.0
    counter: int = 0
    colour_mode: int = 0
    gain_mode: int = 0
    counter_depth: Optional[int] = None  # from the MQ1A extension
    mq1a_timestamp: Optional[str] = None
    mq1a_shutter_ns: Optional[int] = None

    @property
    def is_raw(self) -> bool:
        return self.pixel_format == "R64"

    @property
    def sig_shape(self) -> tuple[int, int]:
        """Decoded image shape (H, W)."""
        if self.is_raw:
            return decoded_shape(self.layout)
        return (self.height, self.width)

    @property
    def payload_size(self) -> int:
        """Pixel payload bytes that follow this header."""
        if self.is_raw:
            if self.counter_depth is None:
                raise MerlinProtocolError(
                    "R64 frame header has no MQ1A counter depth; cannot size the payload")
            return raw_payload_size(self.counter_depth, self.num_chips)
        bpp = {"U01": 1, "U08": 1, "U16": 2, "U32": 4, "U64": 8}[self.pixel_format]
        return self.width * self.height * bpp


def raw_payload_size(counter_depth: int, num_chips: int) -> int:
    """R64 payload bytes: 256 rows x bytes-per-chip-row x chips (24 bit = 2 x 12 bit)."""
    per_row = {1: 32, 6: 256, 12: 512, 24: 1024}[counter_depth]
    return CHIP * per_row * num_chips


_THRESHOLDS = ("1.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,"
               "0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0")
_DACS = "3RX," + ",".join(["100"] * 27)


def build_frame_header(
    sequence: int,
    *,
    layout: str = "1x1",
    pixel_format: str = "U16",
    counter_depth: int = 12,
    width: Optional[int] = None,
    height: Optional[int] = None,
    shutter_time_s: float = 0.001,
    timestamp: str = "2026-01-01 00:00:00.000000",
    mq1a_timestamp: str = "2026-01-01T00:00:00.000000000Z",
    pad: bytes = b" ",
) -> bytes:
    """An MQ1 header padded to its data offset (384 one chip, 768 four chips).

    Width/height default to :func:`header_geometry`. Includes thresholds, one
    DAC block per chip and the ``MQ1A`` extension with the counter depth.
    """
    chips = num_chips_for(layout)
    offset = data_offset_for(chips)
    if width is None or height is None:
        w, h = header_geometry(layout, pixel_format, counter_depth)
        width = w if width is None else width
        height = h if height is None else height
    chip_select = (1 << chips) - 1
    dacs = ",".join([_DACS] * chips)
    s = (f"MQ1,{sequence:06d},{offset:05d},{chips:02d},{width:04d},{height:04d},"
         f"{pixel_format},{layout:>6},{chip_select:02X},{timestamp},{shutter_time_s:.6f},"
         f"0,0,0,{_THRESHOLDS},{dacs},MQ1A,{mq1a_timestamp},"
         f"{int(round(shutter_time_s * 1e9))}ns,{counter_depth},")
    b = s.encode("ascii")
    if len(b) > offset:
        raise ValueError(f"MQ1 header is {len(b)} bytes, more than its data offset {offset}")
    return b + pad * (offset - len(b))


def peek_data_offset(buf: bytes | bytearray | memoryview) -> int:
    """Data offset (third field) of an MQ1 header, checked but not fully parsed.

    Normally bytes 11-15; found by commas so that sequence numbers beyond
    999999 (7 digits, as our simulator then writes them) still parse.
    """
    raw = bytes(buf[:32])
    parts = raw.split(b",", 3)
    if raw[:4] != b"MQ1," or len(parts) < 4 or not parts[2].isdigit():
        raise MerlinProtocolError(
            f"frame header does not start with 'MQ1,<sequence>,<5-digit data offset>,': "
            f"{raw!r}")
    return int(parts[2])


def _split_header_text(buf: bytes | bytearray | memoryview) -> tuple[str, list[str]]:
    raw = bytes(buf[:4096])
    if raw[:4] != b"MQ1,":
        raise MerlinProtocolError(
            f"frame header does not start with 'MQ1,': {raw[:48]!r}")
    offset = peek_data_offset(raw)
    text = raw[:offset].rstrip(b"\x00 ").decode("latin-1")
    return text, text.split(",")


def parse_frame_header(buf: bytes | bytearray | memoryview) -> FrameHeader:
    """Parse an MQ1 header (``buf`` may extend beyond it into the payload)."""
    text, parts = _split_header_text(buf)
    if len(parts) < 14:
        raise MerlinProtocolError(
            f"frame header has {len(parts)} fields, need at least 14: {text[:120]!r}")

    def num(i: int, what: str, conv=int):
        try:
            return conv(parts[i].strip())
        except ValueError:
            raise MerlinProtocolError(
                f"frame header field {i} ({what}) is not a number: {parts[i]!r} "
                f"(header {text[:80]!r})") from None

    seq = num(1, "sequence number")
    offset = num(2, "data offset")
    chips = num(3, "number of chips")
    width = num(4, "width")
    height = num(5, "height")
    fmt = parts[6].strip()
    if fmt not in PIXEL_FORMATS:
        raise MerlinProtocolError(
            f"frame header pixel format {parts[6]!r} is not one of {PIXEL_FORMATS}")
    layout = parts[7].strip()
    if layout not in LAYOUTS:
        raise MerlinProtocolError(
            f"frame header sensor layout {parts[7]!r} is not one of {LAYOUTS}")
    chip_select = num(8, "chip select", lambda s: int(s, 16))
    depth = ts = None
    sh_ns = None
    if "MQ1A" in parts:
        i = parts.index("MQ1A")
        ext = parts[i + 1:]
        if len(ext) < 3:
            raise MerlinProtocolError(
                f"MQ1A extension has {len(ext)} fields, need 3: {ext!r}")
        ts = ext[0].strip()
        sh = ext[1].strip()
        if not (sh.endswith("ns") and sh[:-2].isdigit()):
            raise MerlinProtocolError(f"MQ1A shutter time is not '<int>ns': {sh!r}")
        sh_ns = int(sh[:-2])
        d = ext[2].strip()
        if not d.isdigit() or int(d) not in COUNTER_DEPTHS:
            raise MerlinProtocolError(
                f"MQ1A counter depth {ext[2]!r} is not one of {COUNTER_DEPTHS}")
        depth = int(d)
    return FrameHeader(
        sequence=seq, data_offset=offset, num_chips=chips, width=width, height=height,
        pixel_format=fmt, layout=layout, chip_select=chip_select,
        timestamp=parts[9].strip(), shutter_time_s=num(10, "shutter time", float),
        counter=num(11, "counter"), colour_mode=num(12, "colour mode"),
        gain_mode=num(13, "gain mode"), counter_depth=depth, mq1a_timestamp=ts,
        mq1a_shutter_ns=sh_ns,
    )


def with_sequence(header: FrameHeader, sequence: int) -> FrameHeader:
    return dataclasses.replace(header, sequence=sequence)
