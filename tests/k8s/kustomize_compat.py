#!/usr/bin/python3
"""Rewrites a copy of deploy/k8s for the kustomize v2 inside kubectl <= 1.20
(Debian bookworm's kubernetes-client), which predates two fields these
kustomizations use:

  resources: [../../base]      -> bases: [../../base]      (directories)
  patches: [{path: p.yaml}]    -> patchesStrategicMerge: [p.yaml]
  patches: [{path: p.yaml, target: {group, version, kind, name}}]
                               -> patchesJson6902: [the same]   (a JSON patch)

    /usr/bin/python3 kustomize_compat.py COPY_OF_DEPLOY_K8S

Only these plain shapes are converted; anything else (a target that is not
all of group, version, kind and name; inline patches) stops with exit 1 rather than render something different.
The rendered objects are the same apart from the generated names' hashes.
"""
import os
import sys

import yaml


def convert(path):
    with open(path) as f:
        k = yaml.safe_load(f)
    here = os.path.dirname(path)
    dirs = [r for r in k.get("resources") or [] if os.path.isdir(os.path.join(here, r))]
    if dirs:
        k["resources"] = [r for r in k["resources"] if r not in dirs]
        if not k["resources"]:
            del k["resources"]
        k["bases"] = dirs
    if "patches" in k:
        plain, json6902 = [], []
        for p in k.pop("patches"):
            if set(p) == {"path"}:
                plain.append(p["path"])
            elif set(p) == {"path", "target"} and set(p["target"]) == {"group", "version", "kind", "name"}:
                json6902.append(p)
            else:
                sys.exit(f"{path}: cannot convert patch {p} for kustomize v2")
        if plain:
            k["patchesStrategicMerge"] = plain
        if json6902:
            k["patchesJson6902"] = json6902
    with open(path, "w") as f:
        yaml.safe_dump(k, f, sort_keys=False)


def main():
    for root, _, files in os.walk(sys.argv[1]):
        if "kustomization.yaml" in files:
            convert(os.path.join(root, "kustomization.yaml"))


if __name__ == "__main__":
    main()
