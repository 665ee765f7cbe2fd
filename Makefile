# Occam's entry points. `make demo` and `make test` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit local kubernetes hub chart node k8s-binaries node-images freeze bench chp clean

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

# The node tier's system packages (root on Debian; installed when missing) and its images, built here and
# cached in ~/.cache/occam/images (about 6 minutes cold, seconds when cached). Without root the tier skips.
NODE_PACKAGES := containerd runc containernetworking-plugins busybox-static debootstrap iptables gcc libc6-dev
node-images: setup
	@if [ "$$(id -u)" = 0 ]; then \
		dpkg -s $(NODE_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
			apt-get install -y -qq --no-install-recommends $(NODE_PACKAGES); }; \
		$(PY) -m tests.node.images; \
	else echo "node-images: not root, the node tier will skip"; fi

# Lint, type-check, then every test tier that runs on one machine.
test: lint k8s-binaries node-images chp
	$(PY) -m pytest -m "unit or local or kubernetes or hub or chart or node"

unit: setup
	$(PY) -m pytest -m unit

local: setup
	$(PY) -m pytest -m local

# A real control plane on loopback (etcd, API server, controllers, scheduler, kwok nodes); the binaries come
# from scripts/k8s-binaries.sh (OCCAM_BUILD_K8S=1 builds them), or set OCCAM_TEST_KUBECONFIG to use a cluster.
kubernetes: setup
	$(PY) -m pytest -m kubernetes

# The hub's real proxy (configurable-http-proxy, from npm) for the hub tier and bench/bench_spawn.py, cached.
CHP := $(HOME)/.cache/occam/chp/node_modules/.bin/configurable-http-proxy
chp:
	test -x $(CHP) || command -v configurable-http-proxy || npm install --prefix $(HOME)/.cache/occam/chp configurable-http-proxy@4

# A real JupyterHub process with OccamSpawner against the test control plane.
hub: setup chp
	$(PY) -m pytest -m hub

# The Helm chart: lint, render with several values files, dry-run and install on the test control plane.
chart: setup
	$(PY) -m pytest -m chart

# A real node (kubelet + containerd + CNI, images built here): executors run in containers and train.
node: setup node-images
	$(PY) -m pytest -m node

# The images' frozen requirements (images/requirements/*.txt) from pyproject.toml's pins; needs PyPI (docs/images.md).
freeze: setup
	$(PY) scripts/freeze_requirements.py

bench: setup k8s-binaries chp node-images
	$(PY) bench/bench_embedded.py
	$(PY) bench/bench_kubernetes.py
	$(PY) bench/bench_spawn.py
	$(PY) bench/bench_node.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
