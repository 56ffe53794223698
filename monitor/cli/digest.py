"""`newsmon digest …`: saved searches and daily digest subscriptions (subscribe, list, pause, preview, send)."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import CliError, echo_json, guard, open_app


def _digest_errors(fn):
    """Digest errors (bad address, unknown zone, missing SMTP settings…) as one line, exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from monitor.digest.errors import DigestError

        try:
            return fn(*args, **kwargs)
        except DigestError as exc:
            raise CliError(str(exc)) from None

    return guard(wrapper)


def _sub_row(sub, last) -> dict:
    return {
        "id": sub.id, "email": sub.email, "state": sub.state, "search_id": sub.saved_search_id,
        "search": sub.saved_search.name, "query": sub.saved_search.query, "topics": list(sub.saved_search.topics),
        "sources": list(sub.saved_search.sources), "hour": sub.send_hour, "timezone": sub.timezone,
        "paused_reason": sub.paused_reason, "send_empty": sub.send_empty,
        "created_at": sub.created_at, "confirmed_at": sub.confirmed_at,
        "last_delivery": None if last is None else {
            "day": last.local_day, "state": last.state, "stories": last.story_count, "error": last.error,
            "message_id": last.message_id},
    }


@click.group()
def digest() -> None:
    """Saved searches and daily digest e-mails.

    Mail settings come from the environment: NEWSMON_SMTP_URL (smtp://user:password@host:port,
    ?starttls=1, or smtps:// for implicit TLS), NEWSMON_MAIL_FROM, NEWSMON_BASE_URL (the web UI's
    public address, for links) and NEWSMON_SECRET (signs the links). `newsmon run` sends each
    digest at its hour; `newsmon digest send` does it by hand.
    """


@digest.command()
@click.argument("email")
@click.option("--query", "-q", default="", help="Search query (words, \"phrases\", AND/OR/NOT, -exclude).")
@click.option("--topic", "topics", multiple=True, help="Only these topics (repeatable).")
@click.option("--source", "sources", multiple=True, help="Only these sources (repeatable).")
@click.option("--language", "languages", multiple=True, help="Only these languages (repeatable).")
@click.option("--name", help="Name of the saved search (default: made from the query and filters).")
@click.option("--search-id", type=int, help="Use an existing saved search instead of --query/--topic.")
@click.option("--hour", default=7, show_default=True, type=int, help="Local hour to send at (0-23).")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--send-empty", is_flag=True, help="Also send on days with nothing new.")
@click.option("--json", "as_json", is_flag=True)
@_digest_errors
def subscribe(email, query, topics, sources, languages, name, search_id, hour, tz, send_empty, as_json) -> None:
    """Subscribe EMAIL to a daily digest; a confirmation e-mail goes out at once."""
    from monitor.digest import service
    from monitor.digest.subscriptions import SearchSpec

    if search_id is not None and (query or topics or sources or languages or name):
        raise CliError("--search-id cannot be combined with --query/--topic/--source/--language/--name")
    app = open_app()
    try:
        spec = SearchSpec(query, list(topics), list(sources), list(languages), name)
        out = service.subscribe(app, email, spec=spec if search_id is None else None, search_id=search_id,
                                hour=hour, tz=tz, send_empty=send_empty)
    finally:
        app.close()
    conf = out.confirmation
    if as_json:
        echo_json({"id": out.subscription_id, "email": out.email, "state": out.state, "created": out.created,
                   "confirmation": None if conf is None else {"state": conf.state, "detail": conf.detail}})
    else:
        click.echo(f"subscription {out.subscription_id} for {out.email}: {out.state}")
        if conf is not None:
            click.echo(f"confirmation e-mail: {conf.detail}" if conf.state != "sent" else
                       "confirmation e-mail sent; the digest starts once the link in it is opened")
    if conf is not None and conf.state == "failed":
        sys.exit(1)


@digest.command("list")
@click.option("--json", "as_json", is_flag=True)
@_digest_errors
def list_cmd(as_json: bool) -> None:
    """Subscriptions and their state in words: pending, active, paused, unsubscribed."""
    from monitor.digest import subscriptions as subs

    app = open_app()
    try:
        with app.db.session() as s:
            rows = [_sub_row(sub, subs.last_delivery(s, sub.id)) for sub in subs.list_subscriptions(s)]
    finally:
        app.close()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no subscriptions (add one with `newsmon digest subscribe EMAIL --query …`)")
    for r in rows:
        last = r["last_delivery"]
        last_txt = f"last: {last['day']} {last['state']}" if last else "never sent"
        click.echo(f"#{r['id']:<4} {r['state']:<12} {r['email']:<32} {r['search']!s:.40}  "
                   f"{r['hour']:02d}:00 {r['timezone']}  {last_txt}")
        if r["paused_reason"]:
            click.echo(f"      paused: {r['paused_reason']}")


def _change(sub_id: int, action: str, reason: str | None = None) -> None:
    from monitor.digest import subscriptions as subs
    from monitor.digest.deliver import DigestSender

    app = open_app()
    try:
        confirm_again = False
        with app.db.session() as s:
            sub = subs.get_subscription(s, sub_id)
            if action == "pause":
                subs.pause(sub, reason or "paused by an operator")
            elif action == "resume":
                confirm_again = subs.resume(sub)
            elif action == "remove":
                subs.remove(s, sub)
            state, email = sub.state, sub.email
        if confirm_again:
            out = DigestSender(app).send_confirmation(sub_id)
            click.echo(f"subscription {sub_id} for {email}: pending (never confirmed); confirmation e-mail: {out.detail}")
            return
    finally:
        app.close()
    click.echo(f"subscription {sub_id} for {email}: " + ("removed" if action == "remove" else state))


@digest.command()
@click.argument("subscription_id", type=int)
@click.option("--reason", help="Shown in `digest list` and `newsmon status`.")
@_digest_errors
def pause(subscription_id: int, reason: str | None) -> None:
    """Stop sending a subscription's digest until resumed."""
    _change(subscription_id, "pause", reason)


@digest.command()
@click.argument("subscription_id", type=int)
@_digest_errors
def resume(subscription_id: int) -> None:
    """Send a paused subscription's digest again (from its next hour)."""
    _change(subscription_id, "resume")


@digest.command()
@click.argument("subscription_id", type=int)
@_digest_errors
def remove(subscription_id: int) -> None:
    """Delete a subscription and its delivery records."""
    _change(subscription_id, "remove")


@digest.command()
@click.argument("subscription_id", type=int)
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True), help="Write the HTML part here.")
@click.option("--text/--no-text", default=True, help="Print the plain-text part.")
@_digest_errors
def preview(subscription_id: int, html_file: str | None, text: bool) -> None:
    """Render the digest SUBSCRIPTION_ID would get now, without sending or recording anything."""
    from monitor.digest.deliver import DigestSender

    app = open_app()
    try:
        msg, content = DigestSender(app).preview(subscription_id)
    finally:
        app.close()
    click.echo(f"Subject: {msg['Subject']}")
    click.echo(f"To: {msg['To']}")
    click.echo(f"window: {content.window_start:%Y-%m-%d %H:%M} – {content.window_end:%Y-%m-%d %H:%M} UTC; "
               f"{content.total_stories} stories, {content.new_articles} new articles"
               + ("  (nothing new: no e-mail would be sent)" if content.empty else ""))
    if text:
        click.echo("")
        click.echo(msg.get_body(("plain",)).get_content())
    if html_file:
        with open(html_file, "w", encoding="utf-8") as fh:
            fh.write(msg.get_body(("html",)).get_content())
        click.echo(f"HTML written to {html_file}")


@digest.command()
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send and record nothing.")
@click.option("--now", "force", is_flag=True,
              help="Today's digest of every active subscription regardless of its hour (still once per day).")
@click.option("--subscription", "only", type=int, help="Only this subscription.")
@click.option("--resend-uncertain", is_flag=True,
              help="First allow deliveries marked uncertain to be sent again (after checking the mail log).")
@click.option("--json", "as_json", is_flag=True)
@_digest_errors
def send(dry_run: bool, force: bool, only: int | None, resend_uncertain: bool, as_json: bool) -> None:
    """Send the digests that are due now (and opt-in e-mails that could not go out before)."""
    from monitor.digest.deliver import DigestSender

    app = open_app()
    try:
        sender = DigestSender(app)
        if resend_uncertain and not dry_run:
            n = sender.resend_uncertain()
            click.echo(f"{n} uncertain deliver{'y' if n == 1 else 'ies'} released for sending", err=True)
        outcomes = ([] if dry_run else sender.pending_confirmations()) + sender.run(force=force, dry_run=dry_run, only=only)
    finally:
        app.close()
    if as_json:
        echo_json([{"subscription": o.subscription_id, "email": o.email, "day": o.local_day, "state": o.state,
                    "detail": o.detail, "subject": o.subject, "stories": o.stories} for o in outcomes])
    else:
        if not outcomes:
            click.echo("nothing due")
        for o in outcomes:
            what = o.subject or o.detail
            click.echo(f"#{o.subscription_id} {o.email} {o.local_day or 'confirmation'}: {o.state}"
                       + (f" — {what}" if what else "") + (f" ({o.detail})" if o.subject and o.detail else ""))
    if any(o.state in ("error", "failed") for o in outcomes):
        sys.exit(1)


@digest.command()
@click.option("--json", "as_json", is_flag=True)
@_digest_errors
def searches(as_json: bool) -> None:
    """List saved searches."""
    from monitor.digest import subscriptions as subs

    app = open_app()
    try:
        with app.db.session() as s:
            rows = [{"id": x.id, "name": x.name, "query": x.query, "topics": list(x.topics), "sources": list(x.sources),
                     "languages": list(x.languages), "owner": x.owner, "created_at": x.created_at}
                    for x in subs.list_searches(s)]
    finally:
        app.close()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        filters = " ".join([f"topic:{t}" for t in r["topics"]] + [f"source:{x}" for x in r["sources"]])
        click.echo(f"#{r['id']:<4} {r['name']}  [{r['query'] or '*'}{' ' + filters if filters else ''}]")


@digest.command("save-search")
@click.argument("name")
@click.option("--query", "-q", default="", help="Search query.")
@click.option("--topic", "topics", multiple=True, help="Only these topics (repeatable).")
@click.option("--source", "sources", multiple=True, help="Only these sources (repeatable).")
@click.option("--language", "languages", multiple=True, help="Only these languages (repeatable).")
@_digest_errors
def save_search(name, query, topics, sources, languages) -> None:
    """Save a named search (query and filters) to subscribe to with --search-id."""
    from monitor.digest import service
    from monitor.digest.subscriptions import SearchSpec

    app = open_app()
    try:
        search_id = service.save_search(app, SearchSpec(query, list(topics), list(sources), list(languages), name))
    finally:
        app.close()
    click.echo(f"saved search {search_id}: {name}")


@digest.command("remove-search")
@click.argument("search_id", type=int)
@_digest_errors
def remove_search(search_id: int) -> None:
    """Delete a saved search and every subscription to it."""
    from monitor.digest import subscriptions as subs

    app = open_app()
    try:
        with app.db.session() as s:
            subs.remove_search(s, search_id)
    finally:
        app.close()
    click.echo(f"saved search {search_id} removed")
