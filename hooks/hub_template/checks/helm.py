"""Helm values: what hubploy gives helm for each environment (config/common.yaml,
config/<env>.yaml, then secrets/<env>.yaml), merged the way helm merges them
and validated against the chart given with --chart (hub_template.helm_values)."""

from __future__ import annotations

from ..helm_values import Problem, misplaced_keys, schema_problems, unused_keys
from .base import Helm, code, get_path, report
from .hub import ChartSource, Hub

GET_A_CHART = (
    "no chart given: pass `--chart DIR`, a daskhub chart folder. Get one with "
    "`helm repo add dask https://helm.dask.org && helm pull dask/daskhub --untar`, or, for the "
    "development daskhub hubs target, `git clone https://github.com/dask/helm-chart` at "
    "versions.yml's daskhub_git_ref and `helm dependency build helm-chart/daskhub`"
)

# Python snippets the charts exec at start: a syntax error there crashes the pod.
SNIPPETS = (("jupyterhub", "hub", "extraConfig"), ("dask-gateway", "gateway", "extraConfig"))


def _all_files(hub: Hub):
    seen, files = set(), []
    for env in hub.environments:
        for f in hub.values_layers(env):
            if f.label not in seen:
                seen.add(f.label)
                files.append(f)
    return files


class HV001(Helm):
    "Helm values files put everything under the umbrella chart's key"

    def check(self, hub: Hub) -> str:
        return report(misplaced_keys(_all_files(hub), hub.umbrella))


class HV002(Helm):
    "Every key under the umbrella key is one daskhub or its charts read"

    def check(self, hub: Hub, chart: ChartSource) -> str | None:
        if chart.chart is None:
            return self.skip(GET_A_CHART)
        return report(unused_keys(chart.chart, _all_files(hub), hub.umbrella))


class HV003(Helm):
    "Each environment's merged values pass the charts' schemas"

    def check(self, hub: Hub, chart: ChartSource) -> str | None:
        if chart.chart is None:
            return self.skip(GET_A_CHART)
        envs: dict[Problem, list[str]] = {}  # a problem of common.yaml shows in every environment
        for env in hub.environments:
            for p in schema_problems(chart.chart, hub.values_layers(env), hub.umbrella):
                envs.setdefault(p, []).append(env)
        return report(Problem(p.file, p.line, f"{p.message} (in the merged values of {', '.join(map(code, names))})")
                      for p, names in envs.items())


class HV004(Helm):
    "The extraConfig Python snippets compile"

    def check(self, hub: Hub) -> str:
        problems = []
        for f in _all_files(hub):
            for keys in SNIPPETS:
                snippets = get_path(f.data, [hub.umbrella, *keys])
                if isinstance(snippets, str):
                    snippets = {None: snippets}
                for name, source in (snippets or {}).items() if isinstance(snippets, dict) else ():
                    if not isinstance(source, str):
                        continue  # null deletes a chart snippet; the schema checks other types
                    path = [hub.umbrella, *keys] + ([name] if name else [])
                    try:
                        compile(source, ".".join(path), "exec")
                    except SyntaxError as error:
                        start = f.line_of(path) or 0
                        line = start + (error.lineno or 0) if start else None
                        problems.append(Problem(f.label, line,
                            f"{code('.'.join(path[1:]))} is not valid Python: {error.msg}"
                            f" (its line {error.lineno}); the pod running it would not start."))
        return report(problems)


CHECKS = (HV001, HV002, HV003, HV004)
