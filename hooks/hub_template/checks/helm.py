"""Helm values: what hubploy gives helm for each environment (config/common.yaml,
config/<env>.yaml, then secrets/<env>.yaml), merged the way helm merges them
and validated against the chart given with --chart (hub_template.helm_values)."""

from __future__ import annotations

from typing import Any

from ..helm_values import (
    DEPLOYMENT_KEY,
    Problem,
    ValuesFile,
    coalesce,
    misplaced_keys,
    nulls_over_parent,
    schema_problems,
    unused_keys,
)
from .base import Helm, Skip, code, get_path, report
from .hub import ChartSource, Hub

GET_A_CHART = (
    "no chart given: pass `--chart DIR`, a daskhub chart folder. Get one with "
    "`helm repo add dask https://helm.dask.org && helm pull dask/daskhub --untar`, or, for the "
    "development daskhub hubs target, `git clone https://github.com/dask/helm-chart` at "
    "versions.yml's daskhub_git_ref and `helm dependency build helm-chart/daskhub`"
)

# Python snippets the charts exec at start: a syntax error there crashes the pod.
SNIPPETS = (("jupyterhub", "hub", "extraConfig"), ("dask-gateway", "gateway", "extraConfig"))


def _all_files(hub: Hub) -> list[ValuesFile]:
    seen: set[str] = set()
    files: list[ValuesFile] = []
    for env in hub.environments:
        for f in hub.values_layers(env):
            if f.label not in seen:
                seen.add(f.label)
                files.append(f)
    return files


class HV001(Helm):
    "Helm values files put everything under the umbrella chart's key"

    # The deployment chart passes on the umbrella key (daskhub), `jupyterhub`
    # (the jupyterhub chart alone, for kubernetes hubs) and reads `deployment`.
    def run(self, hub: Hub) -> str:
        own = hub.federation_chart.keys if hub.federation_chart else ()
        return report([*misplaced_keys(_all_files(hub), hub.umbrella, own), *_gateway_of_a_kubernetes_hub(hub)])


class HV002(Helm):
    "Every key under the umbrella key is one daskhub or its charts read"

    # And every key under `deployment:` one the deployment chart reads.
    def run(self, hub: Hub, chart: ChartSource) -> str | Skip:
        if chart.chart is None:
            return self.skip(GET_A_CHART)
        return report(unused_keys(chart.chart, _all_files(hub), hub.umbrella))


class HV003(Helm):
    "Each environment's merged values pass the charts' schemas"

    def run(self, hub: Hub, chart: ChartSource) -> str | Skip:
        if chart.chart is None:
            return self.skip(GET_A_CHART)
        envs: dict[Problem, list[str]] = {}  # a problem of common.yaml shows in every environment
        for env in hub.environments:
            for p in schema_problems(chart.chart, hub.values_layers(env), hub.umbrella):
                envs.setdefault(p, []).append(env)
        # A null over daskhub's own value merges to a nil, not a deletion.
        nils = nulls_over_parent(chart.chart, _all_files(hub), hub.umbrella)
        return report(
            [
                *nils,
                *(
                    Problem(p.file, p.line, f"{p.message} (in the merged values of {', '.join(map(code, names))})")
                    for p, names in envs.items()
                ),
            ]
        )


class HV004(Helm):
    "The extraConfig Python snippets compile"

    def run(self, hub: Hub) -> str:
        problems = []
        for f in _all_files(hub):
            for root, keys in hub.chart_paths(SNIPPETS):
                snippets = get_path(f.data, [*root, *keys])
                if isinstance(snippets, str):
                    snippets = {None: snippets}
                for name, source in (snippets or {}).items() if isinstance(snippets, dict) else ():
                    if not isinstance(source, str):
                        continue  # HV003 judges a null; the schema checks other types
                    path = [*root, *keys] + ([name] if name else [])
                    try:
                        compile(source, ".".join(path), "exec")
                    except SyntaxError as error:
                        start = f.line_of(path) or 0
                        line = start + (error.lineno or 0) if start else None
                        problems.append(
                            Problem(
                                f.label,
                                line,
                                f"{code('.'.join(path[len(root) :]))} is not valid Python: {error.msg}"
                                f" (its line {error.lineno}); the pod running it would not start.",
                            )
                        )
        return report(problems)


def _gateway_of_a_kubernetes_hub(hub: Hub) -> list[Problem]:
    """A kubernetes hub deploys the jupyterhub chart alone: daskhub would
    deploy dask-gateway whatever its values say (no condition on it)."""
    if hub.dask_backend != "kubernetes":
        return []
    problems = [
        Problem(
            f.label,
            f.line_of([hub.umbrella]),
            f"{code(hub.umbrella + ':')} deploys daskhub, whose dask-gateway has no condition: this "
            f"kubernetes hub would run a gateway. Put its jupyterhub values under {code('jupyterhub:')}.",
        )
        for f in _all_files(hub)
        if hub.umbrella in f.data
    ]
    wanted = {("daskGateway", "enabled"): False, ("daskKubernetes", "enabled"): True}
    for env in hub.environments:
        layers = hub.values_layers(env)
        merged: dict[str, Any] = {}
        for f in layers:
            merged = coalesce(merged, f.data.get(DEPLOYMENT_KEY) or {})
        for keys, value in wanted.items():
            if get_path(merged, list(keys)) is not value:
                path = ".".join((DEPLOYMENT_KEY, *keys))
                problems.append(
                    Problem(
                        layers[0].label if layers else "config/common.yaml",
                        None,
                        f"{code(path)} is not {code(str(value).lower())} in {code(env)}: the deployment "
                        f"chart then {'deploys daskhub and its gateway' if value is False else 'makes no Role for the users'}.",
                    )
                )
    return list(dict.fromkeys(problems))


CHECKS = (HV001, HV002, HV003, HV004)
