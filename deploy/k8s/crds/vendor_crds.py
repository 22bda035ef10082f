"""Re-vendor the KubeRay CRD schemas that tests/e2e/test_deploy_manifests.py validates against.

    git -C KUBERAY checkout v1.7.0      # or any tag; its CRDs live in ray-operator/config/crd/bases
    python deploy/k8s/crds/vendor_crds.py KUBERAY v1.7.0 "$(git -C KUBERAY rev-parse HEAD)"

For each of RayCluster and RayJob it writes ``<plural>.ray.io.json`` here: the ``v1``
version's ``openAPIV3Schema``, unchanged except that the schema keyword ``description``
(documentation, most of the bytes) is dropped; a field that happens to be *named*
``description`` is kept. Validation is therefore the same as the CRD's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CRDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
HERE = Path(__file__).resolve().parent


def strip_descriptions(schema: Any) -> Any:
    """``schema`` without its ``description`` keywords (at any depth)."""
    if isinstance(schema, list):
        return [strip_descriptions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in ("default", "enum", "example"):  # values, not schemas
            out[key] = value
            continue
        if key in ("properties", "patternProperties", "definitions"):
            # a mapping of field names to schemas: keep every name, strip the schemas
            out[key] = {name: strip_descriptions(sub) for name, sub in value.items()}
        else:
            out[key] = strip_descriptions(value)
    return out


def main(kuberay: str, version: str, commit: str) -> None:
    bases = Path(kuberay) / "ray-operator" / "config" / "crd" / "bases"
    for kind, filename in CRDS.items():
        crd = yaml.safe_load((bases / filename).read_text())
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        document = {
            "source": {
                "repository": "https://github.com/ray-project/kuberay",
                "version": version,
                "commit": commit,
                "path": f"ray-operator/config/crd/bases/{filename}",
            },
            "apiVersion": f"{crd['spec']['group']}/v1",
            "kind": kind,
            "openAPIV3Schema": strip_descriptions(served["schema"]["openAPIV3Schema"]),
        }
        target = HERE / f"{crd['metadata']['name']}.json"
        target.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")
        print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(f"usage: {sys.argv[0]} KUBERAY_CHECKOUT VERSION COMMIT")
    main(*sys.argv[1:])
