"""Each rule of hooks/hub_template/data/rules.yml is applied by several parts
of hub-template; one table of good and bad values goes through every part
that applies it, and they must agree:

- copier's validator: a real `copier copy --defaults --data ...` (pretend, so
  nothing is written) of the `template_repo` fixture;
- the source import: the template's task entry point (`hooks/run.py
  import-source`) in a rendered hub whose answers name a real local git
  source repository holding the value;
- the checker: `run_checks` on a rendered hub edited to hold the value;
- the deploy planner: `plan_hub` on a real federation repository.

A bad value must be refused by each part for the rule's reason (its message
names the rule), not by accident further on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, git, render
from copier import run_copy
from hub_cells import REAL_IDS

from hub_template import rules
from hub_template.checks.runner import run_checks
from hub_template.deploy_plan import PlanError, plan_hub
from hub_template.git_source import SourceError, parse_source
from hub_template.source_import import _nice_yaml

HOOKS = ROOT / "hooks" / "run.py"

# rule -> [(value, good)]. Each bad value is one a part once let through, or
# one the rule exists to stop.
APT_PACKAGE = [
    ("nco", True),
    ("libgl1", True),
    ("g++", True),
    ("cdo=2.1.1-1", True),
    ("libnetcdf-dev=1:4.9.0~rc", True),
    ("Nco", False),
    ("a", False),
    ("nco cdo", False),
    ("nco;touch", False),
    ("-nco", False),
    ("nco=1 2", False),
]
FINAL_EXEC = [
    ('exec "$@"', True),
    ('exec "${@}"', True),
    ('exec  "$@"', True),
    ('exec "$@"  # the notebook server', True),
    ("exec $@", False),  # splits each argument on blanks
    ("exec ${@}", False),
    ('exec "$*"', False),  # one argument
    ("exec $*", False),
    ('"$@"', False),  # runs the command, then start ends: the pod dies with it
    ('exec jupyter lab "$@"', False),
]
GIT_REF = [
    ("main", True),
    ("release/2024.1", True),
    ("v1.2.3", True),
    ("feature_x-2", True),
    ("main/", False),
    ("main.", False),
    ("release/.hidden", False),
    ("release//2024", False),
    ("main.lock", False),
    ("a..b", False),
    ("-main", False),
    ("main branch", False),
    ("main@{1}", False),
]
HUB_NAME = [
    ("charlie", True),
    ("ocean-hub2", True),
    ("a" * 45, True),
    ("Charlie", False),
    ("ocean_hub", False),
    ("-x", False),
    ("x-", False),
    ("2hub", False),
    ("a" * 46, False),
]
IMAGE_NAME = [
    ("us-central1-docker.pkg.dev/my-project/pangeo-hubs/charlie", True),
    ("ghcr.io/pangeo/ocean__hub", True),
    ("localhost:5000/ocean--hub", True),
    ("registry.example.org/a.b_c", True),
    ("Ghcr.io/pangeo/charlie", False),
    ("ghcr.io", False),
    ("ghcr.io/pangeo/", False),
    ("ghcr.io/-charlie", False),
    ("ghcr.io/ocean___hub", False),
    ("ghcr.io/pangeo/charlie:latest", False),
]
GCP_SERVICE_ACCOUNT = [
    ("hub-deployer@my-pangeo-project.iam.gserviceaccount.com", True),
    ("ci-bot1@proj-123.iam.gserviceaccount.com", True),
    ("ci@my-pangeo-project.iam.gserviceaccount.com", False),  # names are 6 to 30 characters
    ("Hub-deployer@my-pangeo-project.iam.gserviceaccount.com", False),
    ("hub-deployer@my-pangeo-project.iam.gserviceaccount.com\n", False),
    ("hub-deployer@my-pangeo-project.gserviceaccount.com", False),
]


# An IAM role by ARN: a path and name of up to 512 characters (IAM's limit),
# for the role CI assumes and the role the users' pods get.
AWS_ROLE_ARN = [
    ("arn:aws:iam::210987654321:role/pangeo-hub-deployer", True),
    ("arn:aws-us-gov:iam::210987654321:role/teams/ocean/hub-user", True),
    ("arn:aws:iam::210987654321:role/" + "p" * 100, True),  # over the 64 a name alone may have: a path
    ("arn:aws:iam::21098765432:role/hub-user", False),  # an account id has 12 digits
    ("arn:aws:iam::210987654321:user/hub-user", False),
    ("arn:aws:iam::210987654321:role/hub-user\n", False),
]


# Rules that only copier's validators apply besides rules.py (and, for
# source_repo, git_source.parse_source): each edge of the rule's limit, a
# final newline (`$` would let it through), uppercase and a leading hyphen.
FEDERATION_NAME = [
    ("pangeo-hubs", True),
    ("a", True),
    ("a" * 63, True),  # a DNS label's most
    ("a" * 64, False),
    ("Pangeo-hubs", False),
    ("-hubs", False),
    ("hubs-", False),
    ("pangeo_hubs", False),
    ("pangeo-hubs\n", False),
]
CONTACT_EMAIL = [
    ("hub-admins@example.org", True),
    ("A.B+c@Sub.Example.CO", True),
    ("hub-admins.example.org", False),
    ("a@b@example.org", False),
    ("hub admins@example.org", False),
    ("hub-admins@example", False),
    ("hub-admins@example.o", False),
    ("hub-admins@example.org\n", False),
    ("a@b-c.org", True),
    ("a@b--c.example.org", True),  # inside a label, as in xn--
    ("a@" + "b" * 63 + ".org", True),  # a label's most
    ("a@-.org", False),  # a label neither starts nor ends with -
    ("a@-b.org", False),
    ("a@b-.org", False),
    ("a@b.-c.org", False),
    ("a@" + "b" * 64 + ".org", False),
]
GCP_PROJECT = [
    ("my-pangeo-project", True),
    ("abcdef", True),  # 6 characters, the least
    ("a" + "b" * 29, True),  # 30, the most
    ("abcde", False),
    ("a" + "b" * 30, False),
    ("My-project", False),
    ("1project", False),
    ("-project", False),
    ("project-", False),
    ("my-project\n", False),
]
GCP_REGION = [
    ("us-central1", True),
    ("northamerica-northeast1", True),
    ("us-central", False),
    ("US-central1", False),
    ("-us-central1", False),
    ("us-central1-b", False),  # a zone
    ("us-central1\n", False),
]
GCP_ZONE = [
    ("us-central1-b", True),
    ("us-central1", True),  # a regional cluster
    ("us-central1-bb", False),
    ("us-central1-B", False),
    ("us-central1-1", False),
    ("-us-central1-b", False),
    ("us-central1-b\n", False),
]
GCP_CLUSTER = [
    ("pangeo", True),
    ("a", True),
    ("a" * 40, True),
    ("a" * 41, False),
    ("Pangeo", False),
    ("1pangeo", False),
    ("-pangeo", False),
    ("pangeo-", False),
    ("pangeo\n", False),
]
GCP_KMS_KEY = [
    ("projects/my-pangeo-project/locations/global/keyRings/pangeo-hubs/cryptoKeys/charlie", True),
    ("projects/abcdef/locations/us-central1/keyRings/Ring_1/cryptoKeys/Key-1", True),
    ("projects/abcde/locations/global/keyRings/pangeo-hubs/cryptoKeys/charlie", False),  # no project id
    ("projects/My-project/locations/global/keyRings/pangeo-hubs/cryptoKeys/charlie", False),
    ("projects/-my-project/locations/global/keyRings/pangeo-hubs/cryptoKeys/charlie", False),
    ("projects/my-pangeo-project/locations/global/keyRings/pangeo-hubs", False),
    ("projects/my-pangeo-project/locations/global/keyRings/pangeo-hubs/cryptoKeys/charlie\n", False),
]
AWS_ACCOUNT_ID = [
    ("210987654321", True),
    ("21098765432", False),
    ("2109876543210", False),
    ("21098765432a", False),
    ("-10987654321", False),
    ("210987654321\n", False),
]
AWS_CLUSTER = [
    ("pangeo", True),
    ("Pangeo_hubs-1", True),
    ("1" + "a" * 99, True),  # 100 characters, the most
    ("1" + "a" * 100, False),
    ("-pangeo", False),
    ("_pangeo", False),
    ("pangeo.hubs", False),
    ("pangeo\n", False),
]
AWS_KMS_KEY = [
    ("arn:aws:kms:us-west-2:210987654321:alias/charlie", True),
    ("arn:aws:kms:us-west-2:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
    ("arn:aws-us-gov:kms:us-gov-west-1:210987654321:alias/hubs/charlie", True),
    ("arn:aws:kms:us-west-2:21098765432:alias/charlie", False),  # an account id has 12 digits
    ("arn:AWS:kms:us-west-2:210987654321:alias/charlie", False),
    ("arn:aws:iam::210987654321:alias/charlie", False),
    ("arn:aws:kms:us-west-2:210987654321:alias/", False),
    ("arn:aws:kms:us-west-2:210987654321:alias/charlie\n", False),
]
AZURE_REGISTRY = [
    ("pangeohubs", True),
    ("ABCDE", True),  # 5, the least
    ("a" * 50, True),
    ("abcd", False),
    ("a" * 51, False),
    ("pangeo-hubs", False),
    ("-pangeohubs", False),
    ("pangeohubs\n", False),
]
AZURE_KEY_VAULT_KEY = [
    ("https://pangeo-hubs.vault.azure.net/keys/charlie", True),
    ("https://pangeo-hubs.vault.azure.net/keys/charlie/0123abcd", True),
    ("https://" + "v" * 24 + ".vault.azure.net/keys/charlie", True),  # a vault name's most
    ("https://" + "v" * 25 + ".vault.azure.net/keys/charlie", False),
    ("https://ab.vault.azure.net/keys/charlie", False),
    ("http://pangeo-hubs.vault.azure.net/keys/charlie", False),
    ("HTTPS://pangeo-hubs.vault.azure.net/keys/charlie", False),
    ("https://pangeo-hubs.vault.azure.net/secrets/charlie", False),
    ("https://pangeo-hubs.vault.azure.net/keys/charlie\n", False),
]
BUCKET = [
    ("charlie-scratch", True),
    ("abc", True),  # 3, the least
    ("a.b-c", True),
    ("a" * 63, True),
    ("ab", False),
    ("a" * 64, False),
    ("Charlie-scratch", False),
    ("-scratch", False),
    ("scratch-", False),
    ("my_scratch", False),
    ("scratch\n", False),
]
AZURE_CONTAINER = [
    ("charlie-scratch", True),
    ("abc", True),
    ("a" * 63, True),
    ("a" * 64, False),  # past azure_container_max
    ("ab", False),
    ("my.scratch", False),
    ("my--scratch", False),
    ("Scratch", False),
    ("-scratch", False),
    ("scratch-", False),
    ("scratch\n", False),
]
GIT_CRYPT_KEY = [
    ("charlie", True),
    ("Ocean_Hub-2", True),
    ("-charlie", True),  # git-crypt's own rule; it is never a command's option here
    ("charlie\n", False),  # `$` once let it through
    ("ocean hub", False),
    ("ocean/hub", False),
    ("ocean.hub", False),
    ("", False),
]
# git_crypt_key's length: git-crypt refuses a name over 128 characters
# (git_crypt_key_max).
GIT_CRYPT_KEY_LENGTH = [("k" * 128, True), ("k" * 129, False), ("k" * 4096, False)]
# A host name's length: 253 at most (hostname_max), 245 for domain, which
# staging.<domain> must fit in too. Labels of 63, then one of letters.
LONG_HOSTNAME = ".".join(["a" * 63] * 3) + "."  # 192 characters
DOMAIN_LENGTH = [(LONG_HOSTNAME + "b" * 53, True), (LONG_HOSTNAME + "b" * 54, False)]
STAGING_DOMAIN_LENGTH = [(LONG_HOSTNAME + "b" * 61, True), (LONG_HOSTNAME + "b" * 62, False)]
# GitHub names go to copier as one-item lists, whose items copier trims: no
# final-newline case here (rules.py refuses one, \Z being the end).
GITHUB_LOGIN = [
    ("pangeo-data", True),
    ("a", True),
    ("A1-b2", True),
    ("a" * 39, True),  # GitHub's most
    ("a" * 40, False),
    ("-pangeo", False),
    ("pangeo-", False),
    ("pangeo--data", False),
    ("pangeo_data", False),
    ("pangeo.data", False),
]
GITHUB_TEAM = [
    ("pangeo-data:hub-users", True),
    ("my-lab:gpu_users.v2", True),
    ("pangeo-data", False),  # an organization, no team
    ("pangeo-data:", False),
    ("-lab:users", False),
    ("a" * 40 + ":users", False),
    ("my-lab:gpu users", False),
    ("my-lab:gpu/users", False),
]
HOSTNAME = [
    ("charlie.pangeo.io", True),
    ("a.io", True),
    ("staging.hub-1.example.org", True),
    ("a" * 63 + ".example.org", True),  # a label's most
    ("a" * 64 + ".example.org", False),
    ("Charlie.pangeo.io", False),
    ("charlie", False),
    ("-charlie.pangeo.io", False),
    ("charlie-.pangeo.io", False),
    ("charlie..pangeo.io", False),
    ("charlie.pangeo.io.", False),
    ("charlie.pangeo.i", False),
    ("charlie.pangeo.io2", False),
    ("my hub.example.org", False),
    ("charlie.pangeo.io\n", False),
]
# source_repo: git transports (git would run a helper program), URL schemes
# other than https, ssh and file, uppercase ones (git reads HTTPS:// as a
# helper's name too).
SOURCE_REPO = [
    ("https://github.com/pangeo-data/notebooks", True),
    ("ssh://git@github.com/pangeo-data/notebooks.git", True),
    ("git+ssh://git@github.com/pangeo-data/notebooks.git", True),
    ("git@github.com:pangeo-data/notebooks.git", True),
    ("ext::sh%20-c%20touch%20x", False),
    ("fd::3", False),
    ("9p::x", False),  # a transport may start with a digit
    ("http://github.com/pangeo-data/notebooks", False),
    ("git://github.com/pangeo-data/notebooks", False),
    ("ftp://example.org/notebooks", False),
    ("HTTPS://github.com/pangeo-data/notebooks", False),
    ("-oProxyCommand=x", False),
    ("https://github.com/pangeo-data/notebooks\n", False),
]

# A conda package spec (conda_packages; a dependency of an imported
# environment.yml; a dependency of image/binder/environment.yml): rules.yml's
# conda_spec, the hub's grammar: (channel::)name, then an optional version
# constraint, no build string. The checker reads each spec with py-rattler's
# MatchSpec (conda's own grammar), which reads more: those values are in
# CONDA_SPEC_RATTLER_ONLY, not here.
CONDA_SPEC = [
    ("xarray", True),
    ("_libgcc_mutex", True),
    ("zarr>=2.18", True),
    ("numpy=1.26", True),
    ("numpy==1.26.4", True),
    ("numpy=1.26.*", True),
    ("numpy=*", True),
    ("numpy 1.26", True),  # `conda list`'s form, without its build string
    ("numpy *", True),
    ("openssl>=3.0.0a", True),
    ("numpy>=1!2.0", True),
    ("conda-forge::gdal", True),
    ("conda-forge/label/dev::gdal", True),  # a label of a channel
    ("dask>=2024.1,<2025", True),
    ("dask >= 2024.1 , <2025", True),
    ("numpy>=1.2|<1.0", True),
    ("numpy 1.26|1.27", True),  # conda reads a bare version as exact
    ("numpy>=1.26,!=1.26.2", True),
    ("numpy>=1.2,2.0", True),
    ("numpy==", False),
    (">=1.2", False),
    ("numpy*", False),  # a glob of names to conda
    ("numpy>=1.2;rm", False),  # rattler reads `;rm` as a build string
    ("numpy>=1.2 <2", False),  # and `<2`
    ("numpy==1.26.4 py312_0", False),
    ("numpy>=1.2,", False),
    ("numpy>=1.2|", False),
    ("numpy===1", False),
    ("numpy=>1", False),
    ("conda-forge::", False),
]
# Specs with a build string, as `conda env export` (name=1.2=build) and
# `conda list` (name 1.2 build) write them: the prompt and the checker refuse
# them (a build string only solves on the platform that exported it), the
# import takes them and strips the build string, with a note: an exported
# environment is what it exists to read.
CONDA_BUILD_STRING = [
    ("numpy=1.26.4=py312h8753938_0", "numpy=1.26.4"),
    ("numpy==1.26.4=py312h8753938_0", "numpy==1.26.4"),
    ("numpy 1.26.4 py312h8753938_0", "numpy==1.26.4"),
    ("conda-forge::numpy=1.26=py312_0", "conda-forge::numpy=1.26"),
]
# Specs py-rattler reads (so IM002 takes them, as conda would) and the hub's
# grammar refuses, at the prompt and in the import: kept out of CONDA_SPEC.
CONDA_SPEC_RATTLER_ONLY = [
    "nu mpy",  # package nu, version mpy: a version starts with a digit or * here
    "numpy>=abc",
    "numpy>=1.2-1",  # conda-build refuses - in a version: no package has one
    "numpy[version='>=1']",  # the bracket form: the import names the plain one
    ".numpy",
    "-numpy",
    "::numpy",
    "numpy\n>=1.2",  # would be two lines of the rendered environment.yml
]
# pip_packages, and each pip line of an imported environment and of the
# hub's environment.yml (IM002). Each bad value is one the prompt once took
# and packaging refuses, or one a PEP 440 rule exists to stop.
PIP_REQUIREMENT = [
    ("odc-stac", True),
    ("odc-stac>=0.3", True),
    ("xarray[io,parallel]>=2024.1,<2025", True),
    ("pkg[]", True),
    ("pkg==1.2.*", True),
    ("pkg!=1.2.*", True),
    ("pkg==1.0+local.1", True),
    ("pkg~=1.2", True),
    ("pkg===1.0-custom", True),
    ("pkg>=1.0rc1", True),
    ("pkg>=1.0.post1.dev2", True),
    ("pkg==1!2.0", True),
    ("pkg >= 1 , < 2", True),
    ("Pkg_Name.x>=2", True),
    ("pkg>=abc", False),
    ("pkg~=1", False),  # ~= needs two release numbers
    ("pkg~=1.2.*", False),
    ("pkg>=1.*", False),  # a prefix only after == and !=
    ("pkg>=1.0+local", False),  # a local label only after == and !=
    ("pkg[,a]", False),
    ("pkg==1_0", False),
    ("pkg>=", False),
    ("-pkg", False),
    ("pkg>=1;rm -rf", False),
]
# What packaging (the import and the checker) reads and the prompt refuses
# on purpose: kept out of PIP_REQUIREMENT.
PIP_REQUIREMENT_PACKAGING_ONLY = [
    "pkg @ https://example.org/pkg-1.0-py3-none-any.whl",
    'pkg; python_version < "3.12"',
    "pkg (>=1)",
    "pkg>=1,",
]

# The NFS server and export of a hub's homes (the PersistentVolume's nfs:).
NFS_SERVER = [
    ("10.0.0.2", True),
    ("fs-0123456789abcdef0.efs.us-west-2.amazonaws.com", True),
    ("pangeohubshomes.file.core.windows.net", True),
    ("10.0.0.256", False),
    ("a b", False),
    ("nfs;rm", False),
    ("-x.example.org", False),
    ("10.0.0.2\n", False),
]
NFS_PATH = [
    ("/", True),
    ("/homes", True),
    ("/pangeohubshomes/charlie-homes", True),
    ("homes", False),
    ("/homes/../etc", False),
    ("/..", False),
    ("/homes/.", False),
    ("/a b", False),
    ("/homes\n", False),
]
# The login's (copier.yml's login questions; the normalised values are judged).
CILOGON_IDP = [
    ("https://idp.uni.edu/idp/shibboleth", True),
    ("http://google.com/accounts/o8/id", True),
    ("urn:mace:incommon:uni.edu", True),
    ("idp.uni.edu", False),
    ("https://idp.uni.edu/a b", False),
    ("https://a.edu/x,https://b.edu/y", False),
]
EMAIL_DOMAIN = [
    ("uni.edu", True),
    ("*.uni.edu", True),
    ("uni..edu", False),
    ("*uni.edu", False),
    ("UNI.edu", False),  # normalise() lowers it first
    ("uni.edu/", False),
]
OIDC_URL = [
    ("https://my-lab.us.auth0.com", True),
    ("https://sso.uni.edu:8443/realms/hub", True),
    ("http://sso.uni.edu", False),
    ("https://sso.uni.edu/?x=1", False),
    ("https://sso uni.edu", False),
]
OIDC_CLAIM = [
    ("preferred_username", True),
    ("https://my-lab.org/roles", True),
    ("user name", False),
    ("", False),
]

# (rule of rules.yml, table): rules.py must accept exactly the good values.
RULE_TABLES = [
    ("nfs_server", NFS_SERVER),
    ("nfs_path", NFS_PATH),
    ("cilogon_idp", CILOGON_IDP),
    ("email_domain", EMAIL_DOMAIN),
    ("oidc_url", OIDC_URL),
    ("oidc_claim", OIDC_CLAIM),
    ("apt_package", APT_PACKAGE),
    ("final_exec", FINAL_EXEC),
    ("git_ref", GIT_REF),
    ("image_name", IMAGE_NAME),
    ("gcp_service_account", GCP_SERVICE_ACCOUNT),
    ("aws_role_arn", AWS_ROLE_ARN),
    ("federation_name", FEDERATION_NAME),
    ("contact_email", CONTACT_EMAIL),
    ("gcp_project", GCP_PROJECT),
    ("gcp_region", GCP_REGION),
    ("gcp_zone", GCP_ZONE),
    ("gcp_cluster", GCP_CLUSTER),
    ("gcp_kms_key", GCP_KMS_KEY),
    ("aws_account_id", AWS_ACCOUNT_ID),
    ("aws_cluster", AWS_CLUSTER),
    ("aws_kms_key", AWS_KMS_KEY),
    ("azure_registry", AZURE_REGISTRY),
    ("azure_key_vault_key", AZURE_KEY_VAULT_KEY),
    ("bucket", BUCKET),
    ("git_crypt_key", GIT_CRYPT_KEY),
    ("github_login", GITHUB_LOGIN),
    ("github_team", GITHUB_TEAM),
    ("hostname", HOSTNAME),
    (
        "conda_spec",
        [
            *CONDA_SPEC,
            *((v, False) for v, _ in CONDA_BUILD_STRING),
            *((v, False) for v in CONDA_SPEC_RATTLER_ONLY),
        ],
    ),
    ("pip_requirement", [*PIP_REQUIREMENT, *((v, False) for v in PIP_REQUIREMENT_PACKAGING_ONLY)]),
]


def _ids(table):
    return [f"{'good' if good else 'bad'}-{value!r}" for value, good in table]


# --- copier's validators -----------------------------------------------------------


def copier_refuses(template: Path, dst: Path, **data) -> str | None:
    """The message copier's validators give for `data`, or None when they
    accept it (a pretend copy: nothing is written, no task runs)."""
    try:
        run_copy(str(template), str(dst), data=data, defaults=True, unsafe=True, quiet=True, pretend=True)
    except ValueError as error:
        return str(error)
    assert not dst.exists()
    return None


SOURCE = object()  # stands for the source_repo fixture's path
READ_AS_HOSTNAME = {"Charlie.pangeo.io", "charlie.pangeo.io."}
# (the --data naming the value, the value, good, what copier's refusal says);
# a list answer's one item is one package, even with blanks in it.
COPIER = [
    *(
        ({"customise": True, "home_storage": "nfs", "nfs_server": v}, v, g, ["not a host name or IP"])
        for v, g in NFS_SERVER
    ),
    *(
        ({"customise": True, "home_storage": "nfs", "nfs_path": v}, v, g, ["not a path like /homes"])
        for v, g in NFS_PATH
    ),
    *(({"apt_packages": [v]}, v, g, ["not a Debian package"]) for v, g in APT_PACKAGE),
    *(({"source_repo": SOURCE, "source_ref": v}, v, g, ["not a branch, tag or commit"]) for v, g in GIT_REF),
    *(({"hub_name": v}, v, g, ["lowercase a-z, 0-9 and -", "characters, over 45"]) for v, g in HUB_NAME),
    *(({"image_name": v}, v, g, ["not an image name", "leave out the tag"]) for v, g in IMAGE_NAME),
    *(
        ({"cloud_provider": "gcp", question: v}, v, g, ["NAME@PROJECT.iam.gserviceaccount.com"])
        for question in ("gcp_deployer", "cloud_identity")
        for v, g in GCP_SERVICE_ACCOUNT
    ),
    *(
        ({"cloud_provider": "aws", question: v}, v, g, ["arn:aws:iam::ACCOUNT:role/NAME"])
        for question in ("aws_deploy_role", "cloud_identity")
        for v, g in AWS_ROLE_ARN
    ),
    *(({"kind": "federation", "federation_name": v}, v, g, ["is not a repository name"]) for v, g in FEDERATION_NAME),
    *(({"contact_email": v}, v, g, ["not an email"]) for v, g in CONTACT_EMAIL),
    *(({"cloud_provider": "gcp", "gcp_project": v}, v, g, ["not a project id"]) for v, g in GCP_PROJECT),
    *(({"cloud_provider": "gcp", "gcp_region": v}, v, g, ["not a region"]) for v, g in GCP_REGION),
    *(({"cloud_provider": "gcp", "gcp_zone": v}, v, g, ["not a zone or region"]) for v, g in GCP_ZONE),
    *(({"cloud_provider": "gcp", "gcp_cluster": v}, v, g, ["not a GKE cluster name"]) for v, g in GCP_CLUSTER),
    *(
        ({"cloud_provider": "gcp", "secrets_backend": "sops", "sops_key": v}, v, g, ["not a KMS key"])
        for v, g in GCP_KMS_KEY
    ),
    *(({"cloud_provider": "aws", "aws_account_id": v}, v, g, ["not 12 digits"]) for v, g in AWS_ACCOUNT_ID),
    *(({"cloud_provider": "aws", "aws_cluster": v}, v, g, ["not an EKS cluster name"]) for v, g in AWS_CLUSTER),
    *(
        ({"cloud_provider": "aws", "secrets_backend": "sops", "sops_key": v}, v, g, ["not a KMS key ARN"])
        for v, g in AWS_KMS_KEY
    ),
    *(
        ({"cloud_provider": "azure", "azure_registry": v}, v, g, ["5 to 50 letters and digits"])
        for v, g in AZURE_REGISTRY
    ),
    *(
        ({"cloud_provider": "azure", "secrets_backend": "sops", "sops_key": v}, v, g, ["not a Key Vault key"])
        for v, g in AZURE_KEY_VAULT_KEY
    ),
    *(({"cloud_provider": "gcp", "scratch_bucket": v}, v, g, ["not a bucket name"]) for v, g in BUCKET),
    *(({"cloud_provider": "aws", "scratch_bucket": v}, v, g, ["not a bucket name"]) for v, g in BUCKET),
    *(({"cloud_provider": "azure", "scratch_bucket": v}, v, g, ["not a container name"]) for v, g in AZURE_CONTAINER),
    *(({"git_crypt_key": v}, v, g, ["a key name is letters, digits, - and _"]) for v, g in GIT_CRYPT_KEY),
    *(({"git_crypt_key": v}, v, g, ["over 128 characters"]) for v, g in GIT_CRYPT_KEY_LENGTH),
    *(({"source_repo": v}, v, g, ["not a git URL or path", "use https, ssh, file or a path"]) for v, g in SOURCE_REPO),
    *(({"admin_users": [v]}, v, g, ["not a GitHub user"]) for v, g in GITHUB_LOGIN),
    *(({"github_orgs": [v]}, v, g, ["not a GitHub organization"]) for v, g in GITHUB_LOGIN),
    # github_orgs takes an organization or one of its teams.
    *(({"github_orgs": [v]}, v, g, ["not a GitHub organization"]) for v, g in GITHUB_TEAM if ":" in v),
    *(
        ({"github_orgs": ["pangeo-data", "my-lab"], "gpu_size": True, "gpu_teams": [v]}, v, g, ["a team is"])
        for v, g in GITHUB_TEAM
    ),
    *(({"conda_packages": [v]}, v, g, ["not a conda spec"]) for v, g in CONDA_SPEC),
    *(({"conda_packages": [v]}, v, False, ["no build strings"]) for v, _ in CONDA_BUILD_STRING),
    *(({"conda_packages": [v]}, v, False, ["not a conda spec"]) for v in CONDA_SPEC_RATTLER_ONLY),
    *(({"pip_packages": [v]}, v, g, ["not a pip requirement"]) for v, g in PIP_REQUIREMENT),
    *(({"pip_packages": [v]}, v, False, ["not a pip requirement"]) for v in PIP_REQUIREMENT_PACKAGING_ONLY),
    # The hub reads a host name in capitals or with DNS's final dot as the name
    # (answers.jinja normalise): the question takes them, the rule does not.
    *(({"domain": v}, v, g or v in READ_AS_HOSTNAME, ["not a domain name"]) for v, g in HOSTNAME),
    *(
        ({"staging_domain": v}, v, g, ["not a domain name"])
        for v, g in HOSTNAME
        if v not in ("charlie.pangeo.io", *READ_AS_HOSTNAME)  # the domain's own: refused as such
    ),
    *(({"domain": v}, v, g, ["at most 245 characters"]) for v, g in DOMAIN_LENGTH),
    *(({"staging_domain": v}, v, g, ["at most 253 characters"]) for v, g in STAGING_DOMAIN_LENGTH),
]


@pytest.mark.parametrize(
    "data, value, good, refusals",
    COPIER,
    ids=[f"{list(d)[-1]}-{'good' if g else 'bad'}-{v!r}" for d, v, g, _ in COPIER],
)
def test_copier(template_repo, source_repo, tmp_path, data, value, good, refusals):
    data = {name: str(source_repo) if answer is SOURCE else answer for name, answer in data.items()}
    message = copier_refuses(template_repo, tmp_path / "charlie", **data)
    if good:
        assert message is None
    else:
        assert any(refusal in message for refusal in refusals), message
        # One line, naming the question and (maybe cut) the value.
        assert "\n" not in message, message
        assert f"question '{list(data)[-1]}'" in message, message


# --- rules.py ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, value, good",
    [(rule, v, g) for rule, table in RULE_TABLES for v, g in table],
    ids=[f"{rule}-{'good' if g else 'bad'}-{v!r}" for rule, table in RULE_TABLES for v, g in table],
)
def test_rules_py(rule, value, good):
    """What the Python side (deploy planner, source import, checker) applies
    is what copier's validator applies: the same tables."""
    assert rules.matches(rule, value) is good


@pytest.mark.parametrize("value, good", AZURE_CONTAINER, ids=_ids(AZURE_CONTAINER))
def test_azure_container_by_rules_py(value, good):
    accepted = rules.matches("azure_container", value) and len(value) <= rules.limit("azure_container_max")
    assert accepted is good


@pytest.mark.parametrize("value, good", STAGING_DOMAIN_LENGTH, ids=_ids(STAGING_DOMAIN_LENGTH))
def test_hostname_by_rules_py(value, good):
    accepted = rules.matches("hostname", value) and len(value) <= rules.limit("hostname_max")
    assert accepted is good


@pytest.mark.parametrize("value, good", GIT_CRYPT_KEY_LENGTH, ids=_ids(GIT_CRYPT_KEY_LENGTH))
def test_git_crypt_key_by_rules_py(value, good):
    accepted = rules.matches("git_crypt_key", value) and len(value) <= rules.limit("git_crypt_key_max")
    assert accepted is good


def test_copier_reads_the_rules_as_python_does():
    """answers.jinja's rules() expands each (?&name) as rules.py does: the
    mapping copier's validators match against is rules.py's, and nothing is
    left unexpanded."""
    import jinja2
    from jinja2_ansible_filters import AnsibleCoreFiltersExtension

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT), extensions=[AnsibleCoreFiltersExtension])
    copier_rules = json.loads(
        env.from_string("{% from 'hooks/hub_template/jinja/answers.jinja' import rules %}{{ rules() }}").render()
    )
    raw = yaml.safe_load((ROOT / "hooks/hub_template/data/rules.yml").read_text())
    assert list(copier_rules) == list(raw)
    assert copier_rules == {name: rules._rules()[name] for name in raw}
    assert any("(?&" in rule for rule in raw.values() if isinstance(rule, str))
    assert not any("(?&" in rule for rule in copier_rules.values() if isinstance(rule, str))
    # The project id is written once, and is part of the service account.
    text = (ROOT / "hooks/hub_template/data/rules.yml").read_text()
    assert text.count(raw["gcp_project"]) == 1
    assert rules.pattern("gcp_service_account").pattern.count(raw["gcp_project"]) == 2


def test_a_reference_to_no_earlier_rule_is_an_error(monkeypatch):
    monkeypatch.setattr(rules, "load_data", lambda name: {"a": "(?&b)x", "b": "y"})
    with pytest.raises(ValueError, match=r"a uses \(\?&b\), which is no pattern above it"):
        rules._rules.__wrapped__()
    monkeypatch.setattr(rules, "load_data", lambda name: {"b": "y", "a": "(?&b)x"})
    assert rules._rules.__wrapped__() == {"b": "y", "a": "(?:y)x"}


@pytest.mark.parametrize("value, good", SOURCE_REPO, ids=_ids(SOURCE_REPO))
def test_source_repo_by_the_source_import(tmp_path, value, good):
    """The source import's parse_source refuses what copier's validator refuses."""
    if good:
        parse_source(value, tmp_path)
    else:
        with pytest.raises(SourceError, match="source_repo"):
            parse_source(value, tmp_path)


# --- the source import -------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_hub(template_repo, tmp_path_factory) -> Path:
    """A rendered hub without a source: each import works on a copy of it."""
    return render(template_repo, tmp_path_factory.mktemp("plain") / "deployments" / "plain", **REAL_IDS)


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory) -> Path:
    """A notebook repository with a branch for every good git ref."""
    repo = tmp_path_factory.mktemp("source") / "notebooks"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "analysis.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notebooks")
    for value, good in GIT_REF:
        if good and value != "main":
            git(repo, "branch", value)
    return repo


def import_source(plain_hub: Path, work: Path, files: dict[str, str] | None = None, ref: str = "") -> str | None:
    """Run the template's import task in a copy of `plain_hub` whose answers
    name a new source repository holding `files` (or the one given as
    `ref`'s repository). None when it succeeds, else its error."""
    hub = shutil.copytree(plain_hub, work / "deployments" / "plain")
    source = work / "source"
    source.mkdir()
    git(source, "init", "-q")
    for name, text in (files or {"analysis.ipynb": "{}"}).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
        if name.endswith("start"):
            (source / name).chmod(0o755)
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "source")
    return _run_import(hub, str(source), ref)


def _run_import(hub: Path, url: str, ref: str) -> str | None:
    answers_file = hub / ".copier-answers.yml"
    lines = answers_file.read_text().splitlines(keepends=True)
    head = "".join(line for line in lines if line.startswith("#"))  # copier's comment
    answers = yaml.safe_load(answers_file.read_text())
    answers.update(source_repo=url, source_ref=ref)
    answers_file.write_text(head + _nice_yaml(answers))  # as copier writes it
    result = subprocess.run([sys.executable, str(HOOKS), "import-source"], cwd=hub, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("value, good", APT_PACKAGE, ids=_ids(APT_PACKAGE))
def test_apt_package_by_the_source_import(plain_hub, tmp_path, value, good):
    error = import_source(plain_hub, tmp_path, {"binder/apt.txt": f"{value}\n"})
    if good:
        assert error is None
        assert value in (tmp_path / "deployments/plain/image/binder/apt.txt").read_text().splitlines()
    else:
        assert "is not a Debian package name" in error


@pytest.mark.parametrize("value, good", FINAL_EXEC, ids=_ids(FINAL_EXEC))
def test_final_exec_by_the_source_import(plain_hub, tmp_path, value, good):
    start = f"#!/bin/bash\nexport FROM_SOURCE=yes\n{value}\n"
    error = import_source(plain_hub, tmp_path, {"binder/start": start, "analysis.ipynb": "{}"})
    if good:
        assert error is None
        merged = (tmp_path / "deployments/plain/image/binder/start").read_text().splitlines()
        # The source's exec gives way to the hub's own, which ends start.
        assert "export FROM_SOURCE=yes" in merged
        assert [line for line in merged if line.lstrip().startswith("exec")] == ['exec "$@"']
    else:
        assert "final exec" in error


@pytest.mark.parametrize("value, good", GIT_REF, ids=_ids(GIT_REF))
def test_git_ref_by_the_source_import(plain_hub, source_repo, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "deployments" / "plain")
    error = _run_import(hub, str(source_repo), value)
    assert error is None if good else "is not a branch, tag or commit name" in error


def import_conda(plain_hub: Path, work: Path, spec: str) -> tuple[str | None, Path]:
    """The source import of a source whose environment.yml depends on `spec`:
    its error (None when it succeeds) and the hub."""
    error = import_source(plain_hub, work, {"environment.yml": f"dependencies:\n  - {json.dumps(spec)}\n"})
    return error, work / "deployments/plain"


@pytest.mark.parametrize("value, good", CONDA_SPEC, ids=_ids(CONDA_SPEC))
def test_conda_spec_by_the_source_import(plain_hub, tmp_path, value, good):
    error, hub = import_conda(plain_hub, tmp_path, value)
    if good:
        assert error is None
        # What it writes, the checker takes.
        assert check(hub, "IM002")
    else:
        assert "is not a conda package spec" in error


@pytest.mark.parametrize("value, cleaned", CONDA_BUILD_STRING, ids=[v for v, _ in CONDA_BUILD_STRING])
def test_a_build_string_is_stripped_by_the_source_import(plain_hub, tmp_path, value, cleaned):
    error, hub = import_conda(plain_hub, tmp_path, value)
    assert error is None
    assert f"  - {cleaned}" in (hub / "image/binder/environment.yml").read_text().splitlines()
    assert check(hub, "IM002")


@pytest.mark.parametrize("value", CONDA_SPEC_RATTLER_ONLY, ids=[repr(v) for v in CONDA_SPEC_RATTLER_ONLY])
def test_the_source_import_refuses_what_only_rattler_reads(plain_hub, tmp_path, value):
    error, _ = import_conda(plain_hub, tmp_path, value)
    assert "is not a conda package spec" in error or "uses the bracket form" in error


def import_pip(plain_hub: Path, work: Path, requirement: str) -> tuple[str | None, Path]:
    """The source import of a source whose environment.yml pip-installs `requirement`."""
    text = f"dependencies:\n  - pip:\n      - {json.dumps(requirement)}\n"
    return import_source(plain_hub, work, {"environment.yml": text}), work / "deployments/plain"


@pytest.mark.parametrize("value, good", PIP_REQUIREMENT, ids=_ids(PIP_REQUIREMENT))
def test_pip_requirement_by_the_source_import(plain_hub, tmp_path, value, good):
    error, hub = import_pip(plain_hub, tmp_path, value)
    if good:
        assert error is None
        assert check(hub, "IM002")  # what it writes, the checker takes
    else:
        assert "is not a pip requirement" in error or "is a pip option" in error  # -pkg


@pytest.mark.parametrize("value", PIP_REQUIREMENT_PACKAGING_ONLY)
def test_the_source_import_reads_what_packaging_reads(plain_hub, tmp_path, value):
    error, _ = import_pip(plain_hub, tmp_path, value)
    assert error is None


# --- the checker -------------------------------------------------------------------


def check(hub: Path, name: str) -> bool:
    (result,) = [r for r in run_checks(hub, select=frozenset({name})).results if r.name == name]
    assert result.result is not None, result.skip_reason
    return result.result


@pytest.mark.parametrize("value, good", APT_PACKAGE, ids=_ids(APT_PACKAGE))
def test_apt_package_by_the_checker(plain_hub, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "plain")
    with open(hub / "image/binder/apt.txt", "a") as apt:
        apt.write(f"{value}\n")
    assert check(hub, "IM006") is good


@pytest.mark.parametrize("value, good", FINAL_EXEC, ids=_ids(FINAL_EXEC))
def test_final_exec_by_the_checker(plain_hub, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "plain")
    start = hub / "image/binder/start"
    lines = start.read_text().splitlines()
    assert lines[-1] == 'exec "$@"'
    start.write_text("\n".join([*lines[:-1], value]) + "\n")
    assert check(hub, "IM008") is good


def with_conda_spec(plain_hub: Path, work: Path, spec: str) -> Path:
    """A copy of `plain_hub` whose image/binder/environment.yml also depends on `spec`."""
    hub = shutil.copytree(plain_hub, work / "plain")
    env = hub / "image/binder/environment.yml"
    lines = env.read_text().splitlines()
    at = lines.index("  # The hub's own packages.") + 1
    env.write_text("\n".join([*lines[:at], f"  - {json.dumps(spec)}", *lines[at:]]) + "\n")
    return hub


@pytest.mark.parametrize("value, good", CONDA_SPEC, ids=_ids(CONDA_SPEC))
def test_conda_spec_by_the_checker(plain_hub, tmp_path, value, good):
    assert check(with_conda_spec(plain_hub, tmp_path, value), "IM002") is good


@pytest.mark.parametrize("value", [v for v, _ in CONDA_BUILD_STRING])
def test_a_build_string_is_refused_by_the_checker(plain_hub, tmp_path, value):
    assert not check(with_conda_spec(plain_hub, tmp_path, value), "IM002")


@pytest.mark.parametrize("value", CONDA_SPEC_RATTLER_ONLY, ids=[repr(v) for v in CONDA_SPEC_RATTLER_ONLY])
def test_the_checker_reads_what_rattler_reads(plain_hub, tmp_path, value):
    """conda's own grammar is wider than the hub's: these are not in
    CONDA_SPEC. If rattler comes to refuse one, it belongs there."""
    assert check(with_conda_spec(plain_hub, tmp_path, value), "IM002")


def with_pip_requirement(plain_hub: Path, work: Path, requirement: str) -> Path:
    """A copy of `plain_hub` whose image/binder/environment.yml also pip-installs `requirement`."""
    hub = shutil.copytree(plain_hub, work / "plain")
    with open(hub / "image/binder/environment.yml", "a") as env:
        env.write(f"  - pip\n  - pip:\n      - {json.dumps(requirement)}\n")
    return hub


@pytest.mark.parametrize("value, good", PIP_REQUIREMENT, ids=_ids(PIP_REQUIREMENT))
def test_pip_requirement_by_the_checker(plain_hub, tmp_path, value, good):
    assert check(with_pip_requirement(plain_hub, tmp_path, value), "IM002") is good


@pytest.mark.parametrize("value", PIP_REQUIREMENT_PACKAGING_ONLY)
def test_the_checker_reads_what_packaging_reads(plain_hub, tmp_path, value):
    assert check(with_pip_requirement(plain_hub, tmp_path, value), "IM002")


# --- the deploy planner ------------------------------------------------------------


@pytest.fixture(scope="module")
def federation(plain_hub, tmp_path_factory) -> tuple[Path, str]:
    """A federation repository holding the rendered hub under every good hub
    name, as hub image-<n> with the n-th image name of IMAGE_NAME, and as
    account-<n> deploying as the n-th service account of GCP_SERVICE_ACCOUNT."""
    repo = tmp_path_factory.mktemp("federation") / "hubs"
    for value, good in HUB_NAME:
        if good:
            shutil.copytree(plain_hub, repo / "deployments" / value)
    answers = yaml.safe_load((plain_hub / ".copier-answers.yml").read_text())
    assert answers["cloud_provider"] == "gcp"
    for n, (value, _) in enumerate(GCP_SERVICE_ACCOUNT):
        hub = shutil.copytree(plain_hub, repo / "deployments" / f"account-{n}")
        (hub / ".copier-answers.yml").write_text(yaml.safe_dump({**answers, "gcp_deployer": value}))
    image = answers["image_name"]
    for n, (value, _) in enumerate(IMAGE_NAME):
        hub = shutil.copytree(plain_hub, repo / "deployments" / f"image-{n}")
        values = hub / "config/common.yaml"
        text = values.read_text()
        assert text.count(f"name: {image}\n") == 1
        values.write_text(text.replace(f"name: {image}\n", f"name: {json.dumps(value)}\n"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hubs")
    return repo, git(repo, "rev-parse", "HEAD")


# (the value's field, the hub folder holding it, the value, good)
PLANNED = [
    *(("hub", value, value, good) for value, good in HUB_NAME),
    *(("image", f"image-{n}", value, good) for n, (value, good) in enumerate(IMAGE_NAME)),
    *(("gcp_deployer", f"account-{n}", value, good) for n, (value, good) in enumerate(GCP_SERVICE_ACCOUNT)),
]


@pytest.mark.parametrize(
    "field, hub, value, good", PLANNED, ids=[f"{f}-{'good' if g else 'bad'}-{v!r}" for f, _, v, g in PLANNED]
)
def test_the_deploy_planner(federation, field, hub, value, good):
    repo, commit = federation
    if good:
        plan = plan_hub(repo, commit, hub, "staging", image_changed=False)
        assert {"hub": plan.hub, "image": plan.image, **plan.login}[field] == value
    else:
        with pytest.raises(PlanError, match=rf"{field} '.*' (does not match|has [0-9]+ characters, over)"):
            plan_hub(repo, commit, hub, "staging", image_changed=False)
