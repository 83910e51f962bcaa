"""Shell: read the config file (a functions_worker.yml) from disk, for every command."""

from __future__ import annotations

from pathlib import Path

from webhook.core.config import Config, ConfigError, default_config, loads


def read(path: str | Path | None) -> Config:
    """The parsed file, built-in defaults for None, or ConfigError naming the file."""
    if path is None:
        return default_config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return loads(text, source=str(path))
