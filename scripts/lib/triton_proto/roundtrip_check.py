"""Compare the FileDescriptorSet protoc builds from the reconstructed .proto
files with the one embedded in tritonclient's *_pb2.py (json_name ignored:
protoc's python generator strips it, --descriptor_set_out keeps it)."""
import sys
from google.protobuf import descriptor_pb2 as d
def load(p):
    s = d.FileDescriptorSet.FromString(open(p, "rb").read())
    out = {}
    for f in s.file:
        def strip(msgs):
            for m in msgs:
                for fld in m.field: fld.ClearField("json_name")
                strip(m.nested_type)
        strip(f.message_type)
        out[f.name] = f
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
ok = True
for name in a:
    same = a[name].SerializeToString(deterministic=True) == b[name].SerializeToString(deterministic=True)
    print(name, "IDENTICAL" if same else "DIFFERENT"); ok &= same
    if not same:
        import difflib
        for l in difflib.unified_diff(str(a[name]).splitlines(), str(b[name]).splitlines(), lineterm="", n=2): print(l)
sys.exit(0 if ok else 1)
