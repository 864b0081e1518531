"""Command-line settings from flags, `SPLADEBRIDGE_*` environment variables, or a TOML file, in that order.

The TOML file is `--config PATH`, else `$SPLADEBRIDGE_CONFIG`, else `./spladebridge.toml` when it exists;
it holds top-level keys named like the settings below (`url = "qdrant://localhost:6333"`,
`text_fields = ["title", "text"]`). Every value records where it came from; secrets never show in
`describe()`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spladebridge.engines import DEFAULT_URL, redact_url

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "resolve",
]

ENV_PREFIX = "SPLADEBRIDGE_"
CONFIG_ENV = "SPLADEBRIDGE_CONFIG"
DEFAULT_CONFIG_FILE = "spladebridge.toml"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A setting that cannot be used: unknown key, wrong type, unreadable file; the message names it."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its type (`str`, `int`, `float`, `bool` or `list` of str), default, and secrecy."""

    name: str
    kind: type
    default: Any = None
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("url", str, DEFAULT_URL),
        Setting("engine", str),
        Setting("index", str, "spladebridge"),
        Setting("api_key", str, secret=True),
        Setting("username", str),
        Setting("password", str, secret=True),
        Setting("ca_certs", str),
        Setting("verify_certs", bool, True),
        Setting("timeout", float),
        Setting("sparse_model", str),
        Setting("dense_model", str),
        Setting("dense", bool, True),
        Setting("dense_precision", str),
        Setting("device", str),
        Setting("batch_size", int, 64),
        Setting("id_field", str),
        Setting("text_fields", list, ["title", "text"]),
        Setting("max_retries", int, 3),
        Setting("max_text_chars", int, 1_000_000),
        Setting("state_dir", str, ".spladebridge"),
    )
}


@dataclass(slots=True)
class Settings:
    """Resolved values with where each came from ("flag", "env NAME", "file PATH" or "default")."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def describe(self) -> list[str]:
        """`name = value  (source)` lines with secrets masked."""
        lines = []
        for name in SETTINGS:
            value = self.values.get(name)
            if SETTINGS[name].secret and value is not None:
                shown = "***"
            else:
                shown = repr(redact_url(value) if isinstance(value, str) else value)
            lines.append(f"{name} = {shown}  ({self.sources.get(name, 'default')})")
        return lines


def _shown(setting: Setting, value: Any) -> str:
    """How a bad value appears in an error message: never at all for a secret setting."""
    return "(a hidden value)" if setting.secret else repr(value)


def _convert(setting: Setting, value: Any, where: str) -> Any:
    kind = setting.kind
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ConfigError(f"{where}: expected true or false, got {_shown(setting, value)}")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {_shown(setting, value)}") from None
        if kind is float:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {_shown(setting, value)}") from None
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {_shown(setting, value)}")
        return list(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: expected {kind.__name__}, got {type(value).__name__} {_shown(setting, value)}"
        )
    return value


def _config_path(flag: str | None, environ: Mapping[str, str], cwd: Path) -> tuple[Path | None, bool]:
    """The TOML file to read and whether it was asked for explicitly (then it must exist)."""
    if flag:
        return Path(flag), True
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]), True
    default = cwd / DEFAULT_CONFIG_FILE
    return (default, False) if default.is_file() else (None, False)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a TOML file is expected)") from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SETTINGS)}"
        )
    return data


def resolve(
    flags: Mapping[str, Any],
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Each setting from its flag (when not None), else `SPLADEBRIDGE_<NAME>`, else the file, else default."""
    env = os.environ if environ is None else environ
    path, _explicit = _config_path(config_file, env, cwd or Path.cwd())
    file_values = _read_toml(path) if path is not None else {}
    out = Settings(config_file=path)
    for name, setting in SETTINGS.items():
        flag = flags.get(name)
        if flag is not None:
            out.values[name] = _convert(setting, flag, f"--{name.replace('_', '-')}")
            out.sources[name] = "flag"
        elif env.get(setting.env) not in (None, ""):
            out.values[name] = _convert(setting, env[setting.env], f"environment variable {setting.env}")
            out.sources[name] = f"env {setting.env}"
        elif name in file_values:
            out.values[name] = _convert(setting, file_values[name], f"{path}: {name}")
            out.sources[name] = f"file {path}"
        else:
            out.values[name] = list(setting.default) if isinstance(setting.default, list) else setting.default
            out.sources[name] = "default"
    return out
