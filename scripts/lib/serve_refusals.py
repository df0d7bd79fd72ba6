"""Hostile and odd requests against a Branchy front door, over a real socket: each must get its
status and the protocol's error body, and the server must go on answering.

usage: serve_refusals.py HOST:PORT MODEL IMAGES.gz EVAL.jsonl [--device-only N]

Prints one line per case that went wrong (nothing when all went right) and a summary line.
--device-only N also sends the first N test images with `device_only: true` and checks that every
answer came from the device, degraded exactly where branchy eval's answer came from upstream.
"""
import gzip
import http.client
import json
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    device_only = 0
    if "--device-only" in args:
        i = args.index("--device-only"); device_only = int(args[i + 1]); del args[i:i + 2]
    address, model, images_path, eval_path = args
    host, port = address.rsplit(":", 1)
    port = int(port)
    raw = gzip.open(images_path).read()
    pixels = raw[16:]
    expected = [json.loads(line) for line in open(eval_path)]
    infer = f"/v2/models/{model}/infer"
    problems = []

    def request(method, path, body=b"", headers=None):
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request(method, path, body, headers or {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def image(i, dtype="UINT8", shape=(1, 1, 28, 28)):
        px = list(pixels[i * 784:(i + 1) * 784])
        return {"name": "input", "datatype": dtype, "shape": list(shape), "data": px if dtype != "FP32" else [p / 255 for p in px]}

    def expect(name, status, want, data, contains=None):
        if status != want:
            problems.append(f"{name}: status {status}, expected {want}: {data[:200]!r}")
            return
        if want != 200:
            try:
                error = json.loads(data)["error"]
            except Exception:
                problems.append(f"{name}: status {status} without the protocol's error body: {data[:200]!r}")
                return
            if contains and contains not in error:
                problems.append(f"{name}: error {error!r} does not say {contains!r}")

    cases = [
        ("unknown model", "POST", f"/v2/models/nope/infer", json.dumps({"inputs": [image(0)]}), 404, "no model 'nope'"),
        ("unknown path", "GET", "/v2/nothing", "", 404, None),
        ("wrong method", "GET", infer, "", 405, None),
        ("malformed JSON", "POST", infer, '{"inputs": [', 400, None),
        ("wrong datatype", "POST", infer, json.dumps({"inputs": [image(0, "INT64")]}), 400, "INT64"),
        ("FP32 of the wrong shape", "POST", infer, json.dumps({"inputs": [dict(image(0, "FP32"), shape=[1, 28, 28, 1])]}), 400, "shape"),
        ("elements not matching the shape", "POST", infer, json.dumps({"inputs": [dict(image(0), shape=[1, 1, 28, 27])]}), 400, None),
        ("unknown input", "POST", infer, json.dumps({"inputs": [dict(image(0), name="x")]}), 400, "unknown input 'x'"),
        ("unknown output", "POST", infer, json.dumps({"inputs": [image(0)], "outputs": [{"name": "logits"}]}), 400, "unknown output 'logits'"),
        ("too many samples", "POST", infer, json.dumps({"inputs": [{"name": "input", "datatype": "UINT8", "shape": [65, 1, 28, 28], "data": [0] * (65 * 784)}]}), 400, "65 samples"),
        ("deadline_ms not a number", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"deadline_ms": "soon"}}), 400, "deadline_ms"),
        ("device_only not a boolean", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"device_only": 1}}), 400, "device_only"),
        ("thresholds not numbers", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": "low,high"}}), 400, "'low'"),
        ("thresholds for too many exits", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": "1,1,1"}}), 400, "3 entries"),
        ("a threshold for an unknown exit", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": "middle=1"}}), 400, "'middle'"),
        ("a threshold for the last exit", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": "cloud-exit=1"}}), 400, "always answers"),
        ("a negative threshold", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": -1}}), 403, "range this device allows"),
        ("thresholds of the wrong type", "POST", infer, json.dumps({"inputs": [image(0)], "parameters": {"thresholds": True}}), 400, "thresholds"),
    ]
    for name, method, path, body, want, contains in cases:
        status, data = request(method, path, body.encode())
        expect(name, status, want, data, contains)

    # Binary tensor data whose sizes lie.
    header = json.dumps({"inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 1, 28, 28], "parameters": {"binary_data_size": 784}}]}).encode()
    status, data = request("POST", infer, header + bytes(700), {"Inference-Header-Content-Length": str(len(header))})
    expect("binary data shorter than it says", status, 400, data)
    status, data = request("POST", infer, header + bytes(784), {"Inference-Header-Content-Length": str(len(header) + 5000)})
    expect("a header length past the body", status, 400, data)

    # A body over the limit is refused from its Content-Length, before it is sent.
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(f"POST {infer} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
    reply = s.recv(4096).decode(errors="replace")
    s.close()
    if not reply.startswith("HTTP/1.1 413"):
        problems.append(f"a 1 GiB Content-Length: {reply[:80]!r}, expected 413 at once")

    # A client that stops mid-request holds nothing for long: the server is still answering.
    stalled = socket.create_connection((host, port), timeout=10)
    stalled.sendall(f"POST {infer} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{{\"inputs\":".encode())
    status, data = request("POST", infer, json.dumps({"inputs": [image(0)]}).encode())
    expect("an answer while another client stalls", status, 200, data)
    stalled.close()

    # device_only: every answer from the device, degraded exactly where eval went upward.
    degraded = 0
    for i in range(device_only):
        status, data = request("POST", infer, json.dumps({"inputs": [image(i)], "parameters": {"device_only": True}}).encode())
        if status != 200:
            problems.append(f"device_only image {i}: status {status}: {data[:200]!r}")
            break
        p = json.loads(data)["parameters"]
        upward = expected[i]["exit"] > 0
        if p["tier"] != "device" or p["upward_bytes"] != 0 or (p["status"] == "degraded") != upward:
            problems.append(f"device_only image {i}: {p}, while branchy eval answers at exit {expected[i]['exit']}")
            break
        degraded += upward

    status, data = request("GET", f"/v2/models/{model}/ready")
    expect("ready after all this", status, 200, data)
    for line in problems:
        print(line)
    checked = len(cases) + 6
    print(f"{checked - len(problems) if len(problems) < checked else 0} of {checked} refusal cases as expected"
          + (f"; device_only: {device_only} answered on the device, {degraded} of them degraded" if device_only else ""))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
