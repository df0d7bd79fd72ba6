"""Triton's own client against a Branchy front door: every test sample of an IDX data set, compared
with `branchy eval --predictions` sample by sample.

usage: serve_client.py URL MODEL IMAGES.gz EVAL.jsonl EXIT_NAMES OUT.jsonl [--protocol http|grpc] [--limit N] [--served-by TIER]
                      [--thresholds T]

--thresholds T: every request sets the 'thresholds' parameter to T (EVAL.jsonl must come from
`branchy eval --thresholds` of the same values).

Every answer's time per hop is checked: each link crossed has its round trip, the node beyond it its
own time and the link the difference; a node holds a request at least as long as its own upstream
round trip, and the device's time plus its round trip fit in the latency.

--served-by TIER: the serving node hosts every stage (a cloud-only deployment): every answer must come
from TIER with no bytes upward. Otherwise exactly the answers from exit 0 spent no bytes upward.

EXIT_NAMES: the model's exit names in order, comma-separated (the front door names the exit that
answered; eval gives its index). Requests carry one sample each; they alternate
between FP32 tensors (pixels / 255, as the model takes them) and UINT8 pixels (prepared by the
server from the model card), and between JSON and binary tensor data (HTTP: one at a time; gRPC: 8 in flight). Prints one line of figures
and exits 1 naming the first disagreement.
"""
import gzip
import json
import sys
import time

import numpy as np


def main():
    args = sys.argv[1:]
    protocol, limit, served_by, thresholds = "http", None, None, None
    if "--thresholds" in args:
        i = args.index("--thresholds"); thresholds = args[i + 1]; del args[i:i + 2]
    if "--served-by" in args:
        i = args.index("--served-by"); served_by = args[i + 1]; del args[i:i + 2]
    if "--protocol" in args:
        i = args.index("--protocol"); protocol = args[i + 1]; del args[i:i + 2]
    if "--limit" in args:
        i = args.index("--limit"); limit = int(args[i + 1]); del args[i:i + 2]
    url, model, images_path, eval_path, exit_names, out_path = args
    exits = exit_names.split(",")
    raw = gzip.open(images_path).read()
    count = int.from_bytes(raw[4:8], "big")
    rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
    pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 1, rows, cols)
    expected = [json.loads(line) for line in open(eval_path)]
    n = min(count, limit or count, len(expected))

    if protocol == "grpc":
        import tritonclient.grpc as client
        c = client.InferenceServerClient(url=url)
    else:
        import tritonclient.http as client
        c = client.InferenceServerClient(url=url)
    if not c.is_server_live() or not c.is_model_ready(model):
        sys.exit(f"{url}: the server is not live or model '{model}' is not ready")
    meta = c.get_model_metadata(model)
    inputs = meta["inputs"] if isinstance(meta, dict) else [{"name": t.name, "shape": list(t.shape)} for t in meta.inputs]
    if inputs[0]["name"] != "input" or [int(d) for d in inputs[0]["shape"]][1:] != [1, rows, cols]:
        sys.exit(f"{url}: unexpected input metadata {inputs}")

    def request(i):
        if i % 2 == 0:
            inp = client.InferInput("input", [1, 1, rows, cols], "FP32")
            data = (pixels[i:i + 1].astype(np.float32) / 255)
        else:
            inp = client.InferInput("input", [1, 1, rows, cols], "UINT8")
            data = pixels[i:i + 1]
        binary = (i // 2) % 2 == 0
        if protocol == "grpc":
            inp.set_data_from_numpy(data)
            outs = [client.InferRequestedOutput("class"), client.InferRequestedOutput("probabilities")]
        else:
            inp.set_data_from_numpy(data, binary_data=binary)
            outs = [client.InferRequestedOutput("class", binary_data=binary), client.InferRequestedOutput("probabilities", binary_data=not binary)]
        return inp, outs

    parameters = {"thresholds": thresholds} if thresholds is not None else None
    started = time.time()
    results = [None] * n
    window = 8
    if protocol == "grpc":
        import queue
        done = queue.Queue()
        def callback(i):
            return lambda result, error: done.put((i, result, error))
        sent = 0
        received = 0
        while received < n:
            while sent < n and sent - received < window:
                inp, outs = request(sent)
                c.async_infer(model, [inp], callback(sent), outputs=outs, parameters=parameters)
                sent += 1
            i, result, error = done.get()
            if error is not None:
                sys.exit(f"sample {i}: {error}")
            results[i] = result
            received += 1
    else:
        # One request at a time: tritonclient's gevent pool is slower here than a plain loop.
        for i in range(n):
            inp, outs = request(i)
            results[i] = c.infer(model, [inp], outputs=outs, parameters=parameters)
    seconds = time.time() - started

    by_exit = {}
    upward = 0
    network = []
    with open(out_path, "w") as out:
        for i, r in enumerate(results):
            cls = r.as_numpy("class")
            prob = r.as_numpy("probabilities")
            response = r.get_response()
            params = response["parameters"] if isinstance(response, dict) else {k: v for k, v in response.parameters.items()}
            params = {k: (v if not hasattr(v, "WhichOneof") else getattr(v, v.WhichOneof("parameter_choice"))) for k, v in params.items()}
            exit_name = params["exit"]
            exit_index = exits.index(exit_name) if exit_name in exits else -1
            want = expected[i]
            line = {"sample": i, "exit": exit_index, "class": int(cls[0]), "tier": params["tier"], "upward_bytes": int(params["upward_bytes"])}
            out.write(json.dumps(line) + "\n")
            if cls.shape != (1,) or prob.shape != (1, len(prob[0])):
                sys.exit(f"sample {i}: outputs of shapes {cls.shape} and {prob.shape}")
            if (exit_index, int(cls[0])) != (want["exit"], want["class"]):
                sys.exit(f"sample {i}: the front door says exit {exit_name} ({exit_index}) class {int(cls[0])}; "
                         f"branchy eval says exit {want['exit']} class {want['class']}")
            if int(np.argmax(prob[0])) != int(cls[0]) or abs(float(prob[0].sum()) - 1) > 1e-4:
                sys.exit(f"sample {i}: probabilities {prob[0].tolist()} do not fit class {int(cls[0])}")
            if served_by is not None:
                if line["tier"] != served_by or line["upward_bytes"] != 0:
                    sys.exit(f"sample {i}: answered on the {line['tier']} with {line['upward_bytes']} bytes upward; expected the {served_by} alone")
            elif (exit_index == 0) != (line["upward_bytes"] == 0):
                sys.exit(f"sample {i}: exit {exit_name} with upward_bytes {line['upward_bytes']}")
            check_hop_times(i, params, served_by)
            if exit_index > 0 and served_by is None:
                network.append(int(params["network_us.device->edge"]))
            by_exit[exit_name] = by_exit.get(exit_name, 0) + 1
            upward += line["upward_bytes"]
    shares = ", ".join(f"{k} {v}" for k, v in sorted(by_exit.items(), key=lambda kv: exits.index(kv[0])))
    hop = f"; device->edge link p50 {sorted(network)[len(network) // 2]} us beyond the edge's own time" if network else ""
    given = f" with thresholds {thresholds}" if thresholds is not None else ""
    print(f"{n} samples over {protocol}{given} agree with branchy eval ({shares}); {upward} bytes upward; {n / seconds:.0f} samples/s{hop}")


def check_hop_times(i, params, served_by):
    """The time per hop an answer states must fit together (see the module's docstring)."""
    links = [k[len("round_trip_us."):] for k in params if k.startswith("round_trip_us.")]
    # Nearest first: each link starts where the one before it ends (gRPC's parameters are a map).
    ends = {link.split("->")[1] for link in links}
    chain = [link for link in links if link.split("->")[0] not in ends]
    while chain and len(chain) < len(links):
        after = [link for link in links if link.split("->")[0] == chain[-1].split("->")[1]]
        if len(after) != 1:
            break
        chain.append(after[0])
    if len(chain) != len(links):
        sys.exit(f"sample {i}: the links {links} do not form one path")
    links = chain
    if served_by is not None or int(params["upward_bytes"]) == 0:
        if links:
            sys.exit(f"sample {i}: no link crossed, yet times for {links}")
        return
    latency, local = int(params["latency_us"]), int(params["local_us"])
    previous = None
    for link in links:
        upstream = link.split("->")[1]
        rt, node, net = (int(params[f"round_trip_us.{link}"]), int(params[f"node_us.{upstream}"]), int(params[f"network_us.{link}"]))
        if not (0 < node <= rt and net == rt - node):
            sys.exit(f"sample {i}: {link} round trip {rt} us, {upstream} {node} us, network {net} us do not fit together")
        if previous is not None and rt > previous:
            sys.exit(f"sample {i}: {link} round trip {rt} us is longer than the time its sender held the request ({previous} us)")
        previous = node
    first = int(params[f"round_trip_us.{links[0]}"]) if links else 0
    if not links or local + first > latency + 2:
        sys.exit(f"sample {i}: device {local} us + round trip {first} us exceed the latency {latency} us (links {links})")


if __name__ == "__main__":
    main()
