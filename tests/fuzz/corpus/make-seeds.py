#!/usr/bin/env python3
"""Writes the seed corpora of the ttrpc fuzz targets (run from anywhere; idempotent).

fuzz_ttrpc_frame inputs are: 1 byte (number of chunk-size bytes - 1), the chunk sizes, then
the byte stream. fuzz_ttrpc_request inputs are a bare Request or Response protobuf."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wt, payload):
    tag = varint(num << 3 | wt)
    if wt == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload


def s(num, text):
    return field(num, 2, text if isinstance(text, bytes) else text.encode())


def kv(k, v):
    return s(5, s(1, k) + s(2, v))


def frame(data, sid, typ, flags=0, length=None):
    return struct.pack(">IIBB", len(data) if length is None else length, sid, typ, flags) + data


version_req = s(1, "hypervisor.Hypervisor") + s(2, "Version")
assert len(version_req) == 32
version_resp = bytes.fromhex("0a00") + s(2, bytes.fromhex("0a05302e302e30"))
assert version_resp == bytes.fromhex("0a0012070a05302e302e30")
create_req = (s(1, "hypervisor.Hypervisor") + s(2, "CreateVM") + s(3, s(1, "sandbox-1"))
              + field(4, 0, varint(59_999_000_000)) + kv("traceparent", "00-0af7-b7ad-01")
              + kv("k", "1") + kv("k", "2"))
odd_req = (field(9, 1, b"\x01" * 8) + s(2, "ExecProcess") + field(4, 0, varint(-1))
           + field(10, 5, b"\x02" * 4) + s(1, "grpc.AgentService") + s(5, s(2, "v-only")))
error_resp = s(1, field(1, 0, varint(12)) + s(2, "service foo"))

seeds = {
    "fuzz_ttrpc_frame": {
        "version-request-bytewise": b"\x00\x01" + frame(version_req, 1, 1),
        "request-response-3-7": b"\x01\x03\x07" + frame(version_req, 1, 1) + frame(version_resp, 1, 2),
        "oversize-then-empty": b"\x00\x05" + frame(b"\xff" * 20, 3, 1, length=(4 << 20) + 1)
                               + frame(b"", 5, 1),
        "empty-frames": b"\x00\x0a" + frame(b"", 1, 1) + frame(b"", 3, 3, 1) + frame(b"", 5, 2),
        "partial-body": b"\x02\x01\x02\x04" + frame(b"x" * 30, 7, 1, length=100),
    },
    "fuzz_ttrpc_request": {
        "version-request": version_req,
        "create-request-metadata": create_req,
        "unknown-fields-negative-timeout": odd_req,
        "version-response": version_resp,
        "error-response": error_resp,
    },
}

for target, files in seeds.items():
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
