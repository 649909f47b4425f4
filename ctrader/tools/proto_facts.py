#!/usr/bin/env python3
"""Dump the facts of cTrader Open API message definitions (names, field numbers, labels, types,
defaults, enum values) in one canonical text form, so two schemas can be compared with `diff`.

Sources it reads (never copies into the repository):
  --sdk DIR        the compiled *_pb2.py modules of the `ctrader-open-api` PyPI package
                   (`pip install --target DIR --no-deps ctrader-open-api==0.9.2 protobuf`);
  --set FILE       a serialized FileDescriptorSet (e.g. Spotware's release-91 files compiled with
                   `python -m grpc_tools.protoc --include_imports -o FILE *.proto`, or ours: the
                   `codegen` example writes it with `--descriptor-set FILE`).
Options:
  --only-ours DIR  restrict the dump to the messages/enums that our .proto files in DIR define, so
                   a diff against Spotware's full schema shows only real mismatches.

Example (the check we ran; the outputs must be identical):
  python3 proto_facts.py --set /tmp/sp91.pb --only-ours ctrader/proto > /tmp/theirs.txt
  python3 proto_facts.py --set /tmp/ours.pb  > /tmp/ours.txt && diff /tmp/theirs.txt /tmp/ours.txt
"""
import argparse
import importlib
import os
import re
import sys
import types

from google.protobuf import descriptor_pb2

LABEL = {1: "optional", 2: "required", 3: "repeated"}
TYPE = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 10: "group", 11: "message", 12: "bytes", 13: "uint32", 14: "enum",
    15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}


def files_from_sdk(sdk_dir):
    # The package's __init__ imports twisted; load only the message modules under a stub package.
    sys.path.insert(0, sdk_dir)
    pkg = types.ModuleType("ctrader_open_api")
    pkg.__path__ = [os.path.join(sdk_dir, "ctrader_open_api")]
    sys.modules["ctrader_open_api"] = pkg
    out = []
    for name in ["OpenApiCommonModelMessages", "OpenApiCommonMessages", "OpenApiModelMessages",
                 "OpenApiMessages"]:
        mod = importlib.import_module("ctrader_open_api.messages.%s_pb2" % name)
        fdp = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(fdp)
        out.append(fdp)
    return out


def files_from_set(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return [f for f in fds.file if not f.name.startswith("google/")]


def names_defined_in(proto_dir):
    names = set()
    for fn in os.listdir(proto_dir):
        if fn.endswith(".proto"):
            with open(os.path.join(proto_dir, fn)) as f:
                names.update(re.findall(r"^\s*(?:message|enum)\s+(\w+)", f.read(), re.M))
    return names


def dump(files, only=None):
    lines = []
    for fdp in files:
        for e in fdp.enum_type:
            if only is not None and e.name not in only:
                continue
            lines.append("enum %s" % e.name)
            for v in sorted(e.value, key=lambda v: (v.number, v.name)):
                lines.append("  %s = %d" % (v.name, v.number))
        for m in fdp.message_type:
            if only is not None and m.name not in only:
                continue
            lines.append("message %s" % m.name)
            for fld in sorted(m.field, key=lambda x: x.number):
                t = TYPE[fld.type]
                if fld.type in (11, 14):
                    t = fld.type_name.lstrip(".")
                extra = ""
                if fld.HasField("default_value"):
                    extra += " default=%s" % fld.default_value
                if fld.options.deprecated:
                    extra += " deprecated"
                lines.append("  %d %s %s %s%s" % (fld.number, LABEL[fld.label], t, fld.name, extra))
    # Order by kind and name so files can be split differently on each side.
    blocks, cur = [], []
    for ln in lines:
        if not ln.startswith(" ") and cur:
            blocks.append(cur)
            cur = []
        cur.append(ln)
    if cur:
        blocks.append(cur)
    blocks.sort(key=lambda b: b[0])
    return "\n".join(ln for b in blocks for ln in b) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sdk")
    ap.add_argument("--set")
    ap.add_argument("--only-ours")
    a = ap.parse_args()
    files = files_from_sdk(a.sdk) if a.sdk else files_from_set(a.set)
    only = names_defined_in(a.only_ours) if a.only_ours else None
    sys.stdout.write(dump(files, only))


if __name__ == "__main__":
    main()
