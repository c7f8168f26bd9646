"""`hub-template preview deployments/<hub> [--smoke]`: the verb.

Reads the hub and its chart, makes (or reuses) the users' environment, starts
dask-gateway-server and JupyterHub (which starts configurable-http-proxy and
the users' servers) on free loopback ports, prints what it replaced and the
URL, then waits for Ctrl-C, or with --smoke walks the researcher's path.
Every process it started is stopped on the way out, by pid.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import yaml

from hub_template import daskhub_chart, load_data, user_cache
from hub_template.copier_settings import ANSWERS_FILE
from hub_template.helm_values import Chart, ValuesFile
from hub_template.preview import (
    PreviewError,
    Say,
    gateway_config,
    hub_config,
    oidc,
    overrides,
    program_failed,
    sandbox,
    userenv,
)
from hub_template.preview.processes import Processes, free_port

DESCRIPTION = "Run a rendered hub on this machine (127.0.0.1 only) with its own configuration."
# Shown under the examples of `hub-template preview --help` (cli.EXAMPLES).
ABOUT = """\
What a preview proves: the hub's own JupyterHub configuration (hub.config,
hub.extraConfig, services, the singleuser environment), its dask-gateway
options, limits and scheduler/worker commands, its image's start script, dask
config and JupyterLab workspace, and its welcome notebook, work together in a
real JupyterHub, configurable-http-proxy, dask-gateway-server and JupyterLab.

What it does not prove: GitHub or CILogon login (a shared password stands
in; a generic OIDC hub's own authenticator runs against a loopback provider),
KubeSpawner and Kubernetes (local processes; no pods, resources or node
pools), the image build (an approximate pip environment stands in for the
conda solve), users' storage, TLS and the domain, and the scratch bucket
(never reached).

configurable-http-proxy comes from npm: npm install -g configurable-http-proxy
"""
ENV_ENV = "staging"  # the values a preview loads: common + staging, as hubploy deploys staging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = f"{parser.epilog}\n\n{ABOUT}"
    parser.add_argument("hub", type=Path, help="the hub's folder, deployments/<hub>")
    parser.add_argument(
        "--chart",
        type=Path,
        metavar="DIR",
        default=os.environ.get("HUB_TEMPLATE_CHART_DATA"),
        help="the daskhub chart folder whose defaults the values sit on, for offline use (default: "
        "$HUB_TEMPLATE_CHART_DATA, else the chart the federation's CI builds, built once into the user's cache)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="walk the researcher's path in headless Chromium, then stop; exit 0 only if all works",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("preview-artifacts"),
        metavar="DIR",
        help="where --smoke saves screenshots (default: ./preview-artifacts)",
    )
    parser.add_argument(
        "--screenshot", type=Path, metavar="PNG", help="with --smoke: a screenshot of JupyterLab after the notebook ran"
    )
    parser.add_argument(
        "--notebooks",
        action="store_true",
        help="with --smoke: run each notebook of image/ in the user's server (hub-template run-notebooks)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run a source repository's postBuild and start (shown first) without asking",
    )
    parser.add_argument(
        "--allow-requirement",
        action="append",
        default=[],
        metavar="SPEC",
        help="a pip requirement that is a URL or path, allowed into the users' environment (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM unwind through the finally below from the first
    # moment: nothing this preview made (its folder, a half-built chart, a
    # process) outlives it.
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(number: int, _frame: FrameType | None) -> NoReturn:
        stop["signal"] = number
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    work = Path(tempfile.mkdtemp(prefix="hub-template-preview-"))
    # Where a failed preview's logs are kept: its folder is removed whatever happens.
    logs = user_cache() / "preview-logs" / work.name
    procs = Processes(work)
    code = 0
    try:
        try:
            inputs = prepare(args, logs)
        except PreviewError as error:  # the command's input: nothing started yet
            print(f"hub-template preview: {error}", file=sys.stderr)
            code = 2
        else:
            code = serve(args, inputs, work, procs)
    except KeyboardInterrupt:
        say("stopping")
        code = 130 if stop["signal"] != signal.SIGTERM else 0
    except (PreviewError, daskhub_chart.ChartBuildError) as error:
        print(f"hub-template preview: {error}", file=sys.stderr)
        code = 1
    finally:
        killed = procs.stop_all()
        left = [p.pid for p in procs.ours()]
        for s, handler in previous.items():
            signal.signal(s, handler)
        if left:
            print(f"hub-template preview: processes left running: {left}", file=sys.stderr)
            code = code or 1
        elif procs.started:
            say(f"stopped every process it started{f' ({len(killed)} needed SIGKILL)' if killed else ''}")
        keep_logs(work, logs, failed=code not in (0, 130))
        if not left:  # a process still working in the folder keeps it, and is named above
            shutil.rmtree(work, ignore_errors=True)
    return code


def prepare(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """The hub's inputs, once the operator accepted a source repository's scripts."""
    inputs = read(args.hub, args.chart)
    inputs["allowed_requirements"] = args.allow_requirement
    inputs["logs"] = logs
    source = inputs["answers"].get("source_repo")
    if source:
        binder = inputs["hub"] / "image" / "binder"
        sandbox.consent([binder / "postBuild", binder / "start"], source, args.yes, sys.stdin.isatty())
    return inputs


def serve(args: argparse.Namespace, inputs: dict[str, Any], work: Path, procs: Processes) -> int:
    """Start the hub, then walk the smoke path or wait for Ctrl-C."""
    stack = start(inputs, work, procs, say)
    if args.smoke:
        from hub_template.preview import smoke

        times = smoke.run(
            stack["target"], args.artifacts, args.screenshot, say, stack["memory"], notebooks=args.notebooks
        )
        say("smoke: passed; " + ", ".join(f"{k}: {v:.1f}" for k, v in times.items()))
        return 0
    say("Ctrl-C stops the preview and everything it started.")
    while all(p.poll() is None for p in procs.started):
        time.sleep(0.5)
    raise PreviewError("a program of the preview exited on its own; see its log in " + str(inputs["logs"]))


KEPT_FAILURES = 10  # failed previews whose logs stay in the user's cache


def keep_logs(work: Path, logs: Path, failed: bool) -> None:
    """A failed preview's logs, out of its folder into `logs` (named on stderr);
    a preview that did not fail keeps none. Only the newest KEPT_FAILURES
    failures' logs stay in the cache."""
    for log in sorted(work.glob("*.log")) if failed else ():
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, logs / log.name)
    kept = sorted(logs.glob("*.log")) if logs.is_dir() else []
    if failed and kept:
        print(f"hub-template preview: the programs' logs: {', '.join(str(p) for p in kept)}", file=sys.stderr)
    elif not failed:
        shutil.rmtree(logs, ignore_errors=True)
    earlier = [d for d in logs.parent.glob("hub-template-preview-*") if d.is_dir() and d != logs]
    earlier.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in earlier[KEPT_FAILURES - (1 if logs.is_dir() else 0) :]:
        shutil.rmtree(old, ignore_errors=True)


def say(line: str) -> None:
    print(line, flush=True)


def read(hub: Path, chart_dir: Path | None, out: Say = say) -> dict[str, Any]:
    """The hub's merged values and files, or a one-line reason. Without a
    chart folder, the daskhub chart the federation's CI builds (built once)."""
    hub = hub.resolve()
    if not (hub / "config" / "common.yaml").is_file() or not (hub / "image" / "binder").is_dir():
        raise PreviewError(f"{hub}: not a hub folder (it needs config/common.yaml and image/binder/)")
    chp = shutil.which("configurable-http-proxy")
    if chp is None:
        raise PreviewError("no configurable-http-proxy: npm install -g configurable-http-proxy")
    sandbox.program()
    answers = yaml.safe_load((hub / ANSWERS_FILE).read_text()) if (hub / ANSWERS_FILE).exists() else {}
    if answers.get("dask_backend") == "kubernetes":
        raise PreviewError(
            f"{hub.name} uses the kubernetes dask backend, whose clusters need Kubernetes: preview runs gateway hubs"
        )
    umbrella = answers.get("helm_umbrella_key", "daskhub")
    if chart_dir is None:
        chart_dir = daskhub_chart.ensure(out)
    try:
        chart = Chart(chart_dir)
        layers = [
            ValuesFile.load(hub / rel, rel).data.get(umbrella) or {}
            for rel in ("config/common.yaml", f"config/{ENV_ENV}.yaml", *clear_secrets(hub))
            if (hub / rel).exists()
        ]
        values = chart.merged(layers)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise PreviewError(f"{chart_dir}: cannot read the chart or the hub's values: {error}"[:200]) from None
    workspace = hub / "image" / "binder" / "jupyterlab-workspace.json"
    return {"hub": hub, "values": values, "chp": chp, "answers": answers, "workspace": workspace}


def clear_secrets(hub: Path) -> list[str]:
    """secrets/<env>.yaml, as hubploy layers it last, when it is readable here:
    git-crypt unlocked (or not yet encrypted), not sops-encrypted. Its OAuth
    values go unused (a shared password stands in); its services' tokens are
    the hub's own, so the health check runs as CI runs it."""
    rel = f"secrets/{ENV_ENV}.yaml"
    try:
        raw = (hub / rel).read_bytes()
        data = yaml.safe_load(raw) if not raw.startswith(b"\0GITCRYPT") else None
    except (OSError, yaml.YAMLError):
        return []
    return [rel] if isinstance(data, dict) and "sops" not in data else []


def workspace_notebook(workspace: Path) -> str | None:
    """The notebook the hub's workspace opens, relative to the user's home."""
    import json

    if not workspace.exists():
        return None
    data = json.loads(workspace.read_text()).get("data", {})
    return next((entry["data"]["path"] for key, entry in data.items() if key.startswith("notebook:")), None)


def start(inputs: dict[str, Any], work: Path, procs: Processes, out: Say) -> dict[str, Any]:
    hub, values = inputs["hub"], inputs["values"]
    versions = load_data("versions.yml")
    environment_yml = hub / "image" / "binder" / "environment.yml"
    sandbox.refuse_url_requirements(
        userenv.requirements(environment_yml, versions["jupyterhub"]), inputs.get("allowed_requirements", ())
    )
    env = userenv.ensure(environment_yml, versions["jupyterhub"], out)
    # The image's dask and Jupyter config, installed by the hub's own postBuild
    # (as the image's user, in the sandbox), into a prefix of this run; dask
    # and Jupyter read it there through DASK_ROOT_CONFIG and JUPYTER_CONFIG_PATH.
    prefix = work / "nb-python-prefix"
    post_build = hub / "image" / "binder" / "postBuild"
    if post_build.exists():
        build_home = work / "build-home"
        done = subprocess.run(
            sandbox.argv(
                ["bash", str(post_build)],
                read_only=[env.prefix, hub / "image"],
                writable=[prefix],
                home=build_home,
                cwd=hub / "image",
                env=sandbox.environment(
                    {
                        "HOME": str(build_home),
                        "USER": sandbox.USER["user_name"],
                        "NB_USER": sandbox.USER["user_name"],
                        "NB_PYTHON_PREFIX": str(prefix),
                        "REPO_DIR": str(hub / "image"),
                        "PATH": f"{env.bin}:/usr/bin:/bin",
                    }
                ),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if done.returncode != 0:
            raise program_failed(
                f"image/binder/postBuild failed (exit {done.returncode})", done.stdout, inputs["logs"] / "postBuild.log"
            )
    ports = hub_config.Ports(*(free_port() for _ in range(5)))
    password = secrets.token_urlsafe(12)
    gateway_token = secrets.token_hex(32)
    path = f"{env.bin}:/usr/bin:/bin"
    gateway = values.get("dask-gateway") or {}
    gateway_on = bool(gateway.get("enabled"))
    t0 = time.monotonic()
    if gateway_on:
        clusters = work / "clusters"
        clusters.mkdir()
        settings = gateway_config.local_settings(
            ports.gateway_api,
            ports.gateway_proxy,
            clusters,
            hub_api_url=f"http://127.0.0.1:{ports.hub}/hub/api",
            hub_token=gateway_token,
        )
        config = work / "dask_gateway_config.py"
        config.write_text(
            gateway_config.config_text(settings, gateway["gateway"].get("extraConfig"), gateway["gateway"])
        )
        listed = gateway_config.listed(settings)
        # Schedulers and workers run in the users' environment, as they run the users' image.
        gateway_proc = procs.start(
            "dask-gateway-server",
            [str(Path(sys.executable).parent / "dask-gateway-server"), "-f", str(config)],
            {**os.environ, "PATH": path},
            work,
        )
        procs.wait_http(
            "dask-gateway-server",
            gateway_proc,
            f"http://127.0.0.1:{ports.gateway_proxy}{gateway['gateway'].get('prefix', '').rstrip('/')}/api/health",
            60,
        )
    else:
        listed = ()
    user_env = {
        "PATH": path,
        "REPO_DIR": str(hub / "image"),
        "DASK_ROOT_CONFIG": str(prefix / "etc" / "dask"),
        "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
    }
    # Each server runs through the image's start, as the image's user, in the
    # sandbox; the spawn binds its own home and volumes (hub_config's _mounted).
    homes = hub_config.storage(values, work).homes_root
    cmd = sandbox.argv(
        ["bash", str(hub / "image" / "binder" / "start"), "jupyterhub-singleuser"],
        read_only=[env.prefix, hub / "image", prefix],
        writable=[],
        home=homes,
    )
    image = (values["jupyterhub"].get("singleuser") or {}).get("image") or {}
    # A generic OIDC hub logs in through its own GenericOAuthenticator, against
    # a loopback provider (preview/oidc.py); any other login through a password.
    from hub_template.preview.smoke import USER

    hub_section = values["jupyterhub"].get("hub") or {}
    generic = oidc.generic_login(hub_section)
    login = None
    if generic is not None:
        claims = oidc.user_claims(generic, USER, oidc.login_domains(hub_section))
        login = oidc.start(procs, work, claims, f"http://127.0.0.1:{ports.proxy}/hub/oauth_callback")
    the_plan = hub_config.plan(
        values,
        ports=ports,
        work=work,
        password=password,
        chp=inputs["chp"],
        cmd=cmd,
        user_env=user_env,
        gateway_token=gateway_token,
        image_spec=f"{image.get('name', 'image')}:preview",
        oidc=login,
    )
    homes.mkdir(parents=True, exist_ok=True)
    config = hub_config.write(work, the_plan)
    hub_proc = procs.start(
        "jupyterhub",
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
        {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
        work,
    )
    procs.wait_http("jupyterhub", hub_proc, f"http://127.0.0.1:{ports.proxy}/hub/health", 90)
    hub_ready = time.monotonic() - t0
    url = f"http://127.0.0.1:{ports.proxy}"
    out(f"users' environment: {env.label}")
    out("replaced, as a preview must (everything else is the hub's own):")
    for o in (*(overrides.HUB_OIDC if login else overrides.HUB), *listed):
        out(f"  {o.target}: {o.why}")
    sizes = (values["jupyterhub"].get("singleuser") or {}).get("profileList") or []
    if sizes:
        out("sizes offered at login (KubeSpawner's form; here a local process each):")
        for size in sizes:
            out(f"  {size.get('slug')}: {size.get('description')}{' (default)' if size.get('default') else ''}")
    out(f"idle stack memory: {procs.rss() / 2**20:.0f} MiB")
    if login:
        out(f"hub ready in {hub_ready:.1f} s at {url}/  (log in as {USER} at the loopback OIDC provider)")
    else:
        out(f"hub ready in {hub_ready:.1f} s at {url}/  (any user name, password: {password})")
    prefix_path = (gateway.get("gateway") or {}).get("prefix", "/").rstrip("/") if gateway_on else None
    from hub_template.preview.smoke import Target

    target = Target(
        url=url,
        password=password,
        home=Path(the_plan["local"]["home_dir_template"].format(username=USER)),
        notebook=workspace_notebook(inputs["workspace"]),
        gateway_prefix=prefix_path,
        python=env.bin / "python",
        # A user's kernel: its server's environment, and the chart's gateway auth.
        client_env={**the_plan["local"]["env"], "DASK_GATEWAY__AUTH__TYPE": "jupyterhub"},
        login="oidc" if login else "password",
    )
    return {
        "target": target,
        "hub_ready": hub_ready,
        "work": work,
        "pids": [p.pid for p in procs.started],
        "memory": procs.rss,
    }
