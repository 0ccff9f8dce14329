#!/usr/bin/python3
"""Reads the golden cloud-config documents of tests/data/userdata the way the pod VM does
(spec protocols.md 4.6: strict YAML, only write_files with path/content) and proves each
parses to exactly the expected files, each content being the file's bytes + "\\n" (4.1),
and that every apf.json parses with Python's json to the object written out below by hand.

Usage: /usr/bin/python3 tests/userdata/roundtrip.py [golden-dir]   (from the repo root)
Ends with "userdata: N passed, N failed"; exits non-zero on any failure."""

import json
import os
import sys

import yaml

GOLDEN = sys.argv[1] if len(sys.argv) > 1 else "tests/data/userdata"

APF = "/run/peerpod/apf.json"
AUTH = "/run/peerpod/auth.json"
INITDATA = "/run/peerpod/initdata"
SCRATCH = "/run/peerpod/scratch-space.marker"
# What the pod VM writes (4.6); anything else it skips, so a golden must not need it.
ALLOWED_PATHS = {"/run/peerpod/aa.toml", "/run/peerpod/cdh.toml", APF, AUTH, INITDATA, SCRATCH}

INITDATA_B64 = "H4sIAAAAAAAA/0rMTVWyUkpKLUvNK0nVUcpMUbJSMjQ1NVGqBQQAAP//AwBVgFKGIAAAAA=="


def pem(kind, body, eol="\n"):
    return "-----BEGIN %s-----%s%s%s-----END %s-----%s" % (kind, eol, body, eol, kind, eol)


def net(podip, hw, wnip, routes, neighbors, mtu, index, port, vni, dedicated=False, ext=False):
    n = {
        "podip": podip,
        "pod-hw-addr": hw,
        "interface": "eth0",
        "worker-node-ip": wnip,
        "tunnel-type": "vxlan",
        "routes": routes,
        "neighbors": neighbors,
        "mtu": mtu,
        "index": index,
    }
    if port:
        n["vxlan-port"] = port
    if vni:
        n["vxlan-id"] = vni
    n["dedicated"] = dedicated
    n["external-net-via-pod-vm"] = ext
    return n


# The objects each apf.json golden must decode to (written from the cases, not from output).
APF_OBJECTS = {
    "apf_tls_auto.json": {
        "pod-network": net(
            "10.244.1.5/24", "0e:8f:62:f3:81:ad", "10.224.0.4/16",
            [
                {"dst": "0.0.0.0/0", "gw": "10.244.1.1", "dev": "eth0", "protocol": "boot"},
                {"dst": "10.244.1.0/24", "gw": "", "dev": "eth0", "protocol": "kernel", "scope": "link"},
            ],
            None, 1450, 0, 4789, 555000),
        "pod-namespace": "default",
        "pod-name": "nginx",
        "tls-server-key": pem("PRIVATE KEY", "..."),
        "tls-server-cert": pem("CERTIFICATE", "..."),
        "tls-client-ca": pem("CERTIFICATE", "..."),
    },
    "apf_tls_files.json": {
        "pod-network": net(
            "192.168.52.7/32", "5a:1e:0c:33:c4:02", "10.0.2.15/24",
            [
                {"dst": "0.0.0.0/0", "gw": "169.254.1.1", "dev": "eth0", "protocol": "static"},
                {"dst": "10.96.0.0/12", "gw": "169.254.1.1", "dev": "eth0"},
                {"dst": "169.254.1.1/32", "gw": "", "dev": "eth0", "protocol": "static", "scope": "link"},
                {"dst": "172.16.0.0/16", "gw": "", "protocol": "dhcp", "scope": "host"},
                {"dst": "192.0.2.0/24", "gw": "", "dev": "eth0", "protocol": "boot", "scope": "site"},
                {"dst": "198.51.100.0/24", "gw": "", "dev": "eth0", "protocol": "kernel", "scope": "nowhere"},
            ],
            [
                {"ip": "169.254.1.1", "hw-addr": "ee:ee:ee:ee:ee:ee", "dev": "eth0", "state": "permanent"},
                {"ip": "169.254.1.2", "hw-addr": "ee:ee:ee:ee:ee:ef"},
            ],
            1480, 7, 4789, 555007, dedicated=True, ext=True),
        "pod-namespace": "kube-system",
        "pod-name": "coredns-5d78c9869d-x2xkq",
        "tls-client-ca": pem("CERTIFICATE", "MIIBclientPlaceholder"),
    },
    "apf_tls_disabled.json": {
        "pod-network": net("", "", "10.0.0.2/8", None, None, 1500, 0, 0, 0),
        "pod-namespace": "default",
        "pod-name": "busybox",
    },
    "apf_tls_profile.json": {
        "pod-network": net(
            "10.244.2.9/24", "aa:bb:cc:00:11:22", "10.224.0.5/16",
            [{"dst": "0.0.0.0/0", "gw": "10.244.2.1", "dev": "eth0", "protocol": "boot"}],
            None, 1450, 12, 4790, 555012),
        "pod-namespace": "prod",
        "pod-name": "web-0",
        "tls-server-key": pem("PRIVATE KEY", "MIGHserverKeyPlaceholder"),
        "tls-server-cert": pem("CERTIFICATE", "MIIBserverCertPlaceholder"),
        "tls-client-ca": pem("CERTIFICATE", "MIIBclientCertPlaceholder"),
        "tls-min-version": "VersionTLS12",
        "tls-cipher-suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
    },
    "apf_escaping.json": {
        "pod-network": net(
            "10.1.0.3/16", "02:42:0a:01:00:03", "192.168.122.10/24",
            [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "dev": "veth<1>&", "protocol": "dhcp"}],
            [{"ip": "10.1.0.1", "hw-addr": "02:42:0a:01:00:01", "dev": "eth0", "state": "reachable"}],
            9000, 1, 4789, 555001),
        "pod-namespace": 'ns<b>&"q"\\',
        # Each byte of invalid UTF-8 in the input became one U+FFFD: 1 + 2, then 3 + 2 + 4.
        "pod-name": "web\x01\x1f\b\f\n\r\t\u00e9\u2028\u2029" + "\ufffd" * 3 + "x" + "\ufffd" * 9
        + "\U0001F600\ufffdend",
        "tls-client-ca": pem("CERTIFICATE", "A+B/C=&", "\r\n"),
        "tls-cipher-suites": ["TLS_A", "", "<b>"],
    },
}

AUTH_OBJECT = {
    "auths": {
        "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
        "quay.io": {"auth": "bmV3OnB3"},
        "registry.example.com:5000": {"auth": "YTpi"},
    }
}

# Each document: the files it must yield, in order; a golden file name stands for its bytes,
# None for an entry without content.
DOCUMENTS = {
    "cc_tls_auto.yaml": [(APF, "apf_tls_auto.json")],
    "cc_tls_auto_initdata.yaml": [(APF, "apf_tls_auto.json"), (INITDATA, INITDATA_B64.encode())],
    "cc_tls_files_full.yaml": [
        (APF, "apf_tls_files.json"),
        (AUTH, "auth.json"),
        (INITDATA, INITDATA_B64.encode()),
        (SCRATCH, None),
    ],
    "cc_tls_disabled_scratch.yaml": [(APF, "apf_tls_disabled.json"), (SCRATCH, None)],
    "cc_tls_profile_auth.yaml": [(APF, "apf_tls_profile.json"), (AUTH, "auth.json")],
    "cc_escaping.yaml": [(APF, "apf_escaping.json")],
}


class StrictLoader(yaml.SafeLoader):
    """safe_load, but a repeated mapping key is an error (Go's strict decoder refuses it)."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read(name):
    with open(os.path.join(GOLDEN, name), "rb") as f:
        return f.read()


def parse_strict(text):
    """The pod VM's view: {write_files: [{path, content?}]} and nothing else."""
    doc = yaml.load(text, Loader=StrictLoader)
    # safe_load must agree with the duplicate-checking loader.
    if yaml.safe_load(text) != doc:
        raise ValueError("safe_load and the strict loader disagree")
    if not isinstance(doc, dict) or set(doc) != {"write_files"}:
        raise ValueError("top level must be exactly {write_files}, got %r" % (sorted(doc) if isinstance(doc, dict) else doc,))
    files = doc["write_files"]
    if not isinstance(files, list) or not files:
        raise ValueError("write_files must be a non-empty list")
    out = []
    for i, item in enumerate(files):
        if not isinstance(item, dict) or "path" not in item or not set(item) <= {"path", "content"}:
            raise ValueError("item %d: only path and content are allowed, got %r" % (i, item))
        if not isinstance(item["path"], str) or item["path"] not in ALLOWED_PATHS:
            raise ValueError("item %d: path %r is not one the pod VM writes" % (i, item["path"]))
        content = item.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("item %d: content is not a string" % i)
        out.append((item["path"], content))
    return out


passed = 0
failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
    except Exception as e:  # every failure is reported, none stops the run
        failed += 1
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    else:
        passed += 1
        print("ok   %s" % name)


def check_apf(name):
    def run():
        raw = read(name)
        if raw.endswith(b"\n"):
            raise ValueError("apf.json must have no trailing newline")
        got = json.loads(raw.decode("utf-8"))
        if got != APF_OBJECTS[name]:
            raise ValueError("decoded object differs:\n got %r\nwant %r" % (got, APF_OBJECTS[name]))
        # Key order is part of the contract (4.3): compare it too.
        pairs = json.loads(raw.decode("utf-8"), object_pairs_hook=list)
        if pairs != key_order(APF_OBJECTS[name]):
            raise ValueError("key order differs: %r" % (pairs,))
    return run


def key_order(obj):
    """What object_pairs_hook=list makes of the JSON for obj: every object becomes its
    (key, value) pairs in the order written, so comparing checks key order at all depths."""
    if isinstance(obj, dict):
        return [(k, key_order(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [key_order(v) for v in obj]
    return obj


def check_auth():
    raw = read("auth.json")
    got = json.loads(raw.decode("utf-8"))
    if got != AUTH_OBJECT:
        raise ValueError("decoded %r" % (got,))
    if b" " in raw or b"\n" in raw:
        raise ValueError("auth.json must be compact")
    order = list(json.loads(raw.decode("utf-8"))["auths"])
    if order != sorted(order, key=lambda s: s.encode("utf-8")):
        raise ValueError("registries not in bytewise order: %r" % (order,))


def check_document(name, expected):
    def run():
        raw = read(name)
        if not raw.startswith(b"#cloud-config\n\nwrite_files:\n"):
            raise ValueError("document must start with the #cloud-config header, a blank line and write_files")
        if not raw.endswith(b"\n") or raw.endswith(b"\n\n"):
            raise ValueError("document must end with exactly one newline")
        got = parse_strict(raw.decode("utf-8"))
        if [p for p, _ in got] != [p for p, _ in expected]:
            raise ValueError("paths %r, want %r" % ([p for p, _ in got], [p for p, _ in expected]))
        for (path, content), (_, source) in zip(got, expected):
            if source is None:
                if content is not None:
                    raise ValueError("%s: expected no content key" % path)
                continue
            data = read(source) if isinstance(source, str) else source
            want = data.decode("utf-8") + "\n"  # the literal block keeps one final newline
            if content != want:
                raise ValueError("%s: content differs:\n got %r\nwant %r" % (path, content, want))
            if path == APF:
                obj = json.loads(content)
                if obj != APF_OBJECTS[source]:
                    raise ValueError("apf.json in the document decodes to %r" % (obj,))
    return run


def check_strictness():
    """The checker itself must reject what the pod VM rejects."""
    bad = [
        "#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    owner: root\n",
        "#cloud-config\nruncmd: []\nwrite_files:\n  - path: /run/peerpod/apf.json\n",
        "#cloud-config\nwrite_files:\n  - path: /etc/passwd\n",
        "#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    path: /run/peerpod/initdata\n",
        "#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: |\n      a\x80b\n",
        "#cloud-config\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: |\n        a\n      b\n",
    ]
    for text in bad:
        try:
            parse_strict(text)
        except Exception:
            continue
        raise ValueError("accepted %r" % (text,))


for apf in APF_OBJECTS:
    check("apf " + apf, check_apf(apf))
check("auth auth.json", check_auth)
for doc, files in DOCUMENTS.items():
    check("cloud-config " + doc, check_document(doc, files))
check("strict parser self-test", check_strictness)

print("userdata: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
