"""The loopback servers behind the boundary (see standins/__init__.py): an
HTTPS proxy that answers for the hosts stood in (with certificates of a
throwaway CA) and refuses every other host, and a Kubernetes API that has no
namespaces until one is created. Each request is logged, so a test can say
what the workflows asked the internet and the cloud for."""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

# (method, host, path, body) -> (status, content type, body); None: not found.
Route = Callable[[str, str, str, bytes], "tuple[int, str, bytes] | None"]


class RequestLog:
    """Every request the stand-ins answered or refused, in order, as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, **entry: Any) -> None:
        with self._lock, self.path.open("a") as log:
            log.write(json.dumps(entry) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def _handler(route: Route, log: RequestLog, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the RequestLog keeps what matters
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = (self.headers.get("Host") or server_name).split(":")[0]
            path = urlsplit(self.path).path if self.path.startswith("http") else self.path
            answer = route(self.command, host, path, body)
            status, content_type, payload = answer or (404, "text/plain", f"not stood in: {host}{path}\n".encode())
            authorization = self.headers.get("Authorization")
            log.add(
                server=server_name,
                method=self.command,
                host=host,
                path=path,
                status=status,
                body=body.decode(errors="replace"),
                # A digest, never the credential: a test compares it with the one it expects.
                authorization=hashlib.sha256(authorization.encode()).hexdigest() if authorization else None,
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = _answer

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


class HttpsProxy:
    """An HTTP proxy on loopback for CONNECT only. For a host it stands in for
    (one of the ``hosts`` patterns, fnmatch-style) it terminates TLS with a
    certificate ``context_for(host)`` makes (the throwaway CA's, naming that
    host) and answers through ``route``; any other host is refused (403) and
    logged, so a URL the boundary does not list fails loudly."""

    def __init__(
        self,
        hosts: frozenset[str],
        context_for: Callable[[str], ssl.SSLContext],
        route: Route,
        log: RequestLog,
    ) -> None:
        self.hosts, self.context_for, self.route, self.log = hosts, context_for, route, log
        # Loopback servers reached through the proxy byte for byte (clients
        # that ignore NO_PROXY, such as the kubernetes client hubploy uses).
        self.relays: set[tuple[str, int]] = set()
        proxy = self

        class Connect(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_CONNECT(self) -> None:
                host, _, port = self.path.rpartition(":")
                if (host, int(port)) in proxy.relays:
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    self.wfile.flush()
                    self.close_connection = True
                    _relay(self.connection, (host, int(port)))
                    return
                if not any(fnmatch.fnmatchcase(host, pattern) for pattern in proxy.hosts):
                    proxy.log.add(server="proxy", method="CONNECT", host=host, path="", status=403, body="")
                    self.send_error(403, f"{host} is not stood in (tests/standins): the test machine has no internet")
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                try:
                    tls = proxy.context_for(host).wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                self.close_connection = True
                try:
                    _handler(proxy.route, proxy.log, host)(tls, self.client_address, self.server)
                finally:
                    tls.close()

            def do_GET(self) -> None:  # plain-http proxying is not offered
                self.send_error(405, "only CONNECT (https) is proxied")

        self.server = _Server(("127.0.0.1", 0), Connect)
        _serve(self.server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _relay(client: socket.socket, address: tuple[str, int]) -> None:
    """Copy bytes both ways between ``client`` and a loopback server until either closes."""
    with socket.create_connection(address) as upstream:

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()


class HttpsServer:
    """A plain HTTPS server on loopback (the cluster's API endpoint)."""

    def __init__(self, context: ssl.SSLContext, route: Route, log: RequestLog, name: str) -> None:
        self.server = _Server(("127.0.0.1", 0), _handler(route, log, name))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        _serve(self.server)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- what the stood-in hosts answer ---------------------------------------------------


def _json(status: int, value: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value).encode()


def static_files(sites: dict[str, Path]) -> Route:
    """Serve folders at URL prefixes (``host/path/``): the chart repositories."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        for prefix, folder in sites.items():
            site_host, _, site_path = prefix.partition("/")
            if host == site_host and path.startswith(f"/{site_path}"):
                file = folder / path[len(site_path) + 1 :]
                if method in ("GET", "HEAD") and file.is_file():
                    return 200, "application/octet-stream", file.read_bytes()
        return None

    return route


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c3RhbmQtaW4"


def oidc(route_host: str, claims: dict[str, Any]) -> Route:
    """GitHub's OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): a token
    for the audience asked, which no one here verifies."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        if host != route_host:
            return None
        return _json(200, {"value": _jwt({**claims, "iat": int(time.time())})})

    return route


def google(cluster_endpoint: Callable[[], str], ca_pem: bytes) -> Route:
    """Google's STS token exchange, service account impersonation and GKE
    API, as google-auth and hubploy call them with workload identity federation."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        if host == "sts.googleapis.com" and path == "/v1/token" and method == "POST":
            return _json(
                200,
                {
                    "access_token": "stand-in-federated-token",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            )
        if host == "iamcredentials.googleapis.com" and path.endswith(":generateAccessToken") and method == "POST":
            expiry = datetime.now(timezone.utc) + timedelta(hours=1)
            return _json(
                200, {"accessToken": "stand-in-gke-token", "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
            )
        if host == "container.googleapis.com" and path.startswith("/v1/projects/") and method == "GET":
            return _json(
                200,
                {
                    "name": path.rsplit("/", 1)[-1],
                    "endpoint": cluster_endpoint(),
                    "masterAuth": {"clusterCaCertificate": base64.b64encode(ca_pem).decode()},
                },
            )
        return None

    return route


def aws_sts() -> Route:
    """AWS STS AssumeRole (boto3's role chaining in hubploy), any region."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        if not (host.startswith("sts.") and host.endswith(".amazonaws.com")) or method != "POST":
            return None
        action = parse_qs(body.decode()).get("Action", [""])[0]
        if action != "AssumeRole":
            return None
        expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            "<Credentials><AccessKeyId>ASIASTANDINCHAINED00</AccessKeyId>"
            "<SecretAccessKey>stand-in-secret</SecretAccessKey><SessionToken>stand-in-session</SessionToken>"
            f"<Expiration>{expiry}</Expiration></Credentials>"
            "<AssumedRoleUser><AssumedRoleId>AROASTANDIN:hubploy</AssumedRoleId>"
            "<Arn>arn:aws:sts::000000000000:assumed-role/stand-in/hubploy</Arn></AssumedRoleUser>"
            "</AssumeRoleResult><ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
        return 200, "text/xml", xml.encode()

    return route


KMS_MARK = b"stand-in-kms\0"


def aws_kms() -> Route:
    """AWS KMS Encrypt and Decrypt, as sops calls them for a `kms:` key: the
    "ciphertext" is the data key marked, so only this stand-in opens it."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        if not (host.startswith("kms.") and host.endswith(".amazonaws.com")) or method != "POST":
            return None
        request = json.loads(body or b"{}")
        if "Plaintext" in request:
            blob = base64.b64encode(KMS_MARK + base64.b64decode(request["Plaintext"])).decode()
            return (
                200,
                "application/x-amz-json-1.1",
                json.dumps({"CiphertextBlob": blob, "KeyId": request["KeyId"]}).encode(),
            )
        if "CiphertextBlob" in request:
            blob = base64.b64decode(request["CiphertextBlob"])
            if not blob.startswith(KMS_MARK):
                return 400, "application/x-amz-json-1.1", b'{"__type": "InvalidCiphertextException"}'
            plain = base64.b64encode(blob[len(KMS_MARK) :]).decode()
            key = request.get("KeyId", "stand-in")
            return 200, "application/x-amz-json-1.1", json.dumps({"Plaintext": plain, "KeyId": key}).encode()
        return None

    return route


def github_fast_path(repositories: dict[str, Path]) -> Route:
    """What uv asks GitHub for a `git+https://github.com/OWNER/REPO@REF`
    requirement before (or instead of) fetching it by git, for a repository
    the boundary serves by git (OWNER/REPO -> its local copy): the ref's
    commit from the REST API (`GET api.github.com/repos/OWNER/REPO/commits/REF`,
    the SHA as text), then its pyproject.toml from raw.githubusercontent.com
    (`/OWNER/REPO/SHA/PATH`). Anything else: 404, as GitHub answers; uv then
    fetches by git."""

    def git(local: Path, *args: str) -> bytes | None:
        done = subprocess.run(["git", "-C", str(local), *args], capture_output=True)
        return done.stdout if done.returncode == 0 else None

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        parts = path.partition("?")[0].strip("/").split("/")
        if method != "GET" or host not in ("api.github.com", "raw.githubusercontent.com"):
            return None
        if host == "api.github.com" and parts[:1] == ["repos"] and parts[3:4] == ["commits"]:
            name, ref, what = "/".join(parts[1:3]), "/".join(parts[4:]), "commit"
        elif host == "raw.githubusercontent.com" and len(parts) >= 4:
            name, ref, what = "/".join(parts[0:2]), parts[2], "/".join(parts[3:])
        else:
            return None
        local = repositories.get(name.removesuffix(".git"))
        found = None
        if local is not None and ref and not ref.startswith("-"):
            if what == "commit":
                found = git(local, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
            else:
                found = git(local, "show", f"{ref}:{what}")
        if found is None:
            return _json(404, {"message": "Not Found", "status": "404"})
        if what == "commit":
            return 200, "application/vnd.github.sha", found.strip()
        return 200, "text/plain; charset=utf-8", found

    return route


# What the stand-in answers where a deployed hub would (the health check's requests).
NO_DEPLOYED_HUB = "stand-in: no deployed hub here (tests/standins): helm rendered the release, no cluster ran it"


def no_deployed_hub() -> Route:
    """The API of a hub the deploy would have made, as it is here: not running."""

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        if not (host.endswith(".pangeo.io") and path.startswith("/hub/api/")):
            return None
        return _json(503, {"status": 503, "message": NO_DEPLOYED_HUB})

    return route


def kubernetes_api() -> Route:
    """A cluster with no namespaces until hubploy creates one (it reads the
    release's namespace, and creates it on a 404)."""
    namespaces: set[str] = set()
    lock = threading.Lock()

    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"]:
            return None
        with lock:
            if method == "GET" and len(parts) == 4:
                if parts[3] in namespaces:
                    return _json(200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": parts[3]}})
                return _json(
                    404,
                    {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
                )
            if method == "POST" and len(parts) == 3:
                name = json.loads(body)["metadata"]["name"]
                namespaces.add(name)
                return _json(201, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}})
        return None

    return route


def first(*routes: Route) -> Route:
    def route(method: str, host: str, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        for candidate in routes:
            answer = candidate(method, host, path, body)
            if answer is not None:
                return answer
        return None

    return route
