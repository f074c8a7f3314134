#!/usr/bin/env python3
"""A gRPC client we did not write lists and calls the s62 auditor query service.

Uses only grpcio and grpcio-reflection from PyPI (installed with pip if missing) and the server's
reflection service: no s62 .proto files. Connects over TLS with an auditor's client certificate,
lists the services, resolves s62.query.v1.AuditQuery's methods and message types from the server,
calls LatestCheckpoint (unary) and Search (server-streaming) with a purpose and a case reference,
shows a call without a purpose is refused with INVALID_ARGUMENT, and checks grpc.health.v1.

Prints one JSON object with what it saw; exits 0 when every check held, 1 otherwise.
Run by tests/query_reflection.rs; usable by hand:
  python3 tests/reflection_client.py --addr 127.0.0.1:8443 --server-name localhost \
      --ca ca.crt --cert auditor.crt --key auditor.key --subject P-1 --case PSD-1
"""

import argparse
import json
import subprocess
import sys


def ensure_packages():
    try:
        import grpc  # noqa: F401
        import grpc_reflection  # noqa: F401
    except ImportError:
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "--quiet",
             "grpcio", "grpcio-reflection", "protobuf"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--subject", required=True)
    ap.add_argument("--case", default="PY-REFLECT-1")
    args = ap.parse_args()

    ensure_packages()
    import grpc
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    channel = grpc.secure_channel(
        args.addr, creds,
        options=[("grpc.ssl_target_name_override", args.server_name)])
    seen = {}

    # 1. List services and resolve the query API, knowing nothing but its name.
    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    seen["services"] = services
    assert "s62.query.v1.AuditQuery" in services, services
    pool = descriptor_pool.DescriptorPool(db)
    svc = pool.FindServiceByName("s62.query.v1.AuditQuery")
    seen["methods"] = sorted(m.name for m in svc.methods)
    purposes = pool.FindEnumTypeByName("s62.v1.AuditPurpose")

    def method(name):
        m = svc.methods_by_name[name]
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        path = "/%s/%s" % (svc.full_name, name)
        if m.server_streaming:
            call = channel.unary_stream(path, request_serializer=req.SerializeToString,
                                        response_deserializer=resp.FromString)
        else:
            call = channel.unary_unary(path, request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString)
        return req, call

    def with_purpose(req):
        req.context.purpose = purposes.values_by_name["AUDIT_PURPOSE_LAWFULNESS"].number
        req.context.case_reference = args.case
        return req

    # 2. A unary call.
    LatestReq, latest = method("LatestCheckpoint")
    resp, call = latest.with_call(with_purpose(LatestReq()), timeout=10)
    headers = dict(call.initial_metadata())
    seen["checkpoint_size"] = resp.checkpoint.size
    seen["checkpoint_origin"] = resp.checkpoint.origin
    seen["latest_audit_seq"] = int(headers["s62-audit-seq"])
    assert resp.checkpoint.size > 0
    assert resp.checkpoint.note.startswith(resp.checkpoint.origin + "\n")

    # 3. A server-streaming call.
    Req, search = method("Search")
    req = with_purpose(Req())
    req.filter.subject = args.subject
    entries, page_end = [], None
    for item in search(req, timeout=10):
        which = item.WhichOneof("item")
        if which == "entry":
            entries.append(item.entry.seq)
            assert len(item.entry.leaf) > 0, "stored bytes are included"
            assert item.entry.entry.seq == item.entry.seq
        elif which == "page_end":
            page_end = item.page_end
    assert page_end is not None and page_end.returned == len(entries)
    seen["search_seqs"] = entries

    # 4. No purpose: refused.
    try:
        latest(LatestReq(), timeout=10)
        seen["no_purpose"] = "accepted"
    except grpc.RpcError as e:
        seen["no_purpose"] = e.code().name
    assert seen["no_purpose"] == "INVALID_ARGUMENT", seen

    # 5. Standard health checking (grpc.health.v1), resolved through reflection too.
    health = pool.FindServiceByName("grpc.health.v1.Health")
    check = health.methods_by_name["Check"]
    HReq = message_factory.GetMessageClass(check.input_type)
    HResp = message_factory.GetMessageClass(check.output_type)
    hcall = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=HReq.SerializeToString,
                                response_deserializer=HResp.FromString)
    status = hcall(HReq(service="s62.query.v1.AuditQuery"), timeout=10)
    seen["health"] = check.output_type.fields_by_name["status"].enum_type \
        .values_by_number[status.status].name
    assert seen["health"] == "SERVING", seen

    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("check failed: %s" % e, file=sys.stderr)
        sys.exit(1)
