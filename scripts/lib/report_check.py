#!/usr/bin/env python3
"""Checks of the device's HTML report as Chromium rendered it, for scripts/report-check.sh.

    report_check.py png FILE WIDTH HEIGHT   a valid PNG of that size that is not blank
    report_check.py dom FILE [--frontier]   the dumped DOM has the charts and their marks

Each prints nothing and exits 0 on success, or prints why on its last line and
exits 1. Standard library only: the PNG is decoded with zlib.
"""
import html.parser
import re
import struct
import sys
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The first series colour of the charts (ChartPalette.series[0]): the first exit's bars.
FIRST_SERIES = (0x4E, 0x79, 0xA7)


def fail(why):
    print(why)
    sys.exit(1)


def read_png(path):
    """(width, height, channels, rows of raw pixel bytes) of an 8-bit, non-interlaced PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(PNG_SIGNATURE):
        fail(f"{path}: not a PNG (no signature)")
    pos, idat, header = len(PNG_SIGNATURE), [], None
    while pos < len(data):
        if pos + 8 > len(data):
            fail(f"{path}: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            fail(f"{path}: truncated {kind!r} chunk")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            fail(f"{path}: bad CRC in the {kind.decode(errors='replace')} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        fail(f"{path}: no IEND chunk")
    if header is None or not idat:
        fail(f"{path}: no IHDR or no IDAT chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        fail(f"{path}: unexpected PNG format (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        fail(f"{path}: image data is {len(raw)} bytes, expected {height * (stride + 1)} for {width}x{height}")
    return width, height, channels, unfilter(raw, width, height, channels)


def unfilter(raw, width, height, bpp):
    """The PNG filters undone, row by row (None, Sub, Up, Average, Paeth)."""
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif kind != 0:
            fail(f"bad filter type {kind} in row {y}")
        rows.append(line)
        prev = line
    return rows


def check_png(path, width, height):
    w, h, channels, rows = read_png(path)
    if (w, h) != (width, height):
        fail(f"{path}: {w}x{h}, expected {width}x{height}")
    if channels < 3:
        fail(f"{path}: a grey image (colour type with {channels} channel(s)); the charts are in colour")
    non_white = series = 0
    for line in rows:
        for i in range(0, len(line), channels):
            r, g, b = line[i], line[i + 1], line[i + 2]
            if r < 245 or g < 245 or b < 245:
                non_white += 1
                if abs(r - FIRST_SERIES[0]) < 12 and abs(g - FIRST_SERIES[1]) < 12 and abs(b - FIRST_SERIES[2]) < 12:
                    series += 1
    total = w * h
    print(f"{path}: {w}x{h}, {non_white} non-white pixels ({100 * non_white / total:.2f}%), "
          f"{series} in the first series colour", file=sys.stderr)
    if non_white < total // 100:
        fail(f"{path}: nearly blank: {non_white} of {total} pixels are not white")
    if series < 500:
        fail(f"{path}: only {series} pixels in the charts' first series colour: the bars were not painted")


class SVGCounter(html.parser.HTMLParser):
    """Per chart (the data-chart of its <svg>): the classes of the marks inside it."""

    def __init__(self):
        super().__init__()
        self.charts = {}
        self.current = None
        self.depth = 0
        self.numeric_problems = []
        self.scripts = 0
        self.external = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("#"):
                self.external.append(f"<{tag} {key}={a[key]}>")
        if tag == "svg":
            if self.current is None:
                self.current = a.get("data-chart", "?")
                self.charts.setdefault(self.current, [])
            self.depth += 1
        elif self.current is not None:
            classes = (a.get("class") or "").split()
            if "mark" in classes:
                self.charts[self.current].append(" ".join(c for c in classes if c != "mark"))
        for key in ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"):
            if key in a and self.current is not None and not re.fullmatch(r"-?\d+(\.\d+)?", a[key] or ""):
                self.numeric_problems.append(f"<{tag} {key}={a[key]!r}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "svg" and self.current is not None:
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def check_dom(path, frontier):
    with open(path, encoding="utf-8") as f:
        dom = f.read()
    p = SVGCounter()
    p.feed(dom)
    marks = {chart: {} for chart in p.charts}
    for chart, classes in p.charts.items():
        for c in classes:
            marks[chart][c] = marks[chart].get(c, 0) + 1
    print(f"{path}: charts and marks {marks}", file=sys.stderr)
    if "<body" not in dom:
        fail(f"{path}: Chromium dumped no document body")
    problems = []
    expected = ["exits", "bytes", "latency"] + (["frontier"] if frontier else [])
    for chart in expected:
        if chart not in p.charts:
            problems.append(f"no '{chart}' chart")
    need = {
        "exits": [("bar-samples", 1), ("accuracy", 1)],
        "bytes": [("bar-bytes", 1)],
        "latency": [("cdf", 1)],
        "frontier": [("point", 1), ("chosen", 1), ("run", 1)],
    }
    for chart in expected:
        for cls, least in need[chart]:
            n = sum(v for k, v in marks.get(chart, {}).items() if cls in k.split())
            if n < least:
                problems.append(f"'{chart}' has {n} '{cls}' marks")
    if "frontier" not in p.charts and "No calibration data" not in dom:
        problems.append("neither a frontier chart nor the note that there is no calibration data")
    exits = marks.get("exits", {}).get("bar-samples", 0)
    curves = marks.get("latency", {}).get("cdf", 0)
    if curves > exits:
        problems.append(f"{curves} latency curves for {exits} exits")
    if p.numeric_problems:
        problems.append(f"{len(p.numeric_problems)} non-numeric SVG attributes, e.g. {p.numeric_problems[0]}")
    if p.scripts or p.external:
        problems.append(f"{p.scripts} scripts, external resources {p.external[:3]}")
    if problems:
        fail(f"{path}: " + "; ".join(problems))


def main(argv):
    if len(argv) >= 5 and argv[1] == "png":
        check_png(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) >= 3 and argv[1] == "dom":
        check_dom(argv[2], "--frontier" in argv[3:])
    else:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
