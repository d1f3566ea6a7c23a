"""Render outbound mail bodies (plain text + HTML) from the Jinja2 templates.

Pure: a template name and a context mapping in, a ``Rendered`` pair out. The
admin's ``daemon.templates_dir`` is searched before the shipped ``templates/``;
``Renderer.check()`` renders every template with sample contexts so that a broken
override is reported by ``maild check-config`` rather than at send time. The
context each template receives is documented in ``templates/README.md``.

The template names, languages and labels live in ``maild.template_catalog``,
the sample contexts in ``maild.template_samples``; both are re-exported here,
where callers have always found them.
"""

from __future__ import annotations

import importlib.resources
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from maild.template_catalog import (
    AGENT_TEMPLATES,
    CUSTOMER_TEMPLATES,
    LANGUAGES,
    PRIORITY_LABELS,
    SEPARATOR,
    STATUS_LABELS,
    TEMPLATE_NAMES,
    TICKET_OPTIONAL,
    check_language,
    refusal_reason,
)
from maild.template_samples import sample_context, sample_contexts

__all__ = [
    "AGENT_TEMPLATES",
    "CUSTOMER_TEMPLATES",
    "LANGUAGES",
    "PRIORITY_LABELS",
    "SEPARATOR",
    "SHIPPED_TEMPLATES_DIR",
    "STATUS_LABELS",
    "TEMPLATE_NAMES",
    "TICKET_OPTIONAL",
    "Rendered",
    "Renderer",
    "format_filesize",
    "refusal_reason",
    "sample_context",
    "sample_contexts",
]

# templates/ in the source tree, maild/templates/ once installed (pyproject package-dir).
SHIPPED_TEMPLATES_DIR = Path(str(importlib.resources.files("maild.templates")))
TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"
_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True)
class Rendered:
    """One mail body in both alternatives of a multipart/alternative message."""

    text: str
    html: str


def format_filesize(size: int, language: str) -> str:
    """Human-readable size in binary units: ``"512 bytes"``, ``"1,5 MB"`` / ``"1.5 MB"``."""
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = float(size)
    unit = "B"
    for unit in ("KB", "MB", "GB", "TB"):  # noqa: B007 - the last unit is kept on purpose
        value /= 1024
        if value < 1024:
            break
    number = f"{value:.1f}".removesuffix(".0")
    if language == "pt_BR":
        number = number.replace(".", ",")
    return f"{number} {unit}"


def _environments(
    shipped_dir: Path, override_dir: Path | None, language: str
) -> tuple[jinja2.Environment, jinja2.Environment]:
    """(text environment without autoescape, HTML environment with autoescape)."""
    search = [shipped_dir / language]
    if override_dir is not None:
        search.insert(0, override_dir / language)
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(path) for path in search])
    envs = []
    for autoescape in (False, True):
        env = jinja2.Environment(
            loader=loader,
            autoescape=autoescape,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["filesize"] = _filesize_filter(language)
        envs.append(env)
    return envs[0], envs[1]


def _filesize_filter(language: str) -> Callable[[int], str]:
    def filesize(size: int) -> str:
        return format_filesize(size, language)

    return filesize


def _tidy_text(text: str) -> str:
    # Conditional blocks leave blank-line runs behind; a mail reads better without.
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


class Renderer:
    """Renders the mail templates of one language, admin overrides first."""

    def __init__(self, shipped_dir: Path, override_dir: Path | None, language: str) -> None:
        check_language(language)
        self.shipped_dir = shipped_dir
        self.override_dir = override_dir
        self.language = language
        self._text_env, self._html_env = _environments(shipped_dir, override_dir, language)
        self._siblings: dict[str, Renderer] = {language: self}

    def for_language(self, language: str) -> Renderer:
        """The renderer of the same templates in ``language`` (each built once)."""
        sibling = self._siblings.get(language)
        if sibling is None:
            sibling = Renderer(self.shipped_dir, self.override_dir, language)
            self._siblings[language] = sibling
        return sibling

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        """Render ``<name>.txt.j2`` and ``<name>.html.j2`` with ``context``.

        Raises ``jinja2.UndefinedError`` when the context lacks a key a template uses.
        """
        if name not in TEMPLATE_NAMES:
            raise ValueError(f"unknown template {name!r}, expected one of {TEMPLATE_NAMES}")
        values = dict(context)
        text = self._text_env.get_template(name + TEXT_SUFFIX).render(values)
        html = self._html_env.get_template(name + HTML_SUFFIX).render(values)
        return Rendered(text=_tidy_text(text), html=html)

    def check(self) -> list[str]:
        """Every problem with the templates in use, each message naming its file.

        Compiles every file of the override directory, then renders each template
        (override or shipped) with every sample context, in this renderer's
        language and in any other language the override directory provides.
        """
        problems: dict[str, None] = {}  # ordered and de-duplicated
        languages = [self.language]
        if self.override_dir is not None:
            if not self.override_dir.is_dir():
                return [f"{self.override_dir}: templates directory does not exist"]
            for stray in sorted(self.override_dir.glob("*.j2")):
                problems[
                    f"{stray}: not used; templates go in a language subdirectory "
                    f"({' or '.join(lang + '/' for lang in LANGUAGES)})"
                ] = None
            languages += [
                lang
                for lang in LANGUAGES
                if lang != self.language and (self.override_dir / lang).is_dir()
            ]
        for language in languages:
            renderer = (
                self
                if language == self.language
                else Renderer(self.shipped_dir, self.override_dir, language)
            )
            for problem in renderer._check_one_language():
                problems[problem] = None
        return list(problems)

    def _check_one_language(self) -> Iterator[str]:
        if self.override_dir is not None:
            yield from self._compile_overrides(self.override_dir / self.language)
        for name in TEMPLATE_NAMES:
            for env, suffix in ((self._text_env, TEXT_SUFFIX), (self._html_env, HTML_SUFFIX)):
                for context in sample_contexts(name, self.language):
                    problem = _try_render(env, name + suffix, context)
                    if problem is not None:
                        yield problem
                        break

    def _compile_overrides(self, directory: Path) -> Iterator[str]:
        if not directory.is_dir():
            return
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            relative = path.relative_to(directory).as_posix()
            if relative.endswith(HTML_SUFFIX):
                env, stem = self._html_env, relative.removesuffix(HTML_SUFFIX)
            elif relative.endswith(TEXT_SUFFIX):
                env, stem = self._text_env, relative.removesuffix(TEXT_SUFFIX)
            else:
                yield f"{path}: not used; template files end in {TEXT_SUFFIX} or {HTML_SUFFIX}"
                continue
            if stem not in TEMPLATE_NAMES and not path.name.startswith("_"):
                yield (
                    f"{path}: unknown template name {stem!r}; expected one of "
                    f"{', '.join(TEMPLATE_NAMES)} (shared partials start with _)"
                )
                continue
            try:
                env.get_template(relative)
            except jinja2.TemplateSyntaxError as exc:
                yield f"{exc.filename or path}:{exc.lineno}: syntax error: {exc.message}"


def _try_render(env: jinja2.Environment, template: str, context: Mapping[str, Any]) -> str | None:
    try:
        env.get_template(template).render(dict(context))
    except jinja2.TemplateSyntaxError as exc:
        return f"{exc.filename or template}:{exc.lineno}: syntax error: {exc.message}"
    except jinja2.TemplateNotFound as exc:
        return f"{template}: template not found: {exc.name}"
    except jinja2.UndefinedError as exc:
        return f"{_failing_location(exc, env, template)}: unknown variable: {exc.message}"
    except Exception as exc:  # an admin's template can fail in any way; report, never raise
        return f"{_failing_location(exc, env, template)}: {type(exc).__name__}: {exc}"
    return None


def _failing_location(exc: BaseException, env: jinja2.Environment, template: str) -> str:
    # Jinja rewrites tracebacks so that template frames carry the template's file
    # name and line: the innermost such frame is the file to blame (an include or
    # a base template, not necessarily the template we asked for).
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((TEXT_SUFFIX, HTML_SUFFIX)):
            return f"{frame.filename}:{frame.lineno}"
    filename = env.get_template(template).filename
    return filename or template
