"""``occam submit`` and ``occam conf`` on the command line: arguments, and errors before anything starts."""

from __future__ import annotations

import os

import pytest

from occam.cli import build_parser, main, split_script_args


def test_arguments_after_double_dash_go_to_the_script():
    argv, script_args = split_script_args(["submit", "train.py", "-n", "4", "--", "--epochs", "3", "--", "x"])
    assert script_args == ["--epochs", "3", "--", "x"]
    args = build_parser().parse_args(argv)
    assert (args.script, args.executors, args.gpu, args.detach) == ("train.py", 4, False, False)
    assert split_script_args(["demo", "--", "x"]) == (["demo", "--", "x"], [])


def test_module_jobs_and_defaults():
    args = build_parser().parse_args(["submit", "-m", "occam.examples.train_digits", "--gpu", "--detach"])
    assert args.module == "occam.examples.train_digits" and args.script is None
    assert args.gpu and args.detach and args.executors == 2 and args.script_args == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "--backend", "embedded"], "name what to run"),
        (["submit", "missing.py", "--backend", "embedded"], "no script 'missing.py'"),
        (["submit", "train.py", "-n", "0", "--backend", "embedded"], "at least one executor"),
        (["submit", "train.py", "--backend", "embedded", "--detach"], "--detach works on Kubernetes only"),
        (["submit", "-m", "no_such_pkg.train", "--backend", "embedded"], "-m no_such_pkg.train: no such module"),
        (["submit", "train.py", "--backend", "yarn"], "backend='yarn' is not known"),
        (["conf", "--backend", "kubernetes"], "OCCAM_K8S_NAMESPACE is not set"),
    ],
)
def test_bad_requests_fail_at_once_with_exit_2_and_say_what_to_do(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCCAM_K8S_NAMESPACE", raising=False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_conf_prints_spark_defaults_of_an_embedded_job(capsys, monkeypatch):
    monkeypatch.delenv("OCCAM_MEMORY", raising=False)
    assert main(["conf", "--backend", "embedded", "-n", "2", "--memory", "768m"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]
    conf = dict(line.split(None, 1) for line in lines)
    assert conf["spark.master"] == "local-cluster[2,1,768]"
    assert conf["spark.executor.memory"] == "768m"
    assert conf["spark.occam.executors"] == "2"
    # The private work dir is made per job by occam submit; plain spark-submit has none.
    assert "spark.local.dir" not in conf and not [v for v in conf.values() if "OCCAM-WORK-DIR" in v]


def test_conf_for_kubernetes_prints_cluster_mode_properties_and_writes_the_pod_templates(capsys, monkeypatch, tmp_path):
    import json

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    for key in [k for k in os.environ if k.startswith("OCCAM_K8S_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("OCCAM_K8S_NAMESPACE", "jane")
    monkeypatch.setenv("OCCAM_K8S_EXECUTOR_IMAGE", "img:1")
    templates = tmp_path / "templates"
    argv = ["conf", "--backend", "kubernetes", "-n", "3", "--name", "nightly", "--service-account", "occam-notebook"]
    assert main([*argv, "--template-dir", str(templates)]) == 0
    out = capsys.readouterr().out
    conf = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith("#"))
    assert conf["spark.master"] == "k8s://https://127.0.0.1:6443"
    assert conf["spark.submit.deployMode"] == "cluster"
    assert conf["spark.kubernetes.namespace"] == "jane"
    assert conf["spark.executor.instances"] == "3"
    assert conf["spark.kubernetes.submission.waitAppCompletion"] == "true"  # plain spark-submit waits for the job
    driver = json.loads((templates / "driver-pod-template.json").read_text())
    assert driver["spec"]["serviceAccountName"] == "occam-notebook"
    assert conf["spark.kubernetes.driver.podTemplateFile"] == str(templates / "driver-pod-template.json")
    assert json.loads((templates / "executor-pod-template.json").read_text())["kind"] == "Pod"
    assert "No secret is printed" in out and "Secret nightly-spark-auth" in out
    assert "spark.authenticate.secret " not in out and "not-a-real-token" not in out
