"""Checks of common.py on the HTML report as Chromium rendered it (scripts/report-check.sh): its
screenshot (a PNG) and its DOM (the charts and their marks)."""
import html.parser, re, struct, zlib

from check_helpers import err, require


def png(path, width, height):
    """A valid 8-bit PNG of WIDTHxHEIGHT, not blank, with the first series colour (#4E79A7) painted."""
    data = open(path, "rb").read()
    require(data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path}: not a PNG (no signature)")
    pos, idat, header = 8, [], None
    while True:
        require(pos + 8 <= len(data), f"{path}: no IEND chunk" if pos == len(data) else f"{path}: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        require(len(body) == length and len(crc) == 4, f"{path}: truncated {kind!r} chunk")
        require(struct.unpack(">I", crc)[0] == zlib.crc32(kind + body), f"{path}: bad CRC in the {kind.decode(errors='replace')} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    require(header and idat, f"{path}: no IHDR or no IDAT chunk")
    w, h, depth, colour, _, _, interlace = header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    require(depth == 8 and bpp and interlace == 0, f"{path}: unexpected PNG format (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    require(len(raw) == h * (stride + 1), f"{path}: image data is {len(raw)} bytes, expected {h * (stride + 1)} for {w}x{h}")
    require((w, h) == (int(width), int(height)), f"{path}: {w}x{h}, expected {width}x{height}")
    require(bpp >= 3, f"{path}: a grey image (colour type with {bpp} channel(s)); the charts are in colour")
    prev, non_white, series = bytearray(stride), 0, 0
    for y in range(h):  # undo the filters: None, Sub, Up, Average, Paeth
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        require(kind <= 4, f"bad filter type {kind} in row {y}")
        for i in range(stride) if kind else ():
            a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                pred = (a, b, (a + b) >> 1)[kind - 1]
            line[i] = (line[i] + pred) & 0xFF
        for i in range(0, stride, bpp):
            r, g, b = line[i:i + 3]
            if r < 245 or g < 245 or b < 245:
                non_white += 1
                series += abs(r - 0x4E) < 12 and abs(g - 0x79) < 12 and abs(b - 0xA7) < 12
        prev = line
    err(f"{path}: {w}x{h}, {non_white} non-white pixels ({100 * non_white / (w * h):.2f}%), {series} in the first series colour")
    require(non_white >= w * h // 100, f"{path}: nearly blank: {non_white} of {w * h} pixels are not white")
    require(series >= 500, f"{path}: only {series} pixels in the charts' first series colour: the bars were not painted")


class Charts(html.parser.HTMLParser):
    """Per chart (the data-chart of its outer <svg>): the classes of its marks; and what must not be there."""

    def __init__(self):
        super().__init__()
        self.charts, self.current, self.depth, self.bad_numbers, self.scripts, self.external = {}, None, 0, [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.scripts += tag == "script"
        self.external += [f"<{tag} {k}={a[k]}>" for k in ("src", "href") if a.get(k) and not a[k].startswith("#")]
        if tag == "svg":
            if self.current is None:
                self.current = a.get("data-chart", "?")
                self.charts.setdefault(self.current, {})
            self.depth += 1
        elif self.current is not None and "mark" in (a.get("class") or "").split():
            for c in a["class"].split():
                self.charts[self.current][c] = self.charts[self.current].get(c, 0) + 1
        if self.current is not None:
            self.bad_numbers += [f"<{tag} {k}={a[k]!r}>" for k in ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height")
                                 if k in a and not re.fullmatch(r"-?\d+(\.\d+)?", a[k] or "")]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "svg" and self.current is not None:
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def dom(path, *frontier):
    text = open(path, encoding="utf-8").read()
    p = Charts()
    p.feed(text)
    err(f"{path}: charts and marks {p.charts}")
    require("<body" in text, f"{path}: Chromium dumped no document body")
    need = {"exits": ["bar-samples", "accuracy"], "bytes": ["bar-bytes"], "latency": ["cdf"], "frontier": ["point", "chosen", "run"]}
    problems = []
    for chart in ["exits", "bytes", "latency"] + (["frontier"] if frontier else []):
        if chart not in p.charts:
            problems.append(f"no '{chart}' chart")
        problems += [f"'{chart}' has 0 '{c}' marks" for c in need[chart] if not p.charts.get(chart, {}).get(c)]
    if "frontier" not in p.charts and "No calibration data" not in text:
        problems.append("neither a frontier chart nor the note that there is no calibration data")
    exits, curves = p.charts.get("exits", {}).get("bar-samples", 0), p.charts.get("latency", {}).get("cdf", 0)
    if curves > exits:
        problems.append(f"{curves} latency curves for {exits} exits")
    if p.bad_numbers:
        problems.append(f"{len(p.bad_numbers)} non-numeric SVG attributes, e.g. {p.bad_numbers[0]}")
    if p.scripts or p.external:
        problems.append(f"{p.scripts} scripts, external resources {p.external[:3]}")
    require(not problems, f"{path}: " + "; ".join(problems))
