"""HTML mail to plain text with lxml: no tags, no styles or scripts, line breaks where blocks end. No hub imports."""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

_BLOCKS = (
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "hr",
    "address",
    "section",
    "article",
    "header",
    "footer",
)
_INVISIBLE = "//script|//style|//head|//noscript|//template|//title"
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\xa0\u200b]+")


def html_to_text(html: str) -> str:
    """The text a reader sees; never raises (a page lxml cannot read is stripped of tags instead)."""
    if not html.strip():
        return ""
    try:
        parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
        root = lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (etree.ParserError, ValueError, UnicodeError):
        return _tidy(_TAG.sub(" ", html))
    for node in root.xpath(_INVISIBLE):
        node.drop_tree()
    for node in root.iter(*_BLOCKS):
        # A newline after every block, and one before a <br>'s following text.
        node.tail = "\n" + (node.tail or "")
        if node.tag in ("td", "th"):
            node.tail = "\t" + (node.tail or "")
    for cell in root.iter("td", "th"):
        cell.tail = " " + (cell.tail or "")
    return _tidy(root.text_content())


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    # Blocks end lines; nested blocks (a list after a paragraph) would leave blank lines between them.
    return "\n".join(line for line in lines if line)
