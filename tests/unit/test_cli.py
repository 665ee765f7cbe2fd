import pytest

from occam.cli import build_parser, main


def test_demo_defaults_train_two_executors():
    args = build_parser().parse_args(["demo"])
    assert args.executors == 2 and args.epochs == 8 and args.min_accuracy == 0.0


def test_version_prints(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"


def test_user_errors_become_a_message_and_exit_2(capsys):
    assert main(["demo", "--executors", "0"]) == 2
    assert "at least one executor" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-everything"])


def test_status_outside_a_notebook_pod_explains_where_clusters_live(capsys, monkeypatch):
    monkeypatch.delenv("OCCAM_K8S_NAMESPACE", raising=False)
    assert main(["status"]) == 2
    assert "occam.list_clusters()" in capsys.readouterr().err


def test_stop_needs_names_or_all():
    args = build_parser().parse_args(["stop", "--all"])
    assert args.all and args.names == []
