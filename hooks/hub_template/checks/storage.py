"""HV007: the volumes users' pods mount exist. A pod whose claim nothing
makes waits, Pending, until the spawner gives up: a static home
(`singleuser.storage.static.pvcName`) or an extra volume's claim must be made
by the federation's chart (`deployment.homeNfs`, `deployment.sharedFolder`,
or a hand-made chart's templates) or by a manifest in the hub's folder; and
the template's NFS homes must name their server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..helm_values import DEPLOYMENT_KEY, Problem, ValuesFile, coalesce
from .base import Helm, code, get_path, report
from .hub import Hub

STORAGE = ("jupyterhub", "singleuser", "storage")


def _merged(layers: list[ValuesFile]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for f in layers:
        merged = coalesce(merged, f.data)
    return merged


def _mounted_claims(storage: object) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path under storage, claim name) of each claim the users' pods mount."""
    if not isinstance(storage, dict):
        return
    name = get_path(storage, ["static", "pvcName"])
    if storage.get("type") == "static" and isinstance(name, str) and name:
        yield ("static", "pvcName"), name
    volumes = storage.get("extraVolumes")
    items = volumes.items() if isinstance(volumes, dict) else enumerate(volumes or [])
    for key, volume in items if isinstance(volumes, (dict, list)) else ():
        claim = get_path(volume, ["persistentVolumeClaim", "claimName"]) if isinstance(volume, dict) else None
        if isinstance(claim, str) and claim:
            yield ("extraVolumes", str(key), "persistentVolumeClaim", "claimName"), claim


def _manifest_claims(hub: Hub) -> set[str]:
    """The claims the hub's own manifests make (multi-document YAML beside the values)."""
    names: set[str] = set()
    for rel in hub.files:
        if not rel.endswith((".yaml", ".yml")) or rel.startswith(("secrets/", "image/")) or hub.single_document(rel):
            continue
        docs = hub.yaml_stream(rel).data
        for doc in docs if isinstance(docs, list) else ():
            if isinstance(doc, dict) and doc.get("kind") == "PersistentVolumeClaim":
                name = get_path(doc, ["metadata", "name"])
                if isinstance(name, str):
                    names.add(name)
    return names


def _chart_claims(deployment: object) -> set[str]:
    """The claims the template's federation chart makes from `deployment:`."""
    names = set()
    if get_path(deployment, ["homeNfs", "enabled"]) is True:
        names.add("home-nfs")
    if get_path(deployment, ["sharedFolder", "enabled"]) is True:
        names.add(str(get_path(deployment, ["sharedFolder", "claimName"])))
    return names


class HV007(Helm):
    "Every volume claim users' pods mount is made, and NFS homes name their server"

    def run(self, hub: Hub) -> str:
        problems = []
        made_here = _manifest_claims(hub)
        for env in hub.environments:
            layers = hub.values_layers(env)
            merged = _merged(layers)
            deployment = merged.get(DEPLOYMENT_KEY)
            made = made_here | _chart_claims(deployment)
            for root, path in hub.chart_paths([STORAGE]):
                storage = get_path(merged, [*root, *path])
                for keys, claim in _mounted_claims(storage):
                    if claim in made or claim in hub.federation_chart_templates:
                        continue
                    where = [*root, *path, *keys]
                    # A list's item has no path of keys: the line of extraVolumes.
                    label, line = _where(
                        layers, where[: where.index("extraVolumes") + 1] if "extraVolumes" in where else where
                    )
                    problems.append(
                        Problem(
                            label,
                            line,
                            f"{code('.'.join(where[len(root) :]))} is {claim!r}, a claim nothing makes: no manifest "
                            f"in the hub, no {code('deployment.homeNfs')} (home_storage: nfs) or "
                            f"{code('deployment.sharedFolder')}, not in the federation chart: users' servers "
                            "would stay Pending.",
                        )
                    )
            server = get_path(deployment, ["homeNfs", "server"])
            if get_path(deployment, ["homeNfs", "enabled"]) is True and not server:
                label, line = _where(layers, [DEPLOYMENT_KEY, "homeNfs", "server"])
                problems.append(
                    Problem(
                        label,
                        line,
                        f"{code('deployment.homeNfs.server')} is empty: run the federation's cluster/setup.sh, "
                        f"which makes the NFS filesystem and prints the {code('nfs_server')} to answer "
                        f"({code('copier update --trust --defaults --data nfs_server=...')}).",
                    )
                )
        return report(problems)


def _where(layers: list[ValuesFile], keys: list[str]) -> tuple[str, int | None]:
    """The last layer that sets ``keys`` (helm's winner), else the first."""
    for f in reversed(layers):
        if get_path(f.data, keys) is not None:
            return f.label, f.line_of(keys)
    return (layers[0].label, None) if layers else ("config/common.yaml", None)


CHECKS = (HV007,)
