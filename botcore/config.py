"""Reading and validating the bot's INI configuration.

Every problem in the files (syntax, unknown sections and keys, bad values, missing
environment variables) is collected and reported together, never one at a time."""

from __future__ import annotations

import ast
import configparser
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botcore.options import Option, redact

# ``$${`` is a literal ``${`` (how values set from chat are written); else ``${ENV:...}``.
_ENV = re.compile(r"\$(\$)\{|\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECTION_KEY = re.compile(r"^(?P<section>[A-Za-z][\w:.-]*?)\.(?P<key>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class ConfigError:
    """One problem: where it is (file, section, key) and what was expected vs found."""

    file: str
    section: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.section is not None:
            where += f": [{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
        return f"{where}: {self.message}"


class ConfigErrors(Exception):
    """Raised with every problem found in a configuration."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        count = len(self.errors)
        lines = [f"{count} configuration error{'s' if count != 1 else ''}:"]
        lines.extend(f"  {error}" for error in self.errors)
        return "\n".join(lines)


class UnknownSection(ValueError):
    """Raised by a section resolver for a section (or section type) it does not know;
    ``key`` names the key at fault, if one is (a source's ``type``)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ErrorCollector:
    """Gathers `ConfigError`s while validating, then raises them all at once."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, file: str, section: str | None, key: str | None, message: str) -> None:
        self.errors.append(ConfigError(str(file), section, key, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(list(self.errors))


@dataclass
class RawValue:
    text: str
    file: str


@dataclass
class RawConfig:
    """The sections of the main file and its local override, merged, each value remembering
    the file it came from."""

    sections: dict[str, dict[str, RawValue]] = field(default_factory=dict)
    section_files: dict[str, str] = field(default_factory=dict)


def read_files(paths: list[Path], errors: ErrorCollector) -> RawConfig:
    """Parse INI files in order, later files overriding earlier ones key by key."""
    raw = RawConfig()
    for path in paths:
        # [DEFAULT] is read as an ordinary section (and refused below), so that its keys
        # never leak into the other sections and even an empty one is reported.
        parser = configparser.ConfigParser(
            interpolation=None, strict=True, delimiters=("=",), default_section=_NO_DEFAULTS
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive keys
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle, source=str(path))
        except FileNotFoundError:
            errors.add(str(path), None, None, "file not found")
            continue
        except (OSError, UnicodeDecodeError) as e:
            errors.add(str(path), None, None, f"cannot read: {e}")
            continue
        except configparser.Error as e:
            for section, key, message in _describe_parse_error(e):
                errors.add(str(path), section, key, message)
            continue
        for section in parser.sections():
            if section == "DEFAULT":
                errors.add(str(path), section, None, "a [DEFAULT] section is not supported")
                continue
            values = raw.sections.setdefault(section, {})
            raw.section_files.setdefault(section, str(path))
            for key, text in parser.items(section, raw=True):
                values[key] = RawValue(text, str(path))
    return raw


_NO_DEFAULTS = "\0no default section"


def _unrepr(text: str) -> str:
    # configparser keeps each bad line as repr(line).
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip()
    return value.strip() if isinstance(value, str) else text


def _describe_parse_error(error: configparser.Error) -> list[tuple[str | None, str | None, str]]:
    """(section, key, message) for each problem a parse error stands for."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        found = error.line.strip()
        return [(None, None, f"line {error.lineno}: expected a [section] header, found {found!r}")]
    if isinstance(error, configparser.ParsingError):
        return [
            (
                None,
                None,
                f"line {lineno}: expected 'key = value' or a [section], found {_unrepr(line)!r}",
            )
            for lineno, line in error.errors
        ]
    if isinstance(error, configparser.DuplicateSectionError):
        return [(error.section, None, f"line {error.lineno}: the section appears twice")]
    if isinstance(error, configparser.DuplicateOptionError):
        message = f"line {error.lineno}: the key appears twice in this section"
        return [(error.section, error.option, message)]
    message = error.message if hasattr(error, "message") else str(error)
    return [(None, None, " ".join(message.replace(str(getattr(error, "source", "")), "").split()))]


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${ENV:NAME}`` (or ``${ENV:NAME:-default}``) with the environment's value;
    ``$${`` stands for a literal ``${`` (see `escape_env`)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "${"
        name, default = match.group(2), match.group(3)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set")

    return _ENV.sub(replace, text)


def escape_env(text: str) -> str:
    """``text`` written so that `expand_env` gives it back as it is: nothing in it is
    expanded (for values set from chat, which must never read the environment)."""
    return text.replace("${", "$${")


def split_option_path(path: str) -> tuple[str, str] | None:
    """``section.key`` (``bot.name``, ``plugin:core.limit_time``) as ``(section, key)``;
    None when it is not one."""
    found = _SECTION_KEY.match(path)
    return None if found is None else (found.group("section"), found.group("key"))


SectionResolver = Callable[[str, Mapping[str, str]], Mapping[str, Option]]


@dataclass
class Config:
    """A validated configuration: parsed values for every section found in the files."""

    path: Path
    files: list[Path]
    sections: dict[str, dict[str, Any]]
    secrets: frozenset[tuple[str, str]] = frozenset()
    #: The secret options of every section the config was checked against, set or not.
    secret_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    #: The override file named explicitly (``local=``); None when it is looked for beside
    #: the main file, as it is again on every reload.
    local: Path | None = None

    @property
    def directory(self) -> Path:
        """The main file's folder: relative paths in the config are relative to it."""
        return self.path.parent

    def section(self, name: str) -> dict[str, Any]:
        """The parsed values of one section (empty when the section is absent)."""
        return self.sections.get(name, {})

    def names(self, kind: str) -> list[str]:
        """The NAMEs of every ``[kind:NAME]`` section, in file order."""
        prefix = kind + ":"
        return [s[len(prefix) :] for s in self.sections if s.startswith(prefix)]

    def is_secret_option(self, path: str) -> bool:
        """Whether the option ``section.key`` holds a secret (its value is never shown or
        logged). An option of a section the config has not seen, or a path that is none,
        counts as one: better hidden for nothing than shown once. Any thread."""
        found = split_option_path(path)
        if found is None or found[0] not in self.secret_keys:
            return True
        section, key = found
        return key in self.secret_keys[section] or (section, key) in self.secrets

    def relative_path(self, value: str | os.PathLike[str]) -> Path:
        """A path from the config, made absolute against the main file's folder."""
        return config_path(value, self.directory)


def config_path(value: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> Path:
    """A path as written in the config (``~`` expanded), relative ones taken against the
    config file's ``directory`` (left as they are when there is none)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() or directory is None else Path(directory) / path


def default_local_path(path: Path) -> Path:
    """The optional override file beside the main one: ``bot.ini`` -> ``bot.local.ini``."""
    return path.with_name(f"{path.stem}.local{path.suffix or '.ini'}")


def load_config(
    path: str | os.PathLike[str],
    resolve: SectionResolver,
    *,
    local: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    implicit_sections: tuple[str, ...] = (),
) -> Config:
    """Read, expand and validate a configuration; raise `ConfigErrors` listing every problem.

    ``resolve(section, raw_values)`` names the options a section may hold and raises
    `UnknownSection` for a section it does not know. ``implicit_sections`` are validated
    with their defaults even when the file does not have them. ``local`` is the override
    file; when it is not given, ``NAME.local.ini`` beside the main file is used if present.
    """
    environ = os.environ if environ is None else environ
    main = Path(path).absolute()
    files = [main]
    if local is not None:
        files.append(Path(local).absolute())
    elif default_local_path(main).exists():
        files.append(default_local_path(main))

    errors = ErrorCollector()
    raw = read_files(files, errors)
    sections: dict[str, dict[str, Any]] = {}
    secrets: set[tuple[str, str]] = set()
    secret_keys: dict[str, frozenset[str]] = {}
    names = list(raw.sections) + [s for s in implicit_sections if s not in raw.sections]
    for section in names:
        values = raw.sections.get(section, {})
        file = raw.section_files.get(section, str(main))
        expanded: dict[str, str] = {}
        for key, value in values.items():
            try:
                expanded[key] = expand_env(value.text, environ)
            except ValueError as e:
                errors.add(value.file, section, key, str(e))
        try:
            options = resolve(section, expanded)
        except UnknownSection as e:
            where = values[e.key].file if e.key in values else file
            errors.add(where, section, e.key, str(e))
            continue
        secret_keys[section] = frozenset(name for name, o in options.items() if o.secret)
        parsed: dict[str, Any] = {}
        for key, text in expanded.items():
            option = options.get(key)
            if option is None:
                known = ", ".join(sorted(options)) or "none"
                errors.add(values[key].file, section, key, f"unknown key (known keys: {known})")
                continue
            try:
                parsed[key] = option.parse(text)
            except ValueError as e:
                # The error may quote the value: never a secret's (it is logged).
                message = redact(str(e), text) if option.secret else str(e)
                errors.add(values[key].file, section, key, message)
        for name, option in options.items():
            if name in values:
                if option.secret:
                    secrets.add((section, name))
                continue
            if option.required:
                errors.add(file, section, name, f"missing required {option.kind} ({option.help})")
            else:
                parsed[name] = option.default
        sections[section] = parsed
    errors.raise_if_any()
    return Config(
        path=main,
        files=files,
        sections=sections,
        secrets=frozenset(secrets),
        secret_keys=secret_keys,
        local=Path(local).absolute() if local is not None else None,
    )
