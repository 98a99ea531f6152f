"""The CRD upgrade path of docs/operator.md on the real apiserver: CRDs that chart 0.1.0 (its
crds/ folder) or `kubectl apply` created are not the release's, so `helm upgrade --install` with
``crds.create`` refuses them until they are adopted (the label and two annotations the doc
gives); then helm owns, upgrades and, on uninstall, keeps them."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest

from . import operator_support as sup
from .test_chart import CHART, helm, uninstall

pytestmark = pytest.mark.stack

CRDS = ("checkoutregions.checkout-operator.io", "psproutes.checkout-operator.io")


def test_crds_created_outside_helm_are_adopted_then_kept(helm_bin: pathlib.Path, kube: Any) -> None:
    sup.install_crds(kube)  # as chart 0.1.0 / `kubectl apply --server-side -f crds/` left them
    name, ns = sup.unique("up"), sup.unique("up-op")
    argv = [
        str(helm_bin), "--kubeconfig", str(kube.kubeconfig), "upgrade", "--install", name,
        str(CHART), "--namespace", ns, "--create-namespace",
        "--set", "watch.allNamespaces=false", "--set", "watch.namespaces={default}",
    ]  # fmt: skip
    try:
        refused = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
        assert refused.returncode != 0
        assert "invalid ownership metadata" in refused.stderr, refused.stderr
        assert 'CustomResourceDefinition "checkoutregions.checkout-operator.io"' in refused.stderr

        for crd in CRDS:  # the adoption of docs/operator.md "Upgrading"
            kube.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
            kube.kubectl(
                "annotate", "--overwrite", "crd", crd,
                f"meta.helm.sh/release-name={name}", f"meta.helm.sh/release-namespace={ns}",
            )  # fmt: skip
        helm(helm_bin, kube, *argv[3:])
        for crd in CRDS:
            meta = sup.get(kube, "crd", crd)["metadata"]
            assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
            assert meta["annotations"]["meta.helm.sh/release-name"] == name
            assert meta["labels"]["app.kubernetes.io/instance"] == name
        manifest = helm(helm_bin, kube, "get", "manifest", name, "-n", ns).stdout
        assert all(f"name: {crd}" in manifest for crd in CRDS)
        helm(helm_bin, kube, "uninstall", name, "-n", ns)
        for crd in CRDS:  # kept: uninstalling never deletes every CheckoutRegion
            assert sup.get(kube, "crd", crd)["metadata"]["name"] == crd
    finally:
        uninstall(helm_bin, kube, name, ns)
        sup.delete_namespace(kube, ns)
