"""The one place output templates are loaded.

The templates under ``templates/`` are meshctl's own, not user text, so a plain jinja2
``Environment`` is right here (user templates go through the sandbox in
:mod:`engine.language.templates`). Autoescaping is on exactly for the XML formats; the text formats
escape labels with their own filters, because HTML escaping would be wrong for them.
"""
from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined


@lru_cache(maxsize=2)
def environment(xml: bool) -> Environment:
    """The template environment: XML-escaping for SVG/HTML, none for Mermaid/DOT."""
    return Environment(
        loader=PackageLoader("engine.render", "templates"),
        autoescape=xml,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, xml: bool, **context) -> str:
    return environment(xml).get_template(name).render(**context)
