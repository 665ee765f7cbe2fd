"""Batch jobs: a training script run by ``spark-submit`` instead of from a notebook.

``occam submit`` (:mod:`occam.batch.submit`) runs a script on the embedded cluster (Spark
``local-cluster``, client mode) or on Kubernetes (cluster mode: a driver pod that owns its executor
pods). ``occam conf`` prints the same Spark properties as ``spark-defaults.conf`` lines for plain
``spark-submit``. Inside the job, ``start_cluster()`` attaches to the session spark-submit made
(:mod:`occam.batch.adopt`), so a notebook's code runs unchanged.

The Spark conf, the pod templates and the objects are built by pure functions (:mod:`occam.batch.conf`,
:mod:`occam.batch.objects`); the modules ``embedded`` and ``kubernetes`` only run them.
"""
