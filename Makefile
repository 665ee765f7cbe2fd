# Occam's entry points. `make demo` and `make test` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit local kubernetes hub chart node k8s-binaries bench clean

setup:
	bash scripts/setup-venv.sh

demo: setup
	$(VENV)/bin/occam demo --min-accuracy 0.9

lint: setup
	$(VENV)/bin/ruff check occam spawner tests bench
	$(VENV)/bin/ruff format --check occam spawner tests bench
	$(VENV)/bin/mypy

# Real Kubernetes control-plane binaries, cached outside the repo (about 20 minutes cold, instant when cached).
k8s-binaries:
	bash scripts/k8s-binaries.sh

# Lint, type-check, then every test tier that runs on one machine.
test: lint k8s-binaries
	$(PY) -m pytest -m "unit or local or kubernetes or hub or chart or node"

unit: setup
	$(PY) -m pytest -m unit

local: setup
	$(PY) -m pytest -m local

# A real control plane on loopback (etcd, API server, controllers, scheduler, kwok nodes); the binaries come
# from scripts/k8s-binaries.sh (OCCAM_BUILD_K8S=1 builds them), or set OCCAM_TEST_KUBECONFIG to use a cluster.
kubernetes: setup
	$(PY) -m pytest -m kubernetes

# A real JupyterHub process with OccamSpawner against the test control plane.
hub: setup
	$(PY) -m pytest -m hub

# The Helm chart: lint, render with several values files, dry-run and install on the test control plane.
chart: setup
	$(PY) -m pytest -m chart

# A real node (kubelet + containerd + CNI, images built here): executors run in containers and train.
node: setup
	$(PY) -m pytest -m node

bench: setup k8s-binaries
	$(PY) bench/bench_embedded.py
	$(PY) bench/bench_kubernetes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
