"""Extract the serialized FileDescriptorProtos embedded in tritonclient's
*_pb2.py modules (the bytes literal passed to AddSerializedFile) without
importing them, and write them as a FileDescriptorSet in dependency order,
usable with `protoc --descriptor_set_in`.
usage: extract_descriptors.py OUT.pb model_config_pb2.py service_pb2.py"""
import ast, sys
from google.protobuf import descriptor_pb2

def serialized_file(path):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "AddSerializedFile":
            return node.args[0].value
    raise SystemExit(f"{path}: no AddSerializedFile(...) call")

fds = descriptor_pb2.FileDescriptorSet()
for path in sys.argv[2:]:
    fdp = descriptor_pb2.FileDescriptorProto.FromString(serialized_file(path))
    print(f"{path}: {fdp.name} package={fdp.package} syntax={fdp.syntax} deps={list(fdp.dependency)} "
          f"messages={len(fdp.message_type)} services={[s.name for s in fdp.service]}", file=sys.stderr)
    fds.file.append(fdp)
open(sys.argv[1], "wb").write(fds.SerializeToString())
