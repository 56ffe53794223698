"""Finds a DTD in XML bytes whatever their encoding: decoded as any parser might read them.

Byte patterns such as b"<!ENTITY" only work for ASCII-compatible encodings; a document in
EBCDIC (cp037), UTF-16 or UTF-32 hides its declarations from them. Here the bytes are decoded
in every encoding a parser could pick — the BOM or the XML spec's first-four-bytes family, the
encoding in the XML declaration, the HTTP charset — and each text is searched up to its root
element for a DOCTYPE with an internal subset or any markup declaration.
"""

from __future__ import annotations

import re

_DECL_TEXT = re.compile(r"<!(?:ENTITY|ELEMENT|ATTLIST|NOTATION)|<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_ANY_DOCTYPE = re.compile(r"<!DOCTYPE|<!(?:ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
_ROOT = re.compile(r"<[A-Za-z_]")

# (first bytes, codec): XML 1.0 appendix F, with and without a byte-order mark.
_FAMILIES = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),  # "<?xm" in EBCDIC
)


def candidate_codecs(content: bytes, http_charset: str | None = None) -> list[str]:
    """The encodings a parser might read these bytes in, most likely first, without repeats."""
    found: list[str] = []
    family = "latin-1"
    for prefix, codec in _FAMILIES:
        if content.startswith(prefix):
            found.append(codec)
            family = codec
            break
    declared = _XML_DECL_ENCODING.match(content[:1024].decode(family, "ignore").lstrip("\ufeff"))
    for name in (declared.group(1) if declared else None, http_charset):
        if name and name.strip():
            found.append(name.strip().lower())
    return list(dict.fromkeys(found))


def ascii_compatible(codec: str) -> bool:
    try:
        return "<!ENTITY <!DOCTYPE [".encode(codec) == b"<!ENTITY <!DOCTYPE ["
    except (LookupError, UnicodeError):
        return False


def decoded_dtd(content: bytes, http_charset: str | None = None, *, skip_ascii_compatible: bool = False,
                any_doctype: bool = False) -> str | None:
    """The first encoding in which the document shows a DTD before its root element, or None.

    `any_doctype`: count a bare DOCTYPE too (not only one with declarations).
    `skip_ascii_compatible`: leave those encodings to a byte-level check the caller already runs.
    """
    pattern = _ANY_DOCTYPE if any_doctype else _DECL_TEXT
    codecs = candidate_codecs(content, http_charset) or ["utf-8"]
    for codec in codecs:
        if skip_ascii_compatible and ascii_compatible(codec):
            continue
        try:
            text = content.decode(codec, "replace")
        except LookupError:
            continue  # no parser reads it in an encoding nobody knows
        root = _ROOT.search(text)
        if pattern.search(text[: root.start() + 1] if root else text):
            return codec
    return None
