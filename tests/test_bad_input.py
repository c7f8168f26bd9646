"""Bad answers through the real CLI (`copier copy --defaults --data ...`): each
is rejected with a message that says what is allowed, and nothing is written:
no destination folder, nothing else in the working directory or the temporary
directory, and the template's clone untouched.

copier prints a Python traceback before the message (it raises a plain
ValueError for a --data answer its validator rejects, and its CLI only turns
its own UserMessageError into a bare message), so the tests look at the last
line of stderr, where the message is.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import git

from hub_template import load_data

SUPPORTED = load_data("versions.yml")["python_supported"]
COLUMNS = 80

# (id, --data answers, destination folder, question, what the message must say)
CASES = [
    ("hub-uppercase", {"hub_name": "Charlie"}, "charlie", "hub_name", ["'Charlie': lowercase a-z, 0-9 and -"]),
    ("hub-space", {"hub_name": "my hub"}, "charlie", "hub_name", ["'my hub': lowercase"]),
    ("hub-leading-hyphen", {"hub_name": "-x"}, "charlie", "hub_name", ["'-x': lowercase"]),
    ("hub-path", {"hub_name": "../evil"}, "charlie", "hub_name", ["'../evil': lowercase"]),
    # `$` would match before the final newline: whole strings are matched.
    ("hub-final-newline", {"hub_name": "charlie\n"}, "charlie", "hub_name", ["'charlie\\n': lowercase a-z, 0-9 and -"]),
    ("hub-60-characters", {"hub_name": "a" * 60}, "charlie", "hub_name", ["'aaaaaaaaa...': 60 characters, over 45"]),
    ("hub-empty", {"hub_name": ""}, "charlie", "hub_name", ["give the hub a name, like `charlie`"]),
    # No --data: the default is the folder's name, and it is checked too.
    ("hub-from-folder", {}, "Charlie", "hub_name", ["'Charlie': lowercase"]),
    # A misspelled --data name is refused, naming the closest question.
    ("misspelled-name", {"hub_nmae": "glacier"}, "charlie", "hub_name", ["'hub_nmae' unknown; hub_name?"]),
    ("misspelled-limit", {"worker_cors": "4"}, "charlie", "hub_name", ["'worker_cors' unknown; worker_cores?"]),
    # A question of 1.2.0 whose answer every size overrode: gone, and refused by name.
    ("retired-memory-limit", {"user_memory_limit": "16"}, "charlie", "hub_name", ["'user_...' unknown"]),
    (
        "email-without-at",
        {"contact_email": "hub-admins.example.org"},
        "charlie",
        "contact_email",
        ["'hub-admins.exa...': not an email"],
    ),
    (
        "email-domain-label-hyphen",
        {"contact_email": "a@-.org"},
        "charlie",
        "contact_email",
        ["'a@-.org': not an email"],
    ),
    (
        "git-crypt-key-too-long",
        {"git_crypt_key": "k" * 129},
        "charlie",
        "git_crypt_key",
        ["'kkkkk...': over 128 characters"],
    ),
    (
        "aws-account-11-digits",
        {"cloud_provider": "aws", "aws_account_id": "12345678901"},
        "charlie",
        "aws_account_id",
        ["'12345678901': not 12 digits"],
    ),
    (
        "aws-account-final-newline",
        {"cloud_provider": "aws", "aws_account_id": "210987654321\n"},
        "charlie",
        "aws_account_id",
        ["'210987654321\\n': not 12 digits"],
    ),
    (
        "gcp-project",
        {"cloud_provider": "gcp", "gcp_project": "My_Project"},
        "charlie",
        "gcp_project",
        ["'My_Project': not a project id"],
    ),
    (
        "conda-shell-injection",
        {"conda_packages": "numpy;rm -rf /"},
        "charlie",
        "conda_packages",
        ["'numpy;rm' (+2): not conda specs"],
    ),
    (
        "conda-build-string",
        {"conda_packages": "xarray, numpy=1.26.4=py312h8753938_0"},
        "charlie",
        "conda_packages",
        ["'numpy=1.2...': no build strings"],
    ),
    (
        "apt-shell-injection",
        {"apt_packages": "foo;bar"},
        "charlie",
        "apt_packages",
        ["'foo;bar': not a Debian package"],
    ),
    (
        "domain-with-spaces",
        {"domain": "my hub.example.org"},
        "charlie",
        "domain",
        ["'my h...': not a domain name, like a.org"],
    ),
    (
        "azure-container-with-dot",
        {"cloud_provider": "azure", "scratch_bucket": "my.scratch"},
        "charlie",
        "scratch_bucket",
        ["'my.sc...': not a container name"],
    ),
    (
        "python-2.7",
        {"python_version": "2.7"},
        "charlie",
        "python_version",
        [f"'2.7': from {SUPPORTED[0]} to {SUPPORTED[-1]}"],
    ),
    # Numbers that compare false with everything pass `x < 0` checks: refused by name.
    ("memory-nan", {"worker_memory": "nan"}, "charlie", "worker_memory", ["'nan': not GB, like 4GB"]),
    ("memory-1e309", {"worker_memory": "1e309"}, "charlie", "worker_memory", ["'1e309': 0.5-16384 GB, like 4GB"]),
    ("worker-cores-nan", {"worker_cores": "nan"}, "charlie", "worker_cores", ["'nan': not cores, like 1"]),
    (
        "worker-memory-max-inf",
        {"worker_memory_max": "inf"},
        "charlie",
        "worker_memory_max",
        ["'inf': not GB, like 16GB"],
    ),
    # A limit below its guarantee names the guarantee.
    (
        "cores-max-below-worker",
        {"worker_cores": "2", "worker_cores_max": "1"},
        "charlie",
        "worker_cores_max",
        ["'1': under worker_cores (2)"],
    ),
    # No answer gets a bare `Invalid input` (copier's word for a cast that fails).
    ("servers-in-words", {"max_users": "ten"}, "charlie", "max_users", ["'ten': a whole number, like 50"]),
    ("half-a-server", {"max_users": "10.5"}, "charlie", "max_users", ["'10.5': whole users, like 50"]),
    ("storage-unit", {"user_storage": "10 parsecs"}, "charlie", "user_storage", ["'10 parsecs': not GB, like 10Gi"]),
    (
        "github-repository-url",
        {"github_orgs": "https://github.com/uw-glaciology/hub"},
        "charlie",
        "github_orgs",
        ["not a GitHub organization"],
    ),
    # NFS homes: the PV's server and path reach the cluster's mounts.
    (
        "nfs-server-shell",
        {"customise": True, "home_storage": "nfs", "nfs_server": "a b;rm -rf /x"},
        "charlie",
        "nfs_server",
        ["'a b;rm -...': not a host name or IP"],
    ),
    (
        "nfs-path-climbs",
        {"customise": True, "home_storage": "nfs", "nfs_path": "/homes/../etc"},
        "charlie",
        "nfs_path",
        ["'/homes...': not a path like /homes"],
    ),
]


@pytest.mark.parametrize(
    ("data", "folder", "question", "says"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_answer_is_rejected_and_nothing_is_written(template_repo, tmp_path, data, folder, question, says):
    work, tmp = tmp_path / "federation", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    args = [arg for name, value in data.items() for arg in ("--data", f"{name}={value}")]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--trust",
            "--defaults",
            *args,
            str(template_repo),
            f"deployments/{folder}",
        ],
        cwd=work,
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode != 0, run.stdout
    message = run.stderr.strip().splitlines()[-1]
    prefix = f"Validation error for question '{question}': "
    assert prefix in message, run.stderr
    # The whole message fits one 80-column line after copier's prefix (at the
    # prompt copier shows it without the traceback's "ValueError: ").
    shown = message[message.index(prefix) :]
    assert len(shown) <= COLUMNS, f"{len(shown)} columns: {shown!r}"
    for words in says:
        assert words in shown, shown
    assert list(work.iterdir()) == [], "a rejected answer left files behind"
    assert list(tmp.iterdir()) == [], "a rejected answer left temporary files behind"
    assert git(template_repo, "status", "--porcelain") == ""


def test_the_data_name_check_knows_every_question(template_repo):
    """check_data_names (answers.jinja) lists copier.yml's questions: a
    question added to one must be added to the other."""
    import json
    import re

    import yaml

    macros = (template_repo / "hooks" / "hub_template" / "jinja" / "answers.jinja").read_text()
    listed = json.loads(re.search(r"macro questions\(\) -%\}\s*(\[.*?\])", macros, re.S).group(1))
    config = yaml.safe_load((template_repo / "copier.yml").read_text())
    assert listed == [name for name in config if not name.startswith("_")]
