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

SUPPORTED_PYTHONS = ", ".join(load_data("versions.yml")["python_supported"])
HUB_NAME_RULE = "Use lowercase letters, digits and hyphens, starting with a letter"

# (id, --data answers, destination folder, question, what the message must say)
CASES = [
    ("hub-uppercase", {"hub_name": "Charlie"}, "charlie", "hub_name",
     [HUB_NAME_RULE, "like `charlie` or `ocean-hub`", "('Charlie' is not a hub name)"]),
    ("hub-space", {"hub_name": "my hub"}, "charlie", "hub_name",
     [HUB_NAME_RULE, "('my hub' is not a hub name)"]),
    ("hub-leading-hyphen", {"hub_name": "-x"}, "charlie", "hub_name",
     [HUB_NAME_RULE, "('-x' is not a hub name)"]),
    ("hub-path", {"hub_name": "../evil"}, "charlie", "hub_name",
     [HUB_NAME_RULE, "('../evil' is not a hub name)"]),
    ("hub-60-characters", {"hub_name": "a" * 60}, "charlie", "hub_name",
     ["Use at most 45 characters, so that `<hub>-staging` stays a valid helm release name", "has 60"]),
    ("hub-empty", {"hub_name": ""}, "charlie", "hub_name",
     ["Give the hub a name: lowercase letters, digits and hyphens, like `charlie`."]),
    # No --data: the default is the folder's name, and it is checked too.
    ("hub-from-folder", {}, "Charlie", "hub_name",
     [HUB_NAME_RULE, "('Charlie' is not a hub name)"]),
    ("email-without-at", {"contact_email": "hub-admins.example.org"}, "charlie", "contact_email",
     ["Use an email address, like `name@example.org`", "('hub-admins.example.org' is not one)"]),
    ("aws-account-11-digits", {"cloud_provider": "aws", "aws_account_id": "12345678901"}, "charlie",
     "aws_account_id", ["Use exactly 12 digits", "('12345678901' is not an AWS account id)"]),
    ("gcp-project", {"cloud_provider": "gcp", "gcp_project": "My_Project"}, "charlie", "gcp_project",
     ["Use 6 to 30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen",
      "('My_Project' is not a Google Cloud project id)"]),
    ("conda-shell-injection", {"conda_packages": "numpy;rm -rf /"}, "charlie", "conda_packages",
     ["Use package names with optional versions, like `xarray`, `numpy>=1.26` or `zarr=2.18`",
      "('numpy;rm', '-rf', '/' are not conda package specs)"]),
    ("apt-shell-injection", {"apt_packages": "foo;bar"}, "charlie", "apt_packages",
     ["Use Debian package names: lowercase letters, digits and + . - only",
      "('foo;bar' is not a Debian package name)"]),
    ("domain-with-spaces", {"domain": "my hub.example.org"}, "charlie", "domain",
     ["Use a domain name: lowercase labels of letters, digits and hyphens joined by dots",
      "('my hub.example.org' is not one)"]),
    ("azure-container-with-dot", {"cloud_provider": "azure", "scratch_bucket": "my.scratch"}, "charlie",
     "scratch_bucket", ["Use 3 to 63 lowercase letters, digits and single hyphens",
                        "('my.scratch' is not an Azure container name)"]),
    ("python-2.7", {"python_version": "2.7"}, "charlie", "python_version",
     [f"Choose one of {SUPPORTED_PYTHONS}", "(Python 2.7 is not supported)"]),
]


@pytest.mark.parametrize(("data", "folder", "question", "says"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_answer_is_rejected_and_nothing_is_written(template_repo, tmp_path, data, folder, question, says):
    work, tmp = tmp_path / "federation", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    args = [arg for name, value in data.items() for arg in ("--data", f"{name}={value}")]
    run = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", *args,
         str(template_repo), f"deployments/{folder}"],
        cwd=work, env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True, timeout=120)

    assert run.returncode != 0, run.stdout
    message = run.stderr.strip().splitlines()[-1]
    assert f"Validation error for question '{question}': " in message, run.stderr
    for words in says:
        assert words in message
    assert list(work.iterdir()) == [], "a rejected answer left files behind"
    assert list(tmp.iterdir()) == [], "a rejected answer left temporary files behind"
    assert git(template_repo, "status", "--porcelain") == ""
