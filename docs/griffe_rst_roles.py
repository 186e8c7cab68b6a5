"""A Griffe extension for the API reference: Sphinx roles in docstrings
(``:func:`gradient```, ``:class:`pbdr.PbdrError```) become Markdown code
spans, so they render as code instead of as literal role markup, and the
reStructuredText literal-block marker (a paragraph ending in ``::`` before
an indented block) becomes a single colon.

Used by mkdocs.yml (mkdocstrings' ``extensions`` option); not part of the site.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")
LITERAL_MARKER = re.compile(r"(\w)::(\n\s*\n)")


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` as ```target``` and ``word::`` as ``word:``
    in every docstring."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = ROLE.sub(r"`\1`", obj.docstring.value)
            obj.docstring.value = LITERAL_MARKER.sub(r"\1:\2", text)
