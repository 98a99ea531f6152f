"""``kubectl checkout report``: collect what an SRE (or a bug report) needs about a fleet into
a directory: the CheckoutRegions and PSPRoutes, the Events of their namespaces, the Leases
(market write leases and the operator's leader lease) and the operator's logs. Secrets are
never read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import region

OPERATOR_SELECTOR = "app.kubernetes.io/name=checkout-operator"
LOG_TAIL_LINES = 2000


@dataclass
class Collected:
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """File name -> the objects it holds."""
    logs: dict[str, str] = field(default_factory=dict)
    """``<namespace>_<pod>_<container>.log`` -> the log's tail."""
    problems: list[str] = field(default_factory=list)
    """What could not be read (e.g. no permission for logs): said, not fatal."""


async def collect(
    creds: kconfig.Credentials,
    namespace: str | None,
    operator_namespace: str | None,
    selector: str = OPERATOR_SELECTOR,
) -> Collected:
    """Read everything the report holds (``namespace`` None: all namespaces)."""
    out = Collected()
    async with kclient.KubeClient(creds) as client:
        out.objects["checkoutregions.yaml"] = await client.list(
            region.API_VERSION, region.REGION_KIND, namespace
        )
        for name, kind, api in (
            ("psproutes.yaml", "PSPRoute", region.API_VERSION),
            ("events.yaml", "Event", "v1"),
            ("leases.yaml", "Lease", "coordination.k8s.io/v1"),
        ):
            try:
                out.objects[name] = await client.list(api, kind, namespace)
            except kerrors.KubeError as exc:
                out.problems.append(f"{kind}: {exc}")
        await _logs(client, operator_namespace, selector, out)
    return out


def write(got: Collected, dest: Path, namespace: str | None) -> list[Path]:
    """The report's files under ``dest`` (managedFields dropped), with a summary.json."""
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for name, items in got.objects.items():
        for item in items:
            (item.get("metadata") or {}).pop("managedFields", None)
        (dest / name).write_text(yaml.safe_dump_all(items, sort_keys=False) if items else "")
        files.append(dest / name)
    if got.logs:
        (dest / "logs").mkdir(exist_ok=True)
    for name, text in got.logs.items():
        (dest / "logs" / name).write_text(text)
        files.append(dest / "logs" / name)
    regions = got.objects.get("checkoutregions.yaml", [])
    summary = {
        "namespace": namespace or "(all)",
        "regions": [
            {
                "name": f"{r['metadata']['namespace']}/{r['metadata']['name']}",
                "markets": (r.get("status") or {}).get("markets") or [],
                "request": (r.get("status") or {}).get("request"),
                "overrides": (r.get("status") or {}).get("overrides"),
            }
            for r in regions
        ],
        "problems": got.problems,
    }
    (dest / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    files.append(dest / "summary.json")
    return files


async def _logs(
    client: kclient.KubeClient, namespace: str | None, selector: str, out: Collected
) -> None:
    try:
        pods = await client.list("v1", "Pod", namespace, selector)
    except kerrors.KubeError as exc:
        out.problems.append(f"operator pods ({selector}): {exc}")
        return
    if not pods:
        where = namespace or "any namespace"
        out.problems.append(f"no operator pod matches {selector} in {where}")
        return
    for pod in pods:
        meta = pod["metadata"]
        for container in (pod.get("spec") or {}).get("containers") or ():
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/log"
            params = {"container": container["name"], "tailLines": str(LOG_TAIL_LINES)}
            try:
                text = await client.get_text(path, params)
            except kerrors.KubeError as exc:
                out.problems.append(f"log of {meta['name']}/{container['name']}: {exc}")
                continue
            out.logs[f"{meta['namespace']}_{meta['name']}_{container['name']}.log"] = text
