"""``carbonshift config show|path|init``: the resolved configuration, where it comes from.

Precedence: flags > ``CARBONSHIFT_*`` environment > TOML file > defaults. Secrets
(``token``, ``password``) are never printed: they show as ``***``. For credentials held in
environment variables (``token_env`` and friends) only whether the variable is set is shown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from scheduler.cli.common import echo_json, state
from scheduler.config import (
    ENV_PREFIX,
    SCHEMA,
    Settings,
    default_config_path,
    load_settings,
    read_config_file,
    redact,
)
from scheduler.errors import BadInput, ConfigError


def toml_value(value: Any) -> str:
    """A TOML literal for a config value (strings, numbers, booleans, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _config_path(env: Mapping[str, str]) -> tuple[Path, str]:
    explicit = state().config
    if explicit:
        return Path(explicit).expanduser(), "--config"
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"]).expanduser(), f"${ENV_PREFIX}CONFIG"
    return default_config_path(env), "default location"


def _resolve(env: Mapping[str, str]) -> tuple[Settings, dict[str, Any], dict[str, str]]:
    """Settings, the file's own data and the source of each top-level key."""
    from scheduler.app import normalise_db

    st = state()
    path, _ = _config_path(env)
    overrides: dict[str, Any] = {}
    if st.db:
        overrides["db"] = normalise_db(st.db)
    elif env.get(ENV_PREFIX + "DB"):
        overrides["db"] = normalise_db(env[ENV_PREFIX + "DB"])
    settings = load_settings(env=env, config_path=st.config, overrides=overrides)
    file_data: dict[str, Any] = read_config_file(path) if settings.config_path else {}
    sources: dict[str, str] = {}
    for key, spec in SCHEMA.items():
        if key == "db" and st.db:
            sources[key] = "flag --db"
        elif not isinstance(spec, dict) and env.get(ENV_PREFIX + key.upper()):
            sources[key] = f"env {ENV_PREFIX}{key.upper()}"
        elif key in file_data:
            sources[key] = "file"
        else:
            sources[key] = "default"
    return settings, file_data, sources


def _settings_dict(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in SCHEMA.items():
        value = getattr(settings, key, None)
        if isinstance(spec, dict):
            out[key] = redact({k: (dict(v) if isinstance(v, Mapping) else v)
                               for k, v in (value or {}).items()})
        elif isinstance(value, Path):
            out[key] = str(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    out["db"] = _redact_url(out["db"])
    return out


def _redact_url(url: str | None) -> str | None:
    """A database URL with its password replaced by ``***``."""
    if not url or "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _credential_vars(settings: Settings, env: Mapping[str, str]) -> dict[str, dict[str, bool]]:
    """For each provider, whether each ``*_env`` variable it names is set (never its value)."""
    out: dict[str, dict[str, bool]] = {}
    for name, opts in settings.providers.items():
        for key, var in opts.items():
            if key.endswith("_env") and isinstance(var, str) and var:
                out.setdefault(name, {})[var] = bool(env.get(var))
    return out


@click.group()
def config() -> None:
    """Show, locate or create the config file (TOML).

    Precedence: flags > CARBONSHIFT_* environment > config file > defaults. Unknown keys
    in the file are errors with a suggestion.
    """


@config.command("path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: path, why, exists.")
def config_path(as_json: bool) -> None:
    """Print the config file in use (or where it would be) and whether it exists."""
    from scheduler.config import current_environ

    path, why = _config_path(current_environ())
    if as_json:
        echo_json({"path": str(path), "why": why, "exists": path.is_file()})
        return
    click.echo(str(path))
    click.echo(f"({why}; {'exists' if path.is_file() else 'does not exist: `carbonshift config init` creates it'})",
               err=True)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON with each key's source.")
def config_show(as_json: bool) -> None:
    """Print the resolved configuration, secrets redacted, with where each value comes from."""
    from scheduler.config import current_environ

    env = current_environ()
    settings, _, sources = _resolve(env)
    data = _settings_dict(settings)
    creds = _credential_vars(settings, env)
    if as_json:
        echo_json({
            "config_path": str(settings.config_path) if settings.config_path else None,
            "settings": data, "sources": sources, "credential_variables_set": creds,
        })
        return
    path, why = _config_path(env)
    click.echo(f"# config file: {path} ({why}, {'in use' if settings.config_path else 'not found: defaults apply'})")
    for key, spec in SCHEMA.items():
        if isinstance(spec, dict):
            continue
        value = data.get(key)
        line = f"# {key} = (unset)" if value is None else f"{key} = {toml_value(value)}"
        click.echo(f"{line.ljust(60)} # {sources[key]}")
    for key, spec in SCHEMA.items():
        if not isinstance(spec, dict):
            continue
        table = data.get(key) or {}
        if "*" in spec:
            for name, opts in table.items():
                click.echo(f"\n[{key}.{name}]")
                for k, v in opts.items():
                    if v is not None:
                        click.echo(f"{k} = {toml_value(v)}")
                for var, is_set in creds.get(name, {}).items() if key == "providers" else ():
                    click.echo(f"# ${var} is {'set' if is_set else 'NOT set'}")
        else:
            click.echo(f"\n[{key}]  # {sources[key]}")
            for k, v in table.items():
                click.echo(f"# {k} = (unset)" if v is None else f"{k} = {toml_value(v)}")


TEMPLATE_HEAD = """\
# carbonshift configuration (TOML). Precedence: flags > CARBONSHIFT_* environment > this
# file > defaults. Unknown keys are errors. Keep secrets in environment variables named by
# `token_env`; a file holding a token or password must be private (chmod 600).
"""


def render_template(zone: str | None = None) -> str:
    """A config file listing every known key with its default and help, commented out
    except ``default_zone``."""
    lines = [TEMPLATE_HEAD]
    for key, spec in SCHEMA.items():
        if isinstance(spec, dict):
            continue
        _typ, default, help_text = spec
        lines.append(f"# {help_text}")
        if key == "default_zone":
            lines.append(f"default_zone = {toml_value(zone or default)}\n")
        elif default is None:
            lines.append(f"# {key} = ...\n")
        else:
            lines.append(f"# {key} = {toml_value(default)}\n")
    for key, spec in SCHEMA.items():
        if not isinstance(spec, dict):
            continue
        if "*" in spec:
            example = {"providers": "electricitymaps", "sites": "gpu-cluster"}.get(key, "name")
            lines.append(f"# [{key}.{example}]")
            for k, (_t, default, help_text) in spec["*"].items():
                if k in ("token", "password"):
                    continue  # prefer the *_env variables: no template invites a secret in a file
                shown = "..." if default is None else toml_value(default)
                lines.append(f"# {k} = {shown}".ljust(44) + f"  # {help_text}")
            lines.append("")
        else:
            lines.append(f"[{key}]")
            for k, (_t, default, help_text) in spec.items():
                shown = "..." if default is None else toml_value(default)
                lines.append(f"# {k} = {shown}".ljust(44) + f"  # {help_text}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


@config.command("init")
@click.option("--zone", metavar="ZONE", help="Default grid zone to write (default: GB).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the template instead of writing it.")
def config_init(zone: str | None, force: bool, to_stdout: bool) -> None:
    """Write a commented config file with every known key (private, mode 600)."""
    import tomllib

    from scheduler.config import current_environ, validate

    text = render_template(zone)
    validate(tomllib.loads(text))  # the template must always be a valid config
    if to_stdout:
        click.echo(text, nl=False)
        return
    path, _ = _config_path(current_environ())
    if path.exists() and not force:
        raise BadInput(f"config file {str(path)!r} already exists: edit it, or pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {str(path)!r}: {exc.strerror}") from None
    click.echo(f"wrote {path}")
