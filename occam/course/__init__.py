"""Tools for a course's admin: what every student holds (``occam course status``, ``occam course metrics``), and
the smoke test of an install (``occam course check``).

They read the course's Kubernetes cluster with the admin's own kubeconfig (:class:`occam.kubernetes.api.CourseApi`)
and, optionally, the hub's REST API with an admin token: nothing here runs in a student's notebook. The admin's
view of a course is its Kubernetes namespaces, so this part reads Kubernetes directly instead of asking a backend.
"""
