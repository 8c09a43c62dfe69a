#!/usr/bin/python3
"""Self-test data for policy.py and validate.cjs: broken copies of a rendered
overlay, each of which must be rejected, so the checks are known to fail
when they should.

    /usr/bin/python3 mutations.py RENDERED.yaml OUTDIR

Writes OUTDIR/NAME.yaml (and NAME.json for the schema validator) per case and
prints "NAME<TAB>tool<TAB>expected failing check" lines.
"""
import copy
import json
import os
import sys

import yaml


def find(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def container(objs, name):
    return find(objs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def no_readiness(objs):
    del container(objs, "users-svc")["readinessProbe"]


def no_limits(objs):
    del container(objs, "gateway")["resources"]["limits"]


def writable_root(objs):
    container(objs, "messages-svc")["securityContext"]["readOnlyRootFilesystem"] = False


def runs_as_root(objs):
    dep = find(objs, "Deployment", "gateway")["spec"]["template"]["spec"]
    dep["securityContext"]["runAsUser"] = 0
    container(objs, "gateway")["securityContext"].pop("runAsUser")


def unnamed_port(objs):
    find(objs, "Service", "users-svc")["spec"]["ports"][0].pop("name")


def dependency_liveness(objs):
    container(objs, "users-svc")["livenessProbe"]["grpc"].pop("service")


def not_headless(objs):
    find(objs, "Service", "messages-svc")["spec"].pop("clusterIP")


def empty_egress(objs):
    find(objs, "NetworkPolicy", "messages-svc-egress-aws")["spec"]["egress"].append({})


def unselected_pod(objs):
    tpl = find(objs, "Deployment", "messages-svc")["spec"]["template"]
    tpl["metadata"]["labels"]["app"] = "stray"


def open_ingress(objs):
    find(objs, "NetworkPolicy", "users-svc")["spec"]["ingress"][0].pop("from")


def http_probe_on_service(objs):
    container(objs, "users-svc")["livenessProbe"] = {"tcpSocket": {"port": 50051}}


def short_grace(objs):
    find(objs, "Deployment", "users-svc")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"] = 10


def committed_secret(objs):
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "users-svc-db"},
                 "stringData": {"connection-url": "postgresql://u:p@db/cruddur"}})


def typo_field(objs):
    c = container(objs, "gateway")
    c["readinessprobe"] = c.pop("readinessProbe")


def wrong_type(objs):
    container(objs, "users-svc")["ports"][0]["containerPort"] = "50051"


def idle_timeout_too_long(objs):
    for o in objs:
        if o["kind"] == "Ingress":
            o["metadata"]["annotations"]["alb.ingress.kubernetes.io/load-balancer-attributes"] = \
                "idle_timeout.timeout_seconds=120"


def messages_route_to_backend(objs):
    paths = find(objs, "Ingress", "cruddur-messaging")["spec"]["rules"][0]["http"]["paths"]
    paths[:] = [p for p in paths if p["path"] != "/api/messages"]


def backend_not_configured(objs):
    svc = find(objs, "Ingress", "cruddur-backend")["spec"]["rules"][0]["http"]["paths"][0]
    svc["backend"]["service"] = {"name": "backend", "port": {"number": 5000}}


CASES = [  # name, mutation, tool, check that must fail
    ("no-readiness", no_readiness, "policy", "every container has probes"),
    ("no-limits", no_limits, "policy", "every container has probes"),
    ("writable-root", writable_root, "policy", "every container has probes"),
    ("runs-as-root", runs_as_root, "policy", "every container has probes"),
    ("unnamed-port", unnamed_port, "policy", "every Service port is named"),
    ("dependency-liveness", dependency_liveness, "policy", "native grpc probes"),
    ("not-headless", not_headless, "policy", "upstream addresses are dns:/// names of headless"),
    ("empty-egress", empty_egress, "policy", "no NetworkPolicy rule is empty"),
    ("unselected-pod", unselected_pod, "policy", "every pod template is selected"),
    ("open-ingress", open_ingress, "policy", "only the gateway reaches"),
    ("tcp-liveness", http_probe_on_service, "policy", "native grpc probes"),
    ("short-grace", short_grace, "policy", "terminationGracePeriodSeconds"),
    ("committed-secret", committed_secret, "policy", "secrets are referenced, not committed"),
    ("idle-timeout-too-long", idle_timeout_too_long, "policy", "the ALB idle timeout is set and below"),
    ("messages-route-to-backend", messages_route_to_backend, "policy", "every gateway route under /api/"),
    ("backend-not-configured", backend_not_configured, "policy", "every other /api/ path goes to the backend"),
    ("typo-field", typo_field, "schema", "unknown field"),
    ("wrong-type", wrong_type, "schema", "must be integer"),
]


def main():
    src, outdir = sys.argv[1], sys.argv[2]
    with open(src) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    for name, mutate, tool, expect in CASES:
        broken = copy.deepcopy(objs)
        mutate(broken)
        with open(os.path.join(outdir, name + ".yaml"), "w") as f:
            yaml.safe_dump_all(broken, f)
        with open(os.path.join(outdir, name + ".json"), "w") as f:
            json.dump(broken, f)
        print(f"{name}\t{tool}\t{expect}")


if __name__ == "__main__":
    main()
