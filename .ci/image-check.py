"""Run inside a built hub image (`docker run -i IMAGE python - < .ci/image-check.py`):
import the dask stack and resolve the dask panel's factory from the config
the image itself installed. DASK_BACKEND says which client the hub needs."""

import importlib
import os

import dask
import dask.config
import dask_labextension
import distributed

client = importlib.import_module(
    {"gateway": "dask_gateway", "kubernetes": "dask_kubernetes"}[os.environ["DASK_BACKEND"]]
)
factory = dask.config.get("labextension.factory")
cluster_class = getattr(importlib.import_module(factory["module"]), factory["class"])
print(
    f"dask {dask.__version__}, distributed {distributed.__version__}, "
    f"{client.__name__} {client.__version__}, dask-labextension {dask_labextension.__version__}"
)
print(f"labextension.factory: {factory['module']}.{factory['class']} -> {cluster_class!r}")
