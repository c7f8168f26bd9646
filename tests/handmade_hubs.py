"""Hand-made hubs, in the layouts real federations have (pangeo-cloud-federation
2019-2023, see ../shared/docs/field-notes.md "What hand-made hubs configure"),
each committed in a real federation repository for `hub-template adopt`.

- `ocean` (2019): hubploy 0.4 (`images:`, a gcloud service key), values under
  `pangeo:`, GitHub login the 2019 way (`auth.github.orgWhitelist`), homes on
  NFS with its multi-document manifests beside them, an environment.yml
  image, a Makefile;
- `atmos` (2021): today's hubploy (`cluster:` only, AWS), values under
  `daskhub:`, an Auth0 generic OAuth login, a Dockerfile image, an extra
  manifest (an MLflow service);
- `ice`: values with no umbrella key (the daskhub chart deployed directly),
  Azure, GitHub login, environment.yml with pip packages.

Each returns the hub's folder and the answers the test must still give with
--data (what the files cannot say).
"""

from __future__ import annotations

from pathlib import Path

from template_versions import commit

NFS_MANIFESTS = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: shared-nfs-prod
spec:
  capacity:
    storage: 1Ti
  accessModes: [ReadWriteMany]
  nfs:
    server: 10.0.0.2
    path: /homes
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: home-nfs
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  resources:
    requests:
      storage: 1Ti
"""

MAKEFILE = "deploy-staging:\n\thubploy deploy ocean pangeo-deploy staging\n"


def _write(hub: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        (hub / relpath).parent.mkdir(parents=True, exist_ok=True)
        (hub / relpath).write_text(text)


def ocean(fed: Path) -> tuple[Path, dict[str, str]]:
    hub = fed / "deployments" / "ocean"
    _write(
        hub,
        {
            "hubploy.yaml": """\
images:
  image_name: us.gcr.io/ocean-pangeo/ocean-notebook
  image_config_path: pangeo.jupyterhub.singleuser.image
  registry:
    provider: gcloud
    gcloud:
      project: ocean-pangeo
      service_key: gcr-key.json
cluster:
  provider: gcloud
  gcloud:
    project: ocean-pangeo
    service_key: gke-key.json
    cluster: pangeo-uscentral1b
    zone: us-central1-b
""",
            "config/common.yaml": """\
pangeo:
  jupyterhub:
    auth:
      type: github
      admin:
        users: [rabernat]
    singleuser:
      cpu:
        guarantee: 1
        limit: 2
      memory:
        guarantee: 4G
        limit: 8G
      storage:
        type: static
        static:
          pvcName: home-nfs
          subPath: "home/{username}"
      initContainers:
        - name: change-ownership
          image: busybox
          command: ["sh", "-c", "chown 1000:1000 /home/jovyan"]
    prePuller:
      hook:
        enabled: false
    cull:
      timeout: 1800
      maxAge: 43200
""",
            "config/staging.yaml": """\
pangeo:
  jupyterhub:
    proxy:
      https:
        hosts: [staging.ocean.pangeo.io]
        letsencrypt:
          contactEmail: ocean-admins@example.org
    auth:
      github:
        orgWhitelist: [pangeo-data, ocean-lab]
""",
            "config/prod.yaml": """\
pangeo:
  jupyterhub:
    proxy:
      service:
        loadBalancerIP: 35.0.0.10
      https:
        hosts: [ocean.pangeo.io]
        letsencrypt:
          contactEmail: ocean-admins@example.org
    hub:
      resources:
        requests: {cpu: "0.5", memory: 1Gi}
""",
            "secrets/staging.yaml": "pangeo:\n  jupyterhub:\n    auth:\n      github:\n        clientSecret: x\n",
            "shared-nfs-prod.yaml": NFS_MANIFESTS,
            "Makefile": MAKEFILE,
            "image/binder/environment.yml": """\
channels: [conda-forge]
dependencies:
  - python=3.11
  - dask
  - xarray
  - zarr>=2.18
  - gcsfs
""",
            "image/binder/postBuild": "#!/bin/bash\njupyter labextension list\n",
        },
    )
    commit(fed, "ocean: the hub as made by hand in 2019")
    return hub, {}


def atmos(fed: Path) -> tuple[Path, dict[str, str]]:
    hub = fed / "deployments" / "atmos"
    _write(
        hub,
        {
            "hubploy.yaml": """\
cluster:
  provider: aws
  aws:
    account_id: "123456789012"
    region: us-west-2
    cluster: pangeo-atmos
""",
            "config/common.yaml": """\
daskhub:
  jupyterhub:
    hub:
      config:
        JupyterHub:
          authenticator_class: generic-oauth
        GenericOAuthenticator:
          login_service: Auth0
          token_url: https://atmos.auth0.com/oauth/token
          userdata_url: https://atmos.auth0.com/userinfo
          username_key: email
    singleuser:
      image:
        name: 123456789012.dkr.ecr.us-west-2.amazonaws.com/atmos
        tag: 2021.06.01
      extraEnv:
        SCRATCH_BUCKET: s3://atmos-scratch/$(JUPYTERHUB_USER)
      profileList:
        - display_name: GPU
          kubespawner_override:
            extra_resource_limits: {nvidia.com/gpu: "1"}
  dask-gateway:
    gateway:
      backend:
        scheduler:
          cores: {request: 1, limit: 2}
""",
            "config/staging.yaml": """\
daskhub:
  jupyterhub:
    proxy:
      https:
        hosts: [staging.atmos.example.org]
""",
            "config/prod.yaml": """\
daskhub:
  jupyterhub:
    proxy:
      https:
        hosts: [atmos.example.org]
""",
            "mlflow.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: mlflow\n---\n"
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mlflow\n",
            "image/Dockerfile": "FROM pangeo/pangeo-notebook:2021.05.04\nRUN pip install metpy\n",
        },
    )
    commit(fed, "atmos: the hub as made by hand in 2021")
    # An Auth0 hub that let in anyone Auth0 knows: the operator names the email domains.
    return hub, {"oidc_allowed_domains": "atmos-lab.org"}


def ice(fed: Path) -> tuple[Path, dict[str, str]]:
    hub = fed / "deployments" / "ice"
    _write(
        hub,
        {
            "hubploy.yaml": """\
cluster:
  provider: azure
  azure:
    resource_group: ice-rg
    cluster: ice-aks
""",
            "config/common.yaml": """\
jupyterhub:
  hub:
    config:
      JupyterHub:
        authenticator_class: github
      GitHubOAuthenticator:
        allowed_organizations: [ice-lab]
  singleuser:
    image:
      name: icehubs.azurecr.io/ice
      tag: latest
    networkPolicy:
      enabled: true
""",
            "config/prod.yaml": "jupyterhub:\n  proxy:\n    https:\n      hosts: [ice.example.org]\n",
            "config/staging.yaml": "jupyterhub:\n  proxy:\n    https:\n      hosts: [staging.ice.example.org]\n",
            "image/binder/environment.yml": """\
dependencies:
  - python=3.12
  - xarray
  - pip
  - pip:
      - icepyx>=1.0
""",
        },
    )
    commit(fed, "ice: values for the daskhub chart itself")
    return hub, {}


def glacier(fed: Path) -> tuple[Path, dict[str, str]]:
    """Images to choose at login, both ways hubs offered them: a profile per
    image (pangeo-cloud-federation: an ML profile with its own image) and a
    profile's image choices with a typed image (2i2c's profile_options)."""
    hub = fed / "deployments" / "glacier"
    _write(
        hub,
        {
            "hubploy.yaml": "cluster:\n  provider: gcloud\n  gcloud:\n    project: glacier-lab\n"
            "    cluster: pangeo\n    zone: us-central1-b\n",
            "config/common.yaml": """\
daskhub:
  jupyterhub:
    hub:
      config:
        GitHubOAuthenticator:
          allowed_organizations: [glacier-lab]
    singleuser:
      image:
        name: us-central1-docker.pkg.dev/glacier-lab/hubs/glacier
        tag: 0a1b2c3
      profileList:
        - display_name: Default
          slug: default
          default: true
        - display_name: Machine learning (2021)
          slug: ml
          kubespawner_override:
            image: pangeo/ml-notebook:2021.05.04
        - display_name: Choose an image
          slug: choose
          profile_options:
            image:
              display_name: Image
              choices:
                pangeo:
                  display_name: Pangeo
                  kubespawner_override:
                    image: pangeo/pangeo-notebook:2026.04.29
                ours:
                  display_name: Ours
                  kubespawner_override:
                    image: us-central1-docker.pkg.dev/glacier-lab/hubs/glacier:0a1b2c3
                r:
                  display_name: R
                  kubespawner_override:
                    image: rocker/binder:latest
              unlisted_choice:
                enabled: true
                display_name: Other
                kubespawner_override:
                  image: "{value}"
""",
            "config/prod.yaml": "daskhub:\n  jupyterhub:\n    proxy:\n      https:\n        hosts: [glacier.example.org]\n",
        },
    )
    commit(fed, "glacier: images to choose at login")
    return hub, {}


# The layouts adopt round-trips through the evolving test template; glacier's
# answers (user_images) need a release that asks them: tests/test_adopt.py
# adopts it with this checkout's template.
LAYOUTS = {"ocean": ocean, "atmos": atmos, "ice": ice}
