#!/usr/bin/env python3
"""The command-line tools of a GitHub-hosted runner and of the clouds, stood
in for (tests/standins/__init__.py lists each with its reason). Each name in
this folder is a link to this file; it logs its call as one JSON line to
$HUB_TEMPLATE_STANDIN_CALLS, does what the real tool's effect on the run is
(a kubeconfig written, a token printed, an image recorded as pushed) and
refuses anything it does not know, so an unlisted use fails loudly.

Standard library only: it runs under whichever python3 the job has on PATH.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path


def log(tool: str, args: list[str], **extra: object) -> None:
    with open(os.environ["HUB_TEMPLATE_STANDIN_CALLS"], "a") as calls:
        calls.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd(), **extra}) + "\n")


def refuse(tool: str, args: list[str]) -> int:
    print(f"{tool} stand-in (tests/standins/bin): `{tool} {' '.join(args)}` is not stood in", file=sys.stderr)
    return 2


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def kube_api() -> tuple[str, str]:
    """The loopback Kubernetes API the cluster stands for, and its CA (base64)."""
    ca = Path(os.environ["HUB_TEMPLATE_STANDIN_CA"]).read_bytes()
    return f"https://{os.environ['HUB_TEMPLATE_STANDIN_KUBE_API']}", base64.b64encode(ca).decode()


def write_kubeconfig(path: str, name: str, user: dict[str, object]) -> None:
    server, ca = kube_api()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": user}],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(config, indent=2))  # JSON is YAML


def exec_credential(token: str) -> None:
    print(
        json.dumps(
            {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": {"token": token}}
        )
    )


# --- the runner image ---------------------------------------------------------------


def sudo(args: list[str]) -> int:
    """Runners give passwordless sudo; the tests run as root already."""
    log("sudo", args)
    return subprocess.run(args).returncode


def apt_get(args: list[str]) -> int:
    """A runner installs Debian packages; here the test machine's own package
    manager is left alone: each package must already be installed (.ci/run's
    apt line), or the step fails naming it."""
    log("apt-get", args)
    if not args or args[0] != "install":
        return refuse("apt-get", args)
    packages = [a for a in args[1:] if not a.startswith("-")]
    missing = [p for p in packages if subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode]
    if missing:
        print(f"apt-get stand-in: {missing} not installed; add them to .ci/run's apt line", file=sys.stderr)
        return 1
    return 0


# --- the registries: docker --------------------------------------------------------


def registry_path() -> Path:
    return Path(os.environ["HUB_TEMPLATE_STANDIN_REGISTRY"])


def docker(args: list[str]) -> int:
    """The docker CLI without a daemon. repo2docker 2026.4 builds with
    `docker buildx build` of the context it wrote (its Dockerfile inside);
    the build is recorded, with `--push` into the registry stand-in (a JSON
    file, image:tag -> digest of the context), not run."""
    log("docker", args)
    if args[:1] in (["version"], ["login"]) or args[:2] == ["buildx", "version"]:
        if args[:1] == ["login"]:
            sys.stdin.read()
        return 0
    if args[:2] == ["manifest", "inspect"]:
        registry = json.loads(registry_path().read_text()) if registry_path().exists() else {}
        if args[2] in registry:
            print(json.dumps({"schemaVersion": 2, "config": {"digest": registry[args[2]]}}))
            return 0
        print(f"no such manifest: {args[2]}", file=sys.stderr)
        return 1
    if args[:2] == ["image", "inspect"]:
        print("[]")
        return 1  # no local images: nothing is ever built here
    if args[:2] == ["buildx", "build"]:
        context = Path(args[-1])
        dockerfile = context / (option(args, "--file") or "Dockerfile")
        if not dockerfile.is_file():
            print(f"docker stand-in: no {dockerfile}", file=sys.stderr)
            return 1
        digest = hashlib.sha256()
        for path in sorted(p for p in context.rglob("*") if p.is_file()):
            digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes())
        tag = option(args, "--tag")
        record = {
            "tag": tag,
            "push": "--push" in args,
            "digest": f"sha256:{digest.hexdigest()}",
            "dockerfile": dockerfile.read_text(),
            # What the conda buildpack will install (the lock, when CI used it).
            "environments": {
                p.relative_to(context).as_posix(): p.read_text() for p in sorted(context.rglob("environment.yml"))
            },
        }
        log("docker-build", [str(tag)], build=record)
        if record["push"]:
            registry = json.loads(registry_path().read_text()) if registry_path().exists() else {}
            registry[str(tag)] = record["digest"]
            registry_path().write_text(json.dumps(registry, indent=1))
        print(f"#1 naming to {tag} done")
        return 0
    return refuse("docker", args)


# --- GitHub's CLI ------------------------------------------------------------------


def gh(args: list[str]) -> int:
    """The runner's gh, for the pull requests a workflow opens: recorded (with
    the body file's text) in $HUB_TEMPLATE_STANDIN_STATE/pulls.json, which
    `pr list` answers from."""
    pulls_path = Path(os.environ["HUB_TEMPLATE_STANDIN_STATE"]) / "pulls.json"
    pulls = json.loads(pulls_path.read_text()) if pulls_path.exists() else []
    body = option(args, "--body-file")
    log("gh", args, body=Path(body).read_text() if body else None)
    if args[:2] == ["pr", "list"]:
        head, base = option(args, "--head"), option(args, "--base")
        print(sum(1 for p in pulls if p["head"] == head and p["base"] == base))  # --jq length
        return 0
    if args[:2] == ["pr", "create"] and body:
        pulls.append(
            {
                "head": option(args, "--head"),
                "base": option(args, "--base"),
                "title": option(args, "--title"),
                "body": Path(body).read_text(),
            }
        )
    elif args[:2] == ["pr", "edit"] and body:
        (pull,) = [p for p in pulls if p["head"] == args[2]]
        pull["body"] = Path(body).read_text()
    else:
        return refuse("gh", args)
    pulls_path.write_text(json.dumps(pulls, indent=1))
    return 0


# --- the clouds' CLIs --------------------------------------------------------------


def gcloud(args: list[str]) -> int:
    log("gcloud", args)
    if args[:2] == ["auth", "configure-docker"]:
        return 0
    return refuse("gcloud", args)


def aws(args: list[str]) -> int:
    log("aws", args)
    if args[:2] == ["eks", "update-kubeconfig"]:
        name, region = option(args, "--name"), option(args, "--region")
        kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["--region", str(region), "eks", "get-token", "--cluster-name", str(name)],
            }
        }
        write_kubeconfig(kubeconfig, f"arn:aws:eks:{region}:000000000000:cluster/{name}", user)
        return 0
    if "eks" in args and "get-token" in args:
        exec_credential("k8s-aws-v1.stand-in")
        return 0
    if args[:2] == ["sts", "get-caller-identity"]:
        role = (Path(os.environ["HUB_TEMPLATE_STANDIN_STATE"]) / "aws-role").read_text().strip()
        print(role.split(":")[4] if "--query" in args else json.dumps({"Account": role.split(":")[4], "Arn": role}))
        return 0
    if args[:2] == ["ecr", "get-login-password"]:
        print("stand-in-ecr-password")
        return 0
    return refuse("aws", args)


def az(args: list[str]) -> int:
    log("az", args)
    if args[:1] == ["login"] or args[:2] in (["acr", "login"], ["account", "set"]):
        return 0
    if args[:2] == ["aks", "get-credentials"]:
        name = option(args, "--name")
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token", "--login", "devicecode", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"],
            }
        }
        write_kubeconfig(str(option(args, "--file")), str(name), user)
        return 0
    return refuse("az", args)


def kubelogin(args: list[str]) -> int:
    log("kubelogin", args)
    if args[:1] == ["convert-kubeconfig"]:
        path = Path(str(option(args, "--kubeconfig")))
        config = json.loads(path.read_text())
        login = option(args, "--login") or option(args, "-l")
        for user in config["users"]:
            user["user"]["exec"]["args"] = [
                "get-token",
                "--login",
                str(login),
                "--server-id",
                "6dae42f8-4368-4678-94ff-3960e28e3630",
            ]
        path.write_text(json.dumps(config, indent=2))
        return 0
    if args[:1] == ["get-token"]:
        exec_credential("stand-in-aad-token")
        return 0
    return refuse("kubelogin", args)


# --- the cluster: helm upgrade --install, rendered and validated -------------------

# `helm upgrade` flags that only a cluster gives a meaning to, with whether they take a value.
CLUSTER_ONLY = {
    "--install": False,
    "--wait": False,
    "--cleanup-on-fail": False,
    "--atomic": False,
    "--force": False,
    "--timeout": True,
    "--kube-context": True,
    "--dry-run": False,
}


def helm_no_cluster(args: list[str]) -> int:
    """hubploy's helm (HELM_EXECUTABLE): every command runs the real helm
    on PATH, except `upgrade --install`, which no cluster can take here: it
    is rendered by `helm template` with the same release, chart, namespace,
    values and --set flags, and its objects validated by
    `kubernetes-validate --strict`."""
    log("helm", args)
    if not (args[:1] == ["upgrade"] and "--install" in args):
        return subprocess.run(["helm", *args]).returncode
    template: list[str] = []
    rest = args[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        flag = arg.split("=", 1)[0]
        if flag in CLUSTER_ONLY:
            i += 2 if CLUSTER_ONLY[flag] and "=" not in arg else 1
            continue
        template.append(arg)
        i += 1
    done = subprocess.run(["helm", "template", *template], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode:
        return done.returncode
    namespace = option(template, "--namespace")
    manifest = Path(os.environ["HUB_TEMPLATE_STANDIN_RELEASES"]) / f"{namespace}.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(done.stdout)
    log("helm-release", template, manifest=str(manifest))
    validate = subprocess.run(
        [os.environ["HUB_TEMPLATE_STANDIN_KUBERNETES_VALIDATE"], "--strict", "--quiet", str(manifest)],
        capture_output=True,
        text=True,
    )
    sys.stdout.write(validate.stdout)
    sys.stderr.write(validate.stderr)
    if validate.returncode == 0:
        print(
            f"Release {namespace} rendered ({done.stdout.count(chr(10) + 'kind: ')} objects) and valid: no cluster here"
        )
    return validate.returncode


TOOLS = {
    "sudo": sudo,
    "apt-get": apt_get,
    "docker": docker,
    "gh": gh,
    "gcloud": gcloud,
    "aws": aws,
    "az": az,
    "kubelogin": kubelogin,
    "helm-no-cluster": helm_no_cluster,
}

if __name__ == "__main__":
    sys.exit(TOOLS[Path(sys.argv[0]).name](sys.argv[1:]))
