"""Pure builders for the Kubernetes backend: settings, manifests, Spark conf and quota checks.

Client-mode Spark on Kubernetes: the notebook pod is the Spark driver and the executors are pods in
the student's namespace. Nothing here talks to a cluster: dicts in, dicts out.
"""
