"""The digest's exceptions: bad input, bad or expired links, mail configuration and SMTP outcomes."""

from monitor.errors import NewsmonError


class DigestError(NewsmonError):
    """Anything the digest package detects and can describe in one line."""


class InvalidInput(DigestError):
    """A subscription or saved search field is not acceptable (address, time zone, hour, name, query)."""


class NotFound(DigestError):
    """No subscription or saved search with that id."""


class TokenError(DigestError):
    """A confirmation or unsubscribe link that is not ours, was changed, or is for another purpose."""


class TokenExpired(TokenError):
    """A correctly signed link that is too old."""


class MailConfigError(DigestError):
    """NEWSMON_SMTP_URL, NEWSMON_MAIL_FROM or NEWSMON_SECRET is missing or malformed."""


class TemporarySendError(DigestError):
    """The mail server could not take the message now (4xx, refused connection, timeout): retry later."""


class PermanentSendError(DigestError):
    """The mail server rejected the message or the address for good (5xx): do not retry."""


class UncertainSendError(DigestError):
    """The connection broke after the whole message was handed over: it may have been accepted."""
