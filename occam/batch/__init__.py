"""Batch jobs: a training script run by ``spark-submit`` instead of from a notebook.

This package holds what every batch job shares, whatever runs it: the job itself (:mod:`occam.batch.job`, a
script or a module and its arguments) and the pure builders of spark-submit's command line and
``spark-defaults.conf`` text (:mod:`occam.batch.conf`). ``occam submit`` / ``occam conf`` (:mod:`occam.submit`)
hand the job to its backend: the embedded one runs spark-submit with ``local-cluster`` here
(:mod:`occam.backends.embedded_jobs`), the Kubernetes one in cluster mode, a driver pod that owns its executor
pods (:mod:`occam.backends.kubernetes_jobs`, builders in :mod:`occam.kubernetes.job_conf` and
:mod:`occam.kubernetes.job_objects`). Inside the job, ``start_cluster()`` attaches to the session spark-submit
made (:mod:`occam.backends.submitted`), so a notebook's code runs unchanged.
"""
