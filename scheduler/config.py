"""Configuration, read once at the edge: flags > ``CARBONSHIFT_*`` environment > TOML > defaults.

The schema below is the single list of known keys; an unknown key is an error that
suggests the closest known one. Library code receives a :class:`Settings`; it never reads
the environment itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scheduler.errors import ConfigError

#: Out of the box: the keyless live providers, each serving only its own zones (GB;
#: continental Europe; Denmark), then the static annual averages. Offline, each fails in
#: milliseconds (no DNS answer) and the chain falls back, recording that it did.
DEFAULT_PROVIDERS = ("ukgrid", "energycharts", "energinet")

# key -> (type, default, help). Nested tables are dicts; "*" stands for any table name.
SCHEMA: dict[str, Any] = {
    "db": (str, None, "database URL (sqlite:///path or postgresql+psycopg://...)"),
    "data_dir": (str, None, "where the SQLite file and job logs live"),
    "default_zone": (str, "GB", "grid zone of the local site"),
    "default_policy": (str, "default", "policy used when a submit names none"),
    "sampling_interval_s": (float, 5.0, "energy sampling interval of running jobs"),
    "cpu_w_per_core": (float, None, "power of one fully busy core (default: from the CPU power table)"),
    "cpu_idle_share": (bool, False, "add each job's share (by CPU time) of the CPU packages' idle power, as device cpu-idle"),
    "cpu_idle_w": (float, None, "the machine's CPU idle power for cpu_idle_share (default: 0.3 x the matched TDP)"),
    "gpu_w": (float, 300.0, "planning estimate of one GPU's mean power"),
    "memory_w_per_gb": (float, 0.375, "memory power estimate per resident GB"),
    "use_nvml": (bool, True, "measure GPUs through NVML when it works"),
    "use_rapl": (bool, True, "measure CPU energy through RAPL when it is readable"),
    "rapl_root": (str, "/sys/class/powercap", "where the RAPL powercap tree is"),
    "lease_s": (float, 60.0, "how long a running job's lease lasts without a heartbeat"),
    "slurm_poll_s": (float, 15.0, "real seconds between two squeue queries of the Slurm runs (one query for all of them)"),
    "agent_name": (str, None, "name this agent records on its runs (default: the host name)"),
    "replan_interval_s": (float, 900.0, "how often the daemon refreshes forecasts and re-plans"),
    "replan_hysteresis_pct": (float, 2.0, "a planned job moves only if that saves more than this"),
    "log_max_bytes": (int, 100 * 1024 * 1024, "cap of one job log file before it is rotated"),
    "admins": (list, [], "OS users allowed to cancel or change anyone's jobs"),
    "run_as_owner": (bool, False, "an agent running as root starts each local job as the Unix user who submitted it (uid, gid, groups); jobs of users unknown here fail"),
    "run_as_owner_root_jobs": (bool, False, "with run_as_owner: also run jobs submitted by root (as root); else they fail"),
    "carbon_price": (str, None, "internal carbon price, like 80/t or 80EUR/t"),
    "pause_mode": (str, "stop", "how interruptible jobs pause unless they say: stop (SIGSTOP/SIGCONT) or checkpoint"),
    "pause_signal": (str, "SIGUSR1", "signal asking a checkpointing job to save its state and exit"),
    "pause_grace_s": (float, 60.0, "real seconds a checkpointing job has to exit before it is killed"),
    "min_chunk_s": (int, 3600, "shortest run interval the planner gives an interruptible job, seconds"),
    "max_pauses": (int, 3, "most pauses the planner gives an interruptible job"),
    "intensity": {
        "providers": (list, list(DEFAULT_PROVIDERS), "provider chain, best first; the static table always follows"),
        "trace": (str, None, "trace file for the replay provider"),
        "cache_minutes": (float, 30.0, "a forecast fetched this recently is not fetched again"),
        "horizon_h": (float, 48.0, "how far ahead to forecast"),
        "timeout_s": (float, 10.0, "HTTP read timeout"),
        "retry_failed_after_minutes": (float, 5.0, "a provider that failed for a zone is not asked again for this long (0: every time)"),
        "weather": (list, [], "zones whose local forecaster also takes Open-Meteo weather inputs (points: [providers.openmeteo])"),
        "forecast_uncertainty": (str, "off", "the local forecaster plans on: off (its planning curve), bias (that curve x its mean actual/forecast ratio by lead, from a 28-day back-test) or quantile (x the ratio's 75th percentile by lead)"),
    },
    "providers": {
        "*": {
            "base_url": (str, None, "override of the provider's API address"),
            "token_env": (str, None, "environment variable holding the API token"),
            "username_env": (str, None, "environment variable holding the user name"),
            "password_env": (str, None, "environment variable holding the password"),
            "token": (str, None, "API token (prefer token_env; file must be private)"),
            "username": (str, None, "user name"),
            "password": (str, None, "password (file must be private)"),
            "zones": (list, None, "zones this provider should serve"),
            "forecast": (bool, True, "whether the account has forecasts (Electricity Maps)"),
            "emission_factor_type": (str, None, "lifecycle or direct (Electricity Maps)"),
            "trace": (str, None, "trace file (replay provider)"),
            "zone": (str, None, "zone of a plain trace file (replay provider)"),
            "traces": (list, None, "ZONE=FILE entries, a trace file per zone (replay provider; what --replay gives)"),
            "timeout_s": (float, None, "read timeout of this provider's requests"),
            "points": (list, None, "ZONE=LABEL:LAT,LON weather points, replacing that zone's defaults (openmeteo)"),
            "past_days": (int, None, "days of recent weather fetched to train on, 0-92 (openmeteo)"),
        }
    },
    "sites": {
        "*": {
            "zone": (str, None, "grid zone"),
            "executor": (str, "local", "local or slurm"),
            "gpus": (int, 0, "GPUs"),
            "cpus": (int, 0, "CPUs"),
            "pue": (float, 1.0, "power usage effectiveness"),
        }
    },
}

SECRET_KEYS = frozenset({"token", "password"})
ENV_PREFIX = "CARBONSHIFT_"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. ``raw`` keeps the nested tables (providers, sites)."""

    db: str
    data_dir: Path
    config_path: Path | None
    #: ``db`` is the default file under ``data_dir`` (no flag, variable or key named one):
    #: the only database whose missing folders may be created
    db_is_default: bool = False
    default_zone: str = "GB"
    default_policy: str = "default"
    sampling_interval_s: float = 5.0
    cpu_w_per_core: float | None = None
    #: add the job's share of the CPU idle power (device ``cpu-idle``), of ``cpu_idle_w`` W
    cpu_idle_share: bool = False
    cpu_idle_w: float | None = None
    gpu_w: float = 300.0
    memory_w_per_gb: float = 0.375
    use_nvml: bool = True
    use_rapl: bool = True
    rapl_root: str = "/sys/class/powercap"
    lease_s: float = 60.0
    #: one ``squeue`` for all of an agent's Slurm runs every this many real seconds
    slurm_poll_s: float = 15.0
    #: name of this agent on its runs: a restarted agent of the same name adopts them
    agent_name: str | None = None
    replan_interval_s: float = 900.0
    replan_hysteresis_pct: float = 2.0
    log_max_bytes: int = 100 * 1024 * 1024
    admins: tuple[str, ...] = ()
    #: an agent running as root drops each local job to its owner's uid, gid and groups;
    #: jobs of root run (as root) only with ``run_as_owner_root_jobs``
    run_as_owner: bool = False
    run_as_owner_root_jobs: bool = False
    carbon_price: str | None = None
    #: interruptible jobs: default pause mode, checkpoint signal and grace (real seconds)
    pause_mode: str = "stop"
    pause_signal: str = "SIGUSR1"
    pause_grace_s: float = 60.0
    #: the planner's split of interruptible jobs: shortest run, most pauses
    min_chunk_s: int = 3600
    max_pauses: int = 3
    intensity: Mapping[str, Any] = field(default_factory=dict)
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def forecast_fits_dir(self) -> Path:
        """Where the local forecaster keeps its fitted weights for every process."""
        return self.data_dir / "forecast-fits"

    @property
    def weather_cache_dir(self) -> Path:
        """Where the weather provider keeps what it fetched, for every process."""
        return self.data_dir / "weather"


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "carbonshift" / "config.toml"


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local" / "share"
    )
    return Path(base) / "carbonshift"


def _suggest(key: str, known: list[str]) -> str:
    import difflib  # for a mistake only

    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"


def _coerce(path: str, value: Any, typ: type) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
        raise ConfigError(
            f"config key {path} = {value!r} should be a {typ.__name__}: fix it in the config file"
        )
    if typ is float and value != value:  # NaN
        raise ConfigError(f"config key {path} is NaN: give a number")
    return _check_range(f"config key {path}", path.rsplit(".", 1)[-1], value)


#: numeric keys that must be above zero, and those that may be zero but not below
POSITIVE_KEYS = frozenset({
    "sampling_interval_s", "lease_s", "replan_interval_s", "log_max_bytes", "timeout_s",
    "horizon_h", "cpu_w_per_core", "cpu_idle_w", "pue", "min_chunk_s", "slurm_poll_s",
})
NON_NEGATIVE_KEYS = frozenset({
    "gpu_w", "memory_w_per_gb", "cache_minutes", "replan_hysteresis_pct", "gpus", "cpus",
    "pause_grace_s", "max_pauses", "retry_failed_after_minutes",
})


#: signals a job may be asked to checkpoint with: those its supervisor passes on
#: (``scheduler.executors.supervise.FORWARDED_SIGNALS``; a test keeps the two equal)
PAUSE_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGXCPU")


def signal_name(text: str) -> str | None:
    """``USR1``, ``sigusr1``, ``SIGUSR1`` or ``10`` -> ``"SIGUSR1"``; ``None`` if no such
    signal, or not one of :data:`PAUSE_SIGNALS` (SIGKILL and SIGSTOP cannot be passed on)."""
    import signal

    t = text.strip().upper()
    try:
        sig = signal.Signals(int(t)) if t.isdigit() else signal.Signals[t if t.startswith("SIG") else "SIG" + t]
    except (KeyError, ValueError):
        return None
    return sig.name if sig.name in PAUSE_SIGNALS else None


def _check_pause_keys(merged: Mapping[str, Any]) -> None:
    from scheduler.domain.model import PAUSE_MODES

    mode = merged.get("pause_mode")
    if mode not in PAUSE_MODES:
        raise ConfigError(f"pause_mode {mode!r} (config file or {ENV_PREFIX}PAUSE_MODE) should be "
                          f"one of {', '.join(PAUSE_MODES)}")
    sig = merged.get("pause_signal")
    if not isinstance(sig, str) or signal_name(sig) is None:
        raise ConfigError(f"pause_signal {sig!r} (config file or {ENV_PREFIX}PAUSE_SIGNAL) is not a "
                          f"pause signal: use one of {', '.join(PAUSE_SIGNALS)}")


def _check_range(what: str, key: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if value in (float("inf"), float("-inf")):
        raise ConfigError(f"{what} = {value!r} is not a finite number")
    if key in POSITIVE_KEYS and value <= 0:
        raise ConfigError(f"{what} = {value!r} must be greater than zero")
    if key in NON_NEGATIVE_KEYS and value < 0:
        raise ConfigError(f"{what} = {value!r} must not be negative")
    if key in ("gpus", "cpus"):
        from scheduler.domain.model import MAX_CPUS, MAX_GPUS

        limit = MAX_GPUS if key == "gpus" else MAX_CPUS
        if value > limit:
            raise ConfigError(f"{what} = {value!r} is more than {limit:,}: give at most {limit}")
    return value


def validate(data: Mapping[str, Any], schema: Mapping[str, Any] = SCHEMA, prefix: str = "") -> dict[str, Any]:
    """Check ``data`` against ``schema``; return it with defaults filled in for top-level keys."""
    out: dict[str, Any] = {}
    known = [k for k in schema if k != "*"]
    for key, value in data.items():
        path = f"{prefix}{key}"
        spec = schema.get(key, schema.get("*"))
        if spec is None:
            raise ConfigError(f"unknown config key {path!r}{_suggest(key, known)}")
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path} should be a table [{path}]")
            out[key] = validate(value, spec, prefix=path + ".")
        else:
            out[key] = _coerce(path, value, spec[0])
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse and validate a TOML config file; secrets in it require owner-only permissions."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist: create it with `carbonshift config init`") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory: give a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    import tomllib  # only when there is a file: most commands run without one

    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    checked = validate(data)
    if _has_secret(checked):
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"config file {str(path)!r} holds a token or password but is readable by others: "
                f"run `chmod 600 {path}` or move the secret to an environment variable"
            )
    return checked


def _has_secret(data: Mapping[str, Any]) -> bool:
    for key, value in data.items():
        if key in SECRET_KEYS and value:
            return True
        if isinstance(value, Mapping) and _has_secret(value):
            return True
    return False


def load_settings(
    *,
    env: Mapping[str, str],
    config_path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings from flags (``overrides``), environment, config file and defaults.

    ``overrides["replay"]`` (``--replay``: ``ZONE=FILE`` entries) sets the replay
    provider's ``traces`` and puts it first in the provider chain."""
    explicit = config_path or env.get(ENV_PREFIX + "CONFIG")
    path = Path(explicit).expanduser() if explicit else default_config_path(env)
    file_data: dict[str, Any] = {}
    if explicit or path.is_file():
        file_data = read_config_file(path)
    else:
        path = None  # type: ignore[assignment]
    merged: dict[str, Any] = {}
    for key, spec in SCHEMA.items():
        if isinstance(spec, dict):
            merged[key] = file_data.get(key, {})
            continue
        typ, default, _ = spec
        value = file_data.get(key, default)
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None and env_value != "":
            value = _from_env(key, env_value, typ)
        merged[key] = value
    overrides = dict(overrides or {})
    replay = list(overrides.pop("replay", None) or [])
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
    _check_pause_keys(merged)
    merged["pause_signal"] = signal_name(merged["pause_signal"])
    intensity = {k: v[1] for k, v in SCHEMA["intensity"].items()}
    intensity.update(merged.pop("intensity"))
    if replay:
        merged["providers"] = {**merged["providers"],
                               "replay": {**merged["providers"].get("replay", {}), "traces": replay}}
        intensity["providers"] = ["replay", *(p for p in intensity["providers"] if p != "replay")]
    data_dir = Path(merged.pop("data_dir") or default_data_dir(env)).expanduser()
    db_given = merged.pop("db")
    db = db_given or f"sqlite:///{data_dir / 'carbonshift.db'}"
    admins = tuple(merged.pop("admins") or ())
    return Settings(
        db=db,
        data_dir=data_dir,
        config_path=path,
        db_is_default=not db_given,
        intensity=intensity,
        admins=admins,
        **merged,
    )


def _from_env(key: str, text: str, typ: type) -> Any:
    try:
        if typ is float:
            value: Any = float(text)
            if value != value:
                raise ValueError
            return _check_range(f"environment variable {ENV_PREFIX}{key.upper()}", key, value)
        if typ is int:
            return _check_range(f"environment variable {ENV_PREFIX}{key.upper()}", key, int(text))
        if typ is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"environment variable {ENV_PREFIX}{key.upper()}={text!r} should be a {typ.__name__}"
        ) from None
    return text


def redact(value: Any) -> Any:
    """A copy of a config structure with secrets replaced by ``***``."""
    if isinstance(value, Mapping):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def env_for_process(env: Mapping[str, str]) -> dict[str, str]:
    """The environment the CLI edge passes down: a plain copy of ``os.environ``-like data."""
    return dict(env)


def current_environ() -> dict[str, str]:
    """The process environment; called by the CLI edge only."""
    return dict(os.environ)


def credential_vars(settings: Settings) -> set[str]:
    """The environment variables holding provider credentials: each built-in provider's
    default name and every ``*_env`` key of the config's provider tables."""
    from intensity.providers.electricitymaps import TOKEN_ENV
    from intensity.providers.watttime import PASSWORD_ENV, USERNAME_ENV

    names = {TOKEN_ENV, USERNAME_ENV, PASSWORD_ENV}
    for opts in settings.providers.values():
        names.update(v for k, v in opts.items() if k.endswith("_env") and isinstance(v, str) and v)
    return names


def hide_from_environ(names: Iterable[str]) -> list[str]:
    """Remove these variables from this process's environment, once read into the copy the
    app keeps (``App.env``): from ``os.environ``, and from the bytes the kernel shows as
    ``/proc/PID/environ`` (the environment block the process started with, which
    ``unsetenv`` leaves in place), so that a job running as the same user cannot read a token
    there. Returns the names removed. The block is cleared through the C library's
    ``environ`` (Linux); where that fails, only ``os.environ`` is cleared."""
    present = sorted(n for n in set(names) if n in os.environ)
    if not present:
        return []
    spots: list[tuple[int, int]] = []
    try:
        import ctypes

        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
        wanted = {n.encode() for n in present}
        i = 0
        while environ[i]:
            addr = int(environ[i])
            entry = ctypes.string_at(addr)
            if entry.split(b"=", 1)[0] in wanted and start <= addr < end:
                spots.append((addr, len(entry)))
            i += 1
    except (OSError, ValueError, IndexError, AttributeError):
        spots = []
    for name in present:
        os.environ.pop(name, None)  # unsetenv: drops the pointer, not the bytes
    for addr, size in spots:
        ctypes.memset(addr, 0, size)
    return present
