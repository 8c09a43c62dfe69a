#!/usr/bin/python3
"""Asserts the deployment policies of issue 6 on rendered manifests.

    /usr/bin/python3 policy.py OVERLAY RENDERED.yaml

Prints one `ok - ...` or `not ok - ...` line per check (tests/k8s/check counts
them) and exits 1 when any check failed.
"""
import ipaddress
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SERVICES = {"users-svc": 50051, "messages-svc": 50052}  # gRPC services and their ports
GATEWAY, GATEWAY_PORT = "gateway", 4567
APPS = [*SERVICES, GATEWAY]
HPA_APPS = ["gateway", "messages-svc"]
DRAIN_S = 10      # lib/rpc's graceful drain budget
PLACEHOLDER = ipaddress.ip_network("192.0.2.0/24")  # the base's fail-closed CIDR

results = []


def check(name, problems):
    """One check: `problems` is a list of strings; empty means it passed."""
    problems = [p for p in problems if p]
    results.append(not problems)
    if problems:
        print(f"not ok - {name}")
        for p in problems:
            print(f"    {p}")
    else:
        print(f"ok - {name}")


def by_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o.get("kind") == kind}


def matches(selector, labels):
    """Label selector semantics (matchLabels + matchExpressions)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        have, op, vals = labels.get(e["key"]), e["operator"], e.get("values") or []
        if op == "In" and have not in vals:
            return False
        if op == "NotIn" and have in vals:
            return False
        if op == "Exists" and e["key"] not in labels:
            return False
        if op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def container_problems(dep, c):
    where = f"{dep['metadata']['name']}/{c['name']}"
    pod = dep["spec"]["template"]["spec"]
    psc, sc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    out = []
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in c:
            out.append(f"{where}: no {probe}")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                out.append(f"{where}: no resources.{part}.{r}")

    def eff(key):  # container value, else the pod's
        return sc.get(key, psc.get(key))
    if eff("runAsNonRoot") is not True:
        out.append(f"{where}: runAsNonRoot is not true")
    if eff("runAsUser") != 65532:
        out.append(f"{where}: runAsUser is {eff('runAsUser')!r}, not 65532")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        out.append(f"{where}: capabilities.drop lacks ALL")
    if (sc.get("capabilities") or {}).get("add"):
        out.append(f"{where}: capabilities.add is set")
    if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{where}: seccompProfile is not RuntimeDefault")
    return out


def probe_problems(name, c):
    out = []
    if name in SERVICES:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = ((c.get(probe) or {}).get("grpc") or {}).get("port")
            if port != SERVICES[name]:
                out.append(f"{name}: {probe} is not a native grpc probe on {SERVICES[name]}")
        svc = ((c.get("livenessProbe") or {}).get("grpc") or {}).get("service")
        if svc != "liveness":
            out.append(f"{name}: livenessProbe asks for health name {svc!r}, not 'liveness' "
                       "(the dependency-aware Check would restart pods in a database outage)")
    else:
        want = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
        for probe, path in want.items():
            if ((c.get(probe) or {}).get("httpGet") or {}).get("path") != path:
                out.append(f"{name}: {probe} is not httpGet {path}")
    return out


def rule_problems(pol, direction, rule):
    """An allow rule must name its ports, and an egress rule its peers too."""
    name, out = pol["metadata"]["name"], []
    peers = rule.get("to" if direction == "egress" else "from")
    if not rule:
        out.append(f"{name}: empty {direction} rule {{}} (allows everything)")
        return out
    if not rule.get("ports"):
        out.append(f"{name}: {direction} rule without ports")
    if direction == "egress" and not peers:
        out.append(f"{name}: egress rule without `to` (every destination)")
    for p in peers or []:
        if not p:
            out.append(f"{name}: empty {direction} peer {{}}")
        ip = p.get("ipBlock")
        if ip:
            net = ipaddress.ip_network(ip["cidr"])
            if net.version == 4 and net.subnet_of(PLACEHOLDER):
                out.append(f"{name}: still points at the base placeholder {ip['cidr']}")
            if direction == "egress" and net.prefixlen == 0 and not ip.get("except"):
                out.append(f"{name}: egress to {ip['cidr']} with no `except`")
    return out


def allowed_ingress(pols, labels, port):
    """Label sets of in-namespace pods allowed to reach `port` (None: any)."""
    peers = []
    for pol in pols:
        if not matches(pol["spec"]["podSelector"], labels):
            continue
        for rule in pol["spec"].get("ingress") or []:
            if not any(p.get("port") == port for p in rule.get("ports") or []):
                continue
            for peer in rule.get("from") or [None]:
                peers.append(None if peer is None else peer.get("podSelector"))
    return peers


# ---- the aws overlay's Ingress (AWS Load Balancer Controller) ----------------

# Paths the original frontend calls that are not the gateway's: they must
# reach Cruddur's backend.
NOT_OURS = ["/api/activities/home", "/api/activities/notifications", "/api/activities/@andrewbrown",
            "/api/activities", "/api/activities/5ae290ed-55d1-47a0-bc6d-fe2bc2700399/reply",
            "/api/users/@andrewbrown", "/api/messagesx", "/api/health-check"]


def gateway_routes():
    """(method, sample path) of every route in gateway/src/route.c that a
    browser may call through the balancer: under /api/, and /healthz."""
    with open(os.path.join(ROOT, "gateway", "src", "route.c")) as f:
        src = f.read()
    out = []
    for method, tmpl in re.findall(r'\{GW_R_\w+, "(\w+)", "([^"]+)"', src):
        if tmpl.startswith("/api/") or tmpl == "/healthz":
            out.append((method, re.sub(r"\{[^}]+\}", "sample-1", tmpl)))
    return out


def gateway_default(name):
    """The gateway's built-in default for the integer setting `name` (main.c)."""
    with open(os.path.join(ROOT, "gateway", "src", "main.c")) as f:
        m = re.search(r'cfg_int\("%s", (\d+)' % name, f.read())
    return int(m.group(1)) if m else None


def path_matches(rule, path):
    """Ingress path semantics; ImplementationSpecific is the ALB's pattern
    (`*` any characters, `?` one)."""
    want, kind = rule["path"], rule["pathType"]
    if kind == "Exact":
        return path == want
    if kind == "Prefix":
        want = want.rstrip("/")
        return path == want or path.startswith(want + "/") or want == ""
    pat = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in want)
    return re.fullmatch(pat, path) is not None


def ingress_rules(ings):
    """Every path of every Ingress in evaluation order: group.order, then as written."""
    order = sorted(ings.values(), key=lambda i: int((i["metadata"].get("annotations") or {}).get(
        "alb.ingress.kubernetes.io/group.order", "0")))
    return [(i["metadata"]["name"], r.get("host"), pth) for i in order
            for r in i["spec"].get("rules") or [] for pth in r["http"]["paths"]]


def first_service(rules, path):
    for _, _, rule in rules:
        if path_matches(rule, path):
            svc = rule["backend"]["service"]
            return svc["name"], svc["port"].get("name") or svc["port"].get("number")
    return None


def configured_backend(k8s_dir):
    """The backend Service set in overlays/aws/backend-service.yaml."""
    with open(os.path.join(k8s_dir, "overlays", "aws", "backend-service.yaml")) as f:
        ops = yaml.safe_load(f)
    svc = next(o["value"] for o in ops if o["path"].endswith("/backend/service"))
    return svc["name"], svc["port"].get("name") or svc["port"].get("number")


def ingress_checks(p, objs, env, k8s_dir):
    ings = by_kind(objs, "Ingress")
    rules = ingress_rules(ings)
    gw = [(GATEWAY, "http"), (GATEWAY, GATEWAY_PORT)]
    backend = configured_backend(k8s_dir)
    check(f"{p} Ingress: every gateway route under /api/ (gateway/src/route.c) and /healthz goes to the gateway", [
        f"{m} {path} goes to {first_service(rules, path)}" for m, path in gateway_routes()
        if first_service(rules, path) not in gw] + ["no Ingress rendered" for _ in [0] if not ings])
    check(f"{p} Ingress: every other /api/ path goes to the backend Service set in backend-service.yaml {backend}", [
        f"{path} goes to {first_service(rules, path)}" for path in NOT_OURS
        if first_service(rules, path) != backend] + [
        f"the backend {backend} is the gateway" for _ in [0] if backend[0] == GATEWAY])
    annos = [i["metadata"].get("annotations") or {} for i in ings.values()]
    check(f"{p} Ingress: ALB (class alb, one group, target-type ip), one host", [
        f"{n}: ingressClassName {i['spec'].get('ingressClassName')}" for n, i in ings.items()
        if i["spec"].get("ingressClassName") != "alb"] + [
        f"annotation {k} differs across the group: {sorted({str(a.get(k)) for a in annos})}"
        for k in ("alb.ingress.kubernetes.io/group.name", "alb.ingress.kubernetes.io/scheme",
                  "alb.ingress.kubernetes.io/target-type", "alb.ingress.kubernetes.io/listen-ports",
                  "alb.ingress.kubernetes.io/load-balancer-attributes")
        if len({a.get(k) for a in annos}) > 1] + [
        f"{n}: target-type is not ip" for n, i in ings.items() if (i["metadata"].get("annotations") or {})
        .get("alb.ingress.kubernetes.io/target-type") != "ip"] + [
        f"hosts {sorted({str(h) for _, h, _ in rules})}" for _ in [0] if len({h for _, h, _ in rules}) > 1])
    conn = env.get("GATEWAY_CONN_TIMEOUT_S") or gateway_default("GATEWAY_CONN_TIMEOUT_S")
    idle = []
    for a in annos:
        m = re.search(r"(?:^|,)\s*idle_timeout\.timeout_seconds=(\d+)",
                      a.get("alb.ingress.kubernetes.io/load-balancer-attributes", ""))
        idle.append(int(m.group(1)) if m else None)
    check(f"{p} Ingress: the ALB idle timeout is set and below the gateway's keep-alive "
          f"idle timeout (GATEWAY_CONN_TIMEOUT_S={conn})", [
              "idle_timeout.timeout_seconds not set on every Ingress" for _ in [0] if None in idle] + [
              f"ALB idle timeout {t} s is not below the gateway's {conn} s" for t in set(idle)
              if t is not None and conn is not None and t >= int(conn)] + [
              "the gateway's idle timeout is unknown" for _ in [0] if conn is None])


def main():
    overlay, path = sys.argv[1], sys.argv[2]
    k8s_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, "deploy", "k8s")
    with open(path) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    deps, svcs = by_kind(objs, "Deployment"), by_kind(objs, "Service")
    sas, pols = by_kind(objs, "ServiceAccount"), by_kind(objs, "NetworkPolicy")
    pdbs, hpas = by_kind(objs, "PodDisruptionBudget"), by_kind(objs, "HorizontalPodAutoscaler")
    cms, secrets = by_kind(objs, "ConfigMap"), by_kind(objs, "Secret")
    p = f"[{overlay}]"

    check(f"{p} Deployment, Service and ServiceAccount share one name and app label", [
        f"{a}: missing {k}" for a in APPS for k, d in
        (("Deployment", deps), ("Service", svcs), ("ServiceAccount", sas))
        if a not in d or d[a]["metadata"].get("labels", {}).get("app") != a] + [
        f"{a}: pod template label app != {a}" for a in APPS if a in deps and
        deps[a]["spec"]["template"]["metadata"]["labels"].get("app") != a] + [
        f"{a}: serviceAccountName != {a}" for a in APPS if a in deps and
        deps[a]["spec"]["template"]["spec"].get("serviceAccountName") != a] + [
        f"{a}: Service selector != app={a}" for a in APPS if a in svcs and
        svcs[a]["spec"].get("selector") != {"app": a}])

    containers = [(d, c) for d in deps.values() for c in d["spec"]["template"]["spec"]["containers"]]
    check(f"{p} every container has probes, requests and limits, and the security context",
          [x for d, c in containers for x in container_problems(d, c)] or
          ([] if containers else ["no containers rendered"]))
    check(f"{p} native grpc probes for the services, /healthz and /readyz for the gateway",
          [x for a in APPS if a in deps
           for x in probe_problems(a, deps[a]["spec"]["template"]["spec"]["containers"][0])])
    check(f"{p} terminationGracePeriodSeconds longer than preStop + drain ({DRAIN_S} s)", [
        f"{n}: {g} s" for n, d in deps.items()
        for g in [d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)]
        if g <= DRAIN_S + (((d["spec"]["template"]["spec"]["containers"][0].get("lifecycle") or {})
                            .get("preStop") or {}).get("sleep") or {}).get("seconds", 0)])
    check(f"{p} every Service port is named; grpc ports are `grpc` with appProtocol grpc", [
        f"{n}: port {sp.get('port')} has no name" for n, s in svcs.items()
        for sp in s["spec"]["ports"] if not sp.get("name")] + [
        f"{a}: port is not grpc/appProtocol grpc on {port}" for a, port in SERVICES.items()
        if a in svcs and not any(sp.get("name") == "grpc" and sp.get("appProtocol") == "grpc"
                                 and sp.get("port") == port for sp in svcs[a]["spec"]["ports"])] + [
        "gateway: no port named http" for _ in [0] if GATEWAY in svcs and
        not any(sp.get("name") == "http" for sp in svcs[GATEWAY]["spec"]["ports"])])

    deny = [n for n, pol in pols.items() if pol["spec"].get("podSelector") == {}
            and set(pol["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
            and not pol["spec"].get("ingress") and not pol["spec"].get("egress")]
    check(f"{p} a default-deny NetworkPolicy for ingress and egress",
          [] if deny else ["no policy with podSelector {} denying Ingress and Egress"])
    allow = [pol for n, pol in pols.items() if n not in deny]
    check(f"{p} every pod template is selected by an allow-list NetworkPolicy", [
        f"{n}: selected by no NetworkPolicy besides the default deny" for n, d in deps.items()
        if not any(matches(pol["spec"]["podSelector"], d["spec"]["template"]["metadata"]["labels"])
                   for pol in allow)])
    check(f"{p} no NetworkPolicy rule is empty, unbounded or a leftover placeholder", [
        x for pol in pols.values() for direction in ("ingress", "egress")
        for rule in pol["spec"].get(direction) or [] for x in rule_problems(pol, direction, rule)])
    ingress = {a: allowed_ingress(allow, deps[a]["spec"]["template"]["metadata"]["labels"], port)
               for a, port in SERVICES.items() if a in deps}
    check(f"{p} only the gateway reaches users-svc and messages-svc", [
        f"{a}: ingress allowed from {peers}" for a, peers in ingress.items()
        if not peers or any(s != {"matchLabels": {"app": GATEWAY}} for s in peers)])

    def egress_ports(app):
        labels = deps[app]["spec"]["template"]["metadata"]["labels"]
        return {(pp.get("protocol", "TCP"), pp["port"]) for pol in allow
                if matches(pol["spec"]["podSelector"], labels)
                for rule in pol["spec"].get("egress") or [] for pp in rule.get("ports") or []}
    need = {"users-svc": {("UDP", 53), ("TCP", 53), ("TCP", 5432)},
            "messages-svc": {("UDP", 53), ("TCP", 53)},
            "gateway": {("UDP", 53), ("TCP", 53), ("TCP", 50051), ("TCP", 50052)}}
    check(f"{p} egress allow-lists: DNS and the named upstreams per service", [
        f"{a}: egress lacks {sorted(need[a] - egress_ports(a))}" for a in APPS
        if a in deps and not need[a] <= egress_ports(a)])

    check(f"{p} a PodDisruptionBudget selects every workload", [
        f"{n}: no PDB" for n, d in deps.items() if not any(
            matches(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
            for pdb in pdbs.values())])
    check(f"{p} autoscaling/v2 HPAs for gateway and messages-svc", [
        f"{a}: no autoscaling/v2 HPA" for a in HPA_APPS if not any(
            h["apiVersion"] == "autoscaling/v2" and h["spec"]["scaleTargetRef"]["name"] == a
            for h in hpas.values())])
    check(f"{p} topology spread across zones and hosts (ScheduleAnyway)", [
        f"{n}: no {key} spread" for n, d in deps.items()
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        if not any(t["topologyKey"] == key and t["whenUnsatisfiable"] == "ScheduleAnyway"
                   for t in d["spec"]["template"]["spec"].get("topologySpreadConstraints") or [])])

    refs = [(n, src) for n, d in deps.items() for c in d["spec"]["template"]["spec"]["containers"]
            for src in c.get("envFrom") or []]
    check(f"{p} configuration comes from rendered ConfigMaps; secrets are referenced, not committed", [
        f"{n}: envFrom ConfigMap {s['configMapRef']['name']} not rendered" for n, s in refs
        if "configMapRef" in s and s["configMapRef"]["name"] not in cms] + [
        f"Secret {n} carries {k}" for n, s in secrets.items()
        for k in list(s.get("data") or {}) + list(s.get("stringData") or {})
        if k in ("connection-url", "page-token-secret", "CONNECTION_URL", "PAGE_TOKEN_SECRET")] + [
        f"ConfigMap {n} carries {k}" for n, c in cms.items() for k in c.get("data") or {}
        if k in ("CONNECTION_URL", "PAGE_TOKEN_SECRET", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")] + [
        "users-svc: CONNECTION_URL is not a secretKeyRef" for _ in [0] if "users-svc" in deps and not any(
            e["name"] == "CONNECTION_URL" and "secretKeyRef" in (e.get("valueFrom") or {})
            for e in deps["users-svc"]["spec"]["template"]["spec"]["containers"][0].get("env") or [])])

    def addr_problems(cm_name, key):
        cm = next((c for n, c in cms.items() if n.startswith(cm_name + "-") or n == cm_name), None)
        val = ((cm or {}).get("data") or {}).get(key, "")
        if not val.startswith("dns:///"):
            return [f"{cm_name} {key}={val!r} is not a dns:/// target (round_robin needs every address)"]
        host, _, port = val[len("dns:///"):].rpartition(":")
        svc = svcs.get(host.split(".")[0])
        if not svc or not any(str(sp["port"]) == port for sp in svc["spec"]["ports"]):
            return [f"{cm_name} {key}={val!r} is not a rendered Service and port"]
        if svc["spec"].get("clusterIP") != "None":
            return [f"{cm_name} {key}: Service {svc['metadata']['name']} is not headless, so "
                    "the client would see one virtual IP, not one address per pod"]
        return []
    check(f"{p} upstream addresses are dns:/// names of headless Services and their ports",
          addr_problems("gateway", "USERS_ADDR") + addr_problems("gateway", "MESSAGES_ADDR") +
          addr_problems("messages-svc", "USERS_ADDR"))

    def replicas(app):  # what runs after apply: the HPA minimum when one owns the count
        h = [h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"] == app]
        return h[0]["spec"].get("minReplicas", 1) if h else deps[app]["spec"].get("replicas", 1)
    images = {n: c["image"] for n, d in deps.items() for c in d["spec"]["template"]["spec"]["containers"]}
    env = {k: v for c in cms.values() for k, v in (c.get("data") or {}).items()}
    if overlay == "local":
        check(f"{p} one replica each, images from localhost:5000", [
            f"{a}: {replicas(a)} replicas" for a in APPS if a in deps and replicas(a) != 1] + [
            f"{n}: image {i}" for n, i in images.items() if not i.startswith("localhost:5000/")])
    if overlay == "aws":
        check(f"{p} at least 2 replicas each, IRSA roles, regional endpoints", [
            f"{a}: {replicas(a)} replicas" for a in APPS if a in deps and replicas(a) < 2] + [
            f"{a}: ServiceAccount has no eks.amazonaws.com/role-arn" for a in SERVICES
            if a in sas and not (sas[a]["metadata"].get("annotations") or {}).get(
                "eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::")] + [
            f"endpoint override {k}" for k in env if k.startswith("AWS_ENDPOINT_URL")] + [
            f"{k} set (IRSA only)" for k in env if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")] + [
            f"Secret {n} rendered (all secrets are created out of band)" for n in secrets] + [
            f"{n}: image {i} has no tag" for n, i in images.items() if ":" not in i.rsplit("/", 1)[-1]])
        ingress_checks(p, objs, env, k8s_dir)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
