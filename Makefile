# Occam's entry points. `make demo` and `make test` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: system-packages setup demo test lint unit consistency local kubernetes hub chart node k8s-binaries images images-gpu node-images freeze bench chp clean

setup:
	bash scripts/setup-venv.sh

demo: setup
	$(VENV)/bin/occam demo --min-accuracy 0.9

lint: setup
	$(VENV)/bin/ruff check occam spawner tests bench scripts
	$(VENV)/bin/ruff format --check occam spawner tests bench scripts
	$(VENV)/bin/mypy

# Real Kubernetes control-plane binaries, cached outside the repo (about 20 minutes cold, instant when cached).
k8s-binaries:
	bash scripts/k8s-binaries.sh

# The images admins deploy (images/*/Dockerfile: the notebook image's CPU variant, the hub image and the proxy
# image), built with podman from a local stand-in of their base (docs/images.md); the node tier runs them (the
# hub and proxy images in its release test; the proxy image adds about 2 minutes cold). About
# 25 minutes cold (Horovod's compile, PyPI and Debian downloads), seconds when nothing changed. Needs root and
# the Debian packages scripts/system-packages.sh installs; without them the node tier skips.
NODE_PACKAGES := containerd runc containernetworking-plugins busybox-static debootstrap iptables gcc libc6-dev podman
images: setup
	@if [ "$$(id -u)" != 0 ]; then echo "images: not root, not built (the node tier will skip)"; \
	elif ! dpkg -s $(NODE_PACKAGES) >/dev/null 2>&1; then \
		echo "images: missing Debian packages (run scripts/system-packages.sh as root); not built, the node tier will skip"; \
	else VENV=$(VENV) bash scripts/build-images.sh notebook-cpu hub proxy; fi

# The GPU variant of the notebook image (a release builds it too; it needs no GPU to build).
images-gpu: setup
	VENV=$(VENV) bash scripts/build-images.sh notebook-gpu

# The node tier's two small images (pause, busybox; seconds) beside the notebook image of `make images`.
node-images: images
	@if [ "$$(id -u)" = 0 ] && dpkg -s $(NODE_PACKAGES) >/dev/null 2>&1; then $(PY) -m tests.node.images; fi

# The Debian packages the tiers need (java, npm, etcd, the node's runtime), installed when missing; root only.
system-packages:
	bash scripts/system-packages.sh

# Lint, type-check, then every test tier that runs on one machine.
# The Kubernetes binaries (Go compiles) and the images (downloads, apt and pip in containers, layer commits)
# are built side by side: each waits on the network or the disk where the other computes.
test: lint
	$(MAKE) -j2 k8s-binaries node-images chp
	$(PY) -m pytest tests

unit: setup
	$(PY) -m pytest tests/unit

# The lock, the venv, the Dockerfiles and the docs agree with each other (offline).
consistency: setup
	$(PY) -m pytest tests/consistency

local: setup
	$(PY) -m pytest tests/local

# A real control plane on loopback (etcd, API server, controllers, scheduler, kwok nodes); the binaries come
# from scripts/k8s-binaries.sh (OCCAM_BUILD_K8S=1 builds them), or set OCCAM_TEST_KUBECONFIG to use a cluster.
kubernetes: setup
	$(PY) -m pytest tests/kubernetes

# The hub's real proxy (configurable-http-proxy, from npm) for the hub tier and bench/bench_spawn.py: installed
# with `npm ci` from images/proxy/package-lock.json (every transitive version locked), cached until the lock changes.
CHP_DIR := $(HOME)/.cache/occam/chp
CHP_LOCK := images/proxy/package-lock.json
chp:
	@if cmp -s $(CHP_LOCK) $(CHP_DIR)/package-lock.json && test -x $(CHP_DIR)/node_modules/.bin/configurable-http-proxy; \
	then echo "chp: up to date with $(CHP_LOCK)"; \
	else mkdir -p $(CHP_DIR) && cp images/proxy/package.json $(CHP_LOCK) $(CHP_DIR)/ && \
		npm ci --prefix $(CHP_DIR) --no-audit --no-fund; fi

# A real JupyterHub process with OccamSpawner against the test control plane.
hub: setup chp
	$(PY) -m pytest tests/hub

# The Helm chart: lint, render with several values files, dry-run and install on the test control plane.
chart: setup
	$(PY) -m pytest tests/chart

# A real node (kubelet + containerd + CNI, images built here): executors run in containers and train.
node: setup node-images
	$(PY) -m pytest tests/node

# Refresh the lock (images/requirements/*.txt: the images and the venv) from pyproject.toml's pins, on purpose only;
# needs PyPI; prints what changed (docs/images.md). `make setup` then re-installs the venv.
freeze: setup
	$(PY) scripts/freeze_requirements.py

bench: setup k8s-binaries chp node-images
	$(PY) bench/bench_embedded.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_training.py
	$(PY) bench/bench_models.py
	$(PY) bench/bench_kubernetes.py
	$(PY) bench/bench_spawn.py
	$(PY) bench/bench_node.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
