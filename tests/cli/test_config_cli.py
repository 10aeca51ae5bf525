"""``carbonshift config show|path|init`` and ``completion``."""

from __future__ import annotations

import json
import os
import stat
import tomllib

import pytest

from scheduler.cli.configcmd import render_template, toml_value
from scheduler.config import SCHEMA, validate


def test_path_names_the_file_in_use(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("config", "path")
    assert r.code == 0
    assert r.out.strip() == str(cs.config)
    assert "CARBONSHIFT_CONFIG" in r.err and "exists" in r.err
    other = cs.tmp / "other.toml"
    r = cs("--config", str(other), "config", "path")
    assert r.out.strip() == str(other) and "--config" in r.err and "does not exist" in r.err


def test_show_resolves_with_sources_and_redacts_secrets(cs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cs.config.write_text(
        cs.config.read_text()
        + '\n[providers.electricitymaps]\ntoken = "s3cr3t-token"\ntoken_env = "EM_TOKEN"\n'
        + '[providers.watttime]\nusername_env = "WT_USER"\n'
    )
    os.chmod(cs.config, 0o600)
    monkeypatch.setenv("CARBONSHIFT_GPU_W", "250")
    monkeypatch.setenv("EM_TOKEN", "another-secret")
    r = cs("--db", str(cs.tmp / "x.db"), "config", "show")
    assert r.code == 0, r.err
    assert "s3cr3t" not in r.out and "another-secret" not in r.out
    assert 'token = "***"' in r.out
    assert "$EM_TOKEN is set" in r.out and "$WT_USER is NOT set" in r.out
    line = {ln.split(" = ")[0]: ln for ln in r.out.splitlines() if " = " in ln}
    assert line["gpu_w"].endswith("# env CARBONSHIFT_GPU_W") and "250.0" in line["gpu_w"]
    assert line["default_zone"].endswith("# file") and '"TRACE"' in line["default_zone"]
    assert line["db"].endswith("# flag --db")
    assert line["sampling_interval_s"].endswith("# default")
    # the JSON form carries the same, still redacted
    r = cs("config", "show", "--json")
    data = json.loads(r.out)
    assert "s3cr3t" not in r.out
    assert data["settings"]["providers"]["electricitymaps"]["token"] == "***"
    assert data["sources"]["gpu_w"] == "env CARBONSHIFT_GPU_W"
    assert data["credential_variables_set"] == {"electricitymaps": {"EM_TOKEN": True},
                                                "watttime": {"WT_USER": False}}


def test_show_redacts_a_password_in_the_database_url(cs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARBONSHIFT_DB", "postgresql+psycopg://cs:hunter2@db.example:5432/cs")
    r = cs("config", "show", "--json")
    assert r.code == 0, r.err
    assert "hunter2" not in r.out
    assert json.loads(r.out)["settings"]["db"] == "postgresql+psycopg://cs:***@db.example:5432/cs"


def test_unknown_key_is_an_error_with_a_suggestion(cs) -> None:  # type: ignore[no-untyped-def]
    cs.config.write_text('defualt_zone = "DE"\n')
    r = cs("config", "show")
    assert r.code == 2
    assert "unknown config key 'defualt_zone'" in r.err and "default_zone" in r.err


def test_init_writes_a_private_valid_file_once(cs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = cs.tmp / "new" / "config.toml"
    monkeypatch.setenv("CARBONSHIFT_CONFIG", str(target))
    r = cs("config", "init", "--zone", "DE")
    assert r.code == 0, r.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = tomllib.loads(target.read_text())
    assert data == {"default_zone": "DE", "intensity": {}}
    r = cs("config", "init")
    assert r.code == 2 and "already exists" in r.err and "--force" in r.err
    r = cs("config", "init", "--force")
    assert r.code == 0
    assert tomllib.loads(target.read_text())["default_zone"] == "GB"
    # and the app reads it back
    r = cs("config", "show", "--json")
    assert json.loads(r.out)["settings"]["default_zone"] == "GB"


def test_template_mentions_every_key_and_no_secret() -> None:
    text = render_template()
    validate(tomllib.loads(text))
    for key, spec in SCHEMA.items():
        assert key in text
        if isinstance(spec, dict):
            for sub in spec.get("*", spec):
                if sub not in ("token", "password"):
                    assert f"# {sub} = " in text
    assert "# token = " not in text and "# password = " not in text


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"), (3, "3"), (2.5, "2.5"), ("a\"b", '"a\\"b"'), (["x", 1], '["x", 1]'),
])
def test_toml_values(value: object, text: str) -> None:
    assert toml_value(value) == text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(cs, shell: str) -> None:  # type: ignore[no-untyped-def]
    r = cs("completion", shell)
    assert r.code == 0
    assert "_CARBONSHIFT_COMPLETE" in r.out and f"{shell}_complete" in r.out


def test_completion_protocol_completes_commands_and_choices(cs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("_CARBONSHIFT_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "carbonshift rep")
    monkeypatch.setenv("COMP_CWORD", "1")
    r = cs()
    assert r.out.split() == ["plain,report"]
    monkeypatch.setenv("COMP_WORDS", "carbonshift report --by ")
    monkeypatch.setenv("COMP_CWORD", "3")
    r = cs()
    assert "plain,owner" in r.out.split() and "plain,month" in r.out.split()
