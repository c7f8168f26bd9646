"""Secret detection by class (issue 27, item 3): each way a secret passed the
SE checks, planted in a rendered hub and checked with the real
`hub-template check`; no finding ever shows the value.

- secrets/: any value that is not the template's placeholder must be
  encrypted, whatever placeholders are left beside it;
- a sops file's values left in clear by its own rules are scanned;
- git-crypt's header before plaintext is no encryption (real git-crypt makes
  the real thing to compare);
- assignments in shell, Python, notebooks, netrc, npmrc, .env, helm values;
  token shapes from detect-secrets' plugins;
- the pre-commit hook runs on any file of a hub.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ROOT, check_report, git, hub_template
from hub_cells import copy_hub, rendered_hub

from hub_template.checks.encryption import encryption_of, is_git_crypt_output

# Shapes of real credentials, built so that this file itself holds none whole.
GITLAB_PAT = "glpat-" + "x7Rk2mQ9pL4vN8sT1wYz"
HF_TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
AZURE_SECRET = "Xy7" + "8Q~" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345.7"
SLACK_WEBHOOK = "https://hooks.slack.com/services/" + "T01ABCDEF/B02GHIJKL/" + "aBcDeFgHiJkLmNoPqRsTuVwX"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
AZURE_ACCOUNT_KEY = "AccountKey=" + "q" * 86 + "=="
PASSWORDS = ("hunter2-earthdata", "db-pass-0f9e8d7c", "npm-0123456789abcdef", "netrc-pw-5566778899")
CLIENT_SECRET = "3f9c2b1a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
VALUES = (GITLAB_PAT, HF_TOKEN, OPENAI_KEY, AZURE_SECRET, SLACK_WEBHOOK, AWS_SECRET, AZURE_ACCOUNT_KEY, CLIENT_SECRET)


@pytest.fixture
def hub(template_repo, tmp_path_factory, tmp_path) -> Path:
    return copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)


def check(hub: Path, select: str = "SE") -> dict[str, dict]:
    """The checks' results as JSON, after asserting no secret value was printed
    in either output format."""
    done = hub_template("check", str(hub), "--select", select, "--format", "json")
    rich = hub_template("check", str(hub), "--select", select)
    assert "Traceback" not in done.stderr + rich.stderr
    for value in (*VALUES, *PASSWORDS):
        assert value not in done.stdout + done.stderr + rich.stdout + rich.stderr, value
    return check_report(done.stdout)["checks"]


def findings(report: dict, name: str) -> str:
    assert report[name]["result"] is False, (name, report[name])
    return str(report[name]["err_msg"])


def set_client_secret(path: Path, value: str) -> int:
    """Replace the client_secret placeholder of a secrets file; return its line."""
    text = path.read_text()
    new, n = re.subn(r'client_secret: ".*"', f'client_secret: "{value}"', text)
    assert n == 1 and "<hub-template placeholder:" in new  # the client_id placeholder is still there
    path.write_text(new)
    return next(i for i, line in enumerate(new.splitlines(), 1) if "client_secret:" in line)


# --- secrets/: a placeholder left is no licence for the values beside it ----------------


@pytest.mark.parametrize(
    "plant",
    ["client_secret", "EARTHDATA_PASS", "AccountKey"],
)
def test_a_real_value_beside_a_placeholder_in_secrets_is_a_secret_in_clear(hub, plant):
    prod = hub / "secrets" / "prod.yaml"
    if plant == "client_secret":
        line = set_client_secret(prod, CLIENT_SECRET)
    else:
        value = (
            PASSWORDS[0]
            if plant == "EARTHDATA_PASS"
            else f"DefaultEndpointsProtocol=https;AccountName=lab;{AZURE_ACCOUNT_KEY};EndpointSuffix=core.windows.net"
        )
        key = "EARTHDATA_PASS" if plant == "EARTHDATA_PASS" else "AZURE_STORAGE_CONNECTION_STRING"
        prod.write_text(prod.read_text() + f"extraEnv:\n  {key}: '{value}'\n")
        line = len(prod.read_text().splitlines())
    report = check(hub)
    assert f"`secrets/prod.yaml:{line}`: is in clear" in findings(report, "SE001")


def test_a_file_of_placeholders_only_still_passes(hub):
    report = check(hub)
    assert report["SE001"]["result"] is True and report["SE003"]["result"] is True


# --- sops: what its rules leave in clear is read ------------------------------------------


SOPS_META = (
    "sops:\n"
    "  gcp_kms:\n"
    "    - resource_id: projects/p/locations/global/keyRings/hub/cryptoKeys/sops\n"
    "      enc: CiQAexampleexampleexampleexample==\n"
    "  lastmodified: '2026-12-01T10:00:00Z'\n"
    "  mac: ENC[AES256_GCM,data:bWFjbWFjbWFj,iv:aXZpdml2,tag:dGFndGFn,type:str]\n"
    "  version: 3.11.0\n"
)


@pytest.mark.parametrize(
    "rule, key",
    [("encrypted_regex: ^(data|stringData)$", "client_secret"), ("unencrypted_suffix: _unencrypted", None)],
)
def test_values_sops_leaves_in_clear_are_scanned(hub, rule, key):
    """sops' metadata says these stay in clear, so the file counts as encrypted
    (SE001): what they hold is still read (SE003)."""
    staging = hub / "secrets" / "staging.yaml"
    text = staging.read_text()
    if key is None:  # a key sops leaves in clear by its suffix
        text = text.replace("client_secret:", "client_secret_unencrypted:")
    # What sops encrypts: every value its rule does not leave in clear.
    text = re.sub(r'(client_id|apiToken): ".*"', r'\1: "ENC[AES256_GCM,data:aWQ=,iv:aXY=,tag:dGc=,type:str]"', text)
    text = re.sub(r'(client_secret\w*): ".*"', rf'\1: "{CLIENT_SECRET}"', text)
    staging.write_text(text + SOPS_META + f"  {rule}\n")
    line = next(i for i, line in enumerate(text.splitlines(), 1) if "client_secret" in line)
    assert encryption_of(staging.read_bytes()) == "sops"
    report = check(hub)
    assert report["SE001"]["result"] is True
    assert f"`secrets/staging.yaml:{line}`" in findings(report, "SE003")


def test_a_sops_file_encrypted_whole_is_not_read_as_credentials(hub):
    staging = hub / "secrets" / "staging.yaml"
    text = re.sub(
        r'(client_\w+): ".*"', r'\1: "ENC[AES256_GCM,data:c2VjcmV0,iv:aXY=,tag:dGc=,type:str]"', staging.read_text()
    )
    staging.write_text(text + SOPS_META)
    report = check(hub)
    assert report["SE001"]["result"] is True and report["SE003"]["result"] is True


# --- git-crypt: its header is not its encryption ---------------------------------------


def _real_git_crypt_blob(tmp_path: Path, text: str) -> bytes:
    """What real git-crypt stores for ``text`` (Debian's git-crypt)."""
    if shutil.which("git-crypt") is None:
        pytest.fail("git-crypt is not installed: .ci/run installs Debian's git-crypt")
    repo = tmp_path / "gc"
    repo.mkdir()
    git(repo, "init", "-q")
    subprocess.run(["git-crypt", "init"], cwd=repo, check=True, capture_output=True)
    (repo / ".gitattributes").write_text("secrets/** filter=git-crypt diff=git-crypt\n")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "prod.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "s")
    blob = subprocess.run(
        ["git", "cat-file", "blob", "HEAD:secrets/prod.yaml"], cwd=repo, check=True, capture_output=True
    ).stdout
    return blob


@pytest.mark.parametrize("after_header", ["text", "nonce then text"])
def test_git_crypt_header_before_plaintext_is_in_clear(hub, tmp_path, after_header):
    plain = f'client_secret: "{CLIENT_SECRET}"\n'
    real = _real_git_crypt_blob(tmp_path, plain)
    assert real.startswith(b"\0GITCRYPT\0") and is_git_crypt_output(real)
    fake = b"\0GITCRYPT\0" + (b"\x8f\x01\xfe\x17\x99\xc4\x02\xd3\x88\x10\xaa\x5b" if "nonce" in after_header else b"")
    fake += plain.encode()
    assert not is_git_crypt_output(fake)
    # The real blob passes as encrypted; the fake one is a secret in clear.
    (hub / "secrets" / "staging.yaml").write_bytes(real)
    (hub / "secrets" / "prod.yaml").write_bytes(fake)
    report = check(hub)
    assert "secrets/prod.yaml" in findings(report, "SE001")
    assert "secrets/staging.yaml" not in findings(report, "SE001")
    assert "`secrets/prod.yaml:1`" in findings(report, "SE003")


# --- assignments, in every language a hub holds --------------------------------------------


def _notebook(*sources: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nbformat.writes(nb)


def test_assignments_in_scripts_notebooks_and_dotfiles_are_read(hub):
    image = hub / "image"
    start = image / "binder" / "start"
    lines = start.read_text().splitlines()
    lines.insert(1, f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}")
    start.write_text("\n".join(lines) + "\n")
    (image / "access.ipynb").write_text(
        _notebook(
            f'import os\nos.environ["AWS_SECRET_ACCESS_KEY"] = "{AWS_SECRET}"',
            f"%env EARTHDATA_PASSWORD={PASSWORDS[0]}",
            f'import s3fs\nfs = s3fs.S3FileSystem(key="AKIDEXAMPLE", secret="{CLIENT_SECRET}")',
            f'gl = "{GITLAB_PAT}"\nhf = "{HF_TOKEN}"',
            f'client = OpenAI(api_key="{OPENAI_KEY}")\nazure = "{AZURE_SECRET}"',
        )
    )
    (image / ".netrc").write_text(f"machine urs.earthdata.nasa.gov login me password {PASSWORDS[3]}\n")
    (image / ".npmrc").write_text(f"//registry.npmjs.org/:_authToken={PASSWORDS[2]}\n")
    (image / ".env").write_text(f"DB_PASS={PASSWORDS[1]}\n")
    report = check(hub)
    found = findings(report, "SE003")
    expected = {
        "image/binder/start:2": "AWS_SECRET_ACCESS_KEY",
        "image/.netrc:1": "password",
        "image/.npmrc:1": "_authToken",
        "image/.env:1": "DB_PASS",
    }
    for where, key in expected.items():
        assert f"`{where}`: `{key}` holds" in found, (where, found)
    notebook = [line for line in found.splitlines() if "image/access.ipynb" in line]
    # One finding per cell line: the environ and %env assignments, the keyword
    # argument, the GitLab and Hugging Face tokens, the OpenAI and Azure secrets.
    assert len(notebook) == 7, found
    for what in ("AWS_SECRET_ACCESS_KEY", "EARTHDATA_PASSWORD", "`secret`", "GitLab", "Hugging Face", "OpenAI"):
        assert what in found, what
    assert "Azure client secret" in found


def test_helm_values_extra_env_is_read(hub):
    common = hub / "config" / "common.yaml"
    text = common.read_text()
    text += f"extraEnv:\n  GITLAB_PAT: {GITLAB_PAT}\n  DB_PASS: {PASSWORDS[1]}\n  ALERTS_WEBHOOK: {SLACK_WEBHOOK}\n"
    common.write_text(text)
    first = len(text.splitlines()) - 2
    found = findings(check(hub), "SE003")
    assert f"`config/common.yaml:{first}`: `GITLAB_PAT`" in found
    assert f"`config/common.yaml:{first + 1}`: `DB_PASS`" in found
    assert f"`config/common.yaml:{first + 2}`: holds what looks like a credential (Slack Token)" in found


def test_references_and_placeholders_are_not_credentials(hub):
    """What hubs write instead of a secret is no finding."""
    start = hub / "image" / "binder" / "start"
    lines = start.read_text().splitlines()
    lines[1:1] = [
        'export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-}"',
        "TOKEN=$JUPYTERHUB_API_TOKEN",
        "PASSWORD=$(shyaml get-value password < /srv/conf/secrets.yaml)",
    ]
    start.write_text("\n".join(lines) + "\n")
    (hub / "image" / "use.ipynb").write_text(
        _notebook('import os\nfs = S3FileSystem(secret=os.environ["AWS_SECRET_ACCESS_KEY"])\n%env DB_PASS=$DB_PASS')
    )
    report = check(hub)
    assert report["SE003"]["result"] is True, report["SE003"]


# --- the pre-commit hook runs on any file of a hub ---------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "deployments/charlie/image/analysis.ipynb",
        "deployments/charlie/image/.env",
        "deployments/charlie/README.md",
        "deployments/charlie/image/README.md",
        "deployments/charlie/.copier-answers.yml",
        "deployments/charlie/image/scripts/fetch.py",
        "deployments/charlie/secrets/prod.yaml",
    ],
)
def test_the_hub_secrets_hook_runs_on_every_file_of_a_hub(path):
    """pre-commit's own manifest reading and file filter, on this repository's hook."""
    from pre_commit.clientlib import load_manifest
    from pre_commit.commands.run import filter_by_include_exclude

    hook = next(h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml")) if h["id"] == "hub-secrets")
    assert list(filter_by_include_exclude([path], hook["files"], hook["exclude"])) == [path]
    assert "--select SE" in hook["entry"]


def test_answers_file_with_a_token_is_a_finding(hub):
    answers = hub / ".copier-answers.yml"
    data = yaml.safe_load(answers.read_text())
    assert "hub_description" in data
    answers.write_text(answers.read_text() + f"# clone with {GITLAB_PAT}\n")
    found = findings(check(hub), "SE003")
    assert "`.copier-answers.yml:" in found and "GitLab" in found


@pytest.mark.parametrize("ignore", ['["SE"]', '["SE001", "SE003"]', '{SE = "handled elsewhere"}', '["ST", "IM"]'])
def test_a_hubs_pyproject_cannot_switch_off_the_secret_checks(hub, ignore):
    """repo-review reads `[tool.repo-review] ignore` from the checked folder's
    pyproject.toml: the hook's entry must still fail a secret in clear."""
    (hub / "pyproject.toml").write_text(f"[tool.repo-review]\nignore = {ignore}\n")
    set_client_secret(hub / "secrets" / "prod.yaml", CLIENT_SECRET)
    (hub / "image" / "binder" / "runtime.txt").symlink_to("../../secrets/prod.yaml")
    hook = next(h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()) if h["id"] == "hub-secrets")
    done = hub_template(*hook["entry"].split()[1:], str(hub / "secrets" / "prod.yaml"))
    assert done.returncode == 1 and "SE001" in done.stdout and CLIENT_SECRET not in done.stdout
    report = check(hub, "SE,ST")
    assert report["SE001"]["result"] is False and report["ST007"]["result"] is False
    if ignore == '["ST", "IM"]':  # the hub's other ignores still hold
        assert "ST003" not in report or report["ST003"]["result"] is None
