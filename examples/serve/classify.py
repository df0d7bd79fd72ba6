"""Classifies test images through a Branchy device's front door with Triton's own HTTP client.

usage: python3 examples/serve/classify.py [--grpc] [--url HOST:PORT] [--model b-resnet3] IMAGES.gz INDEX...

IMAGES.gz is an IDX images file (e.g. data/fashion-mnist/t10k-images-idx3-ubyte.gz); each INDEX is
one image of it, sent as UINT8 pixels (the device prepares them as its model card says), over HTTP
(default 127.0.0.1:8000) or, with --grpc, over gRPC (default 127.0.0.1:8001). Prints,
per image, the class, the exit and tier that answered, the bytes sent upward and the time taken.
"""
import argparse
import gzip

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--grpc", action="store_true", help="use gRPC instead of HTTP")
parser.add_argument("--url", help="the front door (default 127.0.0.1:8000, or 127.0.0.1:8001 with --grpc)")
parser.add_argument("--model", default="b-resnet3")
parser.add_argument("images")
parser.add_argument("index", type=int, nargs="+")
args = parser.parse_args()

raw = gzip.open(args.images).read()
count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 1, rows, cols)

if args.grpc:
    import tritonclient.grpc as triton
else:
    import tritonclient.http as triton
client = triton.InferenceServerClient(url=args.url or ("127.0.0.1:8001" if args.grpc else "127.0.0.1:8000"))
for i in args.index:
    image = triton.InferInput("input", [1, 1, rows, cols], "UINT8")
    image.set_data_from_numpy(pixels[i:i + 1])
    outputs = [triton.InferRequestedOutput("class"), triton.InferRequestedOutput("probabilities")]
    result = client.infer(args.model, [image], outputs=outputs)
    if args.grpc:
        p = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in result.get_response().parameters.items()}
    else:
        p = result.get_response()["parameters"]
    cls = int(result.as_numpy("class")[0])
    confidence = float(result.as_numpy("probabilities")[0][cls])
    print(f"image {i}: class {cls} (p={confidence:.3f}) from {p['exit']} on the {p['tier']}, "
          f"{p['upward_bytes']} bytes upward, {p['latency_us']} µs")
