"""A notebook's side of tests/test_gateway.py, run as its own process.

dask reads the image's installed config from $DASK_CONFIG; the gateway's
address and auth come from DASK_GATEWAY__* environment variables, as helm
gives them to a hub's pods; JUPYTER_IMAGE_SPEC is the notebook's own image.
Prints one JSON document with what it saw.

    python gateway_client.py options|compute|panel|limits
"""

from __future__ import annotations

import importlib
import json
import sys

import dask
import dask.config


def options() -> dict:
    from dask_gateway import Gateway

    with Gateway() as gateway:
        opts = gateway.cluster_options()
        return {
            name: {"value": opts[name], "min": getattr(field, "min", None), "max": getattr(field, "max", None)}
            for name, field in opts._fields.items()
        }


def compute() -> dict:
    import dask.array as da

    factory = dask.config.get("labextension.factory")
    cluster_class = getattr(importlib.import_module(factory["module"]), factory["class"])
    cluster = cluster_class(*factory["args"], **factory["kwargs"])
    try:
        cluster.scale(1)
        with cluster.get_client() as client:
            client.wait_for_workers(1, timeout=60)
            x = da.ones((400, 400), chunks=(100, 100))
            total = float((x + x.T).sum().compute())
            workers = len(client.scheduler_info()["workers"])
    finally:
        cluster.shutdown()
    return {
        "factory": f"{factory['module']}.{factory['class']}",
        "cluster": type(cluster).__name__,
        "sum": total,
        "workers": workers,
    }


def panel() -> dict:
    """The dask panel's +NEW: dask-labextension's own cluster manager, as its
    server extension runs it (asynchronously), with the image's defaults."""
    import asyncio

    async def new_cluster() -> dict:
        from dask_gateway import Gateway
        from dask_labextension.manager import DaskClusterManager

        manager = DaskClusterManager()
        model = await manager.start_cluster()
        try:
            for _ in range(600):  # the panel polls the same way
                model = manager.get_cluster(model["id"])
                if model["workers"] >= 1:
                    break
                await asyncio.sleep(0.1)
        finally:
            await manager.close_cluster(model["id"])
        async with Gateway(asynchronous=True) as gateway:
            left = len(await gateway.list_clusters())
        return {"name": model["name"], "workers": model["workers"], "adapt": model.get("adapt"), "clusters left": left}

    return asyncio.run(new_cluster())


def limits() -> dict:
    """Requests the hub's options must refuse. Gateway.submit sends the options
    as given (GatewayCluster(**kwargs) does the same), so the server decides."""
    from dask_gateway import Gateway

    request = json.loads(sys.argv[2])
    refused = {}
    with Gateway() as gateway:
        for name, value in request.items():
            try:
                refused[name] = f"accepted as cluster {gateway.submit(**{name: value})}"
            except ValueError as error:
                refused[name] = str(error)
        if "worker_memory" in request:
            opts = gateway.cluster_options()
            try:
                opts.worker_memory = request["worker_memory"]
                refused["worker_memory (client)"] = "accepted"
            except ValueError as error:
                refused["worker_memory (client)"] = str(error)
        refused["clusters"] = len(gateway.list_clusters())
    return refused


if __name__ == "__main__":
    print(json.dumps({"options": options, "compute": compute, "panel": panel, "limits": limits}[sys.argv[1]]()))
