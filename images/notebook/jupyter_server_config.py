# The notebook image's Jupyter server config (installed as /etc/jupyter/jupyter_server_config.py).
# jupyter-server-proxy forwards <prefix>proxy/<host>:<port>/ only to the hosts this allows: its defaults
# (localhost, 127.0.0.1) and the student's own model services on Kubernetes, by their short names
# (occam-serve-*, which resolve only in the notebook's namespace); see occam.kubernetes.serving.
from occam.kubernetes.serving import host_allowlist

c.ServerProxy.host_allowlist = host_allowlist  # noqa: F821 - `c` is the config object Jupyter provides
