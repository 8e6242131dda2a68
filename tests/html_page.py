"""A strict reading of an HTML page for the report tests: every element closed in order, the
section ids, tables, images and any address that would make a browser fetch something."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
FETCHING = {"src", "href", "srcset", "data", "poster", "action", "background"}


class Page(HTMLParser):
    """Parses a page; ``errors`` lists tags closed out of order or left open."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tables = 0
        self.headings: list[str] = []
        self.external: list[str] = []
        self.doctype = ""
        self._heading: list[str] | None = None
        self.feed(text)
        self.close()
        self.errors += [f"<{tag}> never closed" for tag in self.stack]

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        for key, value in values.items():
            if key in FETCHING and value and not value.startswith(("#", "data:")):
                self.external.append(f"<{tag} {key}={value[:60]}>")
        if tag == "img":
            self.images.append(values)
        if tag == "table":
            self.tables += 1
        if tag in ("h2", "h3"):
            self._heading = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
