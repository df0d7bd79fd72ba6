"""Print .proto source text for each file in a FileDescriptorSet.
Handles what Triton's grpc_service.proto / model_config.proto use: proto3,
messages, nested messages/enums, oneofs, proto3 optional, maps, services
with streaming. Refuses (assert) anything it doesn't understand, so a
round-trip check (protoc -> descriptor -> compare) is meaningful."""
import sys, os
from google.protobuf import descriptor_pb2 as d

F = d.FieldDescriptorProto
SCALAR = {F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64",
          F.TYPE_UINT64: "uint64", F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64",
          F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool", F.TYPE_STRING: "string",
          F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
          F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64"}

def camel_json(name):
    out, up = [], False
    for c in name:
        if c == "_": up = True
        elif up: out.append(c.upper()); up = False
        else: out.append(c)
    return "".join(out)

def ftype(f):
    if f.type in (F.TYPE_MESSAGE, F.TYPE_ENUM): return f.type_name  # fully qualified, leading dot
    assert f.type != F.TYPE_GROUP
    return SCALAR[f.type]

def field_line(f, msg_by_fqn, ind):
    assert not f.HasField("options") or f.options == d.FieldOptions(), f
    assert not f.HasField("default_value") and not f.HasField("extendee")
    if f.HasField("json_name"): assert f.json_name == camel_json(f.name), f
    t = ftype(f)
    if f.label == F.LABEL_REPEATED and f.type == F.TYPE_MESSAGE and msg_by_fqn[f.type_name].options.map_entry:
        e = msg_by_fqn[f.type_name]
        k, v = e.field[0], e.field[1]
        return f"{ind}map<{ftype(k)}, {ftype(v)}> {f.name} = {f.number};"
    lab = "repeated " if f.label == F.LABEL_REPEATED else ("optional " if f.proto3_optional else "")
    return f"{ind}{lab}{t} {f.name} = {f.number};"

def enum_lines(e, ind):
    assert not e.HasField("options") and not e.reserved_range and not e.reserved_name
    L = [f"{ind}enum {e.name} {{"]
    for v in e.value:
        assert not v.HasField("options")
        L.append(f"{ind}  {v.name} = {v.number};")
    L.append(f"{ind}}}")
    return L

def msg_lines(m, msg_by_fqn, ind):
    assert not m.extension and not m.extension_range and not m.reserved_range and not m.reserved_name
    assert not m.HasField("options") or m.options.map_entry
    L = [f"{ind}message {m.name} {{"]
    for e in m.enum_type: L += enum_lines(e, ind + "  ")
    for n in m.nested_type:
        if n.options.map_entry: continue
        L += msg_lines(n, msg_by_fqn, ind + "  ")
    # real oneofs are printed as a block at the position of their first field
    real_oneof = {i for i, o in enumerate(m.oneof_decl)
                  if any(f.HasField("oneof_index") and f.oneof_index == i and not f.proto3_optional for f in m.field)}
    done = set()
    for f in m.field:
        if f.HasField("oneof_index") and f.oneof_index in real_oneof:
            i = f.oneof_index
            if i in done: continue
            done.add(i)
            L.append(f"{ind}  oneof {m.oneof_decl[i].name} {{")
            members = [g for g in m.field if g.HasField("oneof_index") and g.oneof_index == i]
            # oneof members must be contiguous in declaration order to round-trip
            idx = [list(m.field).index(g) for g in members]
            assert idx == list(range(idx[0], idx[0] + len(idx))), m.name
            for g in members: L.append(field_line(g, msg_by_fqn, ind + "    "))
            L.append(f"{ind}  }}")
        else:
            L.append(field_line(f, msg_by_fqn, ind + "  "))
    L.append(f"{ind}}}")
    return L

def collect(prefix, msgs, out):
    for m in msgs:
        fq = f"{prefix}.{m.name}"; out[fq] = m
        collect(fq, m.nested_type, out)

def file_text(fd, msg_by_fqn, header):
    assert fd.syntax == "proto3" and not fd.extension and not fd.HasField("options")
    L = [header, f'syntax = "{fd.syntax}";', "", f"package {fd.package};", ""]
    for dep in fd.dependency: L.append(f'import "{dep}";')
    if fd.dependency: L.append("")
    for s in fd.service:
        assert not s.HasField("options")
        L.append(f"service {s.name} {{")
        for r in s.method:
            # an empty-but-present MethodOptions comes from a `{}` body in the source
            assert r.options == d.MethodOptions()
            body = " {}" if r.HasField("options") else ";"
            cs = "stream " if r.client_streaming else ""
            ss = "stream " if r.server_streaming else ""
            L.append(f"  rpc {r.name}({cs}{r.input_type}) returns ({ss}{r.output_type}){body}")
        L.append("}"); L.append("")
    for e in fd.enum_type: L += enum_lines(e, ""); L.append("")
    for m in fd.message_type: L += msg_lines(m, msg_by_fqn, ""); L.append("")
    return "\n".join(L).rstrip() + "\n"

if __name__ == "__main__":
    fds = d.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
    outdir = sys.argv[2]; header = sys.argv[3] if len(sys.argv) > 3 else ""
    msg_by_fqn = {}
    for fd in fds.file: collect("." + fd.package, fd.message_type, msg_by_fqn)
    for fd in fds.file:
        open(os.path.join(outdir, fd.name), "w").write(file_text(fd, msg_by_fqn, header))
        print("wrote", fd.name, file=sys.stderr)
