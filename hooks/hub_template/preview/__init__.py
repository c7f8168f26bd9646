"""`hub-template preview`: run a rendered hub on this machine, on 127.0.0.1 only,
with the hub's own configuration and only what cannot run here replaced.

`overrides` is the one list of those replacements (the preview prints it, the
tests assert it); `gateway_config` writes dask-gateway-server's configuration.
"""
