#!/usr/bin/python3
"""Deployment checks (issue 10, part 1), with independent tools only:

- every overlay under config/overlays renders with `kubectl kustomize`;
- the rendered DaemonSet keeps the upstream chart's node-daemon contract (providers-libvirt-and-
  install.md part 2: names, hostNetwork, capabilities, envFrom, downward API, hostPaths and
  propagation, startup probe, rolling update), plus our /healthz and /readyz probes;
- what the manifests promise matches the daemon binary: each peer-pods-cm key is a setting
  `cloud-api-adaptor <provider> -help` lists (or one the entrypoint reads), the default socket and
  pods dir lie under the /run/peerpod mount, the probes use the default PROBE_PORT;
- the RBAC is the least the daemon needs, the RuntimeClass is kata-remote's;
- config/entrypoint.sh refuses missing settings and unknown providers, and execs the daemon
  with the provider (a stand-in binary records its arguments);
- the Dockerfile's runtime packages provide every library the binary links (readelf + dpkg -S);
- README's configuration reference (the Configuration, Azure and libvirt tables) lists exactly
  the settings `cloud-api-adaptor help` and `<provider> -help` print, with their env vars and
  defaults, so the documentation cannot drift from the code.

Prints "ok"/"FAIL" lines and ends with "deploy: N passed, N failed".
Usage: tests/deploy/check.py [daemon binary]   (default build/cloud-api-adaptor)
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % what)
    else:
        failed += 1
        print("FAIL %s%s" % (what, (": " + detail) if detail else ""))
    return cond


def render(overlay):
    p = subprocess.run(["kubectl", "kustomize", overlay], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return [d for d in yaml.safe_load_all(p.stdout) if d], ""


def find(docs, kind, name):
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


def help_of(daemon, provider):
    p = subprocess.run([daemon, provider, "-help"], capture_output=True, text=True, timeout=30)
    text = p.stdout
    envs = set(re.findall(r"\[env ([A-Z0-9_]+)\]", text))
    defaults = dict(re.findall(r"^  -([a-z0-9-]+) [a-z]*\n\s+.*\(default ([^)]*)\)", text, re.M))
    env_only = dict(re.findall(r"^  ([A-Z][A-Z0-9_]+)\n\s+[^\n]*?(?:\(default ([^)]*)\))?$", text, re.M))
    envs |= set(env_only)
    return envs, defaults, env_only


def help_settings(args):
    """{flag: (env, default)} and {env-only name: default} from a help text."""
    text = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
    flags = {}
    for m in re.finditer(r"^  -([a-z0-9-]+)(?: [a-z]+)?\n\s+(.*)$", text, re.M):
        env = re.search(r"\[env ([A-Z0-9_]+)\]", m.group(2))
        d = re.search(r"\(default ([^)]*)\)", m.group(2))
        flags["-" + m.group(1)] = (env.group(1) if env else None, d.group(1) if d else None)
    env_only = {}
    tail = text.split("Environment only:\n", 1)
    if len(tail) == 2:
        for m in re.finditer(r"^  ([A-Z][A-Z0-9_]+)\n\s+[^\n]*?(?:\(default ([^)]*)\))?$", tail[1], re.M):
            env_only[m.group(1)] = m.group(2)
    return flags, env_only


def readme_rows(text, heading):
    """(flags, envs, default cell) of every row of the Flag|Env|Default tables under heading."""
    start = text.index("\n## " + heading)
    end = text.find("\n## ", start + 1)
    rows, in_table = [], False
    for line in text[start:end if end > 0 else None].splitlines():
        if line.startswith("| Flag | Env | Default |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if in_table and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append((re.findall(r"`(-[a-z0-9-]+)`", cells[0]), re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]),
                         cells[2]))
    return rows


# Read by the systemd notify protocol itself, not a setting of ours.
NOT_IN_HELP = {"NOTIFY_SOCKET"}


def config_reference(daemon):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    common, env_only = help_settings([daemon, "help"])
    check("help lists the common flags and the environment-only settings", len(common) > 20 and env_only,
          "%d flags, %d env-only" % (len(common), len(env_only)))
    sections = [("Configuration", common, env_only)]
    for provider, heading in (("azure", "Azure provider"), ("libvirt", "libvirt local dev mode")):
        flags, _ = help_settings([daemon, provider, "-help"])
        sections.append((heading, {k: v for k, v in flags.items() if k not in common}, {}))
    for heading, flags, envs in sections:
        rows = readme_rows(readme, heading)
        documented = {}
        for fl, ev, default in rows:
            if not fl:
                for e in ev:
                    documented[e] = (None, default)
            for i, f in enumerate(fl):
                documented[f] = (ev[i] if len(fl) == len(ev) else (ev[0] if len(ev) == 1 else None), default,
                                 len(fl) == 1)
        missing = sorted(set(flags) - set(documented)) + sorted(set(envs) - set(documented))
        check("README %s: every setting the binary lists is documented" % heading, not missing, str(missing))
        stale = sorted(k for k in documented if k not in flags and k not in envs and k not in NOT_IN_HELP)
        check("README %s: every documented setting exists in the binary" % heading, not stale, str(stale))
        wrong = []
        for f, (env, default) in flags.items():
            if f not in documented:
                continue
            denv, cell, single = documented[f]
            if denv != env:
                wrong.append("%s: env %s, README %s" % (f, env, denv))
            plain = cell.replace("`", "")
            if single and default is not None and default not in plain:
                wrong.append("%s: default %s, README %s" % (f, default, cell))
            if single and default is None and plain not in ('""', "false", "—", ""):
                wrong.append("%s: no default, README %s" % (f, cell))
        for e, default in envs.items():
            if e in documented and default and default not in documented[e][1].replace("`", ""):
                wrong.append("%s: default %s, README %s" % (e, default, documented[e][1]))
        check("README %s: env vars and defaults match the binary" % heading, not wrong, "; ".join(wrong))


def daemonset_contract(ds, overlay, daemon):
    spec = ds["spec"]
    tpl = spec["template"]["spec"]
    check("%s: DaemonSet in confidential-containers-system" % overlay,
          ds["metadata"].get("namespace") == "confidential-containers-system")
    ru = spec.get("updateStrategy", {})
    check("%s: RollingUpdate maxUnavailable 0, maxSurge 1" % overlay,
          ru.get("type") == "RollingUpdate" and ru.get("rollingUpdate") == {"maxUnavailable": 0, "maxSurge": 1},
          str(ru))
    check("%s: hostNetwork, ClusterFirstWithHostNet, service account cloud-api-adaptor" % overlay,
          tpl.get("hostNetwork") is True and tpl.get("dnsPolicy") == "ClusterFirstWithHostNet" and
          tpl.get("serviceAccountName") == "cloud-api-adaptor")
    cons = [c for c in tpl["containers"] if c["name"] == "cloud-api-adaptor-con"]
    if not check("%s: container cloud-api-adaptor-con" % overlay, len(cons) == 1):
        return
    c = cons[0]
    sc = c.get("securityContext", {})
    # SYS_NICE is ours (the loop thread's -loop-nice); the upstream chart's two are kept.
    check("%s: NET_ADMIN, SYS_ADMIN and SYS_NICE, not privileged" % overlay,
          sorted(sc.get("capabilities", {}).get("add", [])) == ["NET_ADMIN", "SYS_ADMIN", "SYS_NICE"] and
          not sc.get("privileged"),
          str(sc))
    check("%s: entrypoint command" % overlay, c.get("command") == ["/usr/local/bin/entrypoint.sh"])
    ef = c.get("envFrom", [])
    check("%s: envFrom peer-pods-secret and peer-pods-cm (not optional)" % overlay,
          {"secretRef": {"name": "peer-pods-secret"}} in ef and {"configMapRef": {"name": "peer-pods-cm"}} in ef,
          str(ef))
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])}
    check("%s: NODE_NAME and POD_UID from the downward API" % overlay,
          env.get("NODE_NAME") == "spec.nodeName" and env.get("POD_UID") == "metadata.uid", str(env))
    vols = {v["name"]: v for v in tpl.get("volumes", [])}
    mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", [])}

    def host(path, mount, typ=None, prop=None, ro=None):
        m = mounts.get(mount)
        v = vols.get(m["name"]) if m else None
        hp = (v or {}).get("hostPath", {})
        ok = m is not None and hp.get("path") == path
        if typ is not None:
            ok = ok and hp.get("type", "") == typ
        if prop is not None:
            ok = ok and m.get("mountPropagation") == prop
        if ro is not None:
            ok = ok and bool(m.get("readOnly")) == ro
        check("%s: hostPath %s at %s" % (overlay, path, mount), ok, str(m) + " " + str(v))

    host("/run/peerpod", "/run/peerpod")
    host("/run/netns", "/run/netns", prop="HostToContainer")
    host("/run/xtables.lock", "/run/xtables.lock", typ="FileOrCreate")
    host("/lib/modules", "/lib/modules", ro=True)
    host("/run/kata-containers/shared/direct-volumes", "/run/kata-containers/shared/direct-volumes",
         typ="DirectoryOrCreate")

    provider = "libvirt" if "libvirt" in overlay else "azure"
    envs, defaults, env_only = help_of(daemon, provider)
    port = int(env_only.get("PROBE_PORT") or 0)
    for kind, path in (("startupProbe", "/startup"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = c.get(kind, {}).get("httpGet", {})
        check("%s: %s on 127.0.0.1:%d%s (the daemon's PROBE_PORT default)" % (overlay, kind, port, path),
              port and hg == {"host": "127.0.0.1", "port": port, "path": path}, str(hg))
    sp = c.get("startupProbe", {})
    check("%s: startup probe timing as upstream (20 s, 20 s, 30)" % overlay,
          (sp.get("initialDelaySeconds"), sp.get("periodSeconds"), sp.get("failureThreshold")) == (20, 20, 30))
    for flag in ("socket", "pods-dir"):
        d = defaults.get(flag, "")
        check("%s: the daemon's default -%s (%s) is under the /run/peerpod mount" % (overlay, flag, d),
              d.startswith("/run/peerpod/"))
    cm = None
    return provider, envs, cm


def main():
    daemon = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/cloud-api-adaptor")
    os.chdir(ROOT)
    overlays = sorted(os.path.join("config/overlays", d) for d in os.listdir("config/overlays"))
    check("overlays azure and libvirt exist", {"config/overlays/azure", "config/overlays/libvirt"} <= set(overlays))
    for ov in overlays:
        docs, err = render(ov)
        if not check("%s renders with kubectl kustomize" % ov, docs is not None, err):
            continue
        ds = find(docs, "DaemonSet", "cloud-api-adaptor-daemonset")
        if not check("%s: DaemonSet cloud-api-adaptor-daemonset" % ov, ds is not None):
            continue
        provider, envs, _ = daemonset_contract(ds, ov, daemon)
        cm = find(docs, "ConfigMap", "peer-pods-cm")
        if check("%s: ConfigMap peer-pods-cm with CLOUD_PROVIDER=%s" % (ov, provider),
                 cm is not None and cm.get("data", {}).get("CLOUD_PROVIDER") == provider):
            unknown = sorted(k for k in cm["data"] if k not in envs and k != "CLOUD_PROVIDER")
            check("%s: every peer-pods-cm key is a setting of the daemon (-help)" % ov, not unknown, str(unknown))
            if provider == "azure":
                want = {"CLOUD_PROVIDER", "VXLAN_PORT", "AZURE_INSTANCE_SIZE", "AZURE_INSTANCE_SIZES", "AZURE_SUBNET_ID",
                        "AZURE_NSG_ID", "PROXY_TIMEOUT", "AZURE_IMAGE_ID", "AZURE_REGION", "AZURE_RESOURCE_GROUP",
                        "PEERPODS_LIMIT_PER_NODE", "TAGS", "INITDATA", "ENABLE_SECURE_BOOT", "DISABLECVM"}
                check("%s: the OpenShift example's keys" % ov, want <= set(cm["data"]), str(want - set(cm["data"])))
        sec = find(docs, "Secret", "peer-pods-secret")
        check("%s: Secret peer-pods-secret" % ov, sec is not None)
        if sec is not None and provider == "azure":
            keys = set((sec.get("stringData") or {}).keys()) | set((sec.get("data") or {}).keys())
            check("%s: secret keys are daemon settings" % ov, keys <= envs, str(keys - envs))
        if provider == "libvirt":
            c = ds["spec"]["template"]["spec"]["containers"][0]
            vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
            m = [x for x in c["volumeMounts"] if x["mountPath"].rstrip("/") == "/root/.ssh"]
            check("%s: ssh-key-secret at /root/.ssh, mode 0600" % ov,
                  len(m) == 1 and vols.get(m[0]["name"], {}).get("secret") ==
                  {"secretName": "ssh-key-secret", "defaultMode": 384, "optional": True})
        rc = find(docs, "RuntimeClass", "kata-remote")
        check("%s: RuntimeClass kata-remote" % ov, rc is not None and rc.get("handler") == "kata-remote" and
              rc.get("scheduling", {}).get("nodeSelector") == {"katacontainers.io/kata-runtime": "true"})
        rules = {}
        for d in docs:
            if d.get("kind") == "ClusterRole":
                for r in d.get("rules", []):
                    for g in r["apiGroups"]:
                        for res in r["resources"]:
                            rules.setdefault(res + ("." + g if g else ""), set()).update(r["verbs"])
        check("%s: least RBAC (nodes get/patch, nodes/status patch, pods/secrets/serviceaccounts get/list, "
              "peerpods create/patch)" % ov,
              rules == {"nodes": {"get", "patch"}, "nodes/status": {"patch"}, "pods": {"get", "list"},
                        "secrets": {"get", "list"}, "serviceaccounts": {"get", "list"},
                        "peerpods.confidentialcontainers.org": {"create", "patch"}}, str(rules))
        roles = {d["metadata"]["name"] for d in docs if d.get("kind") == "ClusterRole"}
        binds = [d for d in docs if d.get("kind") == "ClusterRoleBinding"]
        check("%s: every ClusterRole bound to the daemon's service account" % ov,
              {b["roleRef"]["name"] for b in binds} == roles and len(binds) == len(roles) and all(b["subjects"] == [{"kind": "ServiceAccount", "name": "cloud-api-adaptor",
                                                          "namespace": "confidential-containers-system"}]
                                      for b in binds))
    entrypoint_checks()
    dockerfile_checks(daemon)
    config_reference(daemon)
    print("deploy: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def entrypoint_checks():
    ep = os.path.join(ROOT, "config/entrypoint.sh")
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "caa")
        record = os.path.join(tmp, "args")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\n" % record)
        os.chmod(fake, 0o755)

        def run(args, env):
            e = {"PATH": "/usr/bin:/bin", "CAA_BIN": fake}
            e.update(env)
            if os.path.exists(record):
                os.unlink(record)
            p = subprocess.run(["/bin/sh", ep] + args, capture_output=True, text=True, env=e, timeout=30)
            got = open(record).read().split("\n")[:-1] if os.path.exists(record) else None
            return p.returncode, p.stdout + p.stderr, got

        azure = {k: "x" for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID",
                                   "AZURE_RESOURCE_GROUP", "AZURE_SUBNET_ID", "AZURE_IMAGE_ID")}
        rc, out, got = run([], dict(azure, CLOUD_PROVIDER="azure"))
        check("entrypoint: CLOUD_PROVIDER=azure execs the daemon with azure", rc == 0 and got == ["azure"],
              "%d %r %r" % (rc, out, got))
        rc, out, got = run(["azure", "-zone", "2"], azure)
        check("entrypoint: $1 names the provider, the rest are flags", rc == 0 and got == ["azure", "-zone", "2"],
              str(got))
        partial = dict(azure)
        del partial["AZURE_SUBNET_ID"], partial["AZURE_IMAGE_ID"]
        rc, out, got = run([], dict(partial, CLOUD_PROVIDER="azure"))
        check("entrypoint: missing Azure settings named, exit 1, daemon not run",
              rc == 1 and "AZURE_SUBNET_ID is NOT set" in out and "AZURE_IMAGE_ID is NOT set" in out and got is None,
              "%d %r" % (rc, out))
        rc, out, got = run([], {"CLOUD_PROVIDER": "libvirt", "LIBVIRT_URI": "test:///default"})
        check("entrypoint: libvirt execs with -data-dir /opt/data-dir", rc == 0 and
              got == ["libvirt", "-data-dir", "/opt/data-dir"], str(got))
        rc, out, got = run([], {"CLOUD_PROVIDER": "libvirt"})
        check("entrypoint: libvirt without LIBVIRT_URI refused", rc == 1 and "LIBVIRT_URI is NOT set" in out)
        for prov in ("", "aws"):
            rc, out, got = run([], {"CLOUD_PROVIDER": prov} if prov else {})
            check("entrypoint: provider %r refused with exit 1 (upstream exits 0)" % prov,
                  rc == 1 and "unknown cloud provider" in out and got == ["help"], "%d %r" % (rc, out))


def dockerfile_checks(daemon):
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    check("Dockerfile: multi-stage, Debian bookworm", len(stages) == 2 and all("bookworm" in s for s in stages),
          str(stages))
    runtime = text[text.rindex("FROM "):]
    pkgs = set(re.findall(r"\b(lib[a-z0-9.+-]+|zlib1g|ca-certificates)\b", runtime))
    p = subprocess.run(["readelf", "-d", daemon], capture_output=True, text=True)
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", p.stdout)
    ldd = subprocess.run(["ldd", daemon], capture_output=True, text=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    missing = []
    for lib in needed:
        path = paths.get(lib, "")
        owner = None
        for cand in {path, os.path.realpath(path), path.replace("/usr/lib/", "/lib/"),
                     os.path.realpath(path).replace("/usr/lib/", "/lib/")}:
            q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if q.returncode == 0:
                owner = q.stdout.split(":")[0]
                break
        if owner in ("libc6", None) and lib.startswith("libc.so"):
            continue  # in every Debian image
        if owner not in pkgs:
            missing.append("%s (%s)" % (lib, owner))
    check("Dockerfile: the runtime stage installs every library the binary links (%d)" % len(needed),
          not missing and needed, ", ".join(missing))


if __name__ == "__main__":
    sys.exit(main())
