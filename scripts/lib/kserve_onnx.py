#!/usr/bin/env python3
"""KServe's Python model server (PyPI `kserve`) serving a full network exported to ONNX, for
scripts/bench-serve.sh: Open Inference Protocol (v2) over HTTP and gRPC.

usage: kserve_onnx.py --onnx FILE [--name NAME] [--http-port P] [--grpc-port P] [--threads N]
                      [--max-batch N] [--logits OUTPUT] [--quiet]

The model `--name` (default b-resnet3), version "1", takes `input` FP32 [-1,1,28,28] (any batch of
at most --max-batch, default 64) and answers `class` INT64 [-1] (the argmax) and `probabilities`
FP32 [-1,10] (the softmax of the logits). The logits are the graph output --logits, by default the
graph's last output: the last exit's of scripts/export-onnx.py's full.onnx, the full network's
answer. ONNX Runtime runs it with --threads intra-op threads (default 1) and one inter-op thread.
KServe logs as it does by default (per request: its access line, gRPC method and latency traces)
unless --quiet, which turns its latency logging off and logs warnings and errors only.

Triton's model configuration, which perf_analyzer asks for before it measures, is not part of the
v2 protocol and KServe serves none: this server adds it, as JSON at
GET /v2/models/NAME/config (and /v2/models/NAME/versions/V/config) on KServe's FastAPI app, and as
the `inference.GRPCInferenceService/ModelConfig` method (a ModelConfigResponse of Triton's
model_config.proto, encoded here) next to KServe's gRPC service. Its v2 paths with a version
(/v2/models/NAME/versions/1) KServe refuses ("Model versioning not supported yet"): ask without one.
gRPC answers carry their tensors as raw_output_contents, set here (KServe's own conversion fails on
numpy outputs when the request's inputs were raw); nothing else of KServe changes.
"""

import argparse
import logging
import sys
import uuid


def parse_args():
    p = argparse.ArgumentParser(description="KServe v2 model server over an ONNX file (ONNX Runtime)")
    p.add_argument("--onnx", required=True, help="the ONNX file (scripts/export-onnx.py's full.onnx)")
    p.add_argument("--name", default="b-resnet3", help="the model name (default b-resnet3)")
    p.add_argument("--http-port", type=int, default=8100, help="HTTP port (default 8100)")
    p.add_argument("--grpc-port", type=int, default=8101, help="gRPC port (default 8101)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch accepted (default 64)")
    p.add_argument("--logits", help="the graph output holding the logits (default: its last output)")
    p.add_argument("--quiet", action="store_true", help="no per-request logging (KServe's is on by default)")
    return p.parse_args()


# KServe's model_server module parses sys.argv when imported; it must see none of ours.
ARGS = parse_args()
sys.argv = sys.argv[:1]

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

import kserve  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402
import kserve.model_server  # noqa: E402
import kserve.protocol.grpc.server as kserve_grpc_server  # noqa: E402

VERSION = "1"
IMAGE = [1, 28, 28]
CLASSES = 10


class OnnxModel(kserve.Model):
    def __init__(self, name, path, threads, max_batch, logits):
        super().__init__(name)
        self.path, self.threads, self.max_batch, self.logits = path, threads, max_batch, logits
        self.session = None
        self.load()

    def load(self):
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path} has {len(inputs)} inputs, not 1")
        self.graph_input = inputs[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if self.logits is None:
            self.logits = outputs[-1]
        elif self.logits not in outputs:
            raise ValueError(f"{self.path} has no output {self.logits} (it has {', '.join(outputs)})")
        warm = np.zeros([1] + IMAGE, dtype=np.float32)
        n = self.session.run([self.logits], {self.graph_input: warm})[0].shape[-1]
        if n != CLASSES:
            raise ValueError(f"output {self.logits} has {n} classes, not {CLASSES}")
        self.ready = True
        return self.ready

    def get_input_types(self):
        return [{"name": "input", "datatype": "FP32", "shape": [-1] + IMAGE}]

    def get_output_types(self):
        return [{"name": "class", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, CLASSES]}]

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        if len(payload.inputs) != 1 or payload.inputs[0].name != "input":
            raise InvalidInput("expected one input, named 'input'")
        x = payload.inputs[0].as_numpy()
        if x.dtype != np.float32:
            raise InvalidInput(f"input must be FP32, got {payload.inputs[0].datatype}")
        if x.ndim != 4 or list(x.shape[1:]) != IMAGE or not 1 <= x.shape[0] <= self.max_batch:
            raise InvalidInput(f"input shape must be [N,1,28,28] with 1 <= N <= {self.max_batch}, got {list(x.shape)}")
        logits = self.session.run([self.logits], {self.graph_input: x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        classes = logits.argmax(axis=1).astype(np.int64)
        outputs = [InferOutput("class", list(classes.shape), "INT64", classes),
                   InferOutput("probabilities", list(probabilities.shape), "FP32", probabilities)]
        if payload.from_grpc:
            # KServe's to_grpc tests an ndarray's truth value when the request's inputs were raw
            # (ValueError): gRPC answers get their raw_output_contents set here instead.
            for out in outputs:
                out.set_data_from_numpy(out.data, binary_data=True)
        return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name, model_version=VERSION,
                             infer_outputs=outputs, use_binary_outputs=payload.use_binary_outputs,
                             requested_outputs=payload.request_outputs)


# --- Triton's model configuration ------------------------------------------------------------------
# The tensors as model_config.proto describes them: with max_batch_size > 0 the dims leave out the
# batch dimension; `class` is one value a sample, dims [1] reshaped to [] as Triton writes it.
def triton_config(name, max_batch):
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": max_batch,
        "input": [{"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": IMAGE}],
        "output": [{"name": "class", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}},
                   {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [CLASSES]}],
    }


DATA_TYPES = {"TYPE_INT64": 9, "TYPE_FP32": 11}   # model_config.proto's DataType


def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, value):
    """A protobuf field: an int as a varint, bytes/str/list of ints length-delimited (a list packed)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, list):
        value = b"".join(_varint(v) for v in value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def config_response_bytes(config):
    """Triton's ModelConfigResponse {ModelConfig config = 1} of the JSON above, serialised."""
    def tensor(t, dims_field):
        b = _field(1, t["name"]) + _field(2, DATA_TYPES[t["data_type"]]) + _field(dims_field, t["dims"])
        if "reshape" in t:   # ModelOutput.reshape = 5, ModelTensorReshape {repeated int64 shape = 1}
            b += _field(5, _field(1, t["reshape"]["shape"]) if t["reshape"]["shape"] else b"")
        return b
    # ModelConfig: name 1, platform 2, max_batch_size 4, input 5 (ModelInput: name 1, data_type 2,
    # format 3, dims 4), output 6 (ModelOutput: name 1, data_type 2, dims 3), backend 17.
    m = _field(1, config["name"]) + _field(2, config["platform"]) + _field(4, config["max_batch_size"])
    m += b"".join(_field(5, tensor(t, 4)) for t in config["input"])
    m += b"".join(_field(6, tensor(t, 3)) for t in config["output"])
    m += _field(17, config["backend"])
    return _field(1, m)


def _request_name(data):
    """The `name` (field 1) of a ModelConfigRequest {string name = 1; string version = 2}."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        if key & 7 == 2:
            n, i = _read_varint(data, i)
            if key >> 3 == 1:
                return data[i:i + n].decode()
            i += n
        elif key & 7 == 0:
            _, i = _read_varint(data, i)
        else:
            break
    return ""


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def add_config_endpoints(name, max_batch):
    config = triton_config(name, max_batch)
    encoded = config_response_bytes(config)

    async def rest_config(model_name: str, model_version: str = VERSION):
        if model_name != name or model_version not in ("", VERSION):
            return JSONResponse({"error": f"no model {model_name} version {model_version}"}, status_code=404)
        return JSONResponse(config)

    app = kserve.model_server.app
    app.add_api_route("/v2/models/{model_name}/config", rest_config, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/config", rest_config, methods=["GET"])

    async def grpc_config(request, context):
        asked = _request_name(request)
        if asked != name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no model {asked}")
        return encoded

    # Raw bytes in and out (no serialisers): the message is encoded above, so none of Triton's
    # generated protobuf modules, whose names clash with KServe's, is loaded.
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelConfig": grpc.unary_unary_rpc_method_handler(grpc_config)})
    add_kserve_service = kserve_grpc_server.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server

    def add_service(servicer, server):
        add_kserve_service(servicer, server)
        server.add_generic_rpc_handlers((handler,))   # asked only for methods KServe's service lacks

    kserve_grpc_server.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server = add_service


def main():
    model = OnnxModel(ARGS.name, ARGS.onnx, ARGS.threads, ARGS.max_batch, ARGS.logits)
    add_config_endpoints(ARGS.name, ARGS.max_batch)
    print(f"serving {ARGS.onnx} ({model.graph_input} -> {model.logits}) as {ARGS.name}, "
          f"http {ARGS.http_port}, grpc {ARGS.grpc_port}, {ARGS.threads} thread(s)", flush=True)
    server = kserve.ModelServer(http_port=ARGS.http_port, grpc_port=ARGS.grpc_port, workers=1,
                                enable_latency_logging=not ARGS.quiet)
    if ARGS.quiet:
        for name in ("kserve", "kserve.trace", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
